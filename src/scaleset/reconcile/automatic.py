"""Automatic OS upgrade seen from the store: the trigger's inputs, what is pending, approval.

The pure trigger (:mod:`scaleset.upgrade.trigger`) decides; this module reads
what it needs in the caller's transaction (past runs, the ``latest``
candidate, the scale set's settings), and turns a pending upgrade into what a
user sees: an event when it is first scheduled or deferred, and a status in
the scale set's instance view (``OSUpgrade/...``). The shell, the
``approveRollingUpgrade`` command and the instance view all call
:func:`assess`, so they agree on what is pending.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from scaleset.catalog import auto_upgrade
from scaleset.catalog import latest as latest_rules
from scaleset.model.instance import InstanceRecord
from scaleset.reconcile import images
from scaleset.reconcile.settings import ShellSettings
from scaleset.store.repository import ScaleSetRow, Tx
from scaleset.upgrade import trigger, windows
from scaleset.upgrade.actions import Event
from scaleset.upgrade.observations import InstanceObservation
from scaleset.upgrade.state import Run
from scaleset.upgrade.trigger import PendingUpgrade, WaitingFor

SCHEDULED = "OSUpgradeScheduled"
DEFERRED = "OSUpgradeDeferred"
WAITING_FOR_HEALTH = "OSUpgradeWaitingForHealthyInstances"
APPROVE_HINT = ("approve it with POST .../approveRollingUpgrade (scaleset vmss rolling-upgrade "
                "approve -g RG -n NAME)")


@dataclass(frozen=True, slots=True)
class Assessment:
    """The trigger's decision and the scale set's past runs it was made from."""

    decision: trigger.TriggerDecision
    runs: Sequence[Run]


def still_supported(row: ScaleSetRow, settings: ShellSettings) -> bool:
    """Whether the scale set's platform image is still on the operator's allow-list.

    The list is checked when automatic upgrade is configured; a server restarted
    with a shorter list stops automatic runs for images it dropped (manual runs
    still work), rather than keep rolling out what the operator withdrew.
    """
    ref = row.model.image_reference
    if not images.is_platform(row.model):
        return True
    assert ref.publisher and ref.offer and ref.sku
    return auto_upgrade.allows(settings.auto_upgrade_images, ref.publisher, ref.offer, ref.sku)


def automatic_settings(row: ScaleSetRow, settings: ShellSettings) -> trigger.Automatic:
    """The scale set's automatic OS upgrade settings, in the trigger's terms."""
    policy = row.model.automatic_os_upgrade
    return trigger.Automatic(
        enabled=policy.enable_automatic_os_upgrade and still_supported(row, settings),
        since=row.auto_os_upgrade_since,
        deferral=policy.os_rolling_upgrade_deferral,
        windows=windows.from_models(policy.maintenance_windows),
    )


def health_gate(row: ScaleSetRow, settings: ShellSettings) -> trigger.HealthGate:
    """The whole-set gate a due Platform OS run of this scale set waits on."""
    return trigger.HealthGate(
        max_unhealthy_instance_percent=(
            row.model.rolling_upgrade_policy.max_unhealthy_instance_percent),
        health_timeout=settings.health_timeout)


@dataclass(frozen=True, slots=True)
class TriggerInputs:
    """What the trigger reads from the store: past runs and ``latest``'s candidates."""

    runs: Sequence[Run]
    candidates: Sequence[latest_rules.Candidate] | None
    """Every version of the model's image (None: the model does not ask for ``latest``)."""


def trigger_inputs(tx: Tx, row: ScaleSetRow, *, runs: Sequence[Run] | None = None,
                   candidates: Sequence[latest_rules.Candidate] | None = None
                   ) -> TriggerInputs:
    """Read the trigger's inputs in ``tx``; ``runs`` and ``candidates``: what the caller
    has already (read when None)."""
    found = candidates
    if found is None and images.wants_latest(row.model):
        found = images.candidates(tx, row.location, row.model)
    return TriggerInputs(tx.past_runs(row.id) if runs is None else runs, found)


