"""Which keyring backend may hold tokens: never a plaintext one, never none (says why)."""

from __future__ import annotations

import logging

import keyring
import keyring.backend
import keyring.errors
from keyring.backends import chainer, fail, null

from tdgui.core.errors import StoreUnavailable

log = logging.getLogger(__name__)

NO_KEYRING = (
    "No system keyring (Secret Service) is available: start a desktop session / unlock your "
    "keyring, or choose an explicit file store with --store file"
)


def plaintext_reason(backend: keyring.backend.KeyringBackend) -> str | None:
    """Why `backend` must not hold tokens (no keyring at all, or plaintext on disk), or None."""
    cls = type(backend)
    if isinstance(backend, (fail.Keyring, null.Keyring)):
        return f"keyring found no usable backend ({cls.__module__}.{cls.__name__})"
    # keyrings.alt's PlaintextKeyring (priority 0.5) is picked silently when D-Bus is missing
    # (docs/platform.md); docs/design.md §5: never fall back to plaintext silently. Its encrypted
    # variants (EncryptedKeyring, the DPAPI RegistryKeyring) do not write secrets in clear.
    if cls.__module__.startswith("keyrings.alt") and not any(
        word in cls.__name__ for word in ("Encrypted", "Registry")
    ):
        return f"keyring chose the plaintext backend {cls.__module__}.{cls.__name__}"
    return None


def backend_name(backend: keyring.backend.KeyringBackend) -> str:
    """Short backend name from its module: SecretService, Windows, macOS, kwallet..."""
    return type(backend).__module__.rsplit(".", 1)[-1]


def resolve_backend() -> keyring.backend.KeyringBackend:
    """keyring's backend, or its best safe member; StoreUnavailable if none is safe."""
    backend: keyring.backend.KeyringBackend = keyring.get_keyring()
    if isinstance(backend, chainer.ChainerBackend):
        # keyring chains every viable backend when there are several, and its set_password
        # falls through to the next one on failure: with keyrings.alt installed, a locked
        # Secret Service would silently land tokens in a plaintext file. Use the best safe
        # member alone instead.
        members: list[keyring.backend.KeyringBackend] = list(backend.backends)
        safe = [member for member in members if plaintext_reason(member) is None]
        if safe:
            log.debug("keyring chainer: using %s alone", backend_name(safe[0]))
            return safe[0]
        reason = plaintext_reason(members[0]) if members else "keyring found no backend"
        raise StoreUnavailable(f"{NO_KEYRING} ({reason})")
    reason = plaintext_reason(backend)
    if reason is not None:
        raise StoreUnavailable(f"{NO_KEYRING} ({reason})")
    return backend


def leaks(text: str, secret: str | None) -> bool:
    """Whether `text` contains `secret` or any 16-character piece of it."""
    if not secret:
        return False
    if len(secret) < 16:
        return secret in text
    return any(text[i : i + 16] in secret for i in range(max(0, len(text) - 15)))


def is_locked(exc: BaseException) -> bool:
    if isinstance(exc, keyring.errors.KeyringLocked):
        return True
    names = {cls.__name__ for cls in type(exc).__mro__}
    # secretstorage.exceptions.LockedException / PromptDismissedException, matched by name so
    # this module does not import secretstorage (absent on Windows and macOS).
    if names & {"LockedException", "PromptDismissedException"}:
        return True
    # SecretService wraps a dismissed unlock prompt as InitError("... Prompt dismissed"), seen
    # with a locked collection and no prompter (docs/platform.md).
    text = str(exc).lower()
    return isinstance(exc, keyring.errors.InitError) and ("prompt" in text or "lock" in text)


def map_error(exc: Exception, secret: str | None) -> tuple[StoreUnavailable, bool]:
    """A StoreUnavailable for a backend failure, and whether chaining `exc` is safe."""
    full = f"{type(exc).__name__}: {exc}"
    safe = not leaks(full, secret)  # the whole text: a chained original is shown in full
    detail = full[:300]
    if not safe:
        detail = f"{type(exc).__name__} (details withheld: they would include the secret)"
    if is_locked(exc):
        return (
            StoreUnavailable(
                "the keyring is locked: unlock it (log in to the desktop session, or unlock "
                "the login keyring in your passwords app) and retry, or choose an explicit "
                f"file store with --store file ({detail})"
            ),
            safe,
        )
    if isinstance(exc, keyring.errors.NoKeyringError):
        return StoreUnavailable(f"{NO_KEYRING} ({detail})"), safe
    return (
        StoreUnavailable(
            f"keyring unavailable ({detail}): check that the Secret Service / system keyring "
            "is running and unlocked, or choose an explicit file store with --store file"
        ),
        safe,
    )
