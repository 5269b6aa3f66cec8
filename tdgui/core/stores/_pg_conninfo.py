"""PostgreSQL connection settings: the URL checked (no password, TLS rules) and the timeouts added."""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from typing import Any

from tdgui.core.errors import UsageError
from tdgui.core.logs import MASK, SECRETS

log = logging.getLogger(__name__)

#: libpq's minimum (a value of 1 means 2): with a refused or unreachable server the CLI
#: gives up within 3 s, as the README promises for store errors (exit 5).
CONNECT_TIMEOUT = 2
#: Every statement tdgui sends is one short row operation; anything longer is a hung server.
STATEMENT_TIMEOUT_MS = 5000
#: A row lock held longer than this belongs to a stuck client: fail instead of queueing.
LOCK_TIMEOUT_MS = 3000
#: tdgui never leaves a transaction open while it waits for something else (the refresh lock
#: is a session lock on an idle connection), so a session idle in a transaction is a dead
#: or stuck client: the server ends it and frees its locks.
IDLE_IN_TRANSACTION_MS = 5000
#: TCP keepalives on both ends (libpq's and the server's tcp_keepalives_*): a peer whose
#: cable was pulled is cut off after idle + interval * count = 3 + 1 * 3 = 6 s, and
#: tcp_user_timeout (RFC 5482) drops a connection whose sent data stays unacknowledged 6 s.
KEEPALIVE_IDLE = 3
KEEPALIVE_INTERVAL = 1
KEEPALIVE_COUNT = 3
TCP_USER_TIMEOUT_MS = 6000

#: sslmode values that encrypt; verify-ca/verify-full also check the server's certificate.
_ENCRYPTING = ("require", "verify-ca", "verify-full")
_SSLMODES = ("disable", "allow", "prefer", *_ENCRYPTING)
# Unanchored: libpq quotes the whole URI in some parse errors ('... in URI: "postgresql://...').
_URL_PASSWORD = re.compile(r"(postgres(?:ql)?://[^:/@?#\s\"']*:)([^@/?#\s\"']*)(@)", re.IGNORECASE)
_PARAM_PASSWORD = re.compile(r"(?i)(\bpassword\s*=\s*)('(?:[^'\\]|\\.)*'|[^\s&]*)")


def mask_url(url: str) -> str:
    """`url` with any password in it (`user:PASSWORD@` or `password=`) replaced by a mask."""
    masked = _URL_PASSWORD.sub(lambda m: m.group(1) + MASK + m.group(3), url)
    return SECRETS.mask(_PARAM_PASSWORD.sub(lambda m: m.group(1) + MASK, masked))


def _is_loopback(host: str) -> bool:
    """Unix sockets, localhost and 127.0.0.0/8, ::1 stay on this machine; any other name may not."""
    if not host or host.startswith(("/", "@")):  # libpq's default socket, a socket dir, abstract
        return True
    if host.lower() == "localhost":
        return True
    import ipaddress  # here, not at the top: `tdgui token` starts faster (bench row 9)

    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class PgTarget:
    """A checked connection URL: what to pass to psycopg, and what to show people."""

    params: dict[str, Any]
    loopback: bool
    sslmode: str | None
    #: "db.example:5432/trading as tdgui" — no password, for messages and describe().
    where: str


