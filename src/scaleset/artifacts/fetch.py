"""Fetching a file from a URI on the server's behalf: ``properties.source.uri``, ``fileUris``.

``file://`` URIs are paths on the server and go through ``SourceRules.check_path``.
``http(s)://`` URLs are fetched with the address rule of ``addresses.py``:

* the host name is resolved here, every address it resolves to is checked,
  and the connection goes to the address that was checked (the URL is rewritten
  to it; ``Host`` and TLS SNI keep the name), so a DNS answer that changes
  between check and connect (rebinding) cannot reach a refused address;
* redirects are followed here, at most ``MAX_REDIRECTS``, each hop checked
  the same way;
* the body is written as it arrives and refused once it passes
  ``SourceRules.max_bytes``, never after filling the disk.

An address the rule refuses gives an error saying "refused" and why; anything
else that goes wrong (connection refused, timeout, TLS, an HTTP status) gives
one and the same "failed" message, without the remote's status or body: a
caller who could tell an open port from a closed one, or read a body, could use
the server to scan or read its network. The detail goes to the server's log.
"""

from __future__ import annotations

import logging
import socket
import tempfile
import time
import urllib.parse
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

import httpx

from scaleset.artifacts import addresses
from scaleset.artifacts.errors import ArtifactError
from scaleset.artifacts.sources import PRIVATE_FLAG, SourceRules

log = logging.getLogger(__name__)

MAX_REDIRECTS = 5
TIMEOUT = httpx.Timeout(60.0, connect=10.0)
DEADLINE = 600.0
"""Seconds a whole download may take: httpx's timeouts are per read, so a server that
drips a byte a minute would otherwise hold a worker for ever."""
_REDIRECTS = frozenset({301, 302, 303, 307, 308})

Resolver = Callable[[str, int], list[addresses.IPAddress]]
"""``(host, port)`` -> the addresses the host name resolves to (raises ``OSError``)."""


class FetchRefused(ArtifactError):
    """The URI names something the rules do not let the server reach."""


class FetchFailed(ArtifactError):
    """The fetch did not succeed, for a reason the caller is not told."""


class TooLarge(ArtifactError):
    """The file passed ``SourceRules.max_bytes`` while it arrived."""


def shown(uri: str) -> str:
    """``uri`` without its query and fragment (where a signature would be), for messages."""
    parts = urllib.parse.urlsplit(uri)
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


def resolve(host: str, port: int) -> list[addresses.IPAddress]:
    """The addresses ``host`` resolves to, in the resolver's order, without duplicates."""
    literal = addresses.parse(host)
    if literal is not None:
        return [literal]
    found: list[addresses.IPAddress] = []
    for *_, sockaddr in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM):
        address = addresses.parse(str(sockaddr[0]))
        if address is not None and address not in found:
            found.append(address)
    return found


def download(uri: str, out: IO[bytes], rules: SourceRules, *, what: str,
             resolver: Resolver = resolve,
             transport: httpx.BaseTransport | None = None) -> int:
    """Write the body at the ``http(s)://`` ``uri`` to ``out``; return its size in bytes.

    ``what`` names the field the URI came from, for messages. Raises
    ``FetchRefused``, ``FetchFailed`` or ``TooLarge`` (all ``ArtifactError``).
    ``resolver`` and ``transport`` are for tests.
    """
    url = httpx.URL(uri)
    with httpx.Client(timeout=TIMEOUT, trust_env=False, follow_redirects=False,
                      transport=transport) as client:
        for _hop in range(MAX_REDIRECTS + 1):
            request = _pinned_request(client, url, rules, uri=uri, what=what,
                                      resolver=resolver)
            try:
                response = client.send(request, stream=True)
            except httpx.HTTPError as exc:
                raise _failed(uri, what, f"{type(exc).__name__}: {exc}") from exc
            try:
                if response.status_code in _REDIRECTS and "location" in response.headers:
                    try:
                        url = url.join(response.headers["location"])
                    except httpx.InvalidURL as exc:
                        raise _failed(uri, what, f"bad redirect: {exc}") from exc
                    continue
                if response.status_code != 200:
                    raise _failed(uri, what, f"HTTP {response.status_code}")
                return _copy_body(response, out, rules, uri=uri, what=what)
            finally:
                response.close()
    raise _failed(uri, what, f"more than {MAX_REDIRECTS} redirects")


