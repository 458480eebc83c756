"""``scaleset vmss events``: what happened to a scale set, listed or followed live.

Without ``--follow`` the events come from ``GET …/events``, oldest first, page
after page (``nextLink``). With ``--follow`` they come from the same URL with
``follow=true``, a Server-Sent Events stream: the backlog, then each event as it
is stored. When the connection drops (the server restarts, a proxy times out),
the client connects again with ``Last-Event-ID`` set to the last event shown, so
the server sends only what came after; ids already shown are skipped as well,
so nothing is missed or shown twice. Ctrl-C ends a follow (exit 0).

The stream parser (:func:`messages`) is pure, the follow loop sleeps through
the client's ``sleep`` and reads time through an injected clock.
"""

from __future__ import annotations

import json
import re
import sys
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import typer
import yaml

from scaleset.cli import output
from scaleset.cli.client import ArmClient, ArmClientError, ClientError, TransportError
from scaleset.cli.output import Column, OutputFormat

MAX_PAGE: Final = 1000
"""The largest ``$top`` the server takes."""
RECONNECT_SECONDS: Final = 1.0
MAX_RECONNECT_SECONDS: Final = 10.0
PATIENCE_SECONDS: Final = 120.0
"""How long reconnecting may keep failing (no connection at all) before the follow gives up."""
REMEMBERED_IDS: Final = 10_000
"""Ids kept to skip repeats: a repeat can only come from around a reconnection."""
RETRIED_STATUSES: Final = frozenset({429, 500, 502, 503, 504})

Clock = Callable[[], float]
Sleep = Callable[[float], None]
OnEvent = Callable[[dict[str, Any]], None]

EVENT_COLUMNS: Final = (Column("Time", "time", 9), Column("Kind", "kind", 8),
                        Column("Instance", "instanceId", 6), Column("Message", "message", 7))


# -- options ----------------------------------------------------------------------------------

_RELATIVE: Final = re.compile(r"(\d{1,6})\s*(s|m|h|d)", re.IGNORECASE)
_UNITS: Final = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def since_time(text: str, now: datetime) -> str:
    """``--since`` as the ISO 8601 time the server takes: a time, or a span before ``now``.

    >>> at = datetime(2026, 12, 7, 15, 0, tzinfo=UTC)
    >>> since_time("10m", at), since_time("2026-12-07T14:00:00Z", at)
    ('2026-12-07T14:50:00Z', '2026-12-07T14:00:00Z')
    """
    span = _RELATIVE.fullmatch(text.strip())
    if span:
        seconds = int(span.group(1)) * _UNITS[span.group(2).lower()]
        return (now - timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")
    try:
        at = datetime.fromisoformat(text.strip().replace("Z", "+00:00")) \
            if len(text) <= 40 else None
    except ValueError:
        at = None
    if at is None:
        raise typer.BadParameter(f"'{text[:40]}' is neither a time (ISO 8601, e.g. "
                                 "2026-12-07T15:00:00Z) nor a span such as 30s, 10m, 2h, 1d",
                                 param_hint="--since")
    at = at if at.tzinfo is not None else at.replace(tzinfo=UTC)
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S") + (
        f".{at.microsecond // 1000:03d}Z" if at.microsecond else "Z")


def kinds(values: Iterable[str] | None) -> str | None:
    """``--kind A,B --kind C`` as the server's ``kind=A,B,C`` (None: every kind).

    >>> kinds(["BatchStarted,RunFinished", " GateEvaluated "])
    'BatchStarted,RunFinished,GateEvaluated'
    """
    chosen = [k.strip() for value in values or () for k in value.split(",") if k.strip()]
    return ",".join(chosen) or None


def query(*, kind: str | None, since: str | None, run_id: str | None) -> dict[str, str]:
    """The filters as query parameters (only those given)."""
    given = {"kind": kind, "since": since, "runId": run_id}
    return {name: value for name, value in given.items() if value}


# -- lines -----------------------------------------------------------------------------------

