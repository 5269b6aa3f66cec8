"""tdgui: get and keep OAuth tokens for the Schwab Trader API and the legacy TD Ameritrade API."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = ["Accounts", "__version__", "api", "get_token", "session"]

if TYPE_CHECKING:
    from tdgui.api import Accounts, api, get_token, session


def __getattr__(name: str) -> Any:
    # Lazy: `import tdgui` must stay cheap for `tdgui token` (no requests/authlib until needed).
    if name in ("api", "session", "get_token", "Accounts"):
        # importlib, not `from tdgui import api`: that form asks this __getattr__ for "api"
        # again before importing the submodule (infinite recursion).
        import importlib

        # From then on `tdgui.api` is the submodule, which is callable: `tdgui.api(...)`
        # builds an `api` either way (see tdgui/api.py).
        return getattr(importlib.import_module("tdgui.api"), name)
    raise AttributeError(name)
