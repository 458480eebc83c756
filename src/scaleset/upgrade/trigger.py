"""When a new run starts on its own (pure).

Two kinds of run start without a user asking:

* a **Platform OS run**, when automatic OS upgrade is enabled and a version
  newer than what some eligible instance runs has become ``latest``; a target
  whose run (automatic or manual) already ended Faulted or Cancelled is not
  retried automatically (a newer version, or a manual start, starts a new run);
* a **model run**, when the scale set's model generation moved on and the
  upgrade mode is Automatic (all instances at once) or Rolling (in batches);
  again, a generation whose run ended Faulted or Cancelled is not retried.
  Manual mode waits for a manual-upgrade command.

At most one run is active per scale set; while one is, nothing starts, and a
version published meanwhile waits for it to end.

A Platform OS run does not start the moment its version appears. In order:

1. **delays** (:mod:`scaleset.upgrade.timing`): it is due at
   ``available_at + rolloutDelay + jitter``, the first rollout since
   automatic upgrade was turned on no earlier than ``since +
   firstRolloutDelay``;
2. **maintenance windows** (:mod:`scaleset.upgrade.windows`), when the scale
   set has any: it starts only inside one (a run already started runs to its
   end whatever the clock says);
3. **deferral** (``osRollingUpgradeDeferral``): once it would start, it waits
   for the user's ``approveRollingUpgrade`` instead, which starts it at once
   (the approval is the user's choice of time, as with ``osRollingUpgrade``).
   It stays pending across window closings until approved, superseded by a
   newer version, or automatic upgrade is turned off;
4. **healthy instances** (:class:`HealthGate`): it does not start while more
   than ``maxUnhealthyInstancePercent`` of the scale set is unhealthy (say,
   instances still booting after a create or a scale-out). It waits, and
   starts the moment the share drops to the limit. Only when the set stays
   over the limit for the health timeout, counted from when the run could
   first have started, does the wait end as one failed attempt
   (:attr:`TriggerDecision.failed_attempt`, recorded by the shell as a Faulted
   run with ``MaxUnhealthyInstancePercentExceededBeforeRollingUpgrade``); the
   platform tries that version again after the rollout delay (plus jitter),
   counted from the failed attempt. A run the *user* starts never waits: it
   fails at once, as Azure's does.

Model runs are the user's own model changes: no delays, windows or deferral.

:func:`decide` answers with the run to start now, or the pending OS upgrade
and the instant to look again (``wake_at``: when the delay ends or the
window opens), so the shell's loop wakes exactly then instead of polling.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from scaleset.catalog import versions
from scaleset.catalog.latest import Candidate
from scaleset.upgrade import policy as policy_rules
from scaleset.upgrade import timing, windows
from scaleset.upgrade.observations import InstanceObservation
from scaleset.upgrade.run import BEFORE_ROLLING_UPGRADE
from scaleset.upgrade.state import (
    DEFAULT_HEALTH_TIMEOUT,
    RunError,
    RunKind,
    RunStatus,
    StartedBy,
    Target,
)


@dataclass(frozen=True, slots=True)
class PastRun:
    kind: RunKind
    started_by: StartedBy
    target_image_version: str | None
    status: RunStatus
    target_generation: int = 0
    start_time: datetime | None = None
    end_time: datetime | None = None
    error_code: str | None = None

    @property
    def health_wait_failed(self) -> bool:
        """Whether this was an automatic run that never started: the scale set stayed
        over ``maxUnhealthyInstancePercent`` for the health timeout (retried later)."""
        return (self.kind is RunKind.OS_IMAGE and self.started_by is StartedBy.PLATFORM
                and self.status is RunStatus.FAULTED
                and self.error_code == BEFORE_ROLLING_UPGRADE)


@dataclass(frozen=True, slots=True)
class HealthGate:
    """The whole-set gate an automatic run waits on before it starts."""

    max_unhealthy_instance_percent: int = 20
    health_timeout: timedelta = DEFAULT_HEALTH_TIMEOUT
    """How long it waits for the set to come under the limit before it gives up once."""


@dataclass(frozen=True, slots=True)
class StartRun:
    kind: RunKind
    target: Target
    all_at_once: bool = False


@dataclass(frozen=True, slots=True)
class Automatic:
    """A scale set's automatic OS upgrade settings, as the trigger needs them."""

    enabled: bool = False
    since: datetime | None = None
    """When automatic OS upgrade was turned on (None: unknown, no first-rollout delay)."""
    deferral: bool = False
    """``osRollingUpgradeDeferral``: a due run waits for ``approveRollingUpgrade``."""
    windows: tuple[windows.Window, ...] = ()
    """Maintenance windows; empty: any time."""


