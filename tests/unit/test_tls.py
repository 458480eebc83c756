"""The generated TLS material: modes, a real handshake, reuse, and reissue that keeps the CA."""

from __future__ import annotations

import socket
import ssl
import stat
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from ipaddress import ip_address
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from scaleset.security import tls
from scaleset.security.tls import TlsFiles, ensure_tls

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def contents(files: TlsFiles) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in (files.ca, files.ca_key, files.cert, files.key)}


def certificate(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@contextmanager
def tls_server(files: TlsFiles) -> Iterator[int]:
    """A TLS server on a free loopback port that answers b"ok" to each handshake."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(files.cert, files.key)
    listener = socket.create_server(("127.0.0.1", 0))
    port: int = listener.getsockname()[1]
    stopping = threading.Event()

    def serve() -> None:
        while True:
            conn, _ = listener.accept()
            with conn:
                conn.settimeout(5)
                if stopping.is_set():
                    return
                try:
                    with context.wrap_socket(conn, server_side=True) as secure:
                        secure.sendall(b"ok")
                except (ssl.SSLError, OSError):
                    pass  # the client refused our certificate: that is what some tests want

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield port
    finally:
        stopping.set()
        socket.create_connection(("127.0.0.1", port), timeout=5).close()  # wake accept()
        thread.join(5)
        listener.close()


def handshake(port: int, context: ssl.SSLContext, server_hostname: str) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw, \
            context.wrap_socket(raw, server_hostname=server_hostname) as secure:
        return secure.recv(2)


def test_first_call_writes_the_ca_and_server_files_with_private_keys_0600(
        tmp_path: Path) -> None:
    files = ensure_tls(tmp_path / "data", now=NOW)

    folder = tmp_path / "data" / "tls"
    assert (files.ca, files.cert, files.key) == (
        folder / "ca.pem", folder / "server.pem", folder / "server.key")
    assert mode(folder) == 0o700
    assert mode(files.key) == mode(files.ca_key) == 0o600
    assert mode(files.ca) == mode(files.cert) == 0o644
    assert sorted(p.name for p in folder.iterdir()) == [
        "ca.key", "ca.pem", "server.key", "server.pem"]  # no temporary files left over


def test_the_certificates_carry_the_extensions_clients_check(tmp_path: Path) -> None:
    files = ensure_tls(tmp_path, now=NOW)
    ca, server = certificate(files.ca), certificate(files.cert)

    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert ca.extensions.get_extension_for_class(x509.KeyUsage).value.key_cert_sign
    assert ca.not_valid_after_utc - NOW >= timedelta(days=3649)
    server.verify_directly_issued_by(ca)
    assert not server.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert ExtendedKeyUsageOID.SERVER_AUTH in server.extensions.get_extension_for_class(
        x509.ExtendedKeyUsage).value
    san = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.IPAddress) == [ip_address("127.0.0.1"),
                                                       ip_address("::1")]
    assert san.get_values_for_type(x509.DNSName) == ["localhost"]
    assert timedelta(days=700) < server.not_valid_after_utc - NOW <= timedelta(days=825)


def test_a_client_that_trusts_the_ca_completes_a_handshake_by_ip_and_by_name(
        tmp_path: Path) -> None:
    files = ensure_tls(tmp_path)
    client = ssl.create_default_context(cafile=str(files.ca))
    # Python 3.13 turns this on by default: it wants key identifiers and key usage.
    client.verify_flags |= ssl.VERIFY_X509_STRICT

    with tls_server(files) as port:
        assert handshake(port, client, "127.0.0.1") == b"ok"
        assert handshake(port, client, "localhost") == b"ok"


def test_a_client_without_the_ca_or_for_another_name_is_refused(tmp_path: Path) -> None:
    files = ensure_tls(tmp_path)

    with tls_server(files) as port:
        with pytest.raises(ssl.SSLCertVerificationError, match="certificate"):
            handshake(port, ssl.create_default_context(), "127.0.0.1")
        with pytest.raises(ssl.SSLCertVerificationError, match="mismatch"):
            handshake(port, ssl.create_default_context(cafile=str(files.ca)), "example.com")


def test_a_second_call_reuses_every_file_byte_for_byte(tmp_path: Path) -> None:
    first = contents(ensure_tls(tmp_path, now=NOW))

    assert contents(ensure_tls(tmp_path, now=NOW + timedelta(days=300))) == first
    # Order, case, duplicates and a URL-style IPv6 literal do not matter either.
    assert contents(ensure_tls(tmp_path, hosts=("LOCALHOST", "[::1]", "127.0.0.1", "::1"),
                               now=NOW)) == first


def test_a_new_host_reissues_the_server_certificate_under_the_same_ca(tmp_path: Path) -> None:
    before = contents(ensure_tls(tmp_path, now=NOW))

    files = ensure_tls(tmp_path, hosts=(*tls.DEFAULT_HOSTS, "scaleset.internal", "10.0.0.7"))

    after = contents(files)
    assert after["ca.pem"] == before["ca.pem"] and after["ca.key"] == before["ca.key"]
    assert after["server.pem"] != before["server.pem"]
    assert after["server.key"] != before["server.key"]
    client = ssl.create_default_context(cafile=str(files.ca))
    with tls_server(files) as port:
        assert handshake(port, client, "scaleset.internal") == b"ok"
        assert handshake(port, client, "localhost") == b"ok"
    san = certificate(files.cert).extensions.get_extension_for_class(
        x509.SubjectAlternativeName).value
    assert ip_address("10.0.0.7") in san.get_values_for_type(x509.IPAddress)


def test_a_server_certificate_within_30_days_of_expiry_is_reissued_and_the_ca_kept(
        tmp_path: Path) -> None:
    before = contents(ensure_tls(tmp_path, now=NOW))
    expiry = certificate(tmp_path / "tls" / "server.pem").not_valid_after_utc

    assert contents(ensure_tls(tmp_path, now=expiry - timedelta(days=31))) == before
    files = ensure_tls(tmp_path, now=expiry - timedelta(days=29))

    assert files.ca.read_bytes() == before["ca.pem"]
    assert certificate(files.cert).not_valid_after_utc > expiry


@pytest.mark.parametrize("damage", ["server.key", "server.pem"])
def test_a_damaged_server_file_is_replaced_and_the_ca_kept(tmp_path: Path, damage: str) -> None:
    before = contents(ensure_tls(tmp_path, now=NOW))
    (tmp_path / "tls" / damage).write_text("not a PEM file\n")

    after = contents(ensure_tls(tmp_path, now=NOW))

    assert after["ca.pem"] == before["ca.pem"]
    assert after[damage] != b"not a PEM file\n"
    certificate(tmp_path / "tls" / "server.pem").verify_directly_issued_by(
        certificate(tmp_path / "tls" / "ca.pem"))


def test_a_server_certificate_from_another_ca_is_replaced(tmp_path: Path) -> None:
    ensure_tls(tmp_path / "a", now=NOW)
    ensure_tls(tmp_path / "b", now=NOW)
    for name in ("server.pem", "server.key"):
        (tmp_path / "a" / "tls" / name).write_bytes((tmp_path / "b" / "tls" / name).read_bytes())

    files = ensure_tls(tmp_path / "a", now=NOW)

    certificate(files.cert).verify_directly_issued_by(certificate(files.ca))


def test_a_lost_ca_key_replaces_the_whole_chain(tmp_path: Path) -> None:
    before = contents(ensure_tls(tmp_path, now=NOW))
    (tmp_path / "tls" / "ca.key").unlink()

    after = contents(ensure_tls(tmp_path, now=NOW))

    assert after["ca.pem"] != before["ca.pem"] and after["server.pem"] != before["server.pem"]


def test_an_empty_host_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="empty host"):
        ensure_tls(tmp_path, hosts=("localhost", " "))
