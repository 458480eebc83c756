"""The repository: every read and write the shell makes, in short transactions.

One ``Store`` per database; ``store.transaction()`` yields a ``Tx`` whose
methods speak the domain (runs, instances, scale sets), never rows. Writes to
a run are guarded (``UPDATE ... WHERE status = :expected``) so a replayed or
concurrent step cannot move it along an edge it already left.
"""

from __future__ import annotations

import dataclasses
import errno
import json
import random
import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Generic, TypeVar

from sqlalchemy import (
    Connection,
    Engine,
    Text,
    bindparam,
    cast,
    delete,
    func,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.exc import DBAPIError, IntegrityError, SQLAlchemyError

from scaleset.errors import Conflict
from scaleset.model.instance import (
    InstanceRecord,
)
from scaleset.model.network import LoadBalancer
from scaleset.model.resourcegroup import DELETING, RESOURCE_GROUP_TYPE, group_body, group_id
from scaleset.model.scaleset import ScaleSet
from scaleset.store import bulk
from scaleset.store import tables as t
from scaleset.store.sealing import FieldCipher, seal_model, unseal_model
from scaleset.upgrade.actions import Decision, Event
from scaleset.upgrade.state import (
    Batch,
    Policy,
    Progress,
    Run,
    RunError,
    RunInstance,
    RunKind,
    RunStatus,
    StartedBy,
    Step,
    Target,
)


class StoreError(Exception):
    """Base of every store failure."""


class ConflictError(StoreError):
    """A guarded write found the row changed under it."""


class NotFoundError(StoreError):
    """The row asked for does not exist."""


class DuplicateKey(ConflictError):
    """An insert lost a race with an equal one (a UNIQUE violation): the row now exists.

    ``Store.write`` retries its work, which then finds the row; only when the
    retries run out does it reach the client, as 409 Conflict.
    """


class StoreBusy(StoreError):
    """The database stayed locked (SQLite busy) or refused to serialise this transaction
    (PostgreSQL serialization failure, deadlock, lock timeout) past the retries."""


class StorageFull(StoreError):
    """The database's disk is full (SQLITE_FULL, PostgreSQL disk_full 53100, ENOSPC)."""


T = TypeVar("T")

# PostgreSQL SQLSTATEs worth a retry: serialization_failure, deadlock_detected, lock_not_available.
_PG_RETRY = frozenset({"40001", "40P01", "55P03"})
_PG_DISK_FULL = "53100"
WRITE_ATTEMPTS = 8
# Seconds a write may spend retrying before its error reaches the client. SQLite's BEGIN
# IMMEDIATE already waits busy_timeout (5 s) for the lock, so a lock held longer than that
# is not waited for twice: the client gets its 503 after about 5 s.
WRITE_DEADLINE = 4.0


def classify(exc: BaseException) -> StoreError:
    """The store's exception for a driver error: what the caller can do about it differs
    (retry as an update, wait, free disk space), so they are told apart here."""
    if isinstance(exc, StoreError):
        return exc
    orig = exc.orig if isinstance(exc, DBAPIError) else exc
    message = str(orig).lower()
    sqlstate = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    if isinstance(orig, OSError) and orig.errno == errno.ENOSPC:
        return StorageFull(f"the database's disk is full: {orig}")
    if sqlstate == _PG_DISK_FULL or "database or disk is full" in message:
        return StorageFull(f"the database's disk is full: {orig}")
    if isinstance(exc, IntegrityError) or sqlstate == "23505":
        return DuplicateKey(f"another request created the same row at the same time: {orig}")
    if sqlstate in _PG_RETRY or "database is locked" in message or "database is busy" in message:
        return StoreBusy(f"the database is busy with other writers: {orig}")
    return StoreError(f"database error: {exc}")


class ResourceGroupBeingDeleted(Conflict):
    """A resource was written into a resource group whose deletion is still running (ARM
    answers 409 ``ResourceGroupBeingDeleted``)."""

    code = "ResourceGroupBeingDeleted"


_GROUP_OF = re.compile(r"^/subscriptions/([^/]+)/resourcegroups/([^/]+)/", re.IGNORECASE)


@dataclass(frozen=True)
class ScaleSetRow:
    id: str
    name: str
    location: str
    model: ScaleSet
    generation: int
    image_version: str | None
    next_instance_id: int
    etag: str
    created_at: datetime
    updated_at: datetime
    revision: int = 0
    auto_os_upgrade_since: datetime | None = None
    """When ``enableAutomaticOSUpgrade`` last turned on; None while it is off."""

    def replace(self, **changes: Any) -> ScaleSetRow:
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True)
class ImageVersionRow:
    location: str
    publisher: str
    offer: str
    sku: str
    version: str
    os_type: str
    properties: Mapping[str, Any]
    published_at: datetime


@dataclass(frozen=True)
class LoadBalancerRow:
    """A load balancer: keyed by its lower-cased ARM id, ``model`` as GET returns it."""

    id: str
    subscription: str
    resource_group: str
    name: str
    location: str
    model: LoadBalancer
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class ResourceRow:
    """A stored ARM resource: ``body`` as GET returns it, ``state`` the server's own facts.

    ``id`` and ``parent_id`` are canonical ARM ids (any casing; the store keys
    them lower-cased); ``type`` is the full resource type, e.g.
    ``Microsoft.Compute/galleries/images/versions``.
    """

    id: str
    type: str
    parent_id: str | None
    subscription: str
    resource_group: str
    name: str
    location: str
    body: Mapping[str, Any]
    state: Mapping[str, Any]
    created_at: datetime
    updated_at: datetime

    def replace(self, **changes: Any) -> ResourceRow:
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True)
class RunSummary:
    """A run without its per-instance rows: what history and status views need."""

    run: Run
    progress: Progress
    target_image_reference: Mapping[str, Any] | None


