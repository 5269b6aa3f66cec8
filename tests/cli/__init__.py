"""Tests of the command line (tdgui.cli), as real subprocesses."""
