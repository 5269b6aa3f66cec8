"""The sandbox's demo apps and how each flavor authenticates them at the token endpoint."""

from __future__ import annotations

import base64
import hmac
from urllib.parse import unquote

from tdgui.core.providers import (
    SANDBOX_SCHWAB_CLIENT_ID,
    SANDBOX_SCHWAB_CLIENT_SECRET,
    SANDBOX_TDA_CLIENT_ID,
    TDA_CLIENT_ID_SUFFIX,
)
from tdgui.sandbox.errors import OAuthError

TDA_FULL_CLIENT_ID = SANDBOX_TDA_CLIENT_ID + TDA_CLIENT_ID_SUFFIX


def authenticate(flavor: str, form: dict[str, str], authorization: str | None) -> str:
    """The authenticated client (RFC 6749 §2.3): Basic with the secret (Schwab), the id alone (TDA)."""
    if flavor == "schwab":
        return basic_client(authorization)
    return tda_client(form.get("client_id"))


def basic_client(authorization: str | None) -> str:
    if not authorization or not authorization.lower().startswith("basic "):
        raise OAuthError(401, "invalid_client", "HTTP Basic client authentication is required")
    try:
        decoded = base64.b64decode(authorization[6:].strip(), validate=True).decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        raise OAuthError(401, "invalid_client", "malformed Basic credentials") from None
    client_id, sep, secret = decoded.partition(":")
    if not sep:
        raise OAuthError(401, "invalid_client", "malformed Basic credentials")
    for cid, sec in ((client_id, secret), (unquote(client_id), unquote(secret))):
        if hmac.compare_digest(cid.encode(), SANDBOX_SCHWAB_CLIENT_ID.encode()) and (
            hmac.compare_digest(sec.encode(), SANDBOX_SCHWAB_CLIENT_SECRET.encode())
        ):
            return SANDBOX_SCHWAB_CLIENT_ID
    raise OAuthError(401, "invalid_client", "client authentication failed")


def tda_client(client_id: str | None) -> str:
    if client_id in (TDA_FULL_CLIENT_ID, SANDBOX_TDA_CLIENT_ID):
        return TDA_FULL_CLIENT_ID
    if not client_id:
        raise OAuthError(401, "invalid_client", "client_id is missing")
    raise OAuthError(401, "invalid_client", "unknown client_id")
