"""Replication of gallery image versions to their target regions.

Level-triggered, like the reconciler: every call of
:meth:`Replicator.replicate_pending` looks at every version with a region
still ``Replicating`` (as the store says) and moves it along:

* **with an artifact store** (the process driver), the version's artifact is
  really copied into the region's own store, ``<artifact root>/regions/<region>/``
  (an :class:`~scaleset.artifacts.ArtifactStore`), on a worker thread, so
  neither the API nor the reconcile loop ever waits for a copy. The copy is
  checked like any ingest and its digest must equal the version's; only then
  is the region ``Completed`` (progress 0..100 by bytes copied on the way).
  A copy that fails leaves the region ``Failed`` with the reason in
  ``details``. A version without files completes at once: there is nothing
  to copy.
* **without one** (the simulated driver), a region completes ``delay`` after it
  started replicating, on the clock the server uses, so a virtual clock drives
  it.

Nothing is kept in memory that a restart would need: a region is
``Replicating`` in the store until its copy is verified, so after a restart
the next call starts its copy again (a copy cut short leaves only temporary
files, which are removed when the replicator starts). When a region completes
the reconcile loop's doorbell rings (``notify``), so the trigger sees the new
latest version at once.
"""

from __future__ import annotations

import logging
import shutil
import threading
from collections.abc import Callable
from concurrent.futures import CancelledError, Future, ThreadPoolExecutor
from datetime import datetime, timedelta
from pathlib import Path
from typing import Final

from scaleset.artifacts import ArtifactStore, ImageManifest
from scaleset.catalog import gallery as rules
from scaleset.catalog.gallery import RegionReplication
from scaleset.clock import Clock
from scaleset.errors import ScalesetError
from scaleset.reconcile import galleries
from scaleset.store.repository import ResourceRow, Store, StoreError

log = logging.getLogger("scaleset.replication")

DEFAULT_DELAY: Final = timedelta(seconds=2)
"""How long a simulated replication takes (no artifact store)."""
PROGRESS_STEP: Final = 10
"""A copy's progress is written to the store in steps of this many percent."""


def _ignore(_: str | None) -> None:
    """No reconcile loop to wake."""


class _Stopped(Exception):
    """The replicator is closing: a copy in progress gives up (it resumes at next start)."""