# -- (de)serialisation ---------------------------------------------------------

def _policy_to_json(p: Policy) -> dict[str, Any]:
    data = dataclasses.asdict(p)
    data["pause_time_between_batches"] = p.pause_time_between_batches.total_seconds()
    data["health_timeout"] = p.health_timeout.total_seconds()
    data["batch_timeout"] = p.batch_timeout.total_seconds()
    return data


def _policy_from_json(data: Mapping[str, Any]) -> Policy:
    values = dict(data)
    values["pause_time_between_batches"] = timedelta(seconds=values["pause_time_between_batches"])
    values["health_timeout"] = timedelta(seconds=values["health_timeout"])
    if "batch_timeout" in values:
        values["batch_timeout"] = timedelta(seconds=values["batch_timeout"])
    return Policy(**values)


def _run_values(run: Run) -> dict[str, Any]:
    return {
        "status": str(run.status),
        "end_time": run.end_time,
        "error_code": run.error.code if run.error else None,
        "error_message": run.error.message if run.error else None,
        "error_target": run.error.target if run.error else None,
        "cancel_requested": run.cancel_requested,
        "cancel_time": run.cancel_time,
        "next_batch_at": run.next_batch_at,
    }


def _run_from_row(row: Any, instances: Mapping[str, RunInstance],
                  batches: tuple[Batch, ...]) -> Run:
    error = RunError(row.error_code, row.error_message or "", row.error_target) \
        if row.error_code else None
    return Run(
        run_id=row.run_id,
        scale_set_id=row.scale_set_id,
        kind=RunKind(row.kind),
        started_by=StartedBy(row.started_by),
        target=Target(row.target_image_version, row.target_generation),
        policy=_policy_from_json(row.policy),
        start_time=row.start_time,
        instances=instances,
        rollback_on_failure=row.rollback_on_failure,
        rollback_on_breach=row.rollback_on_breach,
        all_at_once=row.all_at_once,
        status=RunStatus(row.status),
        end_time=row.end_time,
        error=error,
        cancel_requested=row.cancel_requested,
        cancel_time=row.cancel_time,
        batches=batches,
        next_batch_at=row.next_batch_at,
    )


def _scale_set_from_row(row: Any, cipher: FieldCipher | None = None, *,
                        model: ScaleSet | None = None) -> ScaleSetRow:
    return ScaleSetRow(
        id=row.id,
        name=row.name,
        location=row.location,
        model=model if model is not None else
        ScaleSet.model_validate(unseal_model(row.model, cipher, row.id)),
        generation=row.generation,
        image_version=row.image_version,
        next_instance_id=row.next_instance_id,
        etag=row.etag,
        created_at=row.created_at,
        updated_at=row.updated_at,
        revision=row.revision,
        auto_os_upgrade_since=row.auto_os_upgrade_since,
    )


def _resource_from_row(row: Any) -> ResourceRow:
    return ResourceRow(
        id=row.id, type=row.type, parent_id=row.parent_id, subscription=row.subscription,
        resource_group=row.resource_group, name=row.name, location=row.location,
        body=row.body, state=row.state, created_at=row.created_at, updated_at=row.updated_at)


def _load_balancer_from_row(row: Any) -> LoadBalancerRow:
    return LoadBalancerRow(
        id=row.id, subscription=row.subscription, resource_group=row.resource_group,
        name=row.name, location=row.location, model=LoadBalancer.model_validate(row.body),
        created_at=row.created_at, updated_at=row.updated_at)


_INSTANCE_KEYS = ("scale_set_id", "instance_id")
FAILED_SHOWN = 20  # failed instances loaded with a run summary, for its error's details


def _model_json(model: ScaleSet, cipher: FieldCipher | None = None,
                scale_set_id: str = "") -> dict[str, Any]:
    """The model as the client wrote it: fields it never set are not stored as defaults.

    This keeps "which fields did the user set" through a read-modify-write. Its
    secrets are sealed when the store has a cipher (``store/sealing.py``).
    """
    return seal_model(model.model_dump(mode="json", by_alias=True, exclude_unset=True,
                                       exclude_none=True), cipher, scale_set_id)


def _reference_values(model: ScaleSet) -> dict[str, Any]:
    """The reference columns kept with a model (``tables.scale_sets``, migration 0010)."""
    probe = model.health_probe_id
    image = model.image_reference.id
    return {"capacity": model.capacity,
            "health_probe_id": probe.strip().lower() if probe else None,
            "image_id": image.strip().lower() if image else None,
            "service_fabric": model.service_fabric_extension is not None}


class ParseCache(Generic[T]):
    """Values parsed from stored text, kept by key while the stored text stays the same.

    For a reader that reads the same rows over and over and never changes what it gets
    (the reconciler reads its scale set's model and its load balancer every pass): a
    primary-key read of the text is cheap, validating the model is not. The oldest entry
    goes first when ``size`` is reached.
    """

    def __init__(self, *, size: int = 100_000) -> None:
        self._size = size
        self._items: dict[str, tuple[str, T]] = {}

    def get(self, key: str, stored: str, parse: Callable[[str], T]) -> T:
        """The value parsed from ``stored`` (parsed again only when it changed)."""
        kept = self._items.get(key)
        if kept is not None and kept[0] == stored:
            return kept[1]
        value = parse(stored)
        if key not in self._items and len(self._items) >= self._size:
            del self._items[next(iter(self._items))]
        self._items[key] = (stored, value)
        return value