class WaitingFor(StrEnum):
    """Why a pending Platform OS run has not started (values read well in a status)."""

    FIRST_ROLLOUT_DELAY = "FirstRolloutDelay"
    ROLLOUT_DELAY = "RolloutDelay"
    MAINTENANCE_WINDOW = "MaintenanceWindow"
    APPROVAL = "Approval"
    RUN_IN_PROGRESS = "RunInProgress"
    HEALTHY_INSTANCES = "HealthyInstances"
    """Due, but more of the set is unhealthy than ``maxUnhealthyInstancePercent`` allows."""
    NOTHING = "Nothing"
    """Ready: it starts in this pass."""


@dataclass(frozen=True, slots=True)
class PendingUpgrade:
    """A Platform OS run the trigger wants but has not started."""

    target_image_version: str
    waiting_for: WaitingFor
    due: datetime
    """When its delays end (available_at + delay + jitter, first-rollout rule applied)."""
    at: datetime | None
    """When it starts (or, deferred, becomes ready for approval) on its own; None: not
    by itself (it awaits approval, the run in progress, or healthy instances)."""
    waiting_since: datetime | None = None
    """``HEALTHY_INSTANCES``: since when it has waited for the set to be healthy enough."""
    gives_up_at: datetime | None = None
    """``HEALTHY_INSTANCES``: when the wait ends as a failed attempt, if the set is still
    over the limit then."""
    unhealthy: int = 0
    total: int = 0
    """``HEALTHY_INSTANCES``: the unhealthy instances, of how many, as last seen."""


@dataclass(frozen=True, slots=True)
class FailedAttempt:
    """A Platform OS run that waited the whole health timeout for healthy instances."""

    target: Target
    waiting_since: datetime
    unhealthy: int
    total: int
    max_unhealthy_instance_percent: int

    def error(self, now: datetime) -> RunError:
        """The Faulted run's error: the gate's code, the counts, how long it waited."""
        waited = int((now - self.waiting_since).total_seconds())
        return RunError(BEFORE_ROLLING_UPGRADE, policy_rules.describe_unhealthy(
            self.unhealthy, self.total, self.max_unhealthy_instance_percent,
            what="instances in the scale set",
        ) + f" (maxUnhealthyInstancePercent); the automatic upgrade to "
            f"{self.target.image_version} waited {waited} s for healthy instances and did "
            "not start; it is tried again after the rollout delay",
            "rollingUpgradePolicy.maxUnhealthyInstancePercent")


@dataclass(frozen=True, slots=True)
class TriggerDecision:
    """What the trigger wants: a run to start now, and/or a pending OS upgrade and when to
    look again."""

    start: StartRun | None = None
    pending: PendingUpgrade | None = None
    wake_at: datetime | None = None
    failed_attempt: FailedAttempt | None = None
    """The pending Platform OS run waited for healthy instances the whole health timeout:
    record it as a Faulted run (the version is tried again after the rollout delay)."""


def _given_up(past_runs: Sequence[PastRun], version: str) -> bool:
    # A Faulted or Cancelled run to this version, automatic or manual, is not retried by
    # the platform: someone must act (a newer version, or a manual start). An automatic
    # run that never started for want of healthy instances is retried.
    return any(r.kind is RunKind.OS_IMAGE and r.target_image_version == version
               and r.status in (RunStatus.FAULTED, RunStatus.CANCELLED)
               and not r.health_wait_failed for r in past_runs)


def _retry_due(past_runs: Sequence[PastRun], version: str, scale_set_id: str,
               rollout: timing.RolloutTiming) -> datetime | None:
    """After failed health waits for ``version``: the last one's end plus the rollout delay."""
    ends = [r.end_time for r in past_runs if r.health_wait_failed
            and r.target_image_version == version and r.end_time is not None]
    if not ends:
        return None
    attempt = f"{version}#{len(ends)}"  # a fresh jitter for each retry
    return max(ends) + rollout.rollout_delay + timing.jitter(scale_set_id, attempt,
                                                             rollout.rollout_jitter)


