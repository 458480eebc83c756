"""``--debug`` and ``--verbose``: what the client sent and got, on stderr, minus secrets.

* ``--verbose``: one line per request, as az's: ``GET <url> -> 200 OK (12 ms)``.
* ``--debug``: the request line and its headers, then the status, the elapsed time
  and the response headers.

Never printed: the value of ``Authorization``, ``Cookie``/``Set-Cookie``, or of any
header whose name mentions a token, secret, key or password (shown as
``<redacted>``), and no body at all (``POST /scaleset/tokens`` answers with a
token). URLs are printed whole: the client puts no secret in them.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

import httpx

REDACTED: Final = "<redacted>"
_SECRET_HEADER: Final = re.compile(r"authorization|cookie|token|secret|key|password",
                                   re.IGNORECASE)

Write = Callable[[str], None]


def safe_headers(headers: httpx.Headers) -> list[str]:
    """``Name: value`` lines with secret values redacted.

    >>> safe_headers(httpx.Headers({"Authorization": "Bearer sst_x", "Accept": "*/*"}))
    ['Authorization: <redacted>', 'Accept: */*']
    """
    lines = []
    for raw_name, raw_value in headers.raw:  # raw: as sent, in the sender's casing
        name, value = raw_name.decode("latin-1"), raw_value.decode("latin-1")
        lines.append(f"{name}: {REDACTED if _SECRET_HEADER.search(name) else value}")
    return lines


@dataclass(frozen=True)
class Tracer:
    """Prints requests as ``--debug`` (everything but secrets) or ``--verbose`` (a line each)."""

    write: Write
    debug: bool = False

    def request(self, request: httpx.Request) -> None:
        """Called before a request is sent (``--debug`` only prints here)."""
        if self.debug:
            self.write(f"> {request.method} {request.url}")
            for line in safe_headers(request.headers):
                self.write(f"> {line}")

    def response(self, response: httpx.Response, elapsed_ms: float) -> None:
        """Called once the answer is in."""
        request = response.request
        summary = f"{response.status_code} {response.reason_phrase} ({elapsed_ms:.0f} ms)"
        if not self.debug:
            self.write(f"{request.method} {request.url} -> {summary}")
            return
        self.write(f"< {summary}")
        for line in safe_headers(response.headers):
            self.write(f"< {line}")

    def failure(self, request: httpx.Request, error: Exception, elapsed_ms: float) -> None:
        """Called when the request got no answer."""
        self.write(f"{'< ' if self.debug else ''}{request.method} {request.url} -> "
                   f"no answer after {elapsed_ms:.0f} ms: {type(error).__name__}")
