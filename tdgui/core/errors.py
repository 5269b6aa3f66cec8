"""One error hierarchy; every error carries a kind the CLI and the UI can act on."""

from __future__ import annotations

from enum import Enum


class ErrorKind(Enum):
    """What the user can do about an error; maps one to one onto CLI exit codes."""

    OTHER = 1
    USAGE = 2
    LOGIN_REQUIRED = 3
    PROVIDER = 4
    STORE = 5

    @property
    def exit_code(self) -> int:
        return self.value


class Reason(Enum):
    """What went wrong, for a caller that says it in its own words (db_setup.plain_error), so
    no caller has to match the message's text."""

    SCHEMA_NOT_CREATABLE = "the database role may not create tdgui's schema"
    NO_TABLE_RIGHTS = "the database role lacks rights on tdgui's tables"
    NO_CONNECT_RIGHT = "the database role may not connect to the database"
    DATABASE_UNAVAILABLE = "the database cannot be used (down, unreachable, refused the login)"
    KEYRING_NEEDED = "the database key needs the keyring"
    ALREADY_SHARED = "the database already holds the account"
    NOT_SHARED = "the database holds no such shared account"
    NO_SHARED_TOKENS = "the database holds no tokens for the account"


class TdguiError(Exception):
    """Base of every error tdgui raises on purpose. The message is meant for the user."""

    kind: ErrorKind = ErrorKind.OTHER
    reason: Reason | None = None

    def __init__(self, *args: object, reason: Reason | None = None) -> None:
        super().__init__(*args)
        if reason is not None:
            self.reason = reason

    @property
    def exit_code(self) -> int:
        return self.kind.exit_code


class UsageError(TdguiError):
    """Bad input from the user: unknown account, malformed URL, wrong option."""

    kind = ErrorKind.USAGE


class ConfigError(UsageError):
    """The configuration (accounts file, environment variable) is invalid."""


class LoginRequired(TdguiError):
    """No usable refresh token: the user has to log in in a browser again."""

    kind = ErrorKind.LOGIN_REQUIRED


class LoginFailed(TdguiError):
    """A login did not complete (bad redirect, denied consent, code rejected)."""

    kind = ErrorKind.OTHER


class RedirectError(LoginFailed):
    """The redirect URL is not the expected callback, or carries the wrong state or no code."""


class AccessDenied(LoginFailed):
    """The user (or the provider) declined the authorization request."""


class ProviderError(TdguiError):
    """The provider failed: unreachable, timed out, 5xx, or an answer we cannot use."""

    kind = ErrorKind.PROVIDER

    def __init__(self, message: str, *, retry_after: float | None = None, transient: bool = True):
        super().__init__(message)
        self.retry_after = retry_after
        self.transient = transient


class StoreUnavailable(TdguiError):
    """The token store cannot be used (no Secret Service, keyring locked or hung, disk error)."""

    kind = ErrorKind.STORE


class StoredDataError(TdguiError):
    """A stored record cannot be read (corrupt or written by a newer version)."""

    kind = ErrorKind.STORE
