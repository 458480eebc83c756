"""A small Azure Resource Manager client over httpx: requests, errors, paging, LROs.

::

    ClientError                 (base; code, message)
    ├── ArmClientError          the server answered with ARM's error envelope, or an
    │                           operation ended Failed / Canceled (status, code, message, target)
    └── TransportError          no answer: connection refused, TLS verification, timeout

httpx exceptions become ``TransportError`` in one place (``_translate``).

Long-running operations follow what azure-mgmt-core's ``ARMPolling`` does, in
its order: the ``Azure-AsyncOperation`` URL, else the ``Location`` URL of a 202,
else the body's ``provisioningState`` (PUT/PATCH). URLs from the server
(``nextLink``, operation URLs) are fetched verbatim; they carry ``api-version``.
Every sleep goes through the injected ``sleep``, so tests never wait.
"""

from __future__ import annotations

import email.utils
import ssl
import time
from collections.abc import Callable, Generator, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Final

import httpx
import typer

from scaleset.cli import clientconfig, connection, tracing
from scaleset.cli.clientconfig import ClientConfig, ClientConfigError

TERMINAL: Final = frozenset({"succeeded", "failed", "canceled", "cancelled"})
RETRIED_GET_STATUSES: Final = frozenset({429, 502, 503, 504})
GET_ATTEMPTS: Final = 3

Sleep = Callable[[float], None]
OnPoll = Callable[[Mapping[str, Any]], None]