def line(event: Mapping[str, Any]) -> str:
    """One event as a line: time, kind, instance (``-`` for the scale set), message.

    >>> line({"time": "2026-12-07T15:00:00.123Z", "kind": "BatchStarted",
    ...       "instanceId": None, "message": "batch 1: 2 instances"})
    '2026-12-07T15:00:00.123Z  BatchStarted          -         batch 1: 2 instances'
    """
    instance = event.get("instanceId")
    message = str(event.get("message") or "").replace("\n", " ")
    return (f"{event.get('time') or '':<24}  {event.get('kind') or '':<20}  "
            f"{'-' if instance is None else instance:<8}  {message}").rstrip()


HEADER: Final = f"{'Time':<24}  {'Kind':<20}  {'Instance':<8}  Message"


class Printer:
    """Prints followed events one at a time in the chosen format.

    ``table`` one line each under a header, ``tsv`` the same fields tab-separated,
    ``json``/``jsonc`` one compact JSON object per line (JSON Lines), ``yaml`` one
    document each, ``none`` nothing.
    """

    def __init__(self, fmt: OutputFormat, write: Callable[[str], None] | None = None) -> None:
        self._fmt = fmt
        self._write = write or _stdout
        self._started = False

    def __call__(self, event: dict[str, Any]) -> None:
        fmt = self._fmt
        if fmt is OutputFormat.none:
            return
        if fmt in (OutputFormat.json, OutputFormat.jsonc):
            self._write(json.dumps(event, separators=(",", ":")))
        elif fmt is OutputFormat.yaml:
            self._write("---\n" + yaml.safe_dump(event, sort_keys=False,
                                                 allow_unicode=True).rstrip("\n"))
        elif fmt is OutputFormat.tsv:
            self._write("\t".join(output.cell(c.value(event)).replace("\t", " ")
                                  .replace("\n", " ") for c in EVENT_COLUMNS))
        else:
            if not self._started:
                self._write(HEADER)
            self._write(line(event))
        self._started = True