class Replicator:
    """Moves the target regions of gallery image versions from Replicating to Completed.

    >>> # replicator = Replicator(store=store, clock=clock, artifacts=None)
    >>> # replicator.replicate_pending(clock.now())   # -> when to look again, or None
    """

    def __init__(self, *, store: Store, clock: Clock, artifacts: ArtifactStore | None,
                 delay: timedelta = DEFAULT_DELAY,
                 notify: Callable[[str | None], None] = _ignore, workers: int = 2) -> None:
        self.store = store
        self.clock = clock
        self.artifacts = artifacts
        self.delay = delay
        self.notify = notify
        self._lock = threading.Lock()
        self._copying: dict[tuple[str, str], Future[None]] = {}
        self._stopping = threading.Event()
        self._pool: ThreadPoolExecutor | None = None
        self._workers = workers
        if artifacts is not None:
            self._remove_leftovers(artifacts.root / "regions")

    # -- the level-triggered round -----------------------------------------------------
    def replicate_pending(self, now: datetime) -> datetime | None:
        """Move every pending region along; when a simulated one is next due (None: no
        simulated replication pending; copies ring the doorbell when they end)."""
        with self.store.transaction() as tx:
            pending = [row for row in tx.resources(rules.VERSION_TYPE)
                       if any(r.state == rules.REPLICATING for r in galleries.regions(row))]
        due: datetime | None = None
        completed = False
        for row in pending:
            record = galleries.artifact(row)
            digest = str(record.get("digest")) if record and record.get("digest") else None
            if self.artifacts is not None and digest is not None:
                for region in galleries.regions(row):
                    if region.state == rules.REPLICATING:
                        self._start_copy(row.id, region.key, digest)
                continue
            wait = self.delay if self.artifacts is None else timedelta(0)
            at, done = self._advance_simulated(row.id, now, wait)
            completed = completed or done
            if at is not None:
                due = at if due is None else min(due, at)
        if completed:
            self.notify(None)
        return due

    def _advance_simulated(self, version_id: str, now: datetime, wait: timedelta
                           ) -> tuple[datetime | None, bool]:
        """Complete the regions whose simulated replication is due; (next due, any done)."""
        def step(region: RegionReplication) -> RegionReplication:
            started = region.started_at or now
            if now >= started + wait:  # completed when it was due, however late we look
                return region.completed(started + wait)
            fraction = (now - started) / wait if wait else 1.0
            return RegionReplication(region.name, region.state, min(99, int(fraction * 100)),
                                     region.details, region.started_at, region.completed_at)

        changed = self._update(version_id, lambda r: step(r) if r.state == rules.REPLICATING
                               else r)
        done = any(r.state == rules.COMPLETED for r in changed)
        due = [(r.started_at or now) + wait for r in self._regions(version_id)
               if r.state == rules.REPLICATING]
        return (min(due) if due else None), done

    # -- real copies -------------------------------------------------------------------
    def region_store(self, region: str) -> ArtifactStore:
        """The artifact store of one region (``region`` normalised)."""
        assert self.artifacts is not None
        key = rules.normalise_region(region)
        if not rules.is_region(key):  # never a path outside the regions directory
            raise ValueError(f"'{region}' is not a region name")
        return ArtifactStore(self.artifacts.root / "regions" / key)

    def _start_copy(self, version_id: str, region: str, digest: str) -> None:
        with self._lock:
            if self._stopping.is_set() or (version_id, region) in self._copying:
                return
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=self._workers,
                                                thread_name_prefix="scaleset-replicate")
            future = self._pool.submit(self._copy, version_id, region, digest)
            self._copying[(version_id, region)] = future

    def _copy(self, version_id: str, region: str, digest: str) -> None:
        try:
            try:
                outcome = self._copy_verified(version_id, region, digest)
            except _Stopped:
                return  # still Replicating in the store: the next start copies again
            except Exception as exc:  # a worker thread's boundary: report, never die silently
                log.exception("replication of %s to %s failed", version_id, region)
                outcome = f"replication failed: {exc}"
            try:
                self._update(version_id, lambda r: (
                    r if r.key != region or r.state != rules.REPLICATING else
                    r.completed(self.clock.now()) if outcome is None else r.failed(outcome)))
            except Exception:  # the store did not answer: the next round copies again
                log.exception("recording the replication of %s to %s failed", version_id,
                              region)
                return
        finally:
            # Only now: until the store says Completed (or Failed), no second copy starts.
            with self._lock:
                self._copying.pop((version_id, region), None)
        self.notify(None)

    def _copy_verified(self, version_id: str, region: str, digest: str) -> str | None:
        """Copy the artifact into the region's store and check it; None, or why it failed."""
        assert self.artifacts is not None
        try:
            source = self.artifacts.path(digest)
            target = self.region_store(region)
        except (ScalesetError, OSError, ValueError) as exc:
            return f"the artifact {digest} cannot be read: {exc}"
        written = [0]

        def report(copied: int, total: int) -> None:
            if self._stopping.is_set():
                raise _Stopped()
            percent = min(99, copied * 100 // total) if total else 0
            if percent >= written[0] + PROGRESS_STEP:
                written[0] = percent
                try:
                    self._update(version_id, lambda r: r if r.key != region or
                                 r.state != rules.REPLICATING else
                                 RegionReplication(r.name, r.state, percent, r.details,
                                                   r.started_at, r.completed_at))
                except StoreError:  # progress is for people; the copy goes on
                    log.warning("could not record the progress of %s to %s", version_id,
                                region)

        def same_digest(found: str, _manifest: ImageManifest) -> None:
            if found != digest:
                raise ScalesetError(f"the copy's digest {found} is not the version's {digest}")

        try:
            copy = target.ingest(source, accept=same_digest, progress=report)
        except (ScalesetError, OSError) as exc:
            return str(getattr(exc, "message", exc))
        if copy.digest != digest or not copy.path.is_dir():
            return f"the copy in {region} is not artifact {digest}"
        return None

    # -- store ---------------------------------------------------------------------------
    def _regions(self, version_id: str) -> list[RegionReplication]:
        with self.store.transaction() as tx:
            row = tx.get_resource(version_id)
        return galleries.regions(row) if row is not None else []

    def _update(self, version_id: str,
                change: Callable[[RegionReplication], RegionReplication]
                ) -> list[RegionReplication]:
        """Apply ``change`` to every region of the version, in one write transaction;
        the regions that changed. A version deleted meanwhile changes nothing."""
        with self.store.transaction() as tx:
            row = tx.get_resource(version_id, for_update=True)
            if row is None:
                return []
            before = galleries.regions(row)
            after = [change(r) for r in before]
            changed = [a for a, b in zip(after, before, strict=True) if a != b]
            if changed:
                tx.put_resource(_with_regions(row, after, self.clock.now()))
        return changed

    # -- life cycle ----------------------------------------------------------------------
    def busy(self) -> bool:
        """Whether a copy is in progress."""
        with self._lock:
            return bool(self._copying)

    def drain(self, timeout: float | None = None) -> bool:
        """Wait until no copy is in progress (tests, shutdown); False on timeout."""
        while True:
            with self._lock:
                futures = list(self._copying.values())
            if not futures:
                return True
            for future in futures:
                try:
                    future.result(timeout)
                except TimeoutError:
                    return False
                except CancelledError:
                    pass

    def close(self) -> None:
        """Stop: copies in progress give up (their regions resume at the next start)."""
        self._stopping.set()
        with self._lock:
            pool = self._pool
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)

    @staticmethod
    def _remove_leftovers(regions: Path) -> None:
        # Copies cut short by a crash leave their staging directories behind; one
        # control plane per data directory (serve.lock), so none of these is in use.
        if not regions.is_dir():
            return
        for tmp in regions.glob("*/.tmp/ingest-*"):
            shutil.rmtree(tmp, ignore_errors=True)


def _with_regions(row: ResourceRow, found: list[RegionReplication], now: datetime
                  ) -> ResourceRow:
    return row.replace(state={**row.state, "regions": [r.to_json() for r in found]},
                       updated_at=now)