@contextmanager
def fetched(uri: str, scratch: Path, rules: SourceRules, *, what: str,
            resolver: Resolver = resolve,
            transport: httpx.BaseTransport | None = None) -> Iterator[Path]:
    """The file at ``uri`` as a local path, for the duration of the ``with`` block.

    A ``file://`` URI must pass ``rules.check_path``; an ``http(s)://`` one is
    downloaded (``download``) into a temporary file under ``scratch``, removed
    afterwards whatever happens.
    """
    parts = urllib.parse.urlsplit(uri)
    if parts.scheme == "file":
        yield rules.check_path(Path(urllib.parse.unquote(parts.path)), what=what)
        return
    if parts.scheme not in ("http", "https"):
        raise ArtifactError(f"{what} scheme '{parts.scheme}' is not supported "
                            f"('{shown(uri)}'); use file://, http:// or https://",
                            entry=shown(uri), target=what)
    scratch.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=scratch, prefix="download-", suffix=".tar.gz") as f:
        download(uri, f, rules, what=what, resolver=resolver, transport=transport)
        f.flush()
        yield Path(f.name)


def _pinned_request(client: httpx.Client, url: httpx.URL, rules: SourceRules, *, uri: str,
                    what: str, resolver: Resolver) -> httpx.Request:
    """A request for ``url`` sent to an address the rules allow, checked now."""
    if url.scheme not in ("http", "https"):
        raise FetchRefused(
            f"fetching '{shown(uri)}' was refused: it redirects to a '{url.scheme}' URL; "
            f"{what} may lead only to http:// or https:// URLs",
            entry=shown(uri), target=what)
    host = url.host
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        found = resolver(host, port)
    except (OSError, UnicodeError) as exc:
        raise _failed(uri, what, f"resolving {host}: {exc}") from exc
    if not found:
        raise _failed(uri, what, f"{host} resolves to no address")
    if not rules.allow_private:
        for address in found:
            why = addresses.refusal(address)
            if why is not None:
                via = "" if str(url) == uri else f" (reached through a redirect to {host})"
                raise FetchRefused(
                    f"fetching '{shown(uri)}' was refused{via}: {host} is {address}, a {why} "
                    f"address, and {what} may reach only public addresses; serve from a "
                    f"public address, or start serve with {PRIVATE_FLAG} to allow "
                    "loopback, link-local and private ones", entry=shown(uri), target=what)
    pinned = url.copy_with(host=str(found[0]))
    headers = {"Host": url.netloc.decode("ascii")}
    extensions = {"sni_hostname": host} if url.scheme == "https" else {}
    return client.build_request("GET", pinned, headers=headers, extensions=extensions)


def _copy_body(response: httpx.Response, out: IO[bytes], rules: SourceRules, *, uri: str,
               what: str) -> int:
    size = 0
    deadline = time.monotonic() + DEADLINE
    try:
        for chunk in response.iter_bytes():
            if time.monotonic() > deadline:
                raise _failed(uri, what, f"still arriving after {DEADLINE:.0f} s")
            size += len(chunk)
            if size > rules.max_bytes:
                raise TooLarge(
                    f"'{shown(uri)}' is larger than the limit of {rules.max_bytes} bytes "
                    f"(max_image_archive_bytes; more than {size} arrived, the download was "
                    "stopped); make the file smaller, or start serve with "
                    "--max-image-archive-bytes N to allow more", entry=shown(uri), target=what)
            out.write(chunk)
    except httpx.HTTPError as exc:
        raise _failed(uri, what, f"{type(exc).__name__}: {exc}") from exc
    return size


def _failed(uri: str, what: str, detail: str) -> FetchFailed:
    # The detail (status, connection error) stays in the server's log: told to
    # the caller, it would say which ports are open and what answers there.
    log.info("fetching %s for %s failed: %s", shown(uri), what, detail)
    return FetchFailed(
        f"fetching '{shown(uri)}' failed; check that the URL serves the file with "
        "HTTP 200 and that this server can reach it (the server's log has the detail)",
        entry=shown(uri), target=what)
