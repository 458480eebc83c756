"""A health wait counts only while a control plane watches (``Observations.watching_since``).

Found by the fault suite: serve killed after an instance's upgrade, restarted after its
health deadline had passed, failed the instance at its first pass, before any probe had
answered again, and rolled a healthy instance back.
"""

from __future__ import annotations

import dataclasses
from datetime import timedelta

from scaleset.drivers.simulated import Timings
from scaleset.upgrade.run import decide
from scaleset.model.instance import HealthState
from scaleset.upgrade.state import RunStatus, Step

from tests.unit.harness import Harness

FIVE_MINUTES = timedelta(minutes=5)


def _waiting(healthy_after_boot: timedelta) -> Harness:
    """One instance upgraded and waiting for health (reimage 60 s, boot 30 s)."""
    h = Harness.build(1, timings=Timings(reimage=timedelta(seconds=60),
                                         boot=timedelta(seconds=30), healthy=healthy_after_boot))
    h.run_until(lambda x: x.run.instances["0"].step is Step.WAITING_HEALTH, max_passes=100)
    return h


def test_a_wait_that_ran_out_while_no_one_watched_gets_a_health_timeout_from_the_restart() -> None:
    h = _waiting(healthy_after_boot=FIVE_MINUTES + timedelta(minutes=2))
    deadline = h.run.instances["0"].health_deadline
    assert deadline is not None
    restart = h.clock.advance_to(deadline + timedelta(minutes=1))

    unwatched = decide(h.run, h.observe(), restart)  # what the first pass did before
    assert unwatched.run.instances["0"].step is Step.ROLLING_BACK

    watched = decide(h.run, dataclasses.replace(h.observe(), watching_since=restart), restart)
    assert watched.run.instances["0"].step is Step.WAITING_HEALTH
    assert watched.wake_at == restart + FIVE_MINUTES
    # The instance answers healthy two minutes after the original deadline.
    later = h.clock.advance_to(deadline + timedelta(minutes=3))
    done = decide(watched.run, dataclasses.replace(h.observe(), watching_since=restart), later)
    assert done.run.instances["0"].step is Step.SUCCEEDED


def test_an_instance_still_unhealthy_a_timeout_after_the_restart_fails() -> None:
    h = _waiting(healthy_after_boot=timedelta(hours=1))
    deadline = h.run.instances["0"].health_deadline
    assert deadline is not None
    restart = h.clock.advance_to(deadline + timedelta(minutes=1))
    obs = dataclasses.replace(h.observe(), watching_since=restart)
    assert decide(h.run, obs, restart).run.instances["0"].step is Step.WAITING_HEALTH
    after = h.clock.advance_to(restart + FIVE_MINUTES)
    failed = decide(h.run, dataclasses.replace(h.observe(), watching_since=restart), after)
    assert failed.run.instances["0"].step is Step.ROLLING_BACK
    assert "5 min" in (failed.run.instances["0"].reason or "")


def test_a_control_plane_watching_from_before_the_upgrade_changes_nothing() -> None:
    h = _waiting(healthy_after_boot=timedelta(hours=1))
    deadline = h.run.instances["0"].health_deadline
    assert deadline is not None
    at = h.clock.advance_to(deadline)
    obs = dataclasses.replace(h.observe(), watching_since=deadline - FIVE_MINUTES)
    assert decide(h.run, obs, at).run.instances["0"].step is Step.ROLLING_BACK


def test_the_gates_wait_for_probes_to_answer_again_after_a_start() -> None:
    """Adopted instances read Initializing until their first probe after the restart: the
    batch's end waits (one health timeout at most) instead of faulting the run on them."""
    h = Harness.build(10, timings=Timings(reimage=timedelta(seconds=60),
                                          boot=timedelta(seconds=30),
                                          healthy=timedelta(seconds=10)))
    h.run_until(lambda x: any(ri.step is Step.WAITING_HEALTH
                              for ri in x.run.instances.values()), max_passes=100)
    batch = set(h.run.batches[0].instance_ids)
    restart = h.clock.advance(timedelta(seconds=10))  # the batch's instances answer healthy
    seen = h.observe()
    adopted = {iid: o if iid in batch else dataclasses.replace(o, health=HealthState.INITIALIZING)
               for iid, o in seen.instances.items()}
    obs = dataclasses.replace(seen, instances=adopted, watching_since=restart)
    waited = decide(h.run, obs, restart)
    assert waited.run.status is RunStatus.ROLLING_FORWARD and len(waited.run.batches) == 1
    assert waited.wake_at == restart + FIVE_MINUTES
    # Without the restart the same observation breaches maxUnhealthyInstancePercent.
    faulted = decide(h.run, dataclasses.replace(obs, watching_since=None), restart)
    assert faulted.run.status is RunStatus.FAULTED
    # Once the probes answer, the next batch starts.
    answered = decide(h.run, dataclasses.replace(seen, watching_since=restart), restart)
    assert len(answered.run.batches) == 2
