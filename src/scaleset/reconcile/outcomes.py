"""What happened, as stored: events after a point, with what logs and metrics need.

The shell, the commands and the trigger record every run, batch and instance
outcome as an event in the same transaction as the change itself
(``Tx.append_events``). ``outcomes_after(store, event_id)`` reads the committed
ones back, oldest first, each with its run's kind, starter, status and error,
the start of the batch it ends (``BatchCompleted``, ``InstanceUpgraded``,
``InstanceFailed``) and, for a run the platform started, when its target image
version was published. Logging and measuring from here rather than in the shell
means the log says exactly what ``GET .../events`` says, and only once it is
committed. Reads only.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Integer, String, and_, column, func, or_, select, values

from scaleset.store import tables as t
from scaleset.store.repository import Store, Tx

BATCH_ENDS = frozenset({"BatchCompleted"})
INSTANCE_ENDS = frozenset({"InstanceUpgraded", "InstanceFailed"})
DEFAULT_LIMIT = 500


@dataclass(frozen=True, slots=True)
class Outcome:
    """One stored event and its context."""

    event_id: int
    at: datetime
    kind: str
    scale_set_id: str
    scale_set: str
    """The scale set's name (its id's last part once the scale set is gone)."""
    message: str
    run_id: str | None = None
    instance_id: str | None = None
    data: Mapping[str, Any] = field(default_factory=dict)
    run_kind: str | None = None
    started_by: str | None = None
    run_status: str | None = None
    """The run's status now (a ``RunFinished`` event's own is ``data["status"]``)."""
    error_code: str | None = None
    target_image_version: str | None = None
    began_at: datetime | None = None
    """When the batch this event ends began (batch and instance outcomes)."""
    published_at: datetime | None = None
    """A platform run's ``RunStarted``: when its target image version was published."""


def last_event_id(store: Store) -> int:
    """The newest event's id (0 for none): where a reader that wants only new ones starts."""
    with store.transaction() as tx:
        return int(tx.conn.execute(select(func.max(t.events.c.id))).scalar() or 0)


Fingerprint = tuple[str, str, str, str]
"""What tells one stored event from another that later took its id: kind, time, scale
set, message."""


def fingerprint(o: Outcome) -> Fingerprint:
    return (o.kind, o.at.isoformat(), o.scale_set_id, o.message)


def fingerprints(store: Store, event_ids: Collection[int]) -> dict[int, Fingerprint]:
    """The fingerprints of those of ``event_ids`` still stored."""
    if not event_ids:
        return {}
    e = t.events.c
    with store.transaction() as tx:
        return {r.id: (r.kind, r.at.isoformat(), r.scale_set_id, r.message)
                for r in tx.conn.execute(select(e.id, e.kind, e.at, e.scale_set_id, e.message)
                                         .where(e.id.in_(list(event_ids))))}


def outcomes_after(store: Store, event_id: int, *, also: Collection[int] = (),
                   limit: int = DEFAULT_LIMIT) -> list[Outcome]:
    """Up to ``limit`` events with ids above ``event_id`` or in ``also`` (ids a reader
    saw skipped: on PostgreSQL a later id can commit before an earlier one), oldest
    first, in one transaction."""
    e = t.events.c
    wanted = e.id > event_id
    if also:
        wanted = or_(wanted, e.id.in_(list(also)))
    with store.transaction() as tx:
        rows = tx.conn.execute(select(t.events).where(wanted)
                               .order_by(e.id).limit(limit)).all()
        if not rows:
            return []
        run_ids = {r.run_id for r in rows if r.run_id is not None}
        runs = _runs(tx, run_ids)
        places = _places(tx, {r.scale_set_id for r in rows})
        names = {sid: name for sid, (name, _) in places.items()}
        began = _batch_starts(tx, rows)
        published = {r.run_id: _published_at(tx, places.get(r.scale_set_id), runs[r.run_id])
                     for r in rows if r.kind == "RunStarted" and r.run_id in runs
                     and runs[r.run_id].started_by == "Platform"}
        out = []
        for r in rows:
            run = runs.get(r.run_id) if r.run_id is not None else None
            out.append(Outcome(
                event_id=r.id, at=r.at, kind=r.kind, scale_set_id=r.scale_set_id,
                scale_set=names.get(r.scale_set_id) or r.scale_set_id.rsplit("/", 1)[-1],
                message=r.message, run_id=r.run_id, instance_id=r.instance_id,
                data=dict(r.data or {}),
                run_kind=run.kind if run is not None else None,
                started_by=run.started_by if run is not None else None,
                run_status=run.status if run is not None else None,
                error_code=run.error_code if run is not None else None,
                target_image_version=run.target_image_version if run is not None else None,
                began_at=began.get(r.id),
                published_at=published.get(r.run_id) if r.kind == "RunStarted" else None))
        return out


