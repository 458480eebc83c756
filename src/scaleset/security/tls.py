"""A self-signed CA and a server certificate for ``scaleset serve``, kept in ``<data-dir>/tls``.

``ensure_tls(data_dir)`` is idempotent: the first call writes

* ``ca.pem`` / ``ca.key``         — the CA (EC P-256, 10 years); clients trust ``ca.pem``;
* ``server.pem`` / ``server.key`` — a server certificate signed by the CA (about 2 years)
  naming every host (IP addresses as IPAddress, names as DNSName).

Later calls reuse the files while they parse, match their keys, chain to the CA,
are more than ``RENEW_BEFORE`` from expiry and cover every requested host. A
server certificate that fails any of these is reissued by the same CA, so a
client that already trusts ``ca.pem`` keeps working; the CA is only replaced
when it is itself unusable. Private keys are written with mode 0600, every file
atomically (a reader never sees half a PEM).
"""

from __future__ import annotations

import ipaddress
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

DEFAULT_HOSTS = ("127.0.0.1", "localhost", "::1")
CA_LIFETIME = timedelta(days=3650)
SERVER_LIFETIME = timedelta(days=730)  # under the 825 days Apple clients accept
RENEW_BEFORE = timedelta(days=30)
BACKDATE = timedelta(hours=1)  # tolerate clients whose clocks run a little behind


@dataclass(frozen=True)
class TlsFiles:
    """Where the TLS material lives (``ca`` for clients; ``cert``/``key`` for the server)."""

    ca: Path
    cert: Path
    key: Path
    ca_key: Path


def ensure_tls(data_dir: Path, *, hosts: Sequence[str] = DEFAULT_HOSTS,
               now: datetime | None = None) -> TlsFiles:
    """Create or reuse the CA and the server certificate under ``data_dir/tls``.

    ``now`` defaults to the wall clock (tests pass a later instant to age the files).

    >>> files = ensure_tls(Path("/tmp/scaleset-doc"))  # doctest: +SKIP
    >>> files.ca.name, files.cert.name, files.key.name  # doctest: +SKIP
    ('ca.pem', 'server.pem', 'server.key')
    """
    names = _normalise(hosts)
    at = now or datetime.now(UTC)
    folder = data_dir / "tls"
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    files = TlsFiles(ca=folder / "ca.pem", cert=folder / "server.pem",
                     key=folder / "server.key", ca_key=folder / "ca.key")

    ca = _load_pair(files.ca, files.ca_key)
    if ca is None or not _usable_ca(ca[0], at):
        ca = _new_ca(at)
        _write(files.ca_key, _key_pem(ca[1]), mode=0o600)
        _write(files.ca, ca[0].public_bytes(serialization.Encoding.PEM), mode=0o644)
    ca_cert, ca_key = ca

    server = _load_pair(files.cert, files.key)
    if server is None or not _usable_server(server[0], ca_cert, names, at):
        cert, key = _new_server(ca_cert, ca_key, names, at)
        _write(files.key, _key_pem(key), mode=0o600)
        _write(files.cert, cert.public_bytes(serialization.Encoding.PEM), mode=0o644)
    return files


# -- checks --------------------------------------------------------------------

Host = ipaddress.IPv4Address | ipaddress.IPv6Address | str


def _normalise(hosts: Sequence[str]) -> tuple[Host, ...]:
    """IP addresses parsed, names lower-cased, duplicates dropped, order kept."""
    out: dict[Host, None] = {}
    for raw in hosts:
        host = raw.strip().strip("[]")  # "[::1]" as written in a URL
        if not host:
            raise ValueError("empty host name given for the TLS certificate")
        try:
            out[ipaddress.ip_address(host)] = None
        except ValueError:
            out[host.lower().rstrip(".")] = None
    if not out:
        raise ValueError("the TLS certificate needs at least one host")
    return tuple(out)


def _load_pair(cert_path: Path, key_path: Path
               ) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None:
    """The certificate and its key, or None if either is missing, unreadable or they differ."""
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError):
        return None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.public_key() != cert.public_key():
        return None
    return cert, key


def _fresh(cert: x509.Certificate, at: datetime) -> bool:
    return cert.not_valid_before_utc <= at and at + RENEW_BEFORE < cert.not_valid_after_utc


def _usable_ca(cert: x509.Certificate, at: datetime) -> bool:
    try:
        constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        return False
    return constraints.ca and _fresh(cert, at)


def _usable_server(cert: x509.Certificate, ca: x509.Certificate, hosts: Sequence[Host],
                   at: datetime) -> bool:
    try:
        cert.verify_directly_issued_by(ca)
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (ValueError, TypeError, InvalidSignature, x509.ExtensionNotFound):
        return False
    covered: set[object] = set(san.get_values_for_type(x509.IPAddress))
    covered.update(n.lower() for n in san.get_values_for_type(x509.DNSName))
    return _fresh(cert, at) and all(h in covered for h in hosts)


# -- issuing -------------------------------------------------------------------

def _new_ca(at: datetime) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "scaleset"),
                      x509.NameAttribute(NameOID.COMMON_NAME, "scaleset local CA")])
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(at - BACKDATE).not_valid_after(at + CA_LIFETIME)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(
            digital_signature=True, content_commitment=False, key_encipherment=False,
            data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
            encipher_only=False, decipher_only=False), critical=True)
        .add_extension(ski, critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski),
                       critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert, key


def _new_server(ca: x509.Certificate, ca_key: ec.EllipticCurvePrivateKey,
                hosts: Sequence[Host], at: datetime
                ) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    san: list[x509.GeneralName] = [
        x509.DNSName(h) if isinstance(h, str) else x509.IPAddress(h) for h in hosts]
    ca_ski = ca.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "scaleset"),
                                 x509.NameAttribute(NameOID.COMMON_NAME, "scaleset server")]))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(at - BACKDATE)
        # Never outlive the issuer: a chain is only as valid as its shortest link.
        .not_valid_after(min(at + SERVER_LIFETIME, ca.not_valid_after_utc))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(
            digital_signature=True, content_commitment=False, key_encipherment=False,
            data_encipherment=False, key_agreement=False, key_cert_sign=False, crl_sign=False,
            encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName(san), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                       critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski),
                       critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    return cert, key


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _write(path: Path, data: bytes, *, mode: int) -> None:
    """Replace ``path`` atomically; mkstemp creates the file 0600, so a key is never exposed."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
