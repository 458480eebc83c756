"""``virtualMachineScaleSets/{name}/events``: what happened to a scale set, as a page or a stream.

The store appends an event for every run started, batch started and settled,
gate evaluated, instance upgraded, failed (with its cause) or rolled back, run
finished, and automatic upgrade scheduled, deferred or approved. A GET lists
them oldest first in ARM's paged shape; ``follow=true`` answers a Server-Sent
Events stream instead: first what came after ``Last-Event-ID`` (or ``after``),
then each event as it is stored. Every event's ``id`` is its place in the log,
so a client that reconnects with the last id it saw misses nothing and sees
nothing twice.

The stream reads the store every ``POLL_SECONDS`` rather than hooking the
reconciler: any writer (another process on the same database too) is seen.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any, Final

from fastapi import APIRouter, Depends, Query, Request
from sse_starlette.sse import EventSourceResponse
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from scaleset.api.auth import READ
from scaleset.api.context import ApiContext, request_context
from scaleset.api.routes.common import SCALE_SET, compute_version, load_scale_set
from scaleset.errors import InvalidParameter
from scaleset.store.repository import Store
from scaleset.upgrade.rollout import iso

router = APIRouter(tags=["events"])

MAX_TOP: Final = 1000
DEFAULT_TOP: Final = 100
MAX_KINDS: Final = 32
POLL_SECONDS: Final = 0.5
PING_SECONDS: Final = 15
STREAM_BATCH: Final = 500
"""The most events one read of the stream sends; a long backlog comes in several."""


def event_body(row: dict[str, Any]) -> dict[str, Any]:
    """One stored event in the API's shape."""
    return {"id": str(row["id"]), "time": iso(row["at"]), "kind": row["kind"],
            "runId": row["run_id"], "instanceId": row["instance_id"],
            "message": row["message"], "data": row["data"] or {}}


def _after(request: Request, after: str | None) -> int:
    """Where to start: ``Last-Event-ID`` (a reconnecting EventSource) wins over ``after``."""
    raw, target = request.headers.get("last-event-id"), "Last-Event-ID"
    if raw is None or raw == "":
        raw, target = after, "after"
    if raw is None or raw == "":
        return 0
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 18:
        raise InvalidParameter(f"{target} '{raw[:40]}' is not an event id: use the 'id' of an "
                               "event this server sent (a non-negative integer)", target=target)
    return int(raw)


def _time(raw: str | None, name: str) -> datetime | None:
    if raw is None or raw == "":
        return None
    try:
        at = datetime.fromisoformat(raw.replace("Z", "+00:00")) if len(raw) <= 40 else None
    except ValueError:
        at = None
    if at is None:
        raise InvalidParameter(f"{name} '{raw[:40]}' is not a time: give ISO 8601, e.g. "
                               "2026-12-07T15:00:00Z", target=name)
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


def _kinds(raw: str | None) -> list[str] | None:
    if raw is None or raw.strip() == "":
        return None
    kinds = [k.strip() for k in raw.split(",") if k.strip()]
    if len(kinds) > MAX_KINDS or any(len(k) > 64 or not k.isalnum() for k in kinds):
        raise InvalidParameter(f"kind must be up to {MAX_KINDS} comma-separated event kinds "
                               "(letters and digits, e.g. BatchStarted,RunFinished)",
                               target="kind")
    return kinds


def _top(raw: str | None) -> int:
    if raw is None or raw == "":
        return DEFAULT_TOP
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 4 or not 1 <= int(raw) <= MAX_TOP:
        raise InvalidParameter(f"$top '{raw[:20]}' must be a whole number from 1 to {MAX_TOP}",
                               target="$top")
    return int(raw)


def _run_id(raw: str | None) -> str | None:
    if raw is not None and (len(raw) > 64 or not raw.replace("-", "").isalnum()):
        raise InvalidParameter("runId must be a run's id (letters, digits and '-')",
                               target="runId")
    return raw or None


@router.get(SCALE_SET + "/events")
async def events(
    subscription: str, resource_group: str, name: str, request: Request,
    top: str | None = Query(default=None, alias="$top"),
    after: str | None = Query(default=None),
    since: str | None = Query(default=None),
    until: str | None = Query(default=None),
    kind: str | None = Query(default=None),
    run_id: str | None = Query(default=None, alias="runId"),
    follow: str | None = Query(default=None),
    _v: str = Depends(compute_version), _a: object = Depends(READ),
    context: ApiContext = Depends(request_context),
) -> Any:
    """The scale set's events, oldest first (``$top`` a page, ``nextLink`` the rest), filtered
    by ``since``/``until`` (ISO 8601), ``kind`` (comma-separated) and ``runId``; with
    ``follow=true`` a Server-Sent Events stream that resumes after ``Last-Event-ID``."""
    if follow not in (None, "", "true", "false"):
        raise InvalidParameter("follow must be 'true' or 'false'", target="follow")
    start = _after(request, after)
    filters: dict[str, Any] = {"kinds": _kinds(kind), "since": _time(since, "since"),
                               "until": _time(until, "until"), "run_id": _run_id(run_id)}
    size = _top(top)
    row = await run_in_threadpool(load_scale_set, context.store, subscription,
                                  resource_group, name)
    if follow == "true":
        return _stream(context.store, row.id, start, filters, request)
    rows = await run_in_threadpool(_read, context.store, row.id, start, filters, size + 1)
    out: dict[str, Any] = {"value": [event_body(r) for r in rows[:size]]}
    if len(rows) > size:
        out["nextLink"] = str(request.url.include_query_params(after=rows[size - 1]["id"]))
    return out


def _read(store: Store, scale_set_id: str, after: int, filters: dict[str, Any],
          limit: int) -> list[dict[str, Any]]:
    with store.transaction() as tx:
        return tx.events(scale_set_id, after_id=after, limit=limit, **filters)


def _stream(store: Store, scale_set_id: str, after: int, filters: dict[str, Any],
            request: Request) -> Response:
    async def produce() -> AsyncIterator[dict[str, str]]:
        last = after
        while True:
            rows = await run_in_threadpool(_read, store, scale_set_id, last, filters,
                                           STREAM_BATCH)
            for r in rows:
                last = int(r["id"])
                yield {"id": str(last), "data": json.dumps(event_body(r), separators=(",", ":"))}
            if len(rows) < STREAM_BATCH:
                if await request.is_disconnected():
                    return
                await asyncio.sleep(POLL_SECONDS)

    # X-Accel-Buffering: a proxy in front must pass each event on as it comes.
    return EventSourceResponse(produce(), ping=PING_SECONDS,
                               headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})
