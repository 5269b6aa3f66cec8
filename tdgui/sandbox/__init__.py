"""Local HTTPS emulator of the Schwab and TD Ameritrade OAuth servers (the `sandbox` provider)."""

from __future__ import annotations

from tdgui.sandbox.certs import SandboxCerts, ensure_sandbox_certs, sandbox_state_dir
from tdgui.sandbox.server import (
    DEMO_PASSWORD,
    DEMO_USER,
    FAULT_KINDS,
    STAT_NAMES,
    SandboxServer,
    serve_forever,
)

__all__ = [
    "DEMO_PASSWORD",
    "DEMO_USER",
    "FAULT_KINDS",
    "STAT_NAMES",
    "SandboxCerts",
    "SandboxServer",
    "ensure_sandbox_certs",
    "sandbox_state_dir",
    "serve_forever",
]