# Built once: the reconciler runs these every pass, and building a statement (and its
# cache key) costs more than running it. Bind names are prefixed so they never clash
# with a column the statement sets.
_SS = t.scale_sets.c
_SCALE_SET_TEXT = select(*(col for col in t.scale_sets.c if col.name != "model"),
                         cast(_SS.model, Text).label("model_text")
                         ).where(_SS.id == bindparam("b_id"))
_CLAIM = update(t.scale_sets).where(
    _SS.id == bindparam("b_id"), _SS.revision == bindparam("b_expected")
).values(revision=bindparam("b_next"))
_LOAD_BALANCER_TEXT = select(cast(t.load_balancers.c.body, Text)).where(
    t.load_balancers.c.id == bindparam("b_id"))
_RUN_VALUES = ("status", "end_time", "error_code", "error_message", "error_target",
               "cancel_requested", "cancel_time", "next_batch_at")
_SAVE_RUN = update(t.runs).where(
    t.runs.c.run_id == bindparam("w_run_id"), t.runs.c.status == bindparam("w_status")
).values({name: bindparam(f"b_{name}") for name in _RUN_VALUES})  # w_: the guard
_BATCH_END = update(t.run_batches).where(
    t.run_batches.c.run_id == bindparam("b_run_id"),
    t.run_batches.c.batch_index == bindparam("b_index")).values(end_time=bindparam("b_end"))
_INSERT_BATCH = insert(t.run_batches)
_INSERT_RUN = insert(t.runs)
_STEPS: dict[str, Step] = {str(step): step for step in Step}
_REVISION = select(t.revisions.c.revision).where(t.revisions.c.name == bindparam("b_name"))


CATALOG = "catalog"
"""The ``revisions`` row bumped by every write to image versions and galleries: what
"latest" can mean has changed."""
_GALLERY_TYPES = "microsoft.compute/galleries"
_GALLERY_IN_ID = "/providers/microsoft.compute/galleries/"


