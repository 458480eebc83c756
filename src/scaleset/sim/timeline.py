"""What a simulated rollout looked like over virtual time: one sample after every pass.

The simulator's store changes only inside a reconcile pass, and the loop moves
the clock from one pass to the next, so the state committed by a pass holds
until the next one: the samples taken after each pass *are* the run's history,
a step function, not an approximation of it. Each sample keeps every
instance's state in the run (the rollout view's vocabulary: ``pending``,
``upgrading``, ``waitingForHealth``, ``healthy``, ``rollingBack``,
``rolledBack``, ``failed``, ``protected``, ``skipped``) and its health as the
store recorded it; the series drawn by ``sim.plot`` are computed here from
those samples with the engine's own counting rules (``upgrade.run``), so the
plot shows the numbers the gates saw.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from scaleset.model.instance import HealthState, InstanceRecord
from scaleset.upgrade import policy as policy_rules
from scaleset.upgrade.state import Run, RunInstance, Step

STATES: tuple[str, ...] = ("pending", "upgrading", "waitingForHealth", "healthy", "rollingBack",
                           "rolledBack", "failed", "protected", "skipped")
"""Every state an instance can be in during a run, in the order a legend lists them."""

STATE_MEANINGS: Mapping[str, str] = {
    "pending": "in the run, not upgraded yet",
    "upgrading": "its OS disk is being replaced",
    "waitingForHealth": "upgraded, waiting to report healthy (health timeout)",
    "healthy": "upgraded and passed its health wait",
    "rollingBack": "its previous OS disk is being restored",
    "rolledBack": "its upgrade failed; the previous OS disk was restored",
    "failed": "its upgrade (or its rollback) failed",
    "protected": "protected from scale-set actions: not upgraded",
    "skipped": "not part of the run (already on the target, or left it)",
}

_STEP_STATES: Mapping[Step, str] = {
    Step.PENDING: "pending",
    Step.UPGRADING: "upgrading",
    Step.WAITING_HEALTH: "waitingForHealth",
    Step.SUCCEEDED: "healthy",
    Step.FAILED: "failed",
    Step.ROLLING_BACK: "rollingBack",
    Step.ROLLED_BACK: "rolledBack",
    Step.ROLLBACK_FAILED: "failed",
}
# upgrade.run counts these as upgraded (SETTLED_STEPS | ROLLING_BACK) when a batch settles ...
_UPGRADED = frozenset({"healthy", "failed", "rollingBack", "rolledBack"})
# ... and these as unhealthy upgraded instances (FAILED_STEPS), with relapsed healthy ones.
_FAILED = frozenset({"failed", "rollingBack", "rolledBack"})


def state_of(run_instance: RunInstance | None, record: InstanceRecord) -> str:
    """One instance's state in the run: its step, or why it is not in the run.

    >>> from scaleset.model.instance import InstanceRecord
    >>> rec = InstanceRecord("ss", "3", None, 0, 0, 1, "1.0.0", "disk-3")
    >>> state_of(RunInstance("3", Step.WAITING_HEALTH), rec)
    'waitingForHealth'
    >>> state_of(None, rec.replace(protect_from_scale_set_actions=True))
    'protected'
    """
    if run_instance is not None:
        return _STEP_STATES[run_instance.step]
    return "protected" if record.protect_from_scale_set_actions else "skipped"


@dataclass(frozen=True, slots=True)
class Sample:
    """The run as one pass left it: ``seconds`` after the run started."""

    seconds: float
    states: Mapping[str, str]
    """Instance id -> state in the run (``STATES``)."""
    health: Mapping[str, HealthState]
    """Instance id -> health as the store recorded it in that pass."""

    @property
    def healthy_fraction(self) -> float:
        """Healthy instances over the whole scale set (the maxUnhealthyInstancePercent gate's
        view; an instance that is not Healthy counts as unhealthy, as there)."""
        if not self.health:
            return 1.0
        return sum(h is HealthState.HEALTHY for h in self.health.values()) / len(self.health)

    def upgraded_counts(self) -> tuple[int, int]:
        """(unhealthy upgraded, upgraded): the maxUnhealthyUpgradedInstancePercent gate's
        numbers, counted as ``upgrade.run`` counts them when a batch settles."""
        upgraded = unhealthy = 0
        for iid, state in self.states.items():
            if state not in _UPGRADED:
                continue
            upgraded += 1
            relapsed = state == "healthy" and self.health.get(iid) is not HealthState.HEALTHY
            unhealthy += state in _FAILED or relapsed
        return unhealthy, upgraded

    @property
    def upgraded_healthy_fraction(self) -> float | None:
        """Healthy upgraded instances over upgraded ones; None before any is upgraded."""
        unhealthy, upgraded = self.upgraded_counts()
        return None if upgraded == 0 else 1 - unhealthy / upgraded


def sample(run: Run, records: Mapping[str, InstanceRecord], now: datetime) -> Sample:
    """The sample of ``run`` and the scale set's instance ``records`` at ``now``."""
    return Sample(
        seconds=(now - run.start_time).total_seconds(),
        states={iid: state_of(run.instances.get(iid), rec) for iid, rec in records.items()},
        health={iid: rec.health_state for iid, rec in records.items()},
    )


