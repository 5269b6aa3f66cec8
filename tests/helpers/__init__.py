"""Test helpers that are not fixtures of one directory: the private PostgreSQL server."""