class Tx:
    """One transaction's worth of domain reads and writes."""

    def __init__(self, conn: Connection, cipher: FieldCipher | None = None) -> None:
        self.conn = conn
        self.cipher = cipher

    # -- named revisions -------------------------------------------------------
    def revision(self, name: str) -> int:
        """A named counter's value (0 before its first bump)."""
        value = self.conn.execute(_REVISION, {"b_name": name}).scalar()
        return int(value or 0)

    def bump_revision(self, name: str) -> None:
        """Bump a named counter in this transaction (readers caching what it guards see
        the change at their next read)."""
        c = t.revisions.c
        result = self.conn.execute(update(t.revisions).where(c.name == name)
                                   .values(revision=c.revision + 1))
        if result.rowcount == 0:
            self.conn.execute(insert(t.revisions).values(name=name, revision=1))

    # -- scale sets ------------------------------------------------------------
    def insert_scale_set(self, row: ScaleSetRow) -> None:
        group = _GROUP_OF.match(row.model.id or row.id)
        if group is not None:
            self.ensure_resource_group(group[1], group[2], row.location, row.created_at)
        self.conn.execute(insert(t.scale_sets).values(
            id=row.id, name=row.name, location=row.location,
            model=_model_json(row.model, self.cipher, row.id),
            generation=row.generation, image_version=row.image_version,
            next_instance_id=row.next_instance_id, etag=row.etag,
            created_at=row.created_at, updated_at=row.updated_at, revision=row.revision,
            auto_os_upgrade_since=row.auto_os_upgrade_since, **_reference_values(row.model),
        ))

    def update_scale_set(self, row: ScaleSetRow) -> None:
        self.conn.execute(update(t.scale_sets).where(t.scale_sets.c.id == row.id).values(
            name=row.name, location=row.location,
            model=_model_json(row.model, self.cipher, row.id),
            generation=row.generation, image_version=row.image_version,
            next_instance_id=row.next_instance_id, etag=row.etag, updated_at=row.updated_at,
            auto_os_upgrade_since=row.auto_os_upgrade_since, **_reference_values(row.model),
        ))

    def set_next_instance_id(self, scale_set_id: str, next_instance_id: int,
                             now: datetime) -> None:
        """Record the next instance number (membership grew) without rewriting the model."""
        self.conn.execute(update(t.scale_sets).where(t.scale_sets.c.id == scale_set_id).values(
            next_instance_id=next_instance_id, updated_at=now))

    def set_image_version(self, scale_set_id: str, image_version: str | None,
                          now: datetime) -> None:
        """Record the version new instances get (a run completed) without rewriting the model."""
        self.conn.execute(update(t.scale_sets).where(t.scale_sets.c.id == scale_set_id).values(
            image_version=image_version, updated_at=now))

    def touch(self, scale_set_id: str) -> int | None:
        """Bump the scale set's revision (and lock its row until commit).

        Every transaction that writes a scale set's instances or runs starts
        with this (commands) or with ``claim`` (the shell). ``None`` when the
        scale set does not exist.
        """
        c = t.scale_sets.c
        result = self.conn.execute(update(t.scale_sets).where(c.id == scale_set_id)
                                   .values(revision=c.revision + 1))
        if result.rowcount != 1:
            return None
        return int(self.conn.execute(select(c.revision).where(c.id == scale_set_id))
                   .scalar_one())

    def claim(self, scale_set_id: str, expected: int) -> int:
        """Bump the revision only if it is still ``expected``; else ``ConflictError``.

        The shell decides on what it read at ``expected``; if anyone wrote in
        between, its decision is stale and must not be committed.
        """
        result = self.conn.execute(
            _CLAIM, {"b_id": scale_set_id, "b_expected": expected, "b_next": expected + 1})
        if result.rowcount != 1:
            raise ConflictError(
                f"scale set {scale_set_id} changed while the pass was deciding; retrying")
        return expected + 1

    def get_scale_set(self, scale_set_id: str, *, for_update: bool = False,
                      parsed: ParseCache[ScaleSet] | None = None) -> ScaleSetRow | None:
        """The scale set, or None; ``for_update`` locks its row until commit
        (``SELECT ... FOR UPDATE`` on PostgreSQL; SQLite's write transaction locks the
        whole database already). With ``parsed``, the model is validated only when its
        stored text changed since the cache saw it (the caller must not change it)."""
        if parsed is not None and not for_update:
            found = self.conn.execute(_SCALE_SET_TEXT, {"b_id": scale_set_id}).first()
            if found is None:
                return None
            cipher, sid = self.cipher, found.id
            model = parsed.get(sid, found.model_text, lambda stored: ScaleSet.model_validate(
                unseal_model(json.loads(stored), cipher, sid)))
            return _scale_set_from_row(found, model=model)
        query = select(t.scale_sets).where(t.scale_sets.c.id == scale_set_id)
        if for_update:
            query = query.with_for_update()
        row = self.conn.execute(query).first()
        return _scale_set_from_row(row, self.cipher) if row else None

    def scale_set_ids(self) -> list[str]:
        return list(self.conn.execute(select(t.scale_sets.c.id).order_by(t.scale_sets.c.id))
                    .scalars())

    def scale_sets_under(self, prefix: str) -> list[ScaleSetRow]:
        """The scale sets whose key starts with ``prefix`` (lower-cased: a subscription's or
        a resource group's), by key."""
        c = t.scale_sets.c
        prefix = prefix.lower()
        rows = self.conn.execute(select(t.scale_sets).where(
            func.substr(c.id, 1, len(prefix)) == prefix).order_by(c.id))
        return [_scale_set_from_row(row, self.cipher) for row in rows]

    def scale_sets_with_probe_under(self, prefix: str) -> list[ScaleSetRow]:
        """The scale sets whose health probe id starts with ``prefix`` (lower-cased)."""
        c = t.scale_sets.c
        prefix = prefix.lower()
        rows = self.conn.execute(select(t.scale_sets).where(
            func.substr(c.health_probe_id, 1, len(prefix)) == prefix).order_by(c.id))
        return [_scale_set_from_row(row, self.cipher) for row in rows]

    def scale_sets_naming_image_ids(self, fragment: str) -> list[ScaleSetRow]:
        """The scale sets whose image id (lower-cased) holds ``fragment``."""
        c = t.scale_sets.c
        rows = self.conn.execute(select(t.scale_sets).where(
            c.image_id.contains(fragment.lower(), autoescape=True)).order_by(c.id))
        return [_scale_set_from_row(row, self.cipher) for row in rows]

    def service_fabric_scale_sets(self) -> list[ScaleSetRow]:
        """The scale sets that are Service Fabric node types."""
        c = t.scale_sets.c
        rows = self.conn.execute(select(t.scale_sets).where(c.service_fabric.is_(True))
                                 .order_by(c.id))
        return [_scale_set_from_row(row, self.cipher) for row in rows]

    def total_capacity(self, *, excluding: str | None = None) -> int:
        """The instances every scale set asks for (``sku.capacity``), one excluded."""
        c = t.scale_sets.c
        query = select(func.coalesce(func.sum(c.capacity), 0))
        if excluding is not None:
            query = query.where(c.id != excluding)
        return int(self.conn.execute(query).scalar_one())

    def scale_set_revisions(self) -> dict[str, int]:
        """Every scale set's id and revision (cheap: no model is read)."""
        c = t.scale_sets.c
        return {sid: int(rev) for sid, rev in self.conn.execute(
            select(c.id, c.revision).order_by(c.id))}

    def delete_scale_set(self, scale_set_id: str) -> None:
        for table, column in ((t.events, t.events.c.scale_set_id),):
            self.conn.execute(delete(table).where(column == scale_set_id))
        run_ids = select(t.runs.c.run_id).where(t.runs.c.scale_set_id == scale_set_id)
        self.conn.execute(delete(t.run_instances).where(t.run_instances.c.run_id.in_(run_ids)))
        self.conn.execute(delete(t.run_batches).where(t.run_batches.c.run_id.in_(run_ids)))
        self.conn.execute(delete(t.runs).where(t.runs.c.scale_set_id == scale_set_id))
        self.conn.execute(delete(t.instances).where(t.instances.c.scale_set_id == scale_set_id))
        self.conn.execute(delete(t.scale_sets).where(t.scale_sets.c.id == scale_set_id))

    # -- instances -------------------------------------------------------------
    def instances(self, scale_set_id: str) -> dict[str, InstanceRecord]:
        return bulk.load_instances(self.conn, scale_set_id)

    def insert_instances(self, records: Sequence[InstanceRecord]) -> None:
        bulk.insert_instances(self.conn, records)

    def update_instances(self, records: Sequence[InstanceRecord]) -> None:
        """Write these records whole (by key)."""
        bulk.update_instances(self.conn, ((None, r) for r in records))

    def update_instance_changes(self, changes: Iterable[tuple[InstanceRecord, InstanceRecord]]
                                ) -> int:
        """Write what changed from each ``(old, new)`` pair: only the columns that differ,
        records changing the same columns in one statement. Returns rows written."""
        return bulk.update_instances(self.conn, changes)

    def delete_instances(self, scale_set_id: str, instance_ids: Iterable[str]) -> None:
        ids = list(instance_ids)
        if ids:
            self.conn.execute(delete(t.instances).where(
                t.instances.c.scale_set_id == scale_set_id, t.instances.c.instance_id.in_(ids)))

    # -- image versions --------------------------------------------------------
    def put_image_version(self, row: ImageVersionRow) -> None:
        self.bump_revision(CATALOG)
        key = dict(location=row.location.lower(), publisher=row.publisher.lower(),
                   offer=row.offer.lower(), sku=row.sku.lower(), version=row.version)
        self.conn.execute(delete(t.image_versions).where(
            *[t.image_versions.c[k] == v for k, v in key.items()]))
        self.conn.execute(insert(t.image_versions).values(
            **key, os_type=row.os_type, properties=dict(row.properties),
            published_at=row.published_at))

    def image_versions(self, location: str, publisher: str, offer: str, sku: str
                       ) -> list[ImageVersionRow]:
        c = t.image_versions.c
        rows = self.conn.execute(select(t.image_versions).where(
            c.location == location.lower(), c.publisher == publisher.lower(),
            c.offer == offer.lower(), c.sku == sku.lower()))
        return [ImageVersionRow(r.location, r.publisher, r.offer, r.sku, r.version, r.os_type,
                                r.properties, r.published_at) for r in rows]

    # -- load balancers --------------------------------------------------------
    def put_load_balancer(self, row: LoadBalancerRow) -> None:
        """Insert or replace a load balancer (``created_at`` of an existing one is kept)."""
        c = t.load_balancers.c
        values = dict(subscription=row.subscription.lower(),
                      resource_group=row.resource_group.lower(), name=row.name,
                      location=row.location, body=row.model.to_wire(),
                      updated_at=row.updated_at)
        result = self.conn.execute(update(t.load_balancers).where(c.id == row.id.lower())
                                   .values(**values))
        if result.rowcount == 0:
            self.ensure_resource_group(row.subscription, row.resource_group, row.location,
                                       row.created_at)
            self.conn.execute(insert(t.load_balancers).values(
                id=row.id.lower(), created_at=row.created_at, **values))

    def get_load_balancer(self, lb_id: str, *, for_update: bool = False
                          ) -> LoadBalancerRow | None:
        """The load balancer with this id (any casing), or None.

        ``for_update`` first writes the row unchanged, as ``touch`` does: that
        locks it until commit on PostgreSQL and starts SQLite's write transaction
        (a plain SELECT would not), so a scale set that starts using one of its
        probes and a delete of the load balancer cannot both succeed.
        """
        c = t.load_balancers.c
        if for_update:
            self.lock_key(lb_id)
            self.conn.execute(update(t.load_balancers).where(c.id == lb_id.lower())
                              .values(updated_at=c.updated_at))
        row = self.conn.execute(select(t.load_balancers).where(c.id == lb_id.lower())).first()
        return _load_balancer_from_row(row) if row else None

    def load_balancer_text(self, lb_id: str) -> str | None:
        """The load balancer's stored body as JSON text (any casing of its id), or None:
        for a reader that keeps what it parsed from it (``ParseCache``)."""
        value = self.conn.execute(_LOAD_BALANCER_TEXT, {"b_id": lb_id.lower()}).scalar()
        return str(value) if value is not None else None

    def delete_load_balancer(self, lb_id: str) -> bool:
        """Delete a load balancer; False when there was none."""
        result = self.conn.execute(delete(t.load_balancers)
                                   .where(t.load_balancers.c.id == lb_id.lower()))
        return bool(result.rowcount)

    def load_balancers(self, subscription: str, resource_group: str | None = None
                       ) -> list[LoadBalancerRow]:
        """Load balancers of a subscription (or of one resource group in it), by id."""
        c = t.load_balancers.c
        query = select(t.load_balancers).where(c.subscription == subscription.lower())
        if resource_group is not None:
            query = query.where(c.resource_group == resource_group.lower())
        return [_load_balancer_from_row(r) for r in self.conn.execute(query.order_by(c.id))]

    # -- generic resources -----------------------------------------------------
    def put_resource(self, row: ResourceRow) -> None:
        """Insert or replace a resource (``created_at`` of an existing one is kept)."""
        c = t.resources.c
        values = dict(type=row.type.lower(),
                      parent_id=row.parent_id.lower() if row.parent_id else None,
                      subscription=row.subscription.lower(),
                      resource_group=row.resource_group.lower(), name=row.name,
                      location=row.location, body=dict(row.body), state=dict(row.state),
                      updated_at=row.updated_at)
        if row.type.lower().startswith(_GALLERY_TYPES):
            self.bump_revision(CATALOG)
        result = self.conn.execute(update(t.resources).where(c.id == row.id.lower())
                                   .values(**values))
        if result.rowcount == 0:
            if row.type.lower() != RESOURCE_GROUP_TYPE.lower() and row.resource_group:
                self.ensure_resource_group(row.subscription, row.resource_group, row.location,
                                           row.created_at)
            self.conn.execute(insert(t.resources).values(
                id=row.id.lower(), created_at=row.created_at, **values))

    def lock_key(self, key: str) -> None:
        """On PostgreSQL, hold a transaction-scoped advisory lock on ``key`` (an id).

        A row lock cannot guard a row that does not exist yet: two creates would both
        read "none", and the second's update-or-insert would then update the first's
        row and report a create. The advisory lock makes the second wait for the first's
        commit and then read its row. SQLite's write transaction locks everything already.
        """
        if self.conn.dialect.name == "postgresql":
            self.conn.execute(text("SELECT pg_advisory_xact_lock(hashtextextended(:k, 0))"),
                              {"k": key.lower()})

    def get_resource(self, resource_id: str, *, for_update: bool = False) -> ResourceRow | None:
        """The resource with this id (any casing), or None; ``for_update`` locks it, and
        its id when there is none yet (see ``get_load_balancer``, ``lock_key``)."""
        c = t.resources.c
        if for_update:
            self.lock_key(resource_id)
            self.conn.execute(update(t.resources).where(c.id == resource_id.lower())
                              .values(updated_at=c.updated_at))
        row = self.conn.execute(select(t.resources).where(c.id == resource_id.lower())).first()
        return _resource_from_row(row) if row else None

    def delete_resource(self, resource_id: str) -> bool:
        """Delete a resource and everything below it; False when there was none."""
        c = t.resources.c
        key = resource_id.lower()
        children = list(self.conn.execute(select(c.id).where(c.parent_id == key)).scalars())
        for child in children:
            self.delete_resource(child)
        if _GALLERY_IN_ID in key:
            self.bump_revision(CATALOG)
        return bool(self.conn.execute(delete(t.resources).where(c.id == key)).rowcount)

    def resources(self, resource_type: str, *, subscription: str | None = None,
                  resource_group: str | None = None, parent_id: str | None = None
                  ) -> list[ResourceRow]:
        """Resources of one type, optionally within a subscription, group or parent, by id."""
        c = t.resources.c
        query = select(t.resources).where(c.type == resource_type.lower())
        if subscription is not None:
            query = query.where(c.subscription == subscription.lower())
        if resource_group is not None:
            query = query.where(c.resource_group == resource_group.lower())
        if parent_id is not None:
            query = query.where(c.parent_id == parent_id.lower())
        return [_resource_from_row(r) for r in self.conn.execute(query.order_by(c.id))]

    # -- resource groups ---------------------------------------------------------
    def ensure_resource_group(self, subscription: str, name: str, location: str,
                              at: datetime) -> None:
        """Bring the resource group into being, in ``location``, if it does not exist.

        Every new resource passes here (scale sets, load balancers, generic
        resources), so a resource written into a group nobody created makes the
        group, where ARM would answer ``ResourceGroupNotFound``: scaleset stored
        resources in any group before groups existed, and clients and tests
        rely on it. A group whose delete is still running refuses new
        resources (409 ``ResourceGroupBeingDeleted``, as ARM); one whose delete
        has finished (no scale set left in it) is replaced by a new group.
        """
        existing = self.get_resource(group_id(subscription, name), for_update=True)
        if existing is not None:
            if existing.body.get("properties", {}).get("provisioningState") != DELETING:
                return
            if self.scale_set_ids_in_group(subscription, name):
                raise ResourceGroupBeingDeleted(
                    f"The resource group '{existing.name}' is in deprovisioning state and "
                    "cannot perform this operation; wait for its delete to finish, then "
                    "create the group again.", target="resourceGroupName")
        self.put_resource(ResourceRow(
            id=group_id(subscription, name), type=RESOURCE_GROUP_TYPE, parent_id=None,
            subscription=subscription, resource_group=name, name=name, location=location,
            body=group_body(subscription, name, location=location, tags=None), state={},
            created_at=at, updated_at=at))

    def scale_set_ids_in_group(self, subscription: str, name: str) -> list[str]:
        """Ids (the store's keys) of the scale sets in one resource group."""
        prefix = f"/subscriptions/{subscription}/resourcegroups/{name}/".lower()
        c = t.scale_sets.c
        return list(self.conn.execute(select(c.id).where(
            func.substr(c.id, 1, len(prefix)) == prefix).order_by(c.id)).scalars())

    def all_resources(self, subscription: str, resource_group: str | None = None
                      ) -> list[ResourceRow]:
        """Every generic resource of a subscription (or of one resource group in it), of
        any type (resource groups included), by id."""
        c = t.resources.c
        query = select(t.resources).where(c.subscription == subscription.lower())
        if resource_group is not None:
            query = query.where(c.resource_group == resource_group.lower())
        return [_resource_from_row(r) for r in self.conn.execute(query.order_by(c.id))]

    # -- runs ------------------------------------------------------------------
    def insert_run(self, run: Run, *, target_image_reference: Mapping[str, Any] | None) -> None:
        self.conn.execute(_INSERT_RUN, dict(
            run_id=run.run_id, scale_set_id=run.scale_set_id, kind=str(run.kind),
            started_by=str(run.started_by), target_image_version=run.target.image_version,
            target_generation=run.target.generation,
            target_image_reference=dict(target_image_reference) if target_image_reference
            else None,
            policy=_policy_to_json(run.policy), rollback_on_failure=run.rollback_on_failure,
            rollback_on_breach=run.rollback_on_breach, all_at_once=run.all_at_once,
            start_time=run.start_time, members=list(run.instances),
            member_count=len(run.instances), **_run_values(run),
        ))
        # Pending is implicit: only instances that already left it get a row.
        self._write_run_instances(run, [iid for iid, ri in run.instances.items()
                                        if ri.step is not Step.PENDING], existing=frozenset())
        for batch in run.batches:
            self._insert_batch(run.run_id, batch)

    def active_run(self, scale_set_id: str) -> Run | None:
        row = self.conn.execute(select(t.runs.c.run_id).where(
            t.runs.c.scale_set_id == scale_set_id,
            t.runs.c.status.in_([str(RunStatus.ROLLING_FORWARD), str(RunStatus.ROLLING_BACK)]),
        ).order_by(t.runs.c.start_time.desc())).first()
        return self.get_run(row.run_id) if row else None

    def get_run(self, run_id: str) -> Run:
        row = self.conn.execute(select(t.runs).where(t.runs.c.run_id == run_id)).first()
        if row is None:
            raise NotFoundError(f"run {run_id} does not exist")
        codec = bulk.codec_for(self.conn)
        steps = _STEPS  # a dict lookup: Step(text) costs ~15 us, thousands of rows a run
        stepped = {
            iid: RunInstance(iid, steps[step], batch, codec.from_time(deadline), reason)
            for iid, step, batch, deadline, reason in self.conn.exec_driver_sql(
                "SELECT instance_id, step, batch_index, health_deadline, reason "
                f"FROM run_instances WHERE run_id = {codec.mark}", (run_id,))
        }
        members = row.members if row.members is not None else list(stepped)
        instances = {iid: stepped.get(iid) or RunInstance(iid, Step.PENDING) for iid in members}
        rb = t.run_batches.c
        batches = tuple(
            Batch(r.batch_index, tuple(r.instance_ids), r.start_time, r.end_time)
            for r in self.conn.execute(
                select(t.run_batches).where(rb.run_id == run_id).order_by(rb.batch_index))
        )
        return _run_from_row(row, instances, batches)

    def past_runs(self, scale_set_id: str) -> list[Run]:
        """Every run of a scale set, newest first, without instances or batches (cheap)."""
        c = t.runs.c
        rows = self.conn.execute(select(t.runs).where(c.scale_set_id == scale_set_id)
                                 .order_by(c.start_time.desc(), c.run_id.desc()))
        return [_run_from_row(row, {}, ()) for row in rows]

    def run_summaries(self, scale_set_id: str, *, kind: RunKind | None = None,
                      since: datetime | None = None, limit: int | None = None
                      ) -> list[RunSummary]:
        """Runs of a scale set, newest first, with progress counted in SQL."""
        c = t.runs.c
        query = select(t.runs).where(c.scale_set_id == scale_set_id)
        if kind is not None:
            query = query.where(c.kind == str(kind))
        if since is not None:
            query = query.where(c.start_time >= since)
        query = query.order_by(c.start_time.desc(), c.run_id.desc())
        if limit is not None:
            query = query.limit(limit)
        rows = list(self.conn.execute(query))
        out = []
        for row in rows:
            counts = dict.fromkeys(Step, 0)
            ri = t.run_instances.c
            for step, n in self.conn.execute(
                select(ri.step, func.count()).where(ri.run_id == row.run_id).group_by(ri.step)
            ):
                counts[Step(step)] = n
            if row.member_count is not None:  # members without a row are pending
                counts[Step.PENDING] = row.member_count - sum(
                    n for step, n in counts.items() if step is not Step.PENDING)
            failed: dict[str, RunInstance] = {}
            if row.error_code is not None:  # the causes behind a run's error, a few of them
                for r in self.conn.execute(
                    select(ri.instance_id, ri.step, ri.reason).where(
                        ri.run_id == row.run_id, ri.reason.is_not(None)).limit(FAILED_SHOWN)):
                    failed[r.instance_id] = RunInstance(r.instance_id, Step(r.step),
                                                        reason=r.reason)
            run = _run_from_row(row, failed, ())
            progress = Progress(
                successful=counts[Step.SUCCEEDED],
                failed=counts[Step.FAILED] + counts[Step.ROLLING_BACK]
                + counts[Step.ROLLED_BACK] + counts[Step.ROLLBACK_FAILED],
                in_progress=counts[Step.UPGRADING] + counts[Step.WAITING_HEALTH],
                pending=counts[Step.PENDING],
                rolled_back=counts[Step.ROLLED_BACK],
                rollback_failed=counts[Step.ROLLBACK_FAILED],
            )
            out.append(RunSummary(run, progress, row.target_image_reference))
        return out

    def save_decision(self, previous: Run, decision: Decision, now: datetime) -> None:
        """Persist what ``decide`` changed, guarded on the status it started from."""
        run = decision.run
        params = {f"b_{name}": value for name, value in _run_values(run).items()}
        params.update(w_run_id=run.run_id, w_status=str(previous.status))
        result = self.conn.execute(_SAVE_RUN, params)
        if result.rowcount != 1:
            raise ConflictError(
                f"run {run.run_id} is no longer {previous.status}; another writer moved it"
            )
        for batch in run.batches[len(previous.batches):]:
            self._insert_batch(run.run_id, batch)
        for old, new in zip(previous.batches, run.batches, strict=False):
            if old.end != new.end:
                self.conn.execute(_BATCH_END, {"b_run_id": run.run_id, "b_index": new.index,
                                               "b_end": new.end})
        self._write_run_instances(run, decision.changed, existing={
            iid for iid, ri in previous.instances.items() if ri.step is not Step.PENDING})
        if len(run.instances) != len(previous.instances):  # some left the run
            self.conn.execute(update(t.runs).where(t.runs.c.run_id == run.run_id).values(
                members=list(run.instances), member_count=len(run.instances)))
        self.append_events(run.scale_set_id, run.run_id, decision.events, now)

    def _insert_batch(self, run_id: str, batch: Batch) -> None:
        self.conn.execute(_INSERT_BATCH, dict(
            run_id=run_id, batch_index=batch.index, instance_ids=list(batch.instance_ids),
            start_time=batch.start, end_time=batch.end))

    def _write_run_instances(self, run: Run, ids: Iterable[str], *,
                             existing: Iterable[str] | frozenset[str]) -> None:
        existing_set = existing if isinstance(existing, (set, frozenset)) else set(existing)
        inserts: list[tuple[str, str, str, int | None, datetime | None, str | None]] = []
        updates: list[tuple[str, str, str, int | None, datetime | None, str | None]] = []
        deletes: list[str] = []
        for iid in ids:
            ri = run.instances.get(iid)
            if ri is None:
                deletes.append(iid)
                continue
            values = (run.run_id, iid, str(ri.step), ri.batch, ri.health_deadline, ri.reason)
            (updates if iid in existing_set else inserts).append(values)
        c = t.run_instances.c
        bulk.insert_run_instances(self.conn, inserts)
        bulk.update_run_instances(self.conn, updates)
        if deletes:
            self.conn.execute(delete(t.run_instances).where(
                c.run_id == run.run_id, c.instance_id.in_(deletes)))

    # -- events ----------------------------------------------------------------
    def append_events(self, scale_set_id: str, run_id: str | None, events: Iterable[Event],
                      now: datetime) -> None:
        bulk.insert_events(self.conn, [(now, scale_set_id, run_id, e.kind, e.instance_id,
                                         e.message, e.data) for e in events])

    def events(self, scale_set_id: str, *, run_id: str | None = None,
               after_id: int = 0, kinds: Iterable[str] | None = None,
               since: datetime | None = None, until: datetime | None = None,
               limit: int | None = None) -> list[dict[str, Any]]:
        """A scale set's events after ``after_id``, oldest first, filtered as asked."""
        c = t.events.c
        query = select(t.events).where(c.scale_set_id == scale_set_id, c.id > after_id)
        if run_id is not None:
            query = query.where(c.run_id == run_id)
        if kinds is not None:
            query = query.where(c.kind.in_(list(kinds)))
        if since is not None:
            query = query.where(c.at >= since)
        if until is not None:
            query = query.where(c.at < until)
        query = query.order_by(c.id)
        if limit is not None:
            query = query.limit(limit)
        return [dict(r._mapping) for r in self.conn.execute(query)]

    def last_event(self, scale_set_id: str, kind: str) -> dict[str, Any] | None:
        """The newest event of ``kind`` for a scale set, if any."""
        c = t.events.c
        row = self.conn.execute(select(t.events).where(
            c.scale_set_id == scale_set_id, c.kind == kind).order_by(c.id.desc()).limit(1)).first()
        return dict(row._mapping) if row is not None else None


