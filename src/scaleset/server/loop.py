"""The real-time reconcile loop: a thread that runs a scale set's pass when it is due.

A scale set is due when something concerns it:

* the API rang its doorbell (``notify(scale_set_id)``: a write to it), or rang
  for everyone (``notify(None)``: a catalog change, a load balancer, a cluster);
* the driver reported a change in it (``driver_changes``, or the driver rings
  the doorbell itself from its threads);
* the timer its last pass asked for fired (``wake_at``: a health deadline, a
  pause, a delay or window of the trigger);
* its revision moved without a doorbell (another process wrote the shared
  database): a scan of ids and revisions every ``resync`` finds it.

Every ``full_resync`` every scale set gets a pass whatever happened, the safety
net for anything the rest missed. A round over scale sets that are not due
costs a look at the wake-up table and nothing else, so an idle fleet of
thousands of scale sets costs next to nothing.

Each round first lets the replicator move gallery image versions' replication
along (``replicate``). A pass that fails is logged and retried after a short
back-off; it never takes the loop down. After each round ``after_round`` runs
(the server logs the events the round committed, ``server/outcome_log.py``).

With ``metrics``, each pass's duration, each round's duration and pass count,
and each round's lag are recorded: lag is how late a round began after it was
due, the due time being the earlier of the wake-up the last round asked for
and the first doorbell rung since that round began.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta

from scaleset.clock import Clock
from scaleset.reconcile.shell import Reconciler
from scaleset.store.repository import Store
from scaleset.telemetry.metrics import Metrics

log = logging.getLogger("scaleset.loop")

BACKOFF = timedelta(seconds=2)
SHORTEST_WAIT = 0.01
FULL_RESYNC = timedelta(seconds=60)


class ReconcileLoop:
    def __init__(self, *, reconciler: Reconciler, store: Store, clock: Clock,
                 driver_next_event: Callable[[], datetime | None] | None = None,
                 driver_changes: Callable[[datetime], Iterable[str] | None] | None = None,
                 resync: timedelta = timedelta(seconds=1),
                 full_resync: timedelta = FULL_RESYNC,
                 replicate: Callable[[datetime], datetime | None] | None = None,
                 metrics: Metrics | None = None,
                 after_round: Callable[[], object] | None = None) -> None:
        """``driver_changes(now)``: the scale sets whose instances changed up to ``now``
        (None: any of them may have); ``resync``: how often ids and revisions are scanned;
        ``full_resync``: how often every scale set gets a pass regardless."""
        self.reconciler = reconciler
        self.metrics = metrics
        self._after_round = after_round
        self._due: float | None = None  # monotonic: when the next round is due
        self._rung: float | None = None  # monotonic: the first doorbell since the last round
        self._replicate = replicate
        """Moves gallery image versions' replication along (``Replicator.replicate_pending``);
        it answers when it is next due."""
        self.store = store
        self.clock = clock
        self.resync = resync
        self.full_resync = full_resync
        self._driver_next_event = driver_next_event
        self._driver_changes = driver_changes
        self._doorbell = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._dirty: set[str] = set()
        self._everyone = True  # the first round looks at every scale set
        self._wake: dict[str, datetime] = {}
        self._revisions: dict[str, int] = {}  # as last scanned
        self._next_scan: datetime | None = None
        self._next_full: datetime | None = None

    def notify(self, scale_set_id: str | None = None) -> None:
        """Something changed for this scale set (None: for any of them): pass soon."""
        with self._lock:
            if scale_set_id is None:
                self._everyone = True
            else:
                self._dirty.add(scale_set_id)
            if self._rung is None:
                self._rung = time.monotonic()
        self._doorbell.set()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="scaleset-reconcile", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10) -> None:
        self._stopping.set()
        self._doorbell.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def run_once(self) -> float:
        """One round over the scale sets that are due; seconds until the next is due."""
        began = time.perf_counter()
        now = self.clock.now()
        due = now + self.resync
        if self._replicate is not None:
            # Before the scale sets: a region that completes now is seen by this round's
            # trigger. A failure must not stop the scale sets' passes.
            try:
                replication_due = self._replicate(now)
            except Exception:
                log.exception("replication round failed")
                replication_due = now + BACKOFF
            if replication_due is not None:
                due = min(due, replication_due)

        with self._lock:
            everyone, self._everyone = self._everyone, False
            dirty, self._dirty = self._dirty, set()
        if self._next_full is None or now >= self._next_full:
            everyone = True
        changed = self._driver_changes(now) if self._driver_changes is not None else ()
        if changed is None:
            everyone = True
        else:
            dirty.update(changed)
        if everyone or self._next_scan is None or now >= self._next_scan:
            ids = self._scan(dirty)
            self._next_scan = now + self.resync
        else:
            ids = []
        if everyone:
            self._next_full = now + self.full_resync
            todo = ids
        else:  # a doorbell may name a scale set created since the last scan
            todo = sorted(dirty | {s for s, t in self._wake.items() if t <= now})
        for sid in todo:
            wake = self._pass(sid, now)
            if wake is None:
                self._wake.pop(sid, None)
            else:
                self._wake[sid] = wake
        for at in (min(self._wake.values(), default=None), self._next_scan, self._next_full):
            if at is not None:
                due = min(due, at)
        if self._driver_next_event is not None:
            at = self._driver_next_event()
            if at is not None:
                due = min(due, at)
        if self.metrics is not None:
            self.metrics.reconcile_round_duration.observe(time.perf_counter() - began)
            self.metrics.reconcile_round_passes.observe(len(todo))
        return max(SHORTEST_WAIT, (due - self.clock.now()).total_seconds())

    def _scan(self, dirty: set[str]) -> list[str]:
        """Read every scale set's id and revision; a revision that moved behind the loop's
        back (a write without a doorbell) makes its scale set due. Also removes the instances
        the driver runs for scale sets the store no longer has. Returns the ids."""
        # The driver's scale sets first: one the store does not know by the time it is
        # read is an orphan (a scale set is recorded before its first instance exists
        # and forgotten only after its last is gone).
        driven = self.reconciler.driver.scale_set_ids()
        with self.store.transaction() as tx:
            revisions = tx.scale_set_revisions()
        for sid in sorted(driven - revisions.keys()):
            log.warning("removing the instances of %s: no such scale set in the store", sid)
            self.reconciler.remove_orphans(sid)
        for sid, revision in revisions.items():
            if self.reconciler.known_revision(sid) != revision:
                dirty.add(sid)
        for sid in self._wake.keys() - revisions.keys():
            del self._wake[sid]
        self._revisions = revisions
        return sorted(revisions)

    def _pass(self, sid: str, now: datetime) -> datetime | None:
        began = time.perf_counter()
        try:
            result = self.reconciler.reconcile(sid)
        except Exception:  # one scale set's failure must not stop the others
            log.exception("reconcile pass failed for %s", sid)
            if self.metrics is not None:
                self.metrics.reconcile_pass_failures.inc()
            return now + BACKOFF
        finally:
            if self.metrics is not None:
                self.metrics.reconcile_pass_duration.observe(time.perf_counter() - began)
        return result.wake_at

    def _run(self) -> None:
        while not self._stopping.is_set():
            self._round_begins()
            try:
                wait = self.run_once()
            except Exception:
                log.exception("reconcile round failed")
                with self._lock:
                    self._everyone = True  # what the round had to do is not known: all
                wait = BACKOFF.total_seconds()
            self.catch_up()
            self._due = time.monotonic() + wait
            self._doorbell.wait(wait)
            self._doorbell.clear()

    def catch_up(self) -> None:
        """Run ``after_round`` (a failure is logged: it must not stop the loop)."""
        if self._after_round is None:
            return
        try:
            self._after_round()
        except Exception:
            log.exception("logging the round's events failed")

    def _round_begins(self) -> None:
        now = time.monotonic()
        due = min((t for t in (self._due, self._rung) if t is not None), default=None)
        with self._lock:
            self._rung = None  # a ring from now on is for the next round
        if due is not None and self.metrics is not None:
            self.metrics.reconcile_lag.observe(max(0.0, now - due))
