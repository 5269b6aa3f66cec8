"""Tests of the Python API (tdgui.api, tdgui.cache) and the token files other tools read."""
