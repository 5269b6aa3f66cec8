"""Local HTTPS emulator of the Schwab and TD Ameritrade OAuth servers (the `sandbox` provider).

Modules: model (codes, grants, tokens, rotation and reuse detection, clock), clients (the demo
apps' authentication), errors, authserver (the OAuth endpoints per flavor), transport (HTTPS
server and handler), faults (switchable faults, counters), controls (the secret-protected
control API), runner (SandboxServer, serve_forever), certs (the local TLS pair), pages, driver.
"""

from __future__ import annotations

from tdgui.sandbox.certs import SandboxCerts, ensure_sandbox_certs, sandbox_state_dir
from tdgui.sandbox.controls import CONTROL_HEADER, control_secret_file, read_control_secret
from tdgui.sandbox.faults import FAULT_KINDS, STAT_NAMES
from tdgui.sandbox.model import DEMO_PASSWORD, DEMO_USER
from tdgui.sandbox.runner import SandboxServer, serve_forever

__all__ = [
    "CONTROL_HEADER",
    "DEMO_PASSWORD",
    "DEMO_USER",
    "FAULT_KINDS",
    "STAT_NAMES",
    "SandboxCerts",
    "SandboxServer",
    "control_secret_file",
    "ensure_sandbox_certs",
    "read_control_secret",
    "sandbox_state_dir",
    "serve_forever",
]
