"""The real-time reconcile loop: a thread that runs passes when something is due.

It wakes when a pass asked for it (``wake_at``), when the driver has an event
due, when the API rings the doorbell (``notify``), and at least every
``resync`` as the safety net. Each round first lets the replicator move gallery
image versions' replication along (``replicate``). A pass that fails is logged and retried after
a short back-off; it never takes the loop down. After each round ``after_round`` runs (the
server logs the events the round committed, ``server/outcome_log.py``).

With ``metrics``, each pass's duration and each round's lag are recorded: lag is how
late a round began after it was due, the due time being the earlier of the wake-up the
last round asked for and the first doorbell rung since that round began.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta

from scaleset.clock import Clock
from scaleset.reconcile.shell import Reconciler
from scaleset.store.repository import Store
from scaleset.telemetry.metrics import Metrics

log = logging.getLogger("scaleset.loop")

BACKOFF = timedelta(seconds=2)
SHORTEST_WAIT = 0.01


class ReconcileLoop:
    def __init__(self, *, reconciler: Reconciler, store: Store, clock: Clock,
                 driver_next_event: Callable[[], datetime | None] | None = None,
                 resync: timedelta = timedelta(seconds=1),
                 replicate: Callable[[datetime], datetime | None] | None = None,
                 metrics: Metrics | None = None,
                 after_round: Callable[[], object] | None = None) -> None:
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
        self._driver_next_event = driver_next_event
        self._doorbell = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def notify(self, _scale_set_id: str | None = None) -> None:
        """Something changed: run a pass soon."""
        if self._rung is None:  # a race here only moves the lag's start by a ring
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
        """One round over every scale set; seconds until the next is due."""
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
        # The driver's scale sets first: one the store does not know by the time it is
        # read is an orphan (a scale set is recorded before its first instance exists
        # and forgotten only after its last is gone).
        driven = self.reconciler.driver.scale_set_ids()
        with self.store.transaction() as tx:
            ids = tx.scale_set_ids()
        for sid in sorted(driven - set(ids)):
            log.warning("removing the instances of %s: no such scale set in the store", sid)
            self.reconciler.remove_orphans(sid)
        for sid in ids:
            began = time.perf_counter()
            try:
                result = self.reconciler.reconcile(sid)
            except Exception:  # one scale set's failure must not stop the others
                log.exception("reconcile pass failed for %s", sid)
                if self.metrics is not None:
                    self.metrics.reconcile_pass_failures.inc()
                due = min(due, now + BACKOFF)
                continue
            finally:
                if self.metrics is not None:
                    self.metrics.reconcile_pass_duration.observe(time.perf_counter() - began)
            if result.wake_at is not None:
                due = min(due, result.wake_at)
        if self._driver_next_event is not None:
            at = self._driver_next_event()
            if at is not None:
                due = min(due, at)
        return max(SHORTEST_WAIT, (due - self.clock.now()).total_seconds())

    def _run(self) -> None:
        while not self._stopping.is_set():
            self._round_begins()
            try:
                wait = self.run_once()
            except Exception:
                log.exception("reconcile round failed")
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
        self._rung = None  # a ring from now on is for the next round
        if due is not None and self.metrics is not None:
            self.metrics.reconcile_lag.observe(max(0.0, now - due))
