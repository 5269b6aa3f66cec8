"""Logging to the platform log dir with rotation, through a filter that masks every secret."""

from __future__ import annotations

import logging
import logging.handlers
import os
import re
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any
from urllib.parse import quote

from tdgui.core import paths
from tdgui.core.fsutil import FILE_MODE, private_dir

MASK = "[secret]"
#: Shorter strings are not treated as secrets (they would mask ordinary words).
MIN_SECRET_LENGTH = 8

_NAMES = "access_token|refresh_token|id_token|code|code_verifier|client_secret|password|session"
#: (prefix, value) pairs: key=value in URLs and form bodies, "key": "value" in JSON, and
#: Authorization headers. The prefix is kept, the value masked.
_PATTERNS = [
    re.compile(rf"(?i)\b((?:{_NAMES})=)([^&\s'\"]+)"),
    re.compile(rf"(?i)(\"(?:{_NAMES})\"\s*:\s*\")([^\"]*)"),
    re.compile(r"(?i)\b((?:Bearer|Basic)\s+)([A-Za-z0-9._~+/=%@-]+)"),
]


class SecretRegistry:
    """Every secret the process has seen, so any log line containing one can be masked."""

    def __init__(self) -> None:
        self._secrets: set[str] = set()
        self._lock = threading.Lock()

    def add(self, secret: str | None) -> None:
        if secret and len(secret) >= MIN_SECRET_LENGTH:
            with self._lock:
                self._secrets.add(secret)
                # Secrets also travel URL-encoded (Schwab's code ends in %40).
                self._secrets.add(quote(secret, safe=""))

    def mask(self, text: str) -> str:
        with self._lock:
            known = sorted(self._secrets, key=len, reverse=True)
        for secret in known:
            if secret in text:
                text = text.replace(secret, MASK)
        for pattern in _PATTERNS:
            text = pattern.sub(lambda m: m.group(1) + MASK, text)
        return text


SECRETS = SecretRegistry()


class MaskSecretsFilter(logging.Filter):
    """Formats the record once and masks secrets in the result (args included)."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string must not break logging
            message = str(record.msg)
        record.msg = SECRETS.mask(message)
        record.args = None
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = SECRETS.mask(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        return True


class _PrivateRotatingFileHandler(logging.handlers.RotatingFileHandler):
    """Opens the log file 0600 whatever the umask: at start (fixing a pre-existing 0644 file)
    and again after every rotation, where the stock handler creates a fresh file by umask."""

    def _open(self) -> Any:
        fd = os.open(self.baseFilename, os.O_WRONLY | os.O_APPEND | os.O_CREAT, FILE_MODE)
        if os.name == "posix":
            os.fchmod(fd, FILE_MODE)
        return open(fd, self.mode, encoding=self.encoding, errors=self.errors)


_configured = False


def setup_logging(
    level: str | int | None = None, *, to_stderr: bool = False, log_dir: Path | None = None
) -> None:
    """Root logging: rotating file in `log_dir` (0600, dir 0700), every handler masked.

    `log_dir` None means the platform's (or TD_LOG_DIR's): entry points pass their Environment's.
    """
    global _configured
    # A log write that fails (disk full, log dir gone) must not print logging's own traceback
    # over the one-line error the user gets (the stdlib's advice for production code).
    logging.raiseExceptions = False
    chosen: Any = level if level is not None else "INFO"
    root = logging.getLogger()
    root.setLevel(chosen)
    if _configured:
        for handler in root.handlers:
            if isinstance(handler, logging.StreamHandler) and not isinstance(handler, logging.FileHandler):
                handler.setLevel(chosen)
        return
    _configured = True
    formatter = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    mask = MaskSecretsFilter()
    try:
        directory = private_dir(log_dir or paths.log_dir())
        path = directory / "tdgui.log"
        file_handler = _PrivateRotatingFileHandler(path, maxBytes=1_000_000, backupCount=3, encoding="utf-8")
        file_handler.setFormatter(formatter)
        file_handler.addFilter(mask)
        root.addHandler(file_handler)
    except OSError:
        pass  # a read-only home must not stop the app; stderr still gets warnings
    stream = logging.StreamHandler()
    stream.setLevel(chosen if to_stderr else logging.WARNING)
    stream.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    stream.addFilter(mask)
    root.addHandler(stream)


#: ANSI/ECMA-48 escape sequences: CSI (ESC [ ... final), OSC (ESC ] ... BEL or ESC \), and
#: the two-character ones. Stripped whole, so no fragment of one reaches a terminal.
_ESCAPES = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b[@-_]?|\x9b[0-?]*[ -/]*[@-~]"
)
#: C0/C1 controls, DEL, and the Unicode format characters that reorder or hide text (bidi
#: overrides, zero-width): a provider's text must read in a terminal exactly as stored.
_CONTROLS = re.compile(r"[\x00-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2066-\u2069\ufeff]+")
PROVIDER_TEXT_LIMIT = 300


def sanitize_provider_text(
    text: object, secrets: Iterable[str | None] = (), limit: int = PROVIDER_TEXT_LIMIT
) -> str:
    """Provider-supplied text made safe to store and print: one line, no escapes, no secret, bounded.

    Masking happens after the escapes are gone (a secret split by an escape sequence is whole
    again) and before the cut (a cut secret would no longer match).
    """
    clean = _CONTROLS.sub(" ", _ESCAPES.sub("", str(text)))
    clean = " ".join(clean.split())
    for secret in sorted((s for s in secrets if s and len(s) >= 4), key=len, reverse=True):
        for form in {secret, quote(secret, safe="")}:
            clean = clean.replace(form, MASK)
    clean = SECRETS.mask(clean)
    if len(clean) > limit:
        clean = clean[: max(0, limit - 1)] + "…"
    return clean
