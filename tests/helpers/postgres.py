"""A private PostgreSQL server for the test session: own temp dir, free port, socket dir and TLS CA."""

from __future__ import annotations

import datetime
import ipaddress
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

#: The names the server certificate is valid for: "db.test" lets a test talk to a
#: "non-loopback" host name (hostaddr=127.0.0.1) with sslmode=verify-full.
CERT_NAMES = ("localhost", "db.test")


def _bin_dir() -> Path:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parts[-3]))
    if not found:
        pytest.fail(
            "PostgreSQL is not installed: `bash scripts/system-deps.sh` installs it (make test does)",
            pytrace=False,
        )
    return found[-1].parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def make_ca(common_name: str) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(_name(common_name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )
        .sign(key, hashes.SHA256())
    )
    return key, cert


def make_server_cert(
    ca_key: ec.EllipticCurvePrivateKey, ca: x509.Certificate
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    names: list[x509.GeneralName] = [x509.DNSName(n) for n in CERT_NAMES]
    names.append(x509.IPAddress(ipaddress.ip_address("127.0.0.1")))
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("tdgui test postgres"))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    return key, cert


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


@dataclass
class PgServer:
    """A running private server; `url()` is what a tdgui user would configure."""

    base: Path
    bin_dir: Path
    port: int
    ca_file: Path
    other_ca_file: Path
    user: str = "tdgui_test"
    dbname: str = "tdgui_test"
    password: str = field(default_factory=lambda: secrets.token_urlsafe(18))
    as_user: list[str] = field(default_factory=list)

    @property
    def data_dir(self) -> Path:
        return self.base / "data"

    @property
    def socket_dir(self) -> Path:
        return self.base / "sock"

    @property
    def log_file(self) -> Path:
        return self.base / "pg.log"

    def url(self, *, host: str = "127.0.0.1", user: str | None = None, **query: str) -> str:
        options = {"sslmode": "verify-full", "sslrootcert": str(self.ca_file), **query}
        q = "&".join(f"{k}={quote(v, safe='/')}" for k, v in options.items())
        return f"postgresql://{user or self.user}@{host}:{self.port}/{self.dbname}?{q}"

    def admin(self, dbname: str | None = None) -> Any:
        """A superuser connection over the private Unix socket (trust auth)."""
        import psycopg

        return psycopg.connect(
            host=str(self.socket_dir),
            port=self.port,
            user="postgres",
            dbname=dbname or self.dbname,
            autocommit=True,
        )

    def fresh_schema(self) -> str:
        return f"t_{uuid.uuid4().hex[:16]}"

    def drop_schema(self, schema: str) -> None:
        with self.admin() as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')

    def pg_ctl(self, *args: str, timeout: float = 60) -> None:
        subprocess.run(
            [*self.as_user, str(self.bin_dir / "pg_ctl"), "-D", str(self.data_dir), *args],
            check=True,
            capture_output=True,
            timeout=timeout,
        )

    def start(self) -> None:
        # -l: without a log file the server keeps our stdout/stderr open, and a caller that
        # captures them waits forever (docs/platform.md).
        self.pg_ctl("-l", str(self.log_file), "-w", "-t", "60", "start")

    def stop(self) -> None:
        self.pg_ctl("-m", "immediate", "stop")


