"""The desktop app: the only package that imports PySide6; it wires widgets and signals to tdgui.core."""
