"""Decisions on the edges the first worked examples left open."""

from __future__ import annotations

from datetime import timedelta

from scaleset.drivers.simulated import Faults, HealthEvent
from scaleset.model.instance import HealthState
from scaleset.upgrade.run import UPGRADED_UNHEALTHY
from scaleset.upgrade.state import Policy, RunStatus, Step
from tests.unit.harness import NEW, OLD, Harness


def test_a_failed_reimage_is_rolled_back_by_booting_the_old_disk_again() -> None:
    h = Harness.build(10, faults=Faults(reimage_fail_probability=1.0),
                      policy=Policy(max_unhealthy_upgraded_instance_percent=100))
    h.run_until(lambda h: len(h.run.batches) == 1 and h.run.open_batch is None)
    first = h.run.batches[0].instance_ids
    for iid in first:
        assert h.run.instances[iid].step is Step.ROLLED_BACK
        assert h.image(iid) == OLD
    h.clock.advance(timedelta(minutes=1))
    snapshot = h.driver.observe(h.run.scale_set_id, h.clock.now())
    assert all(snapshot.instances[iid].health is HealthState.HEALTHY for iid in first)


def test_an_upgraded_instance_that_turns_unhealthy_later_counts_against_the_upgraded_gate() -> None:
    # Batch 1 (0 and 5) is healthy at 110 s; instance 0 relapses at 150 s. When batch 2
    # settles, 1 of the 4 upgraded instances is unhealthy: 25% > 20%.
    relapse = Faults(events=(HealthEvent(timedelta(seconds=150), ("0",), HealthState.UNHEALTHY),))
    h = Harness.build(10, faults=relapse)
    run = h.run_to_end()
    assert run.status is RunStatus.FAULTED
    assert run.error is not None and run.error.code == UPGRADED_UNHEALTHY
    assert "1 of 4 upgraded instances" in run.error.message
    assert len(run.batches) == 2
    assert run.instances["0"].step is Step.SUCCEEDED  # it passed its own health wait
    assert h.image("0") == NEW  # and is not rolled back: it did not fail its upgrade


def test_a_cancel_during_the_last_batch_still_ends_completed() -> None:
    h = Harness.build(4)  # batches of one
    h.run_until(lambda h: len(h.run.batches) == 4 and h.run.open_batch is not None)
    h.cancel()
    run = h.run_to_end()
    assert run.status is RunStatus.COMPLETED
    assert all(h.image(iid) == NEW for iid in run.instances)


def test_a_batch_that_never_settles_times_out_instead_of_hanging() -> None:
    # Reimages that take two hours: the batch cannot settle within the one-hour limit.
    from scaleset.drivers.simulated import Timings
    from scaleset.upgrade.run import TIMED_OUT

    h = Harness.build(10, timings=Timings(reimage=timedelta(hours=2)))
    h.check = False  # the harness's end checks expect settled instances; a timeout has none
    run = h.run_to_end()
    assert run.status is RunStatus.FAULTED
    assert run.error is not None and run.error.code == TIMED_OUT
    assert "batch 1 did not finish within 60 min" in run.error.message
    assert run.end_time == run.start_time + timedelta(hours=1)
    assert len(run.batches) == 1 and run.batches[0].end is not None
