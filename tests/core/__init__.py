"""Tests of tdgui.core modules, one directory per package."""