def start_server() -> PgServer:
    bin_dir = _bin_dir()
    as_user: list[str] = []
    owner: Any = None  # pwd.struct_passwd; pwd is POSIX-only and this module loads everywhere
    if os.geteuid() == 0:
        import pwd

        # initdb refuses to run as root (docs/platform.md): run the server as `postgres`.
        owner = pwd.getpwnam("postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    base = Path(tempfile.mkdtemp(prefix="tdgui-pg-"))
    ca_key, ca = make_ca("tdgui test CA")
    _, other_ca = make_ca("tdgui other CA")
    server = PgServer(
        base=base,
        bin_dir=bin_dir,
        port=free_port(),
        ca_file=base / "ca.pem",
        other_ca_file=base / "other-ca.pem",
        as_user=as_user,
    )
    server.ca_file.write_bytes(_pem(ca))
    server.other_ca_file.write_bytes(_pem(other_ca))
    server.socket_dir.mkdir()
    if owner is not None:
        for path in (base, server.socket_dir):
            os.chown(path, owner.pw_uid, owner.pw_gid)
    subprocess.run(
        [
            *as_user,
            str(bin_dir / "initdb"),
            "-D",
            str(server.data_dir),
            "-A",
            "trust",
            "-U",
            "postgres",
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    key, cert = make_server_cert(ca_key, ca)
    (server.data_dir / "server.crt").write_bytes(_pem(cert))
    key_file = server.data_dir / "server.key"
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    os.chmod(key_file, 0o600)
    (server.data_dir / "pg_hba.conf").write_text(
        "local all all trust\nhost all all 127.0.0.1/32 scram-sha-256\n"
    )
    with (server.data_dir / "postgresql.conf").open("a") as conf:
        conf.write(
            f"port = {server.port}\n"
            f"unix_socket_directories = '{server.socket_dir}'\n"
            "listen_addresses = '127.0.0.1'\n"
            "ssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n"
            "max_connections = 200\nfsync = off\n"
            "full_page_writes = off\n"
        )
    if owner is not None:
        for path in (server.data_dir / "server.crt", key_file, server.data_dir / "pg_hba.conf"):
            os.chown(path, owner.pw_uid, owner.pw_gid)
    server.start()
    with server.admin("postgres") as conn:
        conn.execute(f"CREATE ROLE {server.user} LOGIN PASSWORD '{server.password}'")
        conn.execute(f"CREATE DATABASE {server.dbname} OWNER {server.user}")
    return server


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PgServer]:
    """One private server for the session (~1-2 s to start), stopped at the end."""
    started = time.monotonic()
    server = start_server()
    print(f"\npostgres test server on 127.0.0.1:{server.port} in {time.monotonic() - started:.1f} s")
    try:
        yield server
    finally:
        try:
            server.stop()
        finally:
            shutil.rmtree(server.base, ignore_errors=True)


class TwoMachines:
    """An account shared into the database by machine A (this test's own config dir) and joined
    by machine B (another HOME + TD_CONFIG_DIR): two machines sharing only the database.

    A's database URL may differ from B's (a TCP proxy in between); the processes are real
    `python -m tdgui` subprocesses.
    """

    def __init__(self, server: PgServer, tmp: Path, a_config: Path, schema: str, name: str = "demo") -> None:
        self.server, self.tmp, self.a_config, self.schema, self.name = server, tmp, a_config, schema, name
        self.key: Any = None

    def env(self, machine: str) -> dict[str, str]:
        home = self.tmp / f"machine-{machine}"
        (home / "home").mkdir(parents=True, exist_ok=True)
        config = self.a_config if machine == "A" else home / "config"
        repo = Path(__file__).resolve().parents[2]
        env = dict(os.environ, HOME=str(home / "home"), TD_CONFIG_DIR=str(config), PYTHONPATH=str(repo))
        env["TD_LOG_DIR"] = str(home / "logs")
        for var in ("PGPASSWORD", "PGPASSFILE", "PGSSLMODE", "PGSSLROOTCERT"):
            env.pop(var, None)
        return env

    def run(
        self, machine: str, *args: str, stdin: str = "", timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        import sys

        return subprocess.run(
            [sys.executable, "-m", "tdgui", *args],
            input=stdin,
            capture_output=True,
            text=True,
            env=self.env(machine),
            timeout=timeout,
        )

    def popen(self, machine: str, *args: str) -> subprocess.Popen[str]:
        import sys

        return subprocess.Popen(
            [sys.executable, "-m", "tdgui", *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=self.env(machine),
            text=True,
        )

    def db_args(self, url: str) -> list[str]:
        return ["--db", url, "--db-schema", self.schema, "--db-password-stdin"]

    def share_and_join(self, a_url: str | None = None, b_url: str | None = None) -> None:
        from tdgui.core.record_crypto import RecordKey

        a_url, b_url = a_url or self.server.url(), b_url or self.server.url()
        done = self.run("A", "share", self.name, *self.db_args(a_url), stdin=self.server.password + "\n")
        assert done.returncode == 0, done.stderr
        self.key = RecordKey.parse(done.stdout.strip())
        joined = self.run(
            "B",
            "join",
            self.name,
            "--key-stdin",
            *self.db_args(b_url),
            "--db-secrets",
            "file",
            stdin=f"{self.key.encode()}\n{self.server.password}\n",
        )
        assert joined.returncode == 0, joined.stderr

    def store(self) -> Any:
        from tdgui.core.stores.postgres import PostgresStore

        return PostgresStore(
            self.server.url(), key=self.key, password=self.server.password, schema=self.schema
        )

    def tokens(self) -> Any:
        """The shared tokens, read (and so decrypted and authenticated) straight from the database."""
        from tdgui.core.tokens import TokenSet

        store = self.store()
        try:
            text = store.read(f"{self.name}/tokens")
            assert text is not None
            return TokenSet.from_json(text)
        finally:
            store.close()

    def all_rows_decrypt(self) -> int:
        """Every row of the account opens with the key (AES-GCM authenticates it); how many."""
        with self.server.admin() as conn:
            names = [
                r[0]
                for r in conn.execute(
                    f'SELECT name FROM "{self.schema}".records WHERE account = %s', (self.name,)
                ).fetchall()
            ]
        store = self.store()
        try:
            for name in names:
                assert store.read(f"{self.name}/{name}" if name else self.name) is not None
        finally:
            store.close()
        return len(names)

    def expire_access_token(self) -> None:
        """The stored access token has expired: every caller must refresh (none can serve it)."""
        import dataclasses

        tokens = self.tokens()
        due = dataclasses.replace(tokens, access_expires_at=time.time() - 5)
        store = self.store()
        try:
            store.write(f"{self.name}/tokens", due.to_json())
        finally:
            store.close()

    def advisory_waiters(self) -> int:
        with self.server.admin() as conn:
            row = conn.execute(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
            ).fetchone()
        return int(row[0]) if row else 0

    def restart(self, mode: str) -> float:
        """pg_ctl restart -m `mode` (fast: sessions terminated; immediate: no clean shutdown, crash
        recovery on start); returns how long the server was away."""
        started = time.monotonic()
        self.pg_ctl_restart(mode)
        return time.monotonic() - started

    def pg_ctl_restart(self, mode: str) -> None:
        self.server.pg_ctl("-l", str(self.server.log_file), "-m", mode, "-w", "-t", "60", "restart")
