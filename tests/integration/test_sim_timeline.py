"""The timeline ``simulate --plot`` draws: one sample per pass, read back from the store the
simulation ran on, agreeing with the run's own events and report."""

from __future__ import annotations

import doctest
import itertools
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from scaleset.sim import plot, timeline
from scaleset.sim.runner import SimulationReport, simulate
from scaleset.sim.scenario import Scenario

BAD_IMAGE = Path(__file__).resolve().parents[2] / "examples" / "scenarios" / "bad-image-50.json"


def run(raw: dict[str, Any], **kwargs: Any) -> SimulationReport:
    return simulate(Scenario.model_validate(raw), **kwargs)


@pytest.fixture(scope="module")
def bad() -> SimulationReport:
    return run(json.loads(BAD_IMAGE.read_text()), record_timeline=True)


def _timeline(report: SimulationReport) -> timeline.Timeline:
    assert report.timeline is not None
    return report.timeline


def _moved(tl: timeline.Timeline) -> Iterator[tuple[float, str]]:
    """(when, instance) for each instance's first sample out of pending."""
    seen: set[str] = set()
    for s in tl.samples:
        for iid, state in s.states.items():
            if state != "pending" and iid not in seen:
                seen.add(iid)
                yield s.seconds, iid


def test_the_doctests_hold() -> None:
    for module in (timeline, plot):
        assert doctest.testmod(module).failed == 0


def test_recording_the_timeline_changes_nothing_in_the_run() -> None:
    raw = {"scaleSet": {"sku": {"capacity": 30}}, "seed": 3,
           "faults": {"neverHealthyProbability": 0.1}}

    plain, recorded = run(raw), run(raw, record_timeline=True)

    assert plain.timeline is None
    assert plain.to_json() == recorded.to_json()
    assert [(e["kind"], e["instance_id"], e["at"]) for e in plain.events] == [
        (e["kind"], e["instance_id"], e["at"]) for e in recorded.events]


def test_the_final_sample_is_the_run_as_it_ended(bad: SimulationReport) -> None:
    tl = _timeline(bad)
    rolled_back = {e["instance_id"] for e in bad.events if e["kind"] == "InstanceRolledBack"}
    failed = {e["instance_id"] for e in bad.events if e["kind"] == "InstanceFailed"}

    final = tl.final_states()
    assert {i for i, s in final.items() if s == "rolledBack"} == rolled_back == failed
    assert sum(s == "healthy" for s in final.values()) == bad.successful
    assert sum(s == "pending" for s in final.values()) == bad.pending
    assert tl.samples[-1].seconds == tl.end_seconds == bad.makespan_seconds


def test_instances_leave_pending_when_their_batch_starts(bad: SimulationReport) -> None:
    tl = _timeline(bad)
    started = {iid: when for when, iid in _moved(tl)}

    for batch in bad.batches:
        assert {started[i] for i in batch.instances} == {batch.start_seconds}
    assert len(started) == sum(len(b.instances) for b in bad.batches)
    # Rows: batch by batch, then the instances no batch took.
    rows = tl.instance_ids()
    taken = [i for b in bad.batches for i in b.instances]
    assert set(rows[:len(taken)]) == set(taken)
    assert rows[:len(bad.batches[0].instances)] == sorted(bad.batches[0].instances, key=int)


def test_each_instance_s_segments_cover_the_run_without_gaps(bad: SimulationReport) -> None:
    tl = _timeline(bad)
    for iid in tl.instance_ids():
        segments = tl.segments(iid)
        assert segments[0].start == tl.samples[0].seconds
        assert segments[-1].end == tl.end_seconds
        assert all(a.end == b.start for a, b in itertools.pairwise(segments))
        assert all((a.state, a.healthy) != (b.state, b.healthy)
                   for a, b in itertools.pairwise(segments))


def test_an_instance_that_failed_waited_for_health_then_rolled_back(
        bad: SimulationReport) -> None:
    tl = _timeline(bad)
    failed = next(e["instance_id"] for e in bad.events if e["kind"] == "InstanceFailed")

    states = [s.state for s in tl.segments(failed)]

    deduped = [s for i, s in enumerate(states) if i == 0 or states[i - 1] != s]
    assert deduped == ["upgrading", "waitingForHealth", "rollingBack", "rolledBack"] or (
        deduped == ["pending", "upgrading", "waitingForHealth", "rollingBack", "rolledBack"])


def test_the_healthy_fraction_counts_what_the_store_recorded(bad: SimulationReport) -> None:
    tl = _timeline(bad)
    for s in tl.samples:
        healthy = sum(h == "Healthy" for h in s.health.values())
        assert s.healthy_fraction == healthy / bad.instances
    assert tl.min_healthy_fraction() < 1.0
    assert tl.max_unhealthy_percent == 20 and tl.max_unhealthy_upgraded_percent == 20


def test_a_run_that_faults_before_any_batch_is_drawn(tmp_path: Path) -> None:
    report = run({"faults": {"unhealthyAtStart": ["1", "4", "7"]}}, record_timeline=True)
    tl = _timeline(report)

    assert report.batches == [] and set(tl.final_states().values()) == {"pending"}
    assert tl.min_healthy_fraction() == 0.7
    plot.write(report, tmp_path / "early.png")
    assert (tmp_path / "early.png").read_bytes().startswith(b"\x89PNG")


def test_an_unknown_suffix_is_refused_by_the_plotter(bad: SimulationReport,
                                                     tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"\.png, \.html"):
        plot.write(bad, tmp_path / "out.pdf")
    assert not (tmp_path / "out.pdf").exists()


def test_the_cli_does_not_import_matplotlib_until_it_draws() -> None:
    # `scaleset --help` imports every command; matplotlib alone would add a second.
    code = ("import sys, scaleset.cli.app, scaleset.sim.plot; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'matplotlib'))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, check=True)
    assert done.stdout.strip() == "[]"
