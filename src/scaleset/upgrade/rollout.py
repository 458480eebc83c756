"""The live view of a scale set's latest run: where each instance stands, and the gates.

What the dashboard's grid and ``rolling-upgrade get-latest --watch`` show, in one
shape (``…/virtualMachineScaleSets/{name}/rollout``). Pure: it reads a run, the
instances as recorded and the time, and says for each instance one state of

``pending`` (its batch has not come), ``inBatch`` (chosen, its new OS disk not yet
begun), ``upgrading``, ``waitingForHealth`` (with the seconds left), ``healthy``
(its upgrade passed the wait, or it already ran the target), ``rollingBack``,
``rolledBack``, ``failed``, ``protected`` (left out: protected from scale-set
actions), ``skipped`` (not part of the run) or ``idle`` (the scale set never ran one).

The gates are the values the state machine compares (``upgrade/run.py``):
unhealthy instances of the whole set against ``maxUnhealthyInstancePercent``, and
unhealthy upgraded instances against ``maxUnhealthyUpgradedInstancePercent``.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Final

from scaleset.model.instance import HealthState, InstanceRecord, ProvisioningState
from scaleset.upgrade import policy as policy_rules
from scaleset.upgrade.state import FAILED_STEPS, SETTLED_STEPS, Run, RunInstance, Step

STATES: Final = ("pending", "inBatch", "upgrading", "waitingForHealth", "healthy",
                 "rollingBack", "rolledBack", "failed", "protected", "skipped", "idle")

_BY_STEP: Final = {
    Step.PENDING: "pending",
    Step.WAITING_HEALTH: "waitingForHealth",
    Step.SUCCEEDED: "healthy",
    Step.ROLLING_BACK: "rollingBack",
    Step.ROLLED_BACK: "rolledBack",
    Step.FAILED: "failed",
    Step.ROLLBACK_FAILED: "failed",
}


def iso(at: datetime | None) -> str | None:
    """A time as ARM writes it (UTC, milliseconds, ``Z``)."""
    if at is None:
        return None
    return at.strftime("%Y-%m-%dT%H:%M:%S.") + f"{at.microsecond // 1000:03d}Z"


def instance_state(ri: RunInstance | None, record: InstanceRecord, *, run: Run | None) -> str:
    """The state of one instance in ``run`` (see the module's docstring)."""
    if run is None:
        return "idle"
    if ri is None:
        return "protected" if record.protect_from_scale_set_actions else "skipped"
    if ri.step is Step.UPGRADING:
        busy = record.provisioning_state in (ProvisioningState.UPDATING,
                                             ProvisioningState.CREATING)
        return "upgrading" if busy or run.status.is_terminal else "inBatch"
    return _BY_STEP[ri.step]


def gates(run: Run, records: Mapping[str, InstanceRecord]) -> list[dict[str, Any]]:
    """Each gate's value now (percent) against its threshold."""
    total = len(records)
    unhealthy = sum(1 for r in records.values() if r.health_state is not HealthState.HEALTHY)
    upgraded = sum(1 for ri in run.instances.values()
                   if ri.step in SETTLED_STEPS or ri.step is Step.ROLLING_BACK)
    relapsed = sum(1 for ri in run.instances.values()
                   if ri.step is Step.SUCCEEDED and (r := records.get(ri.instance_id)) is not None
                   and r.health_state is not HealthState.HEALTHY)
    failed = sum(1 for ri in run.instances.values() if ri.step in FAILED_STEPS) + relapsed
    p = run.policy
    return [_gate("maxUnhealthyInstancePercent", unhealthy, total,
                  p.max_unhealthy_instance_percent),
            _gate("maxUnhealthyUpgradedInstancePercent", failed, upgraded,
                  p.max_unhealthy_upgraded_instance_percent)]


def _gate(name: str, count: int, total: int, threshold: int) -> dict[str, Any]:
    value = round(count * 100 / total, 2) if total else 0.0
    return {"name": name, "value": value, "threshold": threshold, "unhealthy": count,
            "total": total, "ok": not policy_rules.exceeds(count, total, threshold)}


def batches_total(run: Run, capacity: int) -> int:
    """The batches run so far plus those the instances still pending need."""
    pending = sum(1 for ri in run.instances.values() if ri.step is Step.PENDING)
    if not pending:
        return len(run.batches)
    if run.all_at_once:
        return len(run.batches) + 1
    size = policy_rules.batch_limit(capacity, run.policy.max_batch_instance_percent)
    return len(run.batches) + -(-pending // size)


def run_view(run: Run, records: Mapping[str, InstanceRecord], *, capacity: int
             ) -> dict[str, Any]:
    """The run part of the view: status, batches, progress and gates."""
    progress = run.progress()
    return {
        "runId": run.run_id,
        "kind": str(run.kind),
        "startedBy": str(run.started_by),
        "status": str(run.status),
        "startTime": iso(run.start_time),
        "endTime": iso(run.end_time),
        "cancelRequested": run.cancel_requested,
        "error": None if run.error is None else {"code": run.error.code,
                                                 "message": run.error.message},
        "targetImageVersion": run.target.image_version,
        "nextBatchAt": iso(run.next_batch_at),
        "batches": [{"index": b.index, "instanceIds": list(b.instance_ids),
                     "start": iso(b.start), "end": iso(b.end)} for b in run.batches],
        "batchesTotal": batches_total(run, capacity),
        "progress": {"successfulInstanceCount": progress.successful,
                     "failedInstanceCount": progress.failed,
                     "inProgressInstanceCount": progress.in_progress,
                     "pendingInstanceCount": progress.pending},
        "gates": gates(run, records),
    }


def instances_view(run: Run | None, records: Mapping[str, InstanceRecord], now: datetime
                   ) -> list[dict[str, Any]]:
    """Every instance with its image version, health and state in ``run``."""
    out = []
    for iid in sorted(records, key=policy_rules.natural_key):
        record = records[iid]
        ri = run.instances.get(iid) if run is not None else None
        state = instance_state(ri, record, run=run)
        deadline = ri.health_deadline if ri is not None and state == "waitingForHealth" else None
        left = None if deadline is None else max(0.0, round((deadline - now).total_seconds(), 1))
        out.append({
            "instanceId": iid,
            "imageVersion": record.image_version,
            "health": str(record.health_state),
            "powerState": str(record.power_state),
            "protected": record.protect_from_scale_set_actions,
            "state": state,
            "batch": ri.batch if ri is not None else None,
            "healthDeadline": iso(deadline),
            "healthSecondsLeft": left,
            "reason": ri.reason if ri is not None else None,
        })
    return out
