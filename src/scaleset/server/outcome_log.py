"""Logs every stored event once it is committed, and feeds the duration histograms.

``OutcomeLog.catch_up()`` runs after each reconcile round (and once more when
the server stops): it reads the events committed since its last call
(``reconcile.outcomes``) and writes one line per event on the
``scaleset.events`` logger, at INFO, or WARNING for a failure (an instance
failed or could not be rolled back, a run rolling back or faulted). From the
same events it observes ``scaleset_batch_duration_seconds``,
``scaleset_instance_upgrade_duration_seconds`` and
``scaleset_trigger_delay_seconds``. The log and ``GET .../events`` therefore
say the same things, including what the API's commands recorded (a run a user
started, a cancel requested).

It starts after the newest event stored at start-up: a restart logs nothing
twice. Ids are read in order, but on PostgreSQL a later id can commit before
an earlier one; such a skipped id is looked for again for ``GAP_WAIT`` (after
which its transaction surely rolled back). On SQLite deleting a scale set
frees the newest ids for reuse (its events go with it); the reader remembers
what the last ``RECENT`` events it logged looked like, and when the newest of
them is gone or another event took its id, it steps back to the newest one
still in place, so the events that reuse the ids are logged too.
"""

from __future__ import annotations

import logging
import threading
import time

from scaleset.reconcile import outcomes
from scaleset.reconcile.outcomes import Outcome
from scaleset.store.repository import Store
from scaleset.telemetry.logs import fields
from scaleset.telemetry.metrics import Metrics

log = logging.getLogger("scaleset.events")

FAILURES = frozenset({"InstanceFailed", "InstanceRollbackFailed", "RollingBack"})
GAP_WAIT = 30.0
"""Seconds a skipped event id is looked for again."""
MAX_GAPS = 1000
RECENT = 256


class OutcomeLog:
    """Tails the events table into the log and the metrics (thread-safe)."""

    def __init__(self, *, store: Store, metrics: Metrics | None = None) -> None:
        self.store = store
        self.metrics = metrics
        self._after = outcomes.last_event_id(store)
        self._gaps: dict[int, float] = {}  # skipped id -> until when to look for it
        self._recent: dict[int, outcomes.Fingerprint] = {}  # the last events logged
        self._lock = threading.Lock()

    def catch_up(self) -> int:
        """Log and measure every event committed since the last call; how many."""
        with self._lock:
            self._step_back_over_deletes()
            now = time.monotonic()
            self._gaps = {i: until for i, until in self._gaps.items() if until > now}
            done = 0
            while True:
                found = outcomes.outcomes_after(self.store, self._after, also=self._gaps)
                for outcome in found:
                    self._note_position(outcome.event_id, now)
                    self._recent[outcome.event_id] = outcomes.fingerprint(outcome)
                    if len(self._recent) > RECENT:
                        del self._recent[min(self._recent)]
                    self.record(outcome)
                done += len(found)
                if len(found) < outcomes.DEFAULT_LIMIT:
                    return done

    def _step_back_over_deletes(self) -> None:
        if not self._recent:
            return
        top = max(self._recent)
        if outcomes.fingerprints(self.store, [top]).get(top) == self._recent[top]:
            return  # the usual case: the newest event logged is still in place
        stored = outcomes.fingerprints(self.store, self._recent)
        self._recent = {i: f for i, f in self._recent.items() if stored.get(i) == f}
        newest = outcomes.last_event_id(self.store)
        self._after = max(self._recent, default=min(self._after, newest))
        self._gaps = {i: until for i, until in self._gaps.items() if i <= self._after}

    def _note_position(self, event_id: int, now: float) -> None:
        if self._gaps.pop(event_id, None) is not None or event_id <= self._after:
            return
        for missing in range(self._after + 1, event_id):
            if len(self._gaps) >= MAX_GAPS:
                break
            self._gaps[missing] = now + GAP_WAIT
        self._after = event_id

    def record(self, o: Outcome) -> None:
        """One event: a log line, and the histograms it ends a duration of."""
        status = o.data.get("status") if o.kind == "RunFinished" else None
        failed = o.kind in FAILURES or status == "Faulted"
        where = o.scale_set if o.instance_id is None else \
            f"{o.scale_set} instance {o.instance_id}"
        log.log(logging.WARNING if failed else logging.INFO, "%s on %s: %s",
                o.kind, where, o.message, extra=fields(
                    event=o.kind, event_id=o.event_id, scale_set=o.scale_set_id,
                    run_id=o.run_id, instance_id=o.instance_id, run_kind=o.run_kind,
                    started_by=o.started_by, status=status,
                    error_code=o.error_code if o.kind == "RunFinished" else None,
                    batch=o.data.get("batch"),
                    image_version=o.target_image_version if o.kind == "RunStarted" else None))
        if self.metrics is not None:
            self._measure(o, self.metrics)

    @staticmethod
    def _measure(o: Outcome, metrics: Metrics) -> None:
        if o.began_at is not None:
            seconds = max(0.0, (o.at - o.began_at).total_seconds())
            if o.kind in outcomes.BATCH_ENDS:
                metrics.batch_duration.labels(kind=o.run_kind or "").observe(seconds)
            elif o.kind == "InstanceUpgraded":
                metrics.instance_upgrade_duration.labels(outcome="upgraded").observe(seconds)
            elif o.kind == "InstanceFailed":
                metrics.instance_upgrade_duration.labels(outcome="failed").observe(seconds)
        if o.kind == "RunStarted" and o.published_at is not None:
            metrics.trigger_delay.observe(max(0.0, (o.at - o.published_at).total_seconds()))
