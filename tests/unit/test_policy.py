"""The arithmetic of a rolling upgrade: batch sizes, gates, ordering, versions, durations.

The worked examples in the modules' docstrings run here too, so a docstring
that drifts from the code fails the suite.
"""

from __future__ import annotations

import doctest
from datetime import timedelta
from types import ModuleType

import pytest

from scaleset.catalog import versions
from scaleset.health import aggregate
from scaleset.model import durations
from scaleset.model.instance import HealthState
from scaleset.upgrade import policy, run, trigger
from scaleset.upgrade.observations import InstanceObservation
from scaleset.upgrade.policy import batch_limit, exceeds, plan_batch, upgrade_order

UNHEALTHY = HealthState.UNHEALTHY


# -- the docstrings' worked examples ------------------------------------------------
@pytest.mark.parametrize(
    "module", [policy, versions, durations, aggregate, trigger, run],
    ids=lambda m: m.__name__,
)
def test_the_worked_examples_in_the_docstrings_hold(module: ModuleType) -> None:
    result = doctest.testmod(module, verbose=False, report=True)
    assert result.attempted > 0, f"{module.__name__} has no doctest examples"
    assert result.failed == 0, f"{result.failed} doctest examples of {module.__name__} failed"


# -- batch size -------------------------------------------------------------------------
@pytest.mark.parametrize(("total", "percent", "expected"), [
    (10, 20, 2),
    (4, 20, 1),       # 20% of 4 is 0.8: rounded down, but never below one
    (1000, 20, 200),
    (3, 50, 1),       # 1.5 rounds down
    (100, 5, 5),
    (1, 20, 1),
    (1, 100, 1),
    (7, 100, 7),
    (0, 20, 1),
])
def test_a_batch_holds_a_share_of_the_whole_scale_set_rounded_down_but_at_least_one(
    total: int, percent: int, expected: int
) -> None:
    assert batch_limit(total, percent) == expected


# -- gates ------------------------------------------------------------------------------
@pytest.mark.parametrize(("count", "total", "percent", "expected"), [
    (2, 10, 20, False),   # exactly 20% is allowed: the rule is "more than"
    (3, 10, 20, True),
    (20, 100, 20, False),
    (21, 100, 20, True),
    (1, 2, 20, True),     # one of two upgraded instances unhealthy
    (1, 5, 20, False),
    (1, 3, 33, True),     # 33.3% is more than 33%, compared exactly (no float rounding)
    (1, 3, 34, False),
    (0, 0, 20, False),    # nothing to count: never a breach
    (0, 10, 0, False),
    (1, 10, 0, True),     # 0% tolerates nothing
    (10, 10, 100, False), # 100% tolerates everything
    (1, 1, 99, True),
])
def test_a_gate_breaks_only_when_strictly_more_than_the_percentage_is_unhealthy(
    count: int, total: int, percent: int, expected: bool
) -> None:
    assert exceeds(count, total, percent) is expected


# -- planning a batch -------------------------------------------------------------------
def obs(iid: str, *, zone: str | None = None, ud: int = 0, healthy: bool = True,
        protected: bool = False) -> InstanceObservation:
    return InstanceObservation(iid, zone=zone, update_domain=ud,
                               health=HealthState.HEALTHY if healthy else UNHEALTHY,
                               protected=protected)


