"""The sandbox's CA and 127.0.0.1 leaf: the local TLS pair of tdgui.core.localtls, in its state dir."""

from __future__ import annotations

from tdgui.core.localtls import LocalTLS, ensure_local_tls, local_tls_dir

#: The sandbox serves the local leaf certificate; clients pin the local CA (or the leaf's hash).
SandboxCerts = LocalTLS
#: Where the sandbox keeps its CA and certificate under a tdgui config dir.
sandbox_state_dir = local_tls_dir
#: The sandbox's certificates, made the first time (safe across processes).
ensure_sandbox_certs = ensure_local_tls

__all__ = ["SandboxCerts", "ensure_sandbox_certs", "sandbox_state_dir"]
