"""The two ways the sandbox refuses an OAuth request: a JSON error answer or an HTML page."""

from __future__ import annotations


class OAuthError(Exception):
    """An RFC 6749 §5.2 error answer of the token endpoint."""

    def __init__(self, status: int, error: str, description: str) -> None:
        super().__init__(error)
        self.status = status
        self.error = error
        self.description = description


class PageError(Exception):
    """An authorization request we refuse with an HTML page (never a redirect)."""