class Store:
    """A database holding scale sets, instances, image versions, runs and events."""

    def __init__(self, engine: Engine, cipher: FieldCipher | None = None) -> None:
        self.engine = engine
        self.cipher = cipher  # seals scale sets' secrets; None keeps them as written

    @contextmanager
    def transaction(self, *, write: bool = False) -> Iterator[Tx]:
        """A transaction: committed when the block ends, rolled back if it raises.

        ``write=True`` takes the database's write lock at BEGIN (SQLite's
        ``BEGIN IMMEDIATE``, waited for up to its busy timeout): a transaction
        that reads, decides and then writes cannot find its snapshot stale at
        the write. On PostgreSQL rows are locked with ``for_update`` reads.
        Driver errors come out classified (``classify``).
        """
        try:
            with self.engine.connect() as conn:
                if write:
                    conn.execution_options(scaleset_write=True)
                with conn.begin():
                    yield Tx(conn, self.cipher)
        except (SQLAlchemyError, OSError) as exc:
            if isinstance(exc, OSError) and exc.errno != errno.ENOSPC:
                raise
            raise classify(exc) from exc

    def write(self, work: Callable[[Tx], T], *, attempts: int = WRITE_ATTEMPTS,
              deadline: float = WRITE_DEADLINE) -> T:
        """Run ``work`` in one write transaction, again from the start on a race.

        ``work`` reads, checks and writes in the transaction it is given; when
        the commit loses a race (``DuplicateKey``: an equal insert won;
        ``StoreBusy``: a lock or serialization conflict) it is run again on
        what is there now, a bounded number of times within ``deadline``
        seconds, and only then is the error raised. ``work`` must therefore do
        nothing outside the transaction.
        """
        started = time.monotonic()
        for attempt in range(1, attempts + 1):
            try:
                with self.transaction(write=True) as tx:
                    return work(tx)
            except (DuplicateKey, StoreBusy):
                if attempt == attempts or time.monotonic() - started > deadline:
                    raise
            # Jittered, growing pauses so that racing writers do not collide again in step.
            time.sleep(random.uniform(0, 0.01 * 2 ** min(attempt, 6)))
        raise AssertionError("unreachable: the last attempt returns or raises")

    def close(self) -> None:
        self.engine.dispose()
