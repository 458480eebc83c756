"""Instances outside the batch going unhealthy mid-run stop it at the end of the batch.

The seed: while a batch is in progress, other instances may become unhealthy;
if the whole set is then over ``maxUnhealthyInstancePercent``, the run stops
when that batch ends and no further batch starts. Checked in the pure core
(Hypothesis: whoever flips, whenever) and through ``scaleset simulate``.
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from scaleset.cli.app import app
from scaleset.drivers.simulated import Faults, HealthEvent
from scaleset.model.instance import HealthState
from scaleset.upgrade import policy as rules
from scaleset.upgrade.run import IN_ROLLING_UPGRADE
from scaleset.upgrade.state import Policy, RunStatus

from tests.unit.harness import Harness

UNHEALTHY = HealthState.UNHEALTHY


@st.composite
def flips(draw: st.DrawFn) -> tuple[int, int, list[HealthEvent]]:
    """A fleet size, a gate, and health flips of random instances at random times."""
    n = draw(st.integers(5, 30))
    gate = draw(st.sampled_from([10, 20, 34, 50]))
    events = []
    for _ in range(draw(st.integers(1, 4))):
        who = draw(st.lists(st.integers(0, n - 1), min_size=1, max_size=n, unique=True))
        events.append(HealthEvent(
            at=timedelta(seconds=draw(st.integers(0, 900))),
            instances=tuple(str(i) for i in who),
            health=draw(st.sampled_from([UNHEALTHY, HealthState.HEALTHY])),
        ))
    return n, gate, events


@settings(deadline=None, max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(flips())
def test_no_batch_starts_while_the_set_is_over_the_gate_whatever_flips_when(
        case: tuple[int, int, list[HealthEvent]]) -> None:
    n, gate, events = case
    policy = Policy(max_unhealthy_instance_percent=gate,
                    max_unhealthy_upgraded_instance_percent=100)  # only the whole-set gate
    h = Harness.build(n, policy=policy, faults=Faults(events=tuple(events)))
    run = h.run_to_end()  # the harness checks every batch start against the gate
    for p in h.passes:
        over = rules.exceeds(p.observations.unhealthy_count(), n, gate)
        if p.started_batch:
            assert not over
        settled = p.events("BatchCompleted")
        pending = p.after.progress().pending
        if settled and over and pending and p.after.status is not RunStatus.COMPLETED:
            # the batch ended with the set over the gate: the run stops right there
            assert p.after.status is RunStatus.FAULTED, p.after.status
            assert p.after.error is not None and p.after.error.code == IN_ROLLING_UPGRADE
            assert p.after.error.target == "rollingUpgradePolicy.maxUnhealthyInstancePercent"
    if run.status is RunStatus.FAULTED and run.error and run.error.code == IN_ROLLING_UPGRADE:
        last = run.batches[-1]
        assert last.end is not None and all(b.end is not None for b in run.batches)


def test_three_others_unhealthy_during_batch_one_of_ten_fault_the_run_after_it() -> None:
    faults = Faults(events=(HealthEvent(timedelta(seconds=30), ("2", "3", "4"), UNHEALTHY),))
    h = Harness.build(10, faults=faults)
    run = h.run_to_end()
    assert run.status is RunStatus.FAULTED
    assert run.error is not None and run.error.code == IN_ROLLING_UPGRADE
    assert run.error.message.startswith("3 of 10 instances in the scale set (30%) are unhealthy")
    assert [b.instance_ids for b in run.batches] == [("0", "5")]


def test_two_others_unhealthy_is_exactly_the_limit_and_the_run_goes_on() -> None:
    faults = Faults(events=(HealthEvent(timedelta(seconds=30), ("2", "3"), UNHEALTHY),
                            HealthEvent(timedelta(seconds=400), ("2", "3"),
                                        HealthState.HEALTHY)))
    h = Harness.build(10, faults=faults)
    run = h.run_to_end()
    assert run.status is RunStatus.COMPLETED, run.error
    # 2 of 10 = 20 %: not over, so batch 2 started while they were still unhealthy
    # (smaller, so that the instances out of service stay within the batch limit).
    second = run.batches[1]
    assert second.start - h.passes[0].now < timedelta(seconds=400)
    assert len(second.instance_ids) == 1


def test_the_simulator_stops_the_run_after_the_batch(tmp_path: Path) -> None:
    scenario = tmp_path / "others-unhealthy.json"
    scenario.write_text(json.dumps({
        "scaleSet": {"sku": {"capacity": 10}},
        "faults": {"events": [{"at": "PT30S", "instances": ["2", "3", "4"],
                               "health": "Unhealthy"}]},
    }))
    result = CliRunner().invoke(app, ["simulate", str(scenario), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output.strip().splitlines()[-1])
    assert summary["status"] == "Faulted"
    assert summary["error"]["code"] == IN_ROLLING_UPGRADE
    assert "3 of 10" in summary["error"]["message"]
    assert len(summary["batches"]) == 1
    assert summary["successfulInstanceCount"] == 2