@dataclass(frozen=True, slots=True)
class Segment:
    """An instance's unbroken stretch in one state and health."""

    start: float
    end: float
    state: str
    healthy: bool


@dataclass(frozen=True)
class Timeline:
    """Every sample of one simulated run, with the gates it was held to."""

    samples: tuple[Sample, ...]
    end_seconds: float
    """When the run ended (or the last sample, if it did not)."""
    max_unhealthy_percent: int
    max_unhealthy_upgraded_percent: int | None
    """None when the run upgrades all at once and the gate does not apply."""

    def instance_ids(self) -> list[str]:
        """Rows: by the batch that took the instance (first batch first), then by id;
        instances no batch took come last."""
        first_moved: dict[str, int] = {}
        for index, s in enumerate(self.samples):
            for iid, state in s.states.items():
                if iid not in first_moved and state not in ("pending", "protected", "skipped"):
                    first_moved[iid] = index  # a batch's instances all move in the pass opening it
        ids: set[str] = set()
        for s in self.samples:
            ids.update(s.states)
        last = len(self.samples)
        return sorted(ids, key=lambda i: (first_moved.get(i, last), policy_rules.natural_key(i)))

    def segments(self, instance_id: str) -> list[Segment]:
        """The instance's stretches; the last lasts until the end of the run."""
        out: list[Segment] = []
        for i, s in enumerate(self.samples):
            if instance_id not in s.states:
                continue
            end = (self.samples[i + 1].seconds if i + 1 < len(self.samples)
                   else max(self.end_seconds, s.seconds))
            state = s.states[instance_id]
            healthy = s.health.get(instance_id) is HealthState.HEALTHY
            if out and out[-1].state == state and out[-1].healthy == healthy \
                    and out[-1].end == s.seconds:
                out[-1] = Segment(out[-1].start, end, state, healthy)
            else:
                out.append(Segment(s.seconds, end, state, healthy))
        return out

    def final_states(self) -> dict[str, str]:
        """Each instance's state when the run ended."""
        return dict(self.samples[-1].states) if self.samples else {}

    def min_healthy_fraction(self) -> float:
        """The lowest healthy fraction of the scale set during the run."""
        return min((s.healthy_fraction for s in self.samples), default=1.0)

    def to_json(self) -> dict[str, Any]:
        """The series as plotted, for the HTML page (and anyone checking it)."""
        return {
            "endSeconds": self.end_seconds,
            "maxUnhealthyInstancePercent": self.max_unhealthy_percent,
            "maxUnhealthyUpgradedInstancePercent": self.max_unhealthy_upgraded_percent,
            "minHealthyFraction": self.min_healthy_fraction(),
            "samples": [{"seconds": s.seconds, "healthyFraction": s.healthy_fraction,
                         "upgradedHealthyFraction": s.upgraded_healthy_fraction}
                        for s in self.samples],
            "finalStates": self.final_states(),
        }