def _stdout(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()  # a follower reads each event as it comes, even through a pipe


# -- listing ---------------------------------------------------------------------------------

def listed(client: ArmClient, path: str, *, params: Mapping[str, str], top: int | None
           ) -> Iterator[dict[str, Any]]:
    """The events of the scale set at ``path``, oldest first; at most ``top`` of them."""
    page = {"$top": str(min(top, MAX_PAGE))} if top else {}
    for n, event in enumerate(client.paged(path + "/events", params={**params, **page})):
        if top is not None and n >= top:
            return
        yield event


# -- Server-Sent Events ----------------------------------------------------------------------

@dataclass(frozen=True)
class Message:
    """One dispatched Server-Sent Event."""

    data: str
    id: str | None = None
    """The ``id:`` field of this event (None when it had none)."""
    retry: int | None = None
    """A ``retry:`` (milliseconds) that came with it."""


def messages(lines: Iterable[str]) -> Iterator[Message]:
    """The events of a ``text/event-stream`` given as lines, as the WHATWG rules read them.

    A blank line dispatches; ``:`` starts a comment (heartbeats); ``data`` lines
    join with newlines; one space after the colon is dropped. An event cut off
    by a dropped connection (no blank line yet) is never dispatched. A block with
    only ``retry`` comes out with empty ``data``: it sets the reconnection delay.

    >>> list(messages(["id: 7", "data: {}", "", ": ping", "", "data: a", "data: b", ""]))
    [Message(data='{}', id='7', retry=None), Message(data='a\\nb', id=None, retry=None)]
    """
    data: list[str] = []
    event_id: str | None = None
    retry: int | None = None
    for raw in lines:
        text = raw.rstrip("\r\n")
        if text == "":
            if data or retry is not None:  # a retry alone still sets the reconnection delay
                yield Message("\n".join(data), event_id, retry)
            data, event_id, retry = [], None, None
            continue
        if text.startswith(":"):
            continue
        name, _, value = text.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "data":
            data.append(value)
        elif name == "id" and "\0" not in value:
            event_id = value
        elif name == "retry" and value.isdigit():
            retry = int(value)


class Seen:
    """The ids of the events shown lately, to skip any the server sends again."""

    def __init__(self, size: int = REMEMBERED_IDS) -> None:
        self._order: deque[str] = deque()
        self._ids: set[str] = set()
        self._size = size

    def add(self, event_id: str) -> bool:
        """Remember ``event_id``; False when it was already there."""
        if event_id in self._ids:
            return False
        self._ids.add(event_id)
        self._order.append(event_id)
        if len(self._order) > self._size:
            self._ids.discard(self._order.popleft())
        return True


class Follower:
    """Follows the event stream of one scale set across reconnections (see the module doc).

    ``last`` is the id of the last event shown: where a reconnection resumes.
    """

    def __init__(self, client: ArmClient, path: str, *, params: Mapping[str, str],
                 on_event: OnEvent, top: int | None = None, after: str | None = None,
                 clock: Clock = time.monotonic, patience: float = PATIENCE_SECONDS) -> None:
        self._client = client
        self._path = path + "/events"
        self._params = {**params, "follow": "true"}
        self._on_event = on_event
        self._top = top
        self._clock = clock
        self._patience = patience
        self._seen = Seen()
        self._delay = RECONNECT_SECONDS
        self._connected = False
        self.last = after
        self.shown = 0
        self.connections = 0
        """Connections that answered (the first, then one per successful reconnection)."""

    def run(self) -> None:
        """Show events as they come until ``top`` were shown (None: until interrupted).

        Gives up (``ClientError`` ``EventStreamLost``) when no connection succeeded for
        ``patience`` seconds; a 4xx answer (a bad filter, no such scale set, no
        permission) ends it at once.
        """
        failing_since: float | None = None
        while True:
            self._connected = False
            problem = "the server ended the stream"
            try:
                if self._read():
                    return
            except TransportError as exc:
                problem = exc.message
            except ArmClientError as exc:
                if exc.status not in RETRIED_STATUSES:
                    raise
                problem = f"HTTP {exc.status} ({exc.code})"
            now = self._clock()
            if self._connected or failing_since is None:
                failing_since = now
            elif now - failing_since >= self._patience:
                raise ClientError("EventStreamLost", f"no connection to the event stream for "
                                                     f"{self._patience:g} s ({problem}); last "
                                                     f"event shown: {self.last or 'none'}")
            self._client.sleep(self._delay)

    def _read(self) -> bool:
        """One connection, read until it ends; True once ``top`` events were shown."""
        headers = {"Accept": "text/event-stream", "Cache-Control": "no-cache"}
        if self.last is not None:
            headers["Last-Event-ID"] = self.last
        with closing(self._client.stream(self._path, params=self._params,
                                         headers=headers)) as lines:
            for message in messages(self._answered(lines)):
                if message.retry is not None:
                    self._delay = min(max(message.retry / 1000, 0.1), MAX_RECONNECT_SECONDS)
                event = _event(message)
                if event is None:
                    continue
                event_id = message.id or str(event.get("id"))
                if not self._seen.add(event_id):
                    continue
                self._on_event(event)
                self.last = event_id
                self.shown += 1
                if self._top is not None and self.shown >= self._top:
                    return True
        return False

    def _answered(self, lines: Iterator[str]) -> Iterator[str]:
        """``lines``, noting that the connection answered once the first one came."""
        for text in lines:
            if not self._connected:
                self._connected = True
                self.connections += 1
            yield text


def _event(message: Message) -> dict[str, Any] | None:
    try:
        event = json.loads(message.data)
    except ValueError:
        return None
    return event if isinstance(event, dict) else None


def show(client: ArmClient, path: str, *, follow_: bool, kind: str | None, since: str | None,
         run_id: str | None, top: int | None, fmt: OutputFormat,
         clock: Clock = time.monotonic) -> None:
    """What the ``events`` verb does once connected: list, or follow until Ctrl-C."""
    since_at = since_time(since, datetime.now(UTC)) if since else None
    params = query(kind=kind, since=since_at, run_id=run_id)
    if not follow_:
        events = listed(client, path, params=params, top=top)
        if fmt is OutputFormat.table and output.as_rows(fmt):
            printer = Printer(fmt)  # one line per event, page by page as they come
            for event in events:
                printer(event)
            return
        output.emit(list(events), fmt, columns=EVENT_COLUMNS)
        return
    try:
        Follower(client, path, params=params, on_event=Printer(fmt), top=top,
                 clock=clock).run()
    except KeyboardInterrupt:
        return  # Ctrl-C is how a follow ends
