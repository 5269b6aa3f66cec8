"""Tests of the desktop files and the PyInstaller bundle (resources/, build.spec)."""