def first_rollout(automatic: Automatic, past_runs: Iterable[PastRun]) -> bool:
    """Whether no Platform OS run has started since automatic upgrade was turned on."""
    if automatic.since is None:
        return False
    since = automatic.since
    return not any(r.kind is RunKind.OS_IMAGE and r.started_by is StartedBy.PLATFORM
                   and r.start_time is not None and r.start_time >= since for r in past_runs)


def pending_os_upgrade(
    *,
    scale_set_id: str,
    fleet: Mapping[str, InstanceObservation],
    automatic: Automatic,
    latest: Candidate | None,
    past_runs: Sequence[PastRun],
    active: bool,
    now: datetime,
    rollout: timing.RolloutTiming,
    active_target: str | None = None,
    gate: HealthGate | None = None,
) -> PendingUpgrade | None:
    """The Platform OS run automatic upgrade wants, and what it waits for (None: none).

    One that waits for ``NOTHING`` starts now (:func:`decide` starts it).
    ``active_target`` is the image version of the run in progress, if known: a
    version already rolling out is not pending. ``gate`` (None: no health wait)
    holds a due run while too much of the set is unhealthy.
    """
    if not automatic.enabled or latest is None:
        return None
    version = latest.version
    eligible = [o for o in fleet.values() if not o.protected]
    if not any(versions.newer(version, o.image_version) for o in eligible):
        return None
    if _given_up(past_runs, version):
        return None
    if active and active_target == version:
        return None  # it is rolling out now
    first = first_rollout(automatic, past_runs)
    due = timing.due_at(timing=rollout, scale_set_id=scale_set_id, version=version,
                        available_at=latest.available_at or latest.published_at,
                        first_rollout=first, configured_at=automatic.since)
    retry = _retry_due(past_runs, version, scale_set_id, rollout)
    if retry is not None:
        due = max(due, retry)
    if active:
        return PendingUpgrade(version, WaitingFor.RUN_IN_PROGRESS, due, None)
    if now < due:
        delay = WaitingFor.FIRST_ROLLOUT_DELAY if first and automatic.since is not None \
            and due == automatic.since + rollout.first_rollout_delay else WaitingFor.ROLLOUT_DELAY
        return PendingUpgrade(version, delay, due, windows.earliest_start(automatic.windows, due))
    ready = windows.earliest_start(automatic.windows, due)
    if now < ready:
        return PendingUpgrade(version, WaitingFor.MAINTENANCE_WINDOW, due, ready)
    if automatic.deferral:
        # Pending from the first instant it would have started; it stays pending (the
        # window may close) until the user approves.
        return PendingUpgrade(version, WaitingFor.APPROVAL, due, None)
    if automatic.windows and not windows.inside(automatic.windows, now):
        # It became ready inside a window that closed before a pass saw it (the server
        # was down): wait for the next one.
        return PendingUpgrade(version, WaitingFor.MAINTENANCE_WINDOW, due,
                              windows.earliest_start(automatic.windows, now))
    if gate is not None:
        unhealthy = sum(1 for o in fleet.values() if not o.healthy)
        if policy_rules.exceeds(unhealthy, len(fleet), gate.max_unhealthy_instance_percent):
            since = _could_start_at(ready, automatic, past_runs)
            return PendingUpgrade(version, WaitingFor.HEALTHY_INSTANCES, due, None,
                                  waiting_since=since, gives_up_at=since + gate.health_timeout,
                                  unhealthy=unhealthy, total=len(fleet))
    return PendingUpgrade(version, WaitingFor.NOTHING, due, now)


def _could_start_at(ready: datetime, automatic: Automatic,
                    past_runs: Sequence[PastRun]) -> datetime:
    """The first instant the run could have started, health aside: when its delays ended
    and its window opened, but not before the last run ended (a run in progress held it)
    nor before automatic upgrade was turned on."""
    ends = [r.end_time for r in past_runs if r.end_time is not None]
    candidates = [ready, *ends] + ([automatic.since] if automatic.since is not None else [])
    return max(candidates)