def parse_url(url: str, *, allow_insecure: bool = False) -> PgTarget:
    """Check `url` (a `postgresql://` URL or a libpq key=value string).

    UsageError if it carries a password (passwords come from the keyring, ~/.pgpass or
    PGPASSWORD, never from accounts.json where the URL is kept), or if it would talk to
    another machine without TLS (anything weaker than sslmode=require) and `allow_insecure`
    is not set. Non-loopback hosts get sslmode=verify-full unless the URL or PGSSLMODE says.
    """
    from psycopg import ProgrammingError
    from psycopg.conninfo import conninfo_to_dict

    if not isinstance(url, str) or not url.strip():
        raise UsageError("the PostgreSQL URL is empty: give one like postgresql://tdgui@db.example/trading")
    try:
        params: dict[str, Any] = dict(conninfo_to_dict(url))
    except ProgrammingError as exc:
        detail = " ".join(str(exc).split()).replace(url.strip(), mask_url(url.strip()))
        detail = mask_url(detail)
        raise UsageError(f"invalid PostgreSQL URL {mask_url(url)}: {detail}") from None
    if params.get("password"):
        raise UsageError(
            f"the PostgreSQL URL {mask_url(url)} carries a password: remove it from the URL and "
            "give the password separately (--db-password-stdin stores it in the keyring; "
            "~/.pgpass and PGPASSWORD work too)"
        )
    params.pop("password", None)
    hosts = str(params.get("host") or os.environ.get("PGHOST", "")).split(",")
    addrs = [a for a in str(params.get("hostaddr") or os.environ.get("PGHOSTADDR", "")).split(",") if a]
    # The host *name* decides: TLS checks the certificate against it even when hostaddr
    # says where to connect, so "db.example" with hostaddr=127.0.0.1 is treated as remote.
    loopback = all(_is_loopback(h) for h in hosts) and all(_is_loopback(a) for a in addrs)
    sslmode = str(params.get("sslmode") or os.environ.get("PGSSLMODE", "")) or None
    if sslmode is not None and sslmode not in _SSLMODES:
        raise UsageError(f"unknown sslmode {sslmode!r}: choose one of {', '.join(_SSLMODES)}")
    if not loopback:
        if sslmode is None:
            sslmode = "verify-full"
        elif sslmode not in _ENCRYPTING and not allow_insecure:
            raise UsageError(
                f"sslmode={sslmode} would send the database traffic to {','.join(hosts)} unencrypted: "
                "use sslmode=verify-full (or require), or allow it explicitly for a network you trust"
            )
        elif sslmode == "require":
            log.warning("sslmode=require to %s encrypts but does not check the server's certificate", hosts)
    if sslmode is not None:
        params["sslmode"] = sslmode
    return PgTarget(params=params, loopback=loopback, sslmode=sslmode, where=_where(params, hosts))


def _where(params: dict[str, Any], hosts: list[str]) -> str:
    host = ",".join(h or "local socket" for h in hosts)
    port = str(params.get("port") or os.environ.get("PGPORT", ""))
    user = str(params.get("user") or os.environ.get("PGUSER", "") or _os_user())
    dbname = str(params.get("dbname") or os.environ.get("PGDATABASE", "") or user)
    return f"{host}{':' + port if port and not host.startswith('/') else ''}/{dbname} as {user}"


def _os_user() -> str:
    import getpass  # only for messages without a user in the URL

    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (some containers)
        return "?"


def connect_params(
    target: PgTarget,
    *,
    password: str | None,
    lock_timeout_ms: int = LOCK_TIMEOUT_MS,
    statement_timeout_ms: int = STATEMENT_TIMEOUT_MS,
) -> dict[str, Any]:
    """The keyword arguments for psycopg.connect: the URL's settings plus tdgui's timeouts.

    Settings the URL gives itself (connect_timeout, keepalives...) win; the server-side
    timeouts go into `options` before the URL's own options, so a later `-c` there wins.
    """
    server = {
        "statement_timeout": statement_timeout_ms,
        "lock_timeout": lock_timeout_ms,
        "idle_in_transaction_session_timeout": IDLE_IN_TRANSACTION_MS,
        # The server's end of the keepalives: a holder of the refresh lock whose machine
        # vanished is noticed by the server, which then ends its session and frees the lock.
        "tcp_keepalives_idle": KEEPALIVE_IDLE,
        "tcp_keepalives_interval": KEEPALIVE_INTERVAL,
        "tcp_keepalives_count": KEEPALIVE_COUNT,
        "tcp_user_timeout": TCP_USER_TIMEOUT_MS,
    }
    options = " ".join(f"-c {name}={value}" for name, value in server.items())
    params: dict[str, Any] = {
        "connect_timeout": CONNECT_TIMEOUT,
        "keepalives": 1,
        "keepalives_idle": KEEPALIVE_IDLE,
        "keepalives_interval": KEEPALIVE_INTERVAL,
        "keepalives_count": KEEPALIVE_COUNT,
        "tcp_user_timeout": TCP_USER_TIMEOUT_MS,
        "application_name": "tdgui",
    }
    params.update(target.params)
    params["options"] = f"{options} {target.params.get('options', '')}".strip()
    if password is not None:
        params["password"] = password
    return params