def decide(row: ScaleSetRow, fleet: Mapping[str, InstanceObservation], now: datetime,
           settings: ShellSettings, inputs: TriggerInputs, *, active: Run | None) -> Assessment:
    """What the trigger wants for this scale set now, from inputs already read (pure)."""
    runs = inputs.runs
    chosen = latest_rules.choose(inputs.candidates, now) if inputs.candidates is not None \
        else None
    decision = trigger.decide(
        scale_set_id=row.id,
        fleet=fleet,
        generation=row.generation,
        upgrade_mode=row.model.properties.upgrade_policy.mode,
        automatic=automatic_settings(row, settings),
        latest=chosen,
        past_runs=[trigger.PastRun(r.kind, r.started_by, r.target.image_version, r.status,
                                   r.target.generation, r.start_time, r.end_time,
                                   r.error.code if r.error else None) for r in runs],
        active=active is not None,
        now=now,
        rollout=settings.rollout_timing,
        model_image_version=row.image_version,
        active_target=active.target.image_version if active is not None else None,
        gate=health_gate(row, settings),
    )
    return Assessment(decision, runs)


def assess(tx: Tx, row: ScaleSetRow, fleet: Mapping[str, InstanceObservation], now: datetime,
           settings: ShellSettings, *, active: Run | None) -> Assessment:
    """What the trigger wants for this scale set now (read in ``tx``); ``active`` is the
    run in progress, if any."""
    return decide(row, fleet, now, settings, trigger_inputs(tx, row), active=active)