def _runs(tx: Tx, run_ids: set[str]) -> dict[str, Any]:
    if not run_ids:
        return {}
    c = t.runs.c
    return {row.run_id: row for row in tx.conn.execute(
        select(c.run_id, c.scale_set_id, c.kind, c.started_by, c.status, c.error_code,
               c.target_image_version, c.target_image_reference, c.start_time
               ).where(c.run_id.in_(run_ids)))}


def _places(tx: Tx, scale_set_ids: set[str]) -> dict[str, tuple[str, str]]:
    """Scale set id -> (name, location), for those still stored."""
    c = t.scale_sets.c
    return {row.id: (row.name, row.location) for row in tx.conn.execute(
        select(c.id, c.name, c.location).where(c.id.in_(scale_set_ids)))}


def _batch_starts(tx: Tx, rows: Sequence[Any]) -> dict[int, datetime]:
    """Event id -> the start of the batch it ends: the event's ``data.batch`` for a batch,
    the instance's batch in its run for an instance."""
    wanted: dict[int, tuple[str, int | None, str | None]] = {}
    for r in rows:
        if r.run_id is None:
            continue
        if r.kind in BATCH_ENDS and isinstance((r.data or {}).get("batch"), int):
            wanted[r.id] = (r.run_id, r.data["batch"], None)
        elif r.kind in INSTANCE_ENDS and r.instance_id is not None:
            wanted[r.id] = (r.run_id, None, r.instance_id)
    if not wanted:
        return {}
    ri = t.run_instances.c
    pairs = {(run_id, iid) for run_id, _, iid in wanted.values() if iid is not None}
    batch_of: dict[tuple[str, str], int] = {}
    # Only the rows asked for, each found by its primary key (the wanted keys as a VALUES
    # table joined on it): a round that ends one batch of each of a thousand runs must not
    # read every batch and every instance of all of them, nor of every past run (a
    # row-value IN is a full scan on SQLite).
    if pairs:
        keys = values(column("run_id", String), column("instance_id", String),
                      name="wanted").data(sorted(pairs)).cte("wanted")
        found = tx.conn.execute(
            select(ri.run_id, ri.instance_id, ri.batch_index).select_from(keys)
            .join(t.run_instances, and_(ri.run_id == keys.c.run_id,
                                        ri.instance_id == keys.c.instance_id))
            .where(ri.batch_index.is_not(None)))
        batch_of = {(row.run_id, row.instance_id): row.batch_index for row in found}
    indexes: dict[int, tuple[str, int]] = {}
    for event_id, (run_id, batch, iid) in wanted.items():
        index = batch if iid is None else batch_of.get((run_id, iid))
        if index is not None:
            indexes[event_id] = (run_id, index)
    if not indexes:
        return {}
    b = t.run_batches.c
    wanted_batches = values(column("run_id", String), column("batch_index", Integer),
                            name="wanted").data(sorted(set(indexes.values()))).cte("wanted")
    starts = {(row.run_id, row.batch_index): row.start_time for row in tx.conn.execute(
        select(b.run_id, b.batch_index, b.start_time).select_from(wanted_batches)
        .join(t.run_batches, and_(b.run_id == wanted_batches.c.run_id,
                                  b.batch_index == wanted_batches.c.batch_index)))}
    out: dict[int, datetime] = {}
    for event_id, (run_id, index) in indexes.items():
        start = starts.get((run_id, index))
        if start is not None:
            out[event_id] = start
    return out


def _published_at(tx: Tx, place: tuple[str, str] | None, run: Any) -> datetime | None:
    """When the run's target image version was published (None: unknown or no image).

    Read from the run's ``targetImageReference`` (a platform image's publisher, offer,
    sku and version in the scale set's location; a gallery image version's id): one
    indexed row, not every version of the image.
    """
    ref = run.target_image_reference or {}
    version = run.target_image_version
    if version is None or place is None:
        return None
    if ref.get("publisher") and ref.get("offer") and ref.get("sku"):
        v = t.image_versions.c
        return tx.conn.execute(select(v.published_at).where(
            v.location == place[1].lower(), v.publisher == str(ref["publisher"]).lower(),
            v.offer == str(ref["offer"]).lower(), v.sku == str(ref["sku"]).lower(),
            v.version == version)).scalar()
    if ref.get("id"):  # a gallery image version's published_at is when it was created
        r = t.resources.c
        return tx.conn.execute(select(r.created_at).where(
            r.id == str(ref["id"]).lower())).scalar()
    return None
