"""The process environment, read once at an entry point (CLI, API, GUI) into explicit settings."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from tdgui.core import paths
from tdgui.core.errors import ConfigError


def _flag(environ: Mapping[str, str], name: str) -> bool | None:
    """pyTD's True/False variables: anything else is an error, never a silent default."""
    raw = environ.get(name)
    if raw is None:
        return None
    value = raw.strip().lower()
    if value in ("true", "false"):
        return value == "true"
    raise ConfigError(f"{name} must be True or False, not {raw!r}")


def _number(environ: Mapping[str, str], name: str, default: float) -> float:
    raw = environ.get(name)
    if raw is None or not raw.strip():
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number of seconds (or bytes), not {raw!r}") from None
    if not value > 0 or value != value or value == float("inf"):
        raise ConfigError(f"{name} must be a positive number, not {raw!r}")
    return value


@dataclass(frozen=True)
class HttpSettings:
    """How patient the token client is: per-read timeout, retry backoff, overall deadline, body cap."""

    timeout: float = 20.0
    backoff: float = 1.0
    deadline: float = 30.0
    max_body: int = 1 << 20

    @classmethod
    def from_os(cls, environ: Mapping[str, str] | None = None) -> HttpSettings:
        env = os.environ if environ is None else environ
        base = cls()
        return cls(
            timeout=_number(env, "TD_HTTP_TIMEOUT", base.timeout),
            backoff=_number(env, "TD_HTTP_BACKOFF", base.backoff),
            deadline=_number(env, "TD_HTTP_DEADLINE", base.deadline),
            max_body=int(_number(env, "TD_HTTP_MAX_BODY", base.max_body)),
        )


@dataclass(frozen=True)
class Environment:
    """Everything tdgui takes from environment variables; nothing below an entry point reads them."""

    config_dir: Path
    log_dir: Path
    #: TD_LOG_LEVEL (DEBUG, INFO, WARNING, ERROR), upper-cased; None: the default
    log_level: str | None = None
    #: TD_SANDBOX_URL: where sandbox accounts without their own URL find the emulator
    sandbox_url: str | None = None
    #: TD_STORE_TOKENS (pyTD): False keeps the API's tokens in memory only
    store_tokens: bool | None = None
    #: TD_CONSUMER_KEY / TD_CALLBACK_URL (pyTD): the API's defaults
    consumer_key: str | None = None
    callback_url: str | None = None
    #: TD_HTTP_TIMEOUT, TD_HTTP_BACKOFF, TD_HTTP_DEADLINE, TD_HTTP_MAX_BODY
    http: HttpSettings = HttpSettings()

    @classmethod
    def from_os(cls, environ: Mapping[str, str] | None = None) -> Environment:
        env = os.environ if environ is None else environ
        config_dir, log_dir = paths.config_dir(env), paths.log_dir(env)
        level = env.get("TD_LOG_LEVEL", "").strip().upper() or None
        if level is not None and level not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
            raise ConfigError(
                f"TD_LOG_LEVEL must be DEBUG, INFO, WARNING or ERROR, not {env['TD_LOG_LEVEL']!r}"
            )
        return cls(
            config_dir=config_dir,
            log_dir=log_dir,
            log_level=level,
            sandbox_url=env.get("TD_SANDBOX_URL") or None,
            store_tokens=_flag(env, "TD_STORE_TOKENS"),
            consumer_key=env.get("TD_CONSUMER_KEY") or None,
            callback_url=env.get("TD_CALLBACK_URL") or None,
            http=HttpSettings.from_os(env),
        )

    def to_os(self) -> dict[str, str]:
        """The variables that give a child process this same environment (TD_CONFIG_DIR ...)."""
        values = {
            "TD_CONFIG_DIR": str(self.config_dir),
            "TD_LOG_DIR": str(self.log_dir),
            "TD_LOG_LEVEL": self.log_level,
            "TD_SANDBOX_URL": self.sandbox_url,
            "TD_HTTP_TIMEOUT": repr(self.http.timeout),
            "TD_HTTP_BACKOFF": repr(self.http.backoff),
            "TD_HTTP_DEADLINE": repr(self.http.deadline),
            "TD_HTTP_MAX_BODY": str(self.http.max_body),
        }
        return {key: value for key, value in values.items() if value is not None}