def _iso(at: datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")


def describe(pending: PendingUpgrade) -> str:
    """One sentence a user can act on."""
    version = pending.target_image_version
    match pending.waiting_for:
        case WaitingFor.FIRST_ROLLOUT_DELAY:
            return (f"image version {version} rolls out at {_iso(pending.at or pending.due)}: "
                    "the first rollout waits firstRolloutDelay after automatic OS upgrade "
                    "was turned on")
        case WaitingFor.ROLLOUT_DELAY:
            return (f"image version {version} rolls out at {_iso(pending.at or pending.due)}: "
                    "rolloutDelay (plus jitter) after it became available")
        case WaitingFor.MAINTENANCE_WINDOW:
            return (f"image version {version} is due; it rolls out when the next maintenance "
                    f"window opens, at {_iso(pending.at or pending.due)}")
        case WaitingFor.APPROVAL:
            return (f"image version {version} is due and osRollingUpgradeDeferral holds it: "
                    f"{APPROVE_HINT}")
        case WaitingFor.RUN_IN_PROGRESS:
            return (f"image version {version} rolls out after the rolling upgrade in progress "
                    "ends")
        case WaitingFor.HEALTHY_INSTANCES:
            since = _iso(pending.waiting_since or pending.due)
            gives_up = _iso(pending.gives_up_at or pending.due)
            return (f"image version {version} is due, but {pending.unhealthy} of "
                    f"{pending.total} instances are unhealthy, more than "
                    "maxUnhealthyInstancePercent allows; it waits for healthy instances "
                    f"(since {since}) and starts as soon as enough are healthy, or records "
                    f"a failed attempt at {gives_up} and tries again after the rollout delay")
        case WaitingFor.NOTHING:
            return f"image version {version} is rolling out now"


def instance_view_status(pending: PendingUpgrade | None) -> dict[str, Any] | None:
    """The ``OSUpgrade/...`` status of the scale set's instance view (None: nothing pending).

    ``time`` is when the upgrade starts, or becomes ready for approval, on its own;
    while it waits for healthy instances, since when it has waited.
    """
    if pending is None or pending.waiting_for is WaitingFor.NOTHING:
        return None
    code = {WaitingFor.APPROVAL: "OSUpgrade/AwaitingApproval",
            WaitingFor.RUN_IN_PROGRESS: "OSUpgrade/WaitingForRollingUpgrade",
            WaitingFor.HEALTHY_INSTANCES: "OSUpgrade/WaitingForHealthyInstances"}.get(
        pending.waiting_for, "OSUpgrade/Scheduled")
    status: dict[str, Any] = {
        "code": code,
        "level": "Warning" if pending.waiting_for is WaitingFor.APPROVAL else "Info",
        "displayStatus": f"OS upgrade to {pending.target_image_version} pending "
                         f"({pending.waiting_for})",
        "message": describe(pending),
    }
    if pending.waiting_for is WaitingFor.HEALTHY_INSTANCES:
        status["time"] = _iso(pending.waiting_since or pending.due)  # waiting since
    elif pending.at is not None:
        status["time"] = _iso(pending.at)
    return status


def pending_status(tx: Tx, row: ScaleSetRow, records: Mapping[str, InstanceRecord],
                   now: datetime, settings: ShellSettings) -> dict[str, Any] | None:
    """The ``OSUpgrade/...`` instance-view status of a scale set now, from its stored
    instances (None: no automatic OS upgrade pending)."""
    fleet = {iid: InstanceObservation(iid, r.zone, r.update_domain, r.health_state,
                                      r.image_version, r.model_generation,
                                      r.protect_from_scale_set_actions)
             for iid, r in records.items()}
    assessed = assess(tx, row, fleet, now, settings, active=tx.active_run(row.id))
    return instance_view_status(assessed.decision.pending)


def _note_key(pending: PendingUpgrade | None) -> tuple[str, str] | None:
    """The event a pending upgrade is recorded as (None: it is not recorded)."""
    if pending is None or pending.waiting_for in (WaitingFor.NOTHING,
                                                  WaitingFor.RUN_IN_PROGRESS):
        return None
    kind = {WaitingFor.APPROVAL: DEFERRED,
            WaitingFor.HEALTHY_INSTANCES: WAITING_FOR_HEALTH}.get(pending.waiting_for, SCHEDULED)
    return kind, pending.target_image_version


def noting(row: ScaleSetRow, pending: PendingUpgrade | None,
           seen: Mapping[str, tuple[str, str]]) -> bool:
    """Whether ``note`` has anything to look at (no transaction needed otherwise)."""
    key = _note_key(pending)
    return key is not None and seen.get(row.id) != key


def note(tx: Tx, row: ScaleSetRow, pending: PendingUpgrade | None, now: datetime,
         seen: dict[str, tuple[str, str]]) -> None:
    """Record a pending upgrade in the scale set's events the first time it is scheduled or
    deferred (``seen``: the caller's memo, so the store is asked once per change)."""
    key = _note_key(pending)
    if key is None or pending is None or seen.get(row.id) == key:
        return
    kind = key[0]
    last = tx.last_event(row.id, kind)
    if last is None or (last.get("data") or {}).get("targetImageVersion") != key[1]:
        data = {"targetImageVersion": pending.target_image_version,
                "waitingFor": str(pending.waiting_for), "due": _iso(pending.due)}
        if pending.at is not None:
            data["startsAt"] = _iso(pending.at)
        tx.append_events(row.id, None, [Event(kind, describe(pending), data=data)], now)
    seen[row.id] = key


def nothing_to_approve(row: ScaleSetRow, pending: PendingUpgrade | None) -> str:
    """Why ``approveRollingUpgrade`` has nothing to approve, and what to do instead."""
    head = f"Nothing to approve on scale set '{row.name}'"
    if not row.model.automatic_os_upgrade.os_rolling_upgrade_deferral:
        return (f"{head}: osRollingUpgradeDeferral is off, so automatic OS upgrades start "
                "without approval. Set automaticOSUpgradePolicy.osRollingUpgradeDeferral to "
                "true to hold them for approval, or start one now with osRollingUpgrade.")
    if pending is None:
        return (f"{head}: no deferred OS upgrade is pending (every eligible instance runs the "
                "latest image version, or automatic OS upgrade is off).")
    return f"{head} yet: {describe(pending)}."
