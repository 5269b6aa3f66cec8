"""The local CA and 127.0.0.1 leaf (tdgui.core.localtls) the sandbox serves and clients pin."""

from __future__ import annotations

import hashlib
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from cryptography import x509

from tdgui.sandbox import SandboxServer, ensure_sandbox_certs, sandbox_state_dir

from .support import (
    encoding_der,
    get,
    subprocess_env,
)

# --------------------------------------------------------------------------- certificates


def test_certs_private_pinned_and_reused(state_dir: Path) -> None:
    first = ensure_sandbox_certs(state_dir)
    mtimes = {p: p.stat().st_mtime_ns for p in (first.ca_file, first.cert_file, first.key_file)}
    second = ensure_sandbox_certs(state_dir)
    assert second == first
    assert {p: p.stat().st_mtime_ns for p in mtimes} == mtimes
    leaf = x509.load_pem_x509_certificate(first.cert_file.read_bytes())
    assert first.leaf_sha256 == hashlib.sha256(leaf.public_bytes(encoding_der())).hexdigest()
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert [str(ip) for ip in san.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    assert san.get_values_for_type(x509.DNSName) == ["localhost"]
    if os.name == "posix":
        assert stat.S_IMODE(state_dir.stat().st_mode) == 0o700
        for path in state_dir.glob("*.pem"):
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, path


def test_broken_leaf_is_reissued_by_the_same_ca(state_dir: Path) -> None:
    first = ensure_sandbox_certs(state_dir)
    ca_pem = first.ca_file.read_bytes()
    first.cert_file.write_text("garbage")
    second = ensure_sandbox_certs(state_dir)
    assert second.ca_file.read_bytes() == ca_pem
    assert second.leaf_sha256 != first.leaf_sha256
    leaf = x509.load_pem_x509_certificate(second.cert_file.read_bytes())
    leaf.verify_directly_issued_by(x509.load_pem_x509_certificate(ca_pem))


def test_concurrent_first_calls_from_processes_agree(state_dir: Path) -> None:
    code = (
        "import sys; from pathlib import Path; from tdgui.sandbox.certs import ensure_sandbox_certs;"
        "print(ensure_sandbox_certs(Path(sys.argv[1])).leaf_sha256)"
    )
    env = subprocess_env()
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, str(state_dir)], stdout=subprocess.PIPE, text=True, env=env
        )
        for _ in range(3)
    ]
    outs = {p.communicate(timeout=30)[0].strip() for p in procs}
    assert all(p.returncode == 0 for p in procs)
    assert outs == {ensure_sandbox_certs(state_dir).leaf_sha256}


def test_certificate_is_pinned_not_public(server: SandboxServer) -> None:
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(server.base_url + "/", timeout=5)
    r = get(server, "/")
    assert r.status_code == 200
    assert "sandbox" in r.text


def test_login_view_pin_matches_the_sandbox_certificate(tmp_path: Path) -> None:
    """The Qt login view pins the sandbox profile's pinned_sha256 (stdlib); it must equal the
    emulator's own, and travel on the profile the account resolves to."""
    from tdgui.core.config import sandbox_account

    profile = sandbox_account("demo").resolve_provider(tmp_path)
    assert profile.pinned_sha256() is None  # never ran: nothing to pin, nothing accepted
    certs = ensure_sandbox_certs(sandbox_state_dir(tmp_path))
    assert profile.pinned_sha256() == certs.leaf_sha256
    assert profile.ca_file == str(certs.ca_file)
    with SandboxServer(sandbox_state_dir(tmp_path)) as server:
        assert server.provider("schwab").pinned_sha256() == certs.leaf_sha256


def test_builtin_demo_secret_travels_on_the_profile(tmp_path: Path) -> None:
    """core.service reads the demo app's secret from the profile, not from a sandbox special case."""
    from tdgui.core.config import sandbox_account
    from tdgui.core.providers import SANDBOX_SCHWAB_CLIENT_ID, SANDBOX_SCHWAB_CLIENT_SECRET, schwab

    schwab_profile = sandbox_account("s", "schwab").resolve_provider(tmp_path)
    assert schwab_profile.builtin_client_secret(SANDBOX_SCHWAB_CLIENT_ID) == SANDBOX_SCHWAB_CLIENT_SECRET
    assert schwab_profile.builtin_client_secret("SomeOtherKey") is None
    assert sandbox_account("t", "tdameritrade").resolve_provider(tmp_path).builtin_client is None
    assert schwab().builtin_client is None and schwab().pinned_cert_file is None