def zonal_fleet(n: int, zones: tuple[str, ...] = ("1", "2", "3")) -> dict[str, InstanceObservation]:
    return {str(i): obs(str(i), zone=zones[i % len(zones)], ud=(i // len(zones)) % 5)
            for i in range(n)}


def plan(candidates: list[InstanceObservation], fleet: dict[str, InstanceObservation], *,
         percent: int = 20, prioritize: bool = False, cross_zone: bool = False) -> list[str]:
    return plan_batch(candidates, fleet, max_batch_instance_percent=percent,
                      prioritize_unhealthy=prioritize, cross_zone=cross_zone)


def all_batches(fleet: dict[str, InstanceObservation], **kwargs: object) -> list[list[str]]:
    """Plan batch after batch until every instance is in one (nobody turns unhealthy)."""
    pending = dict(fleet)
    out: list[list[str]] = []
    while pending:
        chosen = plan(list(pending.values()), fleet, **kwargs)  # type: ignore[arg-type]
        assert chosen, "plan_batch chose nothing while instances were pending"
        out.append(chosen)
        for iid in chosen:
            del pending[iid]
    return out


def test_a_batch_never_mixes_zones_without_cross_zone_upgrade() -> None:
    fleet = zonal_fleet(30)
    batches = all_batches(fleet, percent=50)
    for batch in batches:
        assert len({fleet[i].zone for i in batch}) == 1, batch
    # zone by zone: every instance of zone 1 before any of zone 2, and so on
    zones_in_order = [fleet[b[0]].zone or "" for b in batches]
    assert zones_in_order == sorted(zones_in_order)
    assert sorted(i for b in batches for i in b) == sorted(fleet)


def test_a_zone_with_fewer_pending_instances_than_the_limit_gets_a_smaller_batch() -> None:
    fleet = {"a": obs("a", zone="1"),
             **{f"b{i}": obs(f"b{i}", zone="2") for i in range(9)}}
    assert plan(list(fleet.values()), fleet) == ["a"]


def test_with_cross_zone_upgrade_a_batch_may_span_zones() -> None:
    fleet = {"a": obs("a", zone="1"),
             **{f"b{i}": obs(f"b{i}", zone="2") for i in range(9)}}
    chosen = plan(list(fleet.values()), fleet, cross_zone=True)
    assert chosen == ["a", "b0"]
    assert {fleet[i].zone for i in chosen} == {"1", "2"}


def test_update_domains_are_walked_in_order_within_a_zone() -> None:
    fleet = zonal_fleet(30)
    batches = all_batches(fleet, percent=10)   # batches of 3 within one zone
    for zone in ("1", "2", "3"):
        walked = [fleet[i].update_domain for b in batches for i in b if fleet[i].zone == zone]
        assert walked == sorted(walked), (zone, walked)


def test_non_zonal_instances_go_first_then_zones_by_name_then_update_domain_then_id() -> None:
    fleet = [obs("10", zone="2", ud=0), obs("9", zone="1", ud=1), obs("2", zone="1", ud=0),
             obs("11", zone="1", ud=0), obs("x", ud=3)]
    ordered = [o.instance_id for o in upgrade_order(fleet, prioritize_unhealthy=False)]
    assert ordered == ["x", "2", "11", "9", "10"]   # ids compare as numbers: 2 before 11


def test_prioritize_unhealthy_instances_puts_unhealthy_instances_first() -> None:
    fleet = {str(i): obs(str(i), ud=i % 5) for i in range(10)}
    fleet["7"] = obs("7", ud=2, healthy=False)
    ordered = upgrade_order(fleet.values(), prioritize_unhealthy=True)
    assert ordered[0].instance_id == "7"
    assert [o.instance_id for o in upgrade_order(fleet.values(), prioritize_unhealthy=False)
            ].index("7") > 0
    assert plan(list(fleet.values()), fleet, prioritize=True)[0] == "7"


def test_without_prioritizing_an_unhealthy_instance_waits_for_its_turn() -> None:
    fleet = {str(i): obs(str(i)) for i in range(10)}
    fleet["7"] = obs("7", healthy=False)
    # 1 unhealthy outside the batch: the batch of 2 shrinks to 1, and "7" is not in it
    assert plan(list(fleet.values()), fleet) == ["0"]


@pytest.mark.parametrize(("total", "percent", "unhealthy", "expected"), [
    (10, 20, 0, 2),
    (10, 20, 1, 1),
    (10, 20, 5, 1),     # never below one, however many are unhealthy
    (20, 20, 1, 3),
    (20, 20, 2, 2),
    (20, 20, 3, 1),
    (100, 10, 4, 6),
    (100, 10, 10, 1),
])
def test_unhealthy_instances_outside_the_batch_shrink_it_but_never_below_one(
    total: int, percent: int, unhealthy: int, expected: int
) -> None:
    fleet = {str(i): obs(str(i), healthy=i >= unhealthy) for i in range(total)}
    healthy_candidates = [o for o in fleet.values() if o.healthy]
    chosen = plan(healthy_candidates, fleet, percent=percent)
    assert len(chosen) == expected
    limit = batch_limit(total, percent)
    assert len(chosen) == 1 or len(chosen) + unhealthy <= limit


def test_an_unhealthy_instance_inside_the_batch_does_not_shrink_it() -> None:
    fleet = {str(i): obs(str(i)) for i in range(10)}
    fleet["0"] = obs("0", healthy=False)
    # "0" is upgraded in this batch: it is out of service once, not twice
    assert plan(list(fleet.values()), fleet) == ["0", "1"]


def test_nothing_to_plan_gives_an_empty_batch() -> None:
    fleet = {str(i): obs(str(i)) for i in range(3)}
    assert plan([], fleet) == []


# -- image versions ---------------------------------------------------------------------
def test_versions_compare_as_numbers_so_1_10_0_is_newer_than_1_9_0() -> None:
    assert versions.version_key("1.10.0") > versions.version_key("1.9.0")
    assert versions.newer("1.10.0", "1.9.0")
    assert not versions.newer("1.9.0", "1.10.0")
    assert not versions.newer("1.9.0", "1.9.0")
    assert versions.latest(["1.9.0", "1.10.0", "1.2.3"]) == "1.10.0"
    assert versions.latest([]) is None


def test_any_version_is_newer_than_none_and_none_is_never_newer() -> None:
    assert versions.newer("1.0.0", None)
    assert not versions.newer(None, "1.0.0")


@pytest.mark.parametrize("text", ["latest", "1.x", "", "1..0", "v1.0"])
def test_a_version_that_is_not_dotted_integers_is_refused(text: str) -> None:
    assert not versions.is_version(text)
    with pytest.raises(ValueError, match="not an image version"):
        versions.version_key(text)


# -- durations --------------------------------------------------------------------------
@pytest.mark.parametrize(("value", "expected"), [
    ("PT0S", timedelta(0)),
    ("PT5M", timedelta(minutes=5)),
    ("PT30S", timedelta(seconds=30)),
    ("P1D", timedelta(days=1)),
    ("PT1H30M", timedelta(hours=1, minutes=30)),
    (90, timedelta(seconds=90)),
    (timedelta(minutes=2), timedelta(minutes=2)),
])
def test_durations_read_iso_8601(value: object, expected: timedelta) -> None:
    assert durations.parse_duration(value) == expected


def test_a_duration_round_trips_through_its_iso_8601_form() -> None:
    for delta in (timedelta(0), timedelta(minutes=5), timedelta(hours=2, seconds=3)):
        text = durations.format_duration(delta)
        assert durations.parse_duration(text) == delta
    assert durations.format_duration(timedelta(0)) == "PT0S"


@pytest.mark.parametrize(("value", "message"), [
    ("P1M", "years or months"),
    ("P1Y", "years or months"),
    ("-PT5M", "negative"),
    (-1, "negative"),
    (timedelta(seconds=-1), "negative"),
    ("5 minutes", "not an ISO 8601 duration"),
    (True, "not a boolean"),
    (None, "ISO 8601"),
])
def test_calendar_dependent_negative_and_malformed_durations_are_refused(
    value: object, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        durations.parse_duration(value)
