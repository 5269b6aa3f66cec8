"""A local CA and its 127.0.0.1 leaf certificate, made once in a private dir and pinned by clients.

Two users: the https loopback callback listener (RFC 8252 §7.3; Schwab insists on an https
callback) and the sandbox emulator, which serves the same leaf. cryptography is imported only
when certificates are made: the login path reads the pin with the standard library.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import ipaddress
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from tdgui.core.fsutil import atomic_write, private_dir

if TYPE_CHECKING:
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import ec

log = logging.getLogger(__name__)

#: The dir under the config dir. Named after the sandbox, which made it first: the files stay
#: where README.md says they are (`sandbox/ca.pem`), so an existing CA keeps being used.
LOCAL_TLS_DIRNAME = "sandbox"
CA_CERT_NAME = "ca.pem"
CA_KEY_NAME = "ca-key.pem"
LEAF_CERT_NAME = "sandbox.pem"
LEAF_KEY_NAME = "sandbox-key.pem"
LOCK_NAME = "certs.lock"

CA_LIFETIME = _dt.timedelta(days=3650)
LEAF_LIFETIME = _dt.timedelta(days=730)
#: Re-issue a certificate this long before it expires, so a running week never crosses expiry.
RENEW_BEFORE = _dt.timedelta(days=30)
LOCK_TIMEOUT = 60.0
LOOPBACK = ipaddress.IPv4Address("127.0.0.1")


@dataclass(frozen=True)
class LocalTLS:
    """Paths of the local CA and leaf PEM files and the fingerprint of the leaf."""

    ca_file: Path
    cert_file: Path
    key_file: Path
    #: SHA-256 of the DER-encoded leaf certificate, lowercase hex (what the Qt view accepts).
    leaf_sha256: str


def local_tls_dir(config_dir: Path) -> Path:
    """Where the local CA and leaf live under a tdgui config dir."""
    return config_dir / LOCAL_TLS_DIRNAME


def ca_file(tls_dir: Path) -> Path:
    return tls_dir / CA_CERT_NAME


def leaf_cert_file(tls_dir: Path) -> Path:
    return tls_dir / LEAF_CERT_NAME


def leaf_sha256(cert_file: Path) -> str | None:
    """SHA-256 (hex) of a PEM certificate's DER bytes; None if it is missing or unreadable.

    The standard library only: the login path must not load cryptography to hash one file.
    """
    try:
        pem = cert_file.read_text(encoding="ascii")
        import ssl  # here: `tdgui token` resolves profiles without ever pinning

        return hashlib.sha256(ssl.PEM_cert_to_DER_cert(pem)).hexdigest()
    except (OSError, ValueError):
        return None


def ensure_local_tls(tls_dir: Path) -> LocalTLS:
    """Return the local CA and leaf, creating them the first time (safe across processes)."""
    from cryptography.hazmat.primitives import serialization
    from filelock import FileLock

    private_dir(tls_dir)
    with FileLock(str(tls_dir / LOCK_NAME), timeout=LOCK_TIMEOUT, mode=0o600):
        now = _dt.datetime.now(_dt.timezone.utc)
        ca = _load_ca(tls_dir, now)
        if ca is None:
            log.info("making a new local CA in %s", tls_dir)
            ca = _make_ca(now)
            atomic_write(tls_dir / CA_KEY_NAME, _key_pem(ca[1]))
            atomic_write(tls_dir / CA_CERT_NAME, ca[0].public_bytes(serialization.Encoding.PEM))
        leaf = _load_leaf(tls_dir, ca[0], now)
        if leaf is None:
            leaf_cert, leaf_key = _make_leaf(ca[0], ca[1], now)
            atomic_write(tls_dir / LEAF_KEY_NAME, _key_pem(leaf_key))
            atomic_write(tls_dir / LEAF_CERT_NAME, leaf_cert.public_bytes(serialization.Encoding.PEM))
            leaf = leaf_cert
    return LocalTLS(
        ca_file=tls_dir / CA_CERT_NAME,
        cert_file=tls_dir / LEAF_CERT_NAME,
        key_file=tls_dir / LEAF_KEY_NAME,
        leaf_sha256=hashlib.sha256(leaf.public_bytes(serialization.Encoding.DER)).hexdigest(),
    )


def issue_named_leaf(tls_dir: Path, stem: str, dns_names: tuple[str, ...]) -> LocalTLS:
    """A fresh leaf of the local CA for `dns_names` (and 127.0.0.1), in `stem`.pem / `stem`-key.pem.

    For the multi-host emulator (tdgui.sandbox.schwab_real), whose host names all resolve to
    127.0.0.1 inside a test only: one leaf covers them all (RFC 6125 §6.4, one SAN each).
    Made anew on every call: the emulator's names may change between runs.
    """
    from cryptography.hazmat.primitives import serialization
    from filelock import FileLock

    if not stem.isidentifier() or stem in ("sandbox", "ca"):
        raise ValueError(f"not a leaf name of its own: {stem!r}")
    ensure_local_tls(tls_dir)
    with FileLock(str(tls_dir / LOCK_NAME), timeout=LOCK_TIMEOUT, mode=0o600):
        now = _dt.datetime.now(_dt.timezone.utc)
        ca = _load_ca(tls_dir, now)
        if ca is None:  # pragma: no cover - ensure_local_tls just made it
            raise RuntimeError(f"the local CA in {tls_dir} is not readable")
        cert, key = _make_leaf(ca[0], ca[1], now, dns_names)
        cert_path, key_path = tls_dir / f"{stem}.pem", tls_dir / f"{stem}-key.pem"
        atomic_write(key_path, _key_pem(key))
        atomic_write(cert_path, cert.public_bytes(serialization.Encoding.PEM))
    return LocalTLS(
        ca_file=tls_dir / CA_CERT_NAME,
        cert_file=cert_path,
        key_file=key_path,
        leaf_sha256=hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest(),
    )


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _same_public_key(cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> bool:
    from cryptography.hazmat.primitives import serialization

    fmt = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return bool(cert.public_key().public_bytes(*fmt) == key.public_key().public_bytes(*fmt))


def _read_pair(cert_path: Path, key_path: Path) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError):
        return None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or not _same_public_key(cert, key):
        return None
    if os.name == "posix":
        for path in (cert_path, key_path):
            os.chmod(path, 0o600)
    return cert, key


def _not_before(cert: x509.Certificate) -> _dt.datetime:
    if hasattr(cert, "not_valid_before_utc"):  # cryptography >= 42
        return cert.not_valid_before_utc
    return cert.not_valid_before.replace(tzinfo=_dt.timezone.utc)


def _not_after(cert: x509.Certificate) -> _dt.datetime:
    if hasattr(cert, "not_valid_after_utc"):  # cryptography >= 42
        return cert.not_valid_after_utc
    return cert.not_valid_after.replace(tzinfo=_dt.timezone.utc)


def _fresh(cert: x509.Certificate, now: _dt.datetime) -> bool:
    return _not_before(cert) <= now and _not_after(cert) - RENEW_BEFORE > now


def _load_ca(tls_dir: Path, now: _dt.datetime) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None:
    pair = _read_pair(tls_dir / CA_CERT_NAME, tls_dir / CA_KEY_NAME)
    if pair is None or not _fresh(pair[0], now):
        return None
    return pair


def _load_leaf(tls_dir: Path, ca: x509.Certificate, now: _dt.datetime) -> x509.Certificate | None:
    from cryptography import x509
    from cryptography.exceptions import InvalidSignature

    pair = _read_pair(tls_dir / LEAF_CERT_NAME, tls_dir / LEAF_KEY_NAME)
    if pair is None or not _fresh(pair[0], now):
        return None
    cert = pair[0]
    try:
        cert.verify_directly_issued_by(ca)
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (ValueError, TypeError, x509.ExtensionNotFound, InvalidSignature):
        return None
    if LOOPBACK not in san.get_values_for_type(x509.IPAddress):
        return None
    return cert


def _make_ca(now: _dt.datetime) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "tdgui local"),
            x509.NameAttribute(NameOID.COMMON_NAME, f"tdgui local CA {now:%Y%m%d%H%M%S}"),
        ]
    )
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _dt.timedelta(minutes=5))
        .not_valid_after(now + CA_LIFETIME)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(ski, critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert, key


def _make_leaf(
    ca_cert: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    now: _dt.datetime,
    dns_names: tuple[str, ...] = (),
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    ca_ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _dt.timedelta(minutes=5))
        .not_valid_after(min(now + LEAF_LIFETIME, _not_after(ca_cert)))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(LOOPBACK), x509.DNSName("localhost")]
                + [x509.DNSName(name) for name in dns_names]
            ),
            critical=False,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    return cert, key
