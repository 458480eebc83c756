"""Batch sizing and health-gate arithmetic of a rolling upgrade.

Every rule about *how many* lives here, as small pure functions whose
docstrings hold worked examples (``tests/unit/test_policy.py`` runs them).
Percentages are compared exactly in integers: "more than 20% of 10" means
3 or more, never a float rounding edge.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from scaleset.model.instance import HealthState
from scaleset.upgrade.observations import InstanceObservation


def batch_limit(total_instances: int, max_batch_instance_percent: int) -> int:
    """The most instances one batch may hold (and the most out of service at once).

    A share of the *whole* scale set, rounded down, never below one.

    >>> batch_limit(10, 20)
    2
    >>> batch_limit(4, 20)
    1
    >>> batch_limit(1000, 20)
    200
    >>> batch_limit(0, 20)
    1
    """
    return max(1, total_instances * max_batch_instance_percent // 100)


def exceeds(count: int, total: int, percent: int) -> bool:
    """Whether ``count`` of ``total`` is *more than* ``percent`` percent.

    >>> exceeds(2, 10, 20)     # exactly 20%: allowed
    False
    >>> exceeds(3, 10, 20)
    True
    >>> exceeds(1, 2, 20)      # one of two upgraded instances unhealthy
    True
    >>> exceeds(0, 0, 20)
    False
    """
    return count * 100 > percent * total


def natural_key(instance_id: str) -> tuple[int, int, str]:
    """Sort key for instance ids: "10" after "9"; non-numeric ids after numeric ones."""
    return (0, int(instance_id), "") if instance_id.isdigit() else (1, 0, instance_id)


_natural = natural_key


def upgrade_order(
    candidates: Iterable[InstanceObservation], *, prioritize_unhealthy: bool
) -> list[InstanceObservation]:
    """The order pending instances are taken in.

    Unhealthy first when ``prioritize_unhealthy``; then zone by zone (zones
    sorted by name, non-zonal first), update domain by update domain within a
    zone, and instance id within an update domain.
    """

    def key(o: InstanceObservation) -> tuple[int, str, int, tuple[int, int, str]]:
        first = 0 if prioritize_unhealthy and not o.healthy else 1
        return (first, o.zone or "", o.update_domain, _natural(o.instance_id))

    return sorted(candidates, key=key)


def plan_batch(
    candidates: Sequence[InstanceObservation],
    fleet: Mapping[str, InstanceObservation],
    *,
    max_batch_instance_percent: int,
    prioritize_unhealthy: bool,
    cross_zone: bool,
) -> list[str]:
    """Choose the next batch from ``candidates`` (pending, unprotected instances).

    The batch holds at most ``batch_limit`` instances, fewer when instances
    outside it are already unhealthy, so that the batch plus the unhealthy
    rest never exceed the limit; but always at least one. Without
    ``cross_zone`` every member shares the first instance's zone.

    >>> fleet = {str(i): InstanceObservation(str(i), update_domain=i % 5) for i in range(10)}
    >>> plan_batch(list(fleet.values()), fleet, max_batch_instance_percent=20,
    ...            prioritize_unhealthy=False, cross_zone=False)
    ['0', '5']
    >>> fleet["9"] = InstanceObservation("9", update_domain=4, health=HealthState.UNHEALTHY)
    >>> plan_batch(list(fleet.values()), fleet, max_batch_instance_percent=20,
    ...            prioritize_unhealthy=False, cross_zone=False)
    ['0']
    >>> plan_batch(list(fleet.values()), fleet, max_batch_instance_percent=20,
    ...            prioritize_unhealthy=True, cross_zone=False)
    ['9', '0']
    """
    if not candidates:
        return []
    limit = batch_limit(len(fleet), max_batch_instance_percent)
    ordered = upgrade_order(candidates, prioritize_unhealthy=prioritize_unhealthy)
    zone = ordered[0].zone
    unhealthy_total = sum(1 for o in fleet.values() if o.health is not HealthState.HEALTHY)
    unhealthy_inside = 0
    chosen: list[str] = []
    for o in ordered:
        if len(chosen) >= limit:
            break
        if not cross_zone and o.zone != zone:
            continue
        inside = unhealthy_inside + (0 if o.healthy else 1)
        out_of_service = len(chosen) + 1 + (unhealthy_total - inside)
        if chosen and out_of_service > limit:
            break
        chosen.append(o.instance_id)
        unhealthy_inside = inside
    return chosen


def update_domain_batch(candidates: Sequence[InstanceObservation]) -> list[str]:
    """Service Fabric's batch: every candidate in the lowest update domain left.

    >>> fleet = [InstanceObservation(str(i), update_domain=i % 3) for i in range(7)]
    >>> update_domain_batch(fleet), update_domain_batch(fleet[1:3] + fleet[4:6])
    (['0', '3', '6'], ['1', '4'])
    """
    if not candidates:
        return []
    domain = min(o.update_domain for o in candidates)
    return sorted((o.instance_id for o in candidates if o.update_domain == domain),
                  key=natural_key)


def describe_unhealthy(count: int, total: int, percent: int, *, what: str) -> str:
    """The sentence a Faulted run shows for a breached gate.

    >>> describe_unhealthy(3, 10, 20, what="instances in the scale set")
    '3 of 10 instances in the scale set (30%) are unhealthy, more than the allowed 20%'
    """
    share = (count * 100 // total) if total else 0
    return (
        f"{count} of {total} {what} ({share}%) are unhealthy, more than the allowed {percent}%"
    )
