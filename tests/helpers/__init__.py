"""Test helpers shared across suites: the hostile provider, the private PostgreSQL server."""
