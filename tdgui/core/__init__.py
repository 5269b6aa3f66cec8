"""The Qt-free core of tdgui: providers, login protocol, tokens, stores and the token service."""