class ClientError(Exception):
    """Base of every client failure; the CLI prints ``error (code): message``."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"({code}) {message}")
        self.code = code
        self.message = message

    def describe(self) -> str:
        """What the CLI prints on stderr: ``error (Code): message``."""
        return f"error ({self.code}): {self.message}"


MAX_DETAIL_DEPTH: Final = 8
"""Nested ``details`` deeper than this are summarised (a server bug, not a user's problem)."""


def _detail_lines(details: list[Any], indent: str, depth: int) -> list[str]:
    """Each detail as ``- (Code) message``, its target and its own details beneath it."""
    lines: list[str] = []
    for detail in details:
        if not isinstance(detail, dict):
            lines.append(f"{indent}- {detail}")
            continue
        code = detail.get("code") or "Error"
        lines.append(f"{indent}- ({code}) {detail.get('message') or ''}".rstrip())
        if detail.get("target"):
            lines.append(f"{indent}  target: {detail['target']}")
        nested = detail.get("details")
        if isinstance(nested, list) and nested:
            if depth >= MAX_DETAIL_DEPTH:
                lines.append(f"{indent}  ({len(nested)} more nested details not shown)")
            else:
                lines.extend(_detail_lines(nested, indent + "  ", depth + 1))
    return lines


class ArmClientError(ClientError):
    """An ARM error: from an HTTP response's ``{"error": {...}}``, or a failed operation."""

    def __init__(self, status: int, code: str, message: str, target: str | None = None,
                 details: list[dict[str, Any]] | None = None) -> None:
        super().__init__(code, message)
        self.status = status
        self.target = target
        self.details = details or []

    def __repr__(self) -> str:
        return (f"ArmClientError(status={self.status}, code={self.code!r}, "
                f"message={self.message!r}, target={self.target!r})")

    def describe(self) -> str:
        """Code, message, target and every detail (nested ones indented), as the CLI prints.

        >>> print(ArmClientError(400, "InvalidParameter", "2 problems", "properties",
        ...       [{"code": "A", "message": "first", "target": "x",
        ...         "details": [{"code": "A1", "message": "why"}]},
        ...        {"code": "B", "message": "second"}]).describe())
        error (InvalidParameter): 2 problems
          target: properties
          details:
          - (A) first
            target: x
            - (A1) why
          - (B) second
        """
        lines = [super().describe()]
        if self.target:
            lines.append(f"  target: {self.target}")
        if self.details:
            lines.append("  details:")
            lines.extend(_detail_lines(self.details, "  ", 1))
        return "\n".join(lines)

    @classmethod
    def from_response(cls, response: httpx.Response) -> ArmClientError:
        """Parse the envelope; a body without one still yields a readable error."""
        try:
            data = response.json()
        except ValueError:
            data = None
        error = data.get("error") if isinstance(data, dict) else None
        if isinstance(error, dict) and error.get("code"):
            details = error.get("details")
            return cls(response.status_code, str(error["code"]),
                       str(error.get("message") or ""),
                       str(error["target"]) if error.get("target") else None,
                       details if isinstance(details, list) else None)
        text = response.text.strip()[:300]
        phrase = response.reason_phrase or "Error"
        return cls(response.status_code, phrase.replace(" ", ""),
                   f"HTTP {response.status_code} {phrase} from {response.request.method} "
                   f"{response.request.url}" + (f": {text}" if text else ""))

    @classmethod
    def from_operation(cls, status: int, document: Mapping[str, Any]) -> ArmClientError:
        """The error of a Failed or Canceled operation status document."""
        error = document.get("error")
        state = str(document.get("status", "Failed"))
        if isinstance(error, dict) and error.get("code"):
            details = error.get("details")
            return cls(status, str(error["code"]), str(error.get("message") or state),
                       str(error["target"]) if error.get("target") else None,
                       details if isinstance(details, list) else None)
        code = "OperationCanceled" if state.lower() in ("canceled", "cancelled") \
            else "OperationFailed"
        return cls(status, code, f"the operation ended {state}")


class TransportError(ClientError):
    """The request got no HTTP answer."""


def _translate(exc: httpx.HTTPError, endpoint: str) -> TransportError:
    """The one place httpx failures become client errors, each with what to do next."""
    text = str(exc) or type(exc).__name__
    if isinstance(exc, httpx.TimeoutException):
        return TransportError("Timeout", f"{endpoint} did not answer in time ({text})")
    if isinstance(exc, httpx.ConnectError) and "CERTIFICATE_VERIFY_FAILED" in text:
        return TransportError(
            "CertificateVerifyFailed",
            f"the certificate of {endpoint} is not trusted ({text}); pass --ca-file or set "
            f"{clientconfig.ENV_CA_FILE} to the CA file 'scaleset serve' printed")
    if isinstance(exc, httpx.ConnectError):
        return TransportError(
            "ConnectionFailed",
            f"cannot reach {endpoint} ({text}); is 'scaleset serve' running? Point "
            f"--server or {clientconfig.ENV_SERVER} at it")
    return TransportError("TransportError", f"request to {endpoint} failed: {text}")


def _body(response: httpx.Response) -> Any:
    if not response.content:
        return None
    try:
        return response.json()
    except ValueError as exc:
        raise ArmClientError(response.status_code, "InvalidResponse",
                             f"{response.request.method} {response.request.url} answered "
                             f"{response.status_code} with a body that is not JSON") from exc


class ArmClient:
    """Talks ARM JSON to a scaleset server (or anything ARM-shaped).

    >>> # client = ArmClient(endpoint="https://127.0.0.1:8443", token=token,
    >>> #                    subscription=SUB, ca_file="ca.pem")
    >>> # response = client.send("PUT", path, json=body)
    >>> # resource = client.wait(response)     # follows the long-running operation
    """

    def __init__(self, *, endpoint: str, token: str, subscription: str,
                 ca_file: str | None = None,
                 api_version: str = clientconfig.DEFAULT_API_VERSION,
                 timeout: float = 30.0, transport: httpx.BaseTransport | None = None,
                 sleep: Sleep = time.sleep, default_poll_interval: float = 2.0,
                 max_poll_interval: float = 10.0, tracer: tracing.Tracer | None = None) -> None:
        self.endpoint = endpoint.rstrip("/")
        self.subscription = subscription
        self.api_version = api_version
        self.default_poll_interval = default_poll_interval
        """Sleep between polls when the server sends no ``Retry-After``."""
        self.max_poll_interval = max_poll_interval
        """Cap on any ``Retry-After``, so a slow hint never stalls the CLI."""
        self._sleep = sleep
        self._tracer = tracer
        """Prints each request and answer (``--debug`` / ``--verbose``); None: silent."""
        verify: ssl.SSLContext | bool = True
        if ca_file and self.endpoint.lower().startswith("https://") and transport is None:
            try:
                verify = ssl.create_default_context(cafile=ca_file)
            except (OSError, ssl.SSLError) as exc:
                raise ClientConfigError(
                    "InvalidCaFile", f"cannot load the CA file {ca_file}: "
                    f"{getattr(exc, 'strerror', None) or exc}") from exc
        self._http = httpx.Client(
            verify=verify, transport=transport,
            timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
            headers={"Authorization": f"Bearer {token}", "Accept": "application/json",
                     "User-Agent": "scaleset-cli"})

    @classmethod
    def from_config(cls, config: ClientConfig, *, transport: httpx.BaseTransport | None = None,
                    sleep: Sleep = time.sleep, tracer: tracing.Tracer | None = None
                    ) -> ArmClient:
        """The client for resolved settings (the token must be there)."""
        return cls(endpoint=config.endpoint, token=config.require_token(),
                   subscription=config.subscription, ca_file=config.ca_file,
                   api_version=config.api_version, transport=transport, sleep=sleep,
                   tracer=tracer)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ArmClient:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    # -- requests -----------------------------------------------------------------------

    def send(self, method: str, path: str, *, params: Mapping[str, str] | None = None,
             json: Any = None, headers: Mapping[str, str] | None = None) -> httpx.Response:
        """One request; a 4xx/5xx answer raises ``ArmClientError``.

        ``path`` is relative to the endpoint (``api-version`` is added) or an
        absolute URL the server gave out (sent verbatim). GETs are retried on
        429/502/503/504, other methods on 429 (throttled, not run), honouring
        ``Retry-After``.
        """
        url, query = self._target(path, params)
        # A 429 was shed before the server read the request, so any method may be resent.
        retried = RETRIED_GET_STATUSES if method.upper() == "GET" else frozenset({429})
        for attempt in range(1, GET_ATTEMPTS + 1):
            response = self._exchange(self._http.build_request(
                method, url, params=query or None, json=json, headers=headers))
            if response.status_code in retried and attempt < GET_ATTEMPTS:
                self.sleep(self.retry_after(response))
                continue
            if response.status_code >= 400:
                raise ArmClientError.from_response(response)
            return response
        raise AssertionError("unreachable")  # pragma: no cover

    def stream(self, path: str, *, params: Mapping[str, str] | None = None,
               headers: Mapping[str, str] | None = None) -> Generator[str, None, None]:
        """GET ``path`` and yield its body line by line as it arrives (Server-Sent Events).

        Nothing is retried: a 4xx/5xx answer raises ``ArmClientError``, a connection
        that fails or drops (before or while reading) ``TransportError``; the caller
        decides whether to reconnect. Closing the iterator (``contextlib.closing``)
        closes the connection.
        """
        url, query = self._target(path, params)
        response = self._exchange(self._http.build_request(
            "GET", url, params=query or None, headers=headers), stream=True)
        try:
            if response.status_code >= 400:
                response.read()
                raise ArmClientError.from_response(response)
            yield from response.iter_lines()
        except httpx.HTTPError as exc:
            raise _translate(exc, self.endpoint) from exc
        finally:
            response.close()

    def _target(self, path: str, params: Mapping[str, str] | None) -> tuple[str, dict[str, str]]:
        """The URL and query for ``path``: a server-given URL verbatim (after the origin
        check), else the endpoint's, with ``api-version``."""
        if path.lower().startswith(("https://", "http://")):
            self._check_origin(path)
            return path, dict(params or {})
        return self.endpoint + path, {"api-version": self.api_version, **(params or {})}

    def _exchange(self, request: httpx.Request, *, stream: bool = False) -> httpx.Response:
        """Send one request, traced when asked; httpx failures become ``TransportError``."""
        if self._tracer is not None:
            self._tracer.request(request)
        started = time.monotonic()
        try:
            response = self._http.send(request, stream=stream)
        except httpx.HTTPError as exc:
            if self._tracer is not None:
                self._tracer.failure(request, exc, (time.monotonic() - started) * 1000)
            raise _translate(exc, self.endpoint) from exc
        if self._tracer is not None:
            self._tracer.response(response, (time.monotonic() - started) * 1000)
        return response

    def _check_origin(self, url: str) -> None:
        """Server-given URLs must point back at the endpoint: the token goes nowhere else."""
        theirs, ours = httpx.URL(url), httpx.URL(self.endpoint)
        if (theirs.scheme, theirs.host, theirs.port) != (ours.scheme, ours.host, ours.port):
            raise ArmClientError(200, "InvalidResponse",
                                 f"the server sent a link to {theirs.scheme}://{theirs.host}"
                                 f"{':' + str(theirs.port) if theirs.port else ''}, not to "
                                 f"{self.endpoint}; refusing to send the token there")

    def get(self, path: str, *, params: Mapping[str, str] | None = None) -> Any:
        return _body(self.send("GET", path, params=params))

    def put(self, path: str, body: Any, *, headers: Mapping[str, str] | None = None) -> Any:
        return _body(self.send("PUT", path, json=body, headers=headers))

    def patch(self, path: str, body: Any, *, headers: Mapping[str, str] | None = None) -> Any:
        return _body(self.send("PATCH", path, json=body, headers=headers))

    def post(self, path: str, body: Any = None) -> Any:
        return _body(self.send("POST", path, json=body))

    def delete(self, path: str) -> Any:
        return _body(self.send("DELETE", path))

    @staticmethod
    def body(response: httpx.Response) -> Any:
        """A response's JSON body (None when empty)."""
        return _body(response)

    def paged(self, path: str, *, params: Mapping[str, str] | None = None
              ) -> Iterator[dict[str, Any]]:
        """Every item of a ``{"value": [...], "nextLink"}`` listing, following ``nextLink``.

        A bare JSON array (VM image listings) is one page.
        """
        page = self.get(path, params=params)
        seen: set[str] = set()
        while True:
            if isinstance(page, list):
                yield from page
                return
            if not isinstance(page, dict):
                raise ArmClientError(200, "InvalidResponse",
                                     f"GET {path} did not answer with a list")
            yield from page.get("value") or []
            next_link = page.get("nextLink")
            if not next_link:
                return
            if next_link in seen:
                raise ArmClientError(200, "InvalidResponse",
                                     f"the server repeated nextLink {next_link}")
            seen.add(next_link)
            page = self.get(next_link if "://" in next_link else self.endpoint + next_link)

    # -- long-running operations --------------------------------------------------------

    def sleep(self, seconds: float) -> None:
        self._sleep(seconds)

    def retry_after(self, response: httpx.Response) -> float:
        """The server's ``Retry-After`` (seconds or an HTTP date), capped; else the default."""
        raw = response.headers.get("Retry-After")
        seconds: float | None = None
        if raw:
            try:
                seconds = float(raw)
            except ValueError:
                try:
                    at = email.utils.parsedate_to_datetime(raw)
                    seconds = (at - datetime.now(UTC)).total_seconds()
                except (TypeError, ValueError):
                    seconds = None
        if seconds is None or seconds <= 0:
            seconds = self.default_poll_interval
        return min(seconds, self.max_poll_interval)

    def wait(self, response: httpx.Response, *, on_poll: OnPoll | None = None) -> Any:
        """Follow the operation ``response`` started to its end; what it produced.

        PUT/PATCH: the resource, fetched again once the operation succeeded. POST:
        the final ``Location`` body, if any. DELETE: None. A Failed or Canceled
        operation raises ``ArmClientError`` with the operation's error. ``on_poll``
        sees every status document (or resource body, when polling on it).
        """
        method = response.request.method.upper()
        async_url = response.headers.get("Azure-AsyncOperation")
        location = response.headers.get("Location")
        if async_url:
            self._poll_status(response, async_url, on_poll)
            if method in ("PUT", "PATCH"):
                return self.get(str(response.request.url))
            if method == "POST" and location:
                return _body(self.send("GET", location))
            return None
        if location and response.status_code == 202:
            current = response
            while current.status_code == 202:
                self.sleep(self.retry_after(current))
                current = self.send("GET", location)
                if on_poll is not None:
                    on_poll({"status": "InProgress" if current.status_code == 202
                             else "Succeeded"})
            return None if method == "DELETE" else _body(current)
        body = _body(response)
        if method in ("PUT", "PATCH") and isinstance(body, dict):
            return self._poll_resource(response, body, on_poll)
        return body

    def _poll_status(self, response: httpx.Response, url: str, on_poll: OnPoll | None
                     ) -> dict[str, Any]:
        current = response
        while True:
            self.sleep(self.retry_after(current))
            current = self.send("GET", url)
            document = _body(current)
            if not isinstance(document, dict):
                raise ArmClientError(current.status_code, "InvalidResponse",
                                     f"operation status {url} is not a JSON object")
            if on_poll is not None:
                on_poll(document)
            status = str(document.get("status", "")).lower()
            if status == "succeeded":
                return document
            if status in TERMINAL:
                raise ArmClientError.from_operation(current.status_code, document)

    def _poll_resource(self, response: httpx.Response, body: dict[str, Any],
                       on_poll: OnPoll | None) -> dict[str, Any]:
        current = response
        while True:
            state = str((body.get("properties") or {}).get("provisioningState")
                        or "Succeeded").lower()
            if state == "succeeded":
                return body
            if state in TERMINAL:
                raise ArmClientError(current.status_code, "ProvisioningFailed",
                                     f"{body.get('id') or response.request.url} ended with "
                                     f"provisioningState {state.capitalize()}")
            self.sleep(self.retry_after(current))
            current = self.send("GET", str(response.request.url))
            polled = _body(current)
            body = polled if isinstance(polled, dict) else {}
            if on_poll is not None:
                on_poll(body)


@dataclass(frozen=True)
class ClientFactory:
    """Builds the ``ArmClient`` a verb uses; tests hand one in through Typer's ``obj``.

    >>> # runner.invoke(vmss.app, [...], obj=ClientFactory(transport=httpx.MockTransport(h)))
    """

    transport: httpx.BaseTransport | None = None
    sleep: Sleep = time.sleep
    environ: Mapping[str, str] | None = field(default=None, repr=False)
    """Where SCALESET_* come from (None: the process environment)."""

    def connect(self, *, endpoint: str | None = None, token: str | None = None,
                ca_file: str | None = None, subscription: str | None = None,
                profile: str | None = None, tracer: tracing.Tracer | None = None
                ) -> ArmClient:
        """A client for these flags, resolved over the environment and the config file."""
        config = clientconfig.resolve(endpoint=endpoint, token=token, ca_file=ca_file,
                                      subscription=subscription, profile=profile,
                                      environ=self.environ)
        return ArmClient.from_config(config, transport=self.transport, sleep=self.sleep,
                                     tracer=tracer)


def _stderr(line: str) -> None:
    typer.echo(line, err=True)


def connect(ctx: typer.Context) -> ArmClient:
    """The client a verb uses: the factory a test put on the context, else the default one,
    with the connection options given anywhere on the command line (then environment, then
    the client config file)."""
    factory = ctx.find_object(ClientFactory) or ClientFactory()
    given = connection.flags(ctx)
    tracer = (tracing.Tracer(write=_stderr, debug=given.debug)
              if given.debug or given.verbose else None)
    return factory.connect(endpoint=given.server, token=given.token, ca_file=given.ca_file,
                           subscription=given.subscription, profile=given.profile,
                           tracer=tracer)
