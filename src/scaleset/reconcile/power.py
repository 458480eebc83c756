"""The user's power verbs in a reconcile pass: which to hand to the driver, which have ended.

``commands.request_power`` records a ``PowerRequest`` on each instance it names
(the intent). Every pass, ``plan`` looks at the records and the driver's
snapshot and, without I/O, says which records change (a request the driver
has finished gets its outcome) and which operations to submit (every request
still pending: submitting an id the driver knows does nothing, so a pass that
crashed before acting is simply repeated). The shell commits the first, then
submits the second.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from scaleset.drivers.base import DriverSnapshot, PowerOperation
from scaleset.model.instance import POWER_FAILED, POWER_SUCCEEDED, InstanceRecord, PowerRequest
from scaleset.upgrade.observations import OperationState


@dataclass(frozen=True, slots=True)
class PowerPlan:
    """What a pass does about power verbs: records to write, then operations to submit."""

    ended: tuple[InstanceRecord, ...]
    submit: tuple[PowerOperation, ...]
    first_seen: bool = False
    """Some operation goes to the driver for the first time: look again at once, since a
    driver may finish a verb that changes nothing before it returns."""


def plan(records: Mapping[str, InstanceRecord], snapshot: DriverSnapshot) -> PowerPlan:
    """Outcomes of finished power requests, and the operations still to ask for.

    An instance the driver does not have yet (being created) waits: its request
    is submitted once it exists.
    """
    ended: list[InstanceRecord] = []
    submit: list[PowerOperation] = []
    first_seen = False
    for iid, record in records.items():
        request = record.power_request
        if request is None or not request.pending or iid not in snapshot.instances:
            continue
        op_id = driver_op_id(request.op_id, iid)
        seen = snapshot.operations.get(op_id)
        if seen is not None and seen.state is OperationState.SUCCEEDED:
            ended.append(record.replace(power_request=_ended(request, POWER_SUCCEEDED, None)))
        elif seen is not None and seen.state is OperationState.FAILED:
            ended.append(record.replace(power_request=_ended(
                request, POWER_FAILED, seen.message or f"{request.action} failed")))
        else:
            submit.append(PowerOperation(op_id, record.scale_set_id, iid,
                                         request.action, request.skip_shutdown))
            first_seen = first_seen or seen is None
    return PowerPlan(tuple(ended), tuple(submit), first_seen)


def driver_op_id(op_id: str, instance_id: str) -> str:
    """The driver's id for one instance's part of a power operation (a driver keys its
    operations per scale set, and one request may cover many instances)."""
    return f"{op_id}/{instance_id}"


def _ended(request: PowerRequest, outcome: str, message: str | None) -> PowerRequest:
    return dataclasses.replace(request, outcome=outcome, message=message)


@dataclass(frozen=True, slots=True)
class Outcome:
    """How a power operation stands: ``done``; if it failed, Azure's error code and message."""

    done: bool
    error_code: str | None = None
    error_message: str | None = None


PREEMPTED = "OperationPreempted"


def outcome(records: Mapping[str, InstanceRecord], op_id: str,
            instance_ids: Iterable[str]) -> Outcome:
    """Whether the power operation ``op_id`` over ``instance_ids`` has ended, and how.

    Done once every instance's request has an outcome and the instance shows the
    power state the verb leaves it in. An instance whose request was replaced by
    a newer verb, or that was deleted meanwhile, ends it ``OperationPreempted``
    (Azure's code for an operation a later one superseded).
    """
    failures: list[str] = []
    for iid in instance_ids:
        record = records.get(iid)
        request = record.power_request if record is not None else None
        if record is None or request is None or request.op_id != op_id:
            return Outcome(True, PREEMPTED, "Operation execution has been preempted by a more "
                                            f"recent operation (instance {iid}).")
        if request.pending:
            return Outcome(False)
        if request.outcome == POWER_FAILED:
            failures.append(f"instance {iid}: {request.message}")
        elif not request.action.reached(record.power_state):
            return Outcome(False)  # finished a moment ago: the next pass records the state
    if failures:
        return Outcome(True, "VMPowerOperationFailed", "; ".join(failures))
    return Outcome(True)