def decide(
    *,
    scale_set_id: str,
    fleet: Mapping[str, InstanceObservation],
    generation: int,
    upgrade_mode: str,
    automatic: Automatic,
    latest: Candidate | None,
    past_runs: Iterable[PastRun],
    active: bool,
    now: datetime,
    rollout: timing.RolloutTiming = timing.NO_DELAY,
    model_image_version: str | None = None,
    active_target: str | None = None,
    gate: HealthGate | None = None,
) -> TriggerDecision:
    """The run that should start now, if any; else the pending OS upgrade and when to wake.

    ``active_target``: the image version of the run in progress (``active``);
    ``gate``: the whole-set health gate a due Platform OS run waits on (None:
    none, it starts whatever the set's health).

    >>> from datetime import UTC, timedelta
    >>> t0 = datetime(2026, 1, 1, tzinfo=UTC)
    >>> fleet = {"0": InstanceObservation("0", image_version="1.0.0", generation=1)}
    >>> new = Candidate("1.1.0", published_at=t0, available_at=t0)
    >>> auto = Automatic(enabled=True, since=t0 - timedelta(days=1))
    >>> half_hour = timing.RolloutTiming(rollout_delay=timedelta(minutes=30))
    >>> d = decide(scale_set_id="s", fleet=fleet, generation=1, upgrade_mode="Manual",
    ...            automatic=auto, latest=new, past_runs=[], active=False, now=t0,
    ...            rollout=half_hour)
    >>> d.start is None, d.wake_at - t0, d.pending.waiting_for
    (True, datetime.timedelta(seconds=1800), <WaitingFor.ROLLOUT_DELAY: 'RolloutDelay'>)
    >>> decide(scale_set_id="s", fleet=fleet, generation=1, upgrade_mode="Manual",
    ...        automatic=auto, latest=new, past_runs=[], active=False,
    ...        now=t0 + timedelta(minutes=30), rollout=half_hour).start
    StartRun(kind=<RunKind.OS_IMAGE: 'OSImage'>, target=Target(image_version='1.1.0', generation=1), all_at_once=False)
    """
    runs = list(past_runs)
    pending = pending_os_upgrade(scale_set_id=scale_set_id, fleet=fleet, automatic=automatic,
                                 latest=latest, past_runs=runs, active=active, now=now,
                                 rollout=rollout, active_target=active_target, gate=gate)
    if active:
        return TriggerDecision(pending=pending)
    if pending is not None and pending.waiting_for is WaitingFor.NOTHING:
        return TriggerDecision(start=StartRun(
            RunKind.OS_IMAGE, Target(pending.target_image_version, generation)))
    wake = pending.at if pending is not None else None
    if pending is not None and pending.gives_up_at is not None:
        assert gate is not None and pending.waiting_since is not None
        if now >= pending.gives_up_at:
            return TriggerDecision(pending=pending, failed_attempt=FailedAttempt(
                Target(pending.target_image_version, generation), pending.waiting_since,
                pending.unhealthy, pending.total, gate.max_unhealthy_instance_percent))
        wake = pending.gives_up_at
    eligible = [o for o in fleet.values() if not o.protected]
    model_given_up = any(
        r.kind is RunKind.MODEL
        and r.target_generation == generation
        and r.status in (RunStatus.FAULTED, RunStatus.CANCELLED)
        for r in runs
    )
    if upgrade_mode in ("Automatic", "Rolling") and not model_given_up and any(
        o.generation < generation for o in eligible
    ):
        # Applying a new model gives the instance the model's image too (a changed or
        # pinned image reference is part of the model). A pending OS upgrade waits for it.
        return TriggerDecision(
            start=StartRun(RunKind.MODEL, Target(model_image_version, generation),
                           all_at_once=upgrade_mode == "Automatic"),
            pending=pending, wake_at=wake)
    return TriggerDecision(pending=pending, wake_at=wake)


def approved(pending: PendingUpgrade | None, generation: int) -> StartRun | None:
    """The Platform OS run ``approveRollingUpgrade`` starts (None: nothing awaits approval)."""
    if pending is None or pending.waiting_for is not WaitingFor.APPROVAL:
        return None
    return StartRun(RunKind.OS_IMAGE, Target(pending.target_image_version, generation))
