"""Watching a rolling upgrade from the CLI: the renderers on canned ``…/rollout`` answers,
the polling loop on a fake clock, and the verbs against a fake ARM server."""

from __future__ import annotations

import copy
import doctest
import io
import json
import re
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from rich.console import Console
from typer.testing import CliRunner, Result

from scaleset.cli import rollout_view, vmss, watch
from scaleset.cli.client import ClientError, ClientFactory, TransportError
from scaleset.cli.rollout_view import View
from tests.unit.test_cli_client import ENDPOINT, SS, FakeArm, latest
from tests.support import FakeClock

ANSI = re.compile(r"\x1b\[")


def instance(iid: str, state: str, *, batch: int | None = None, health: str = "Healthy",
             version: str = "1.0.0", left: float | None = None,
             reason: str | None = None) -> dict[str, Any]:
    return {"instanceId": iid, "imageVersion": version, "health": health,
            "powerState": "running", "protected": state == "protected", "state": state,
            "batch": batch, "healthDeadline": None, "healthSecondsLeft": left,
            "reason": reason}


def rollout(status: str = "RollingForward", *, instances: list[dict[str, Any]] | None = None,
            batches: list[tuple[list[str], bool]] | None = None, total: int = 4,
            counts: tuple[int, int, int, int] = (1, 1, 3, 3), run_id: str = "run1",
            gates: tuple[float, float] = (12.5, 50.0), error: dict[str, str] | None = None,
            cancel: bool = False) -> dict[str, Any]:
    """A ``GET …/rollout`` answer: 8 instances, batch 2 of 4 under way by default."""
    if batches is None:
        batches = [(["0", "1"], True), (["2", "3", "4"], False)]
    if instances is None:
        instances = [
            instance("0", "healthy", batch=0, version="1.1.0"),
            instance("1", "failed", batch=0, health="Unhealthy", version="1.1.0",
                     reason="not healthy within 30 s of its upgrade"),
            instance("2", "waitingForHealth", batch=1, health="Initializing",
                     version="1.1.0", left=12.3),
            instance("3", "upgrading", batch=1, health="Unknown"),
            instance("4", "inBatch", batch=1),
            instance("5", "pending"), instance("6", "protected"), instance("7", "pending")]
    ok, failed, busy, pending = counts
    return {
        "now": "2026-12-07T15:01:20.000Z",
        "scaleSet": {"id": SS, "name": "vmss1", "resourceGroup": "rg1", "capacity": 8},
        "run": {
            "runId": run_id, "kind": "OSImage", "startedBy": "Platform", "status": status,
            "startTime": "2026-12-07T15:00:00.000Z", "endTime": None,
            "cancelRequested": cancel, "error": error, "targetImageVersion": "1.1.0",
            "nextBatchAt": None,
            "batches": [{"index": n, "instanceIds": ids, "start": "2026-12-07T15:00:00.000Z",
                         "end": "2026-12-07T15:00:40.000Z" if ended else None}
                        for n, (ids, ended) in enumerate(batches)],
            "batchesTotal": total,
            "progress": {"successfulInstanceCount": ok, "failedInstanceCount": failed,
                         "inProgressInstanceCount": busy, "pendingInstanceCount": pending},
            "gates": [
                {"name": "maxUnhealthyInstancePercent", "value": gates[0], "threshold": 20,
                 "unhealthy": round(gates[0] * 8 / 100), "total": 8, "ok": gates[0] <= 20},
                {"name": "maxUnhealthyUpgradedInstancePercent", "value": gates[1],
                 "threshold": 60, "ok": gates[1] <= 60}]},
        "instances": instances}


def text(renderable: Any, width: int = 120) -> str:
    console = Console(width=width, record=True, file=io.StringIO(), color_system=None)
    console.print(renderable)
    return console.export_text()


# -- the renderers ---------------------------------------------------------------------------

def test_the_examples_in_the_docstrings_hold() -> None:
    result = doctest.testmod(rollout_view)
    assert result.attempted > 0 and result.failed == 0


def test_the_live_display_shows_batches_the_current_batch_counts_and_gates() -> None:
    shown = text(rollout_view.renderable(rollout_view.parse(rollout())))
    assert "vmss1 RollingForward" in shown
    assert "run run1 · OSImage · started by Platform · to 1.1.0 · 1 m 20 s" in shown
    assert re.search(r"Batches\s+\S+\s+1/4", shown), shown
    assert "succeeded 1 · failed 1 · in progress 3 · pending 3" in shown
    assert "maxUnhealthyInstancePercent 12.5% (1/8) <= 20% ok" in shown
    assert "maxUnhealthyUpgradedInstancePercent 50% <= 60% ok" in shown
    rows = {line.split()[0]: line for line in shown.splitlines()
            if line.strip()[:1].isdigit() and "Batches" not in line}
    # the current batch's instances, each with its state; the wait left on the waiting one
    assert sorted(rows) == ["2", "3", "4"]
    assert re.search(r"2\s+waiting for health\s+Initializing\s+1\.1\.0\s+12 s", rows["2"])
    assert re.search(r"3\s+upgrading\s+Unknown\s+1\.0\.0\s*$", rows["3"])
    assert re.search(r"4\s+in batch\s+Healthy", rows["4"])
    assert "batch 2/4" in shown


def test_the_live_display_marks_a_gate_past_its_threshold_and_shows_the_error() -> None:
    error = {"code": "MaxUnhealthyInstancePercentExceededInRollingUpgrade",
             "message": "3 of 8 instances (37.5%) are unhealthy"}
    view = rollout_view.parse(rollout("Faulted", gates=(37.5, 50.0), error=error,
                                      batches=[(["0", "1"], True), (["2", "3", "4"], True)]))
    shown = text(rollout_view.renderable(view))
    assert "vmss1 Faulted" in shown
    assert "maxUnhealthyInstancePercent 37.5% (3/8) > 20% exceeded" in shown
    assert "(MaxUnhealthyInstancePercentExceededInRollingUpgrade) 3 of 8 instances" in shown
    assert "2/4" in shown  # batches done of total
    assert "waiting for health" not in shown  # no current batch once the run ended


def test_rolling_back_instances_are_listed_while_the_run_rolls_back() -> None:
    view = rollout_view.parse(rollout("RollingBack", instances=[
        instance("0", "rolledBack", batch=0, reason="rolled back to 1.0.0"),
        instance("1", "rollingBack", batch=0, version="1.1.0", health="Unhealthy"),
        instance("2", "pending")], batches=[(["0", "1"], True)], total=2))
    shown = text(rollout_view.renderable(view))
    assert "vmss1 RollingBack" in shown
    assert re.search(r"1\s+rolling back\s+Unhealthy\s+1\.1\.0", shown)
    assert not re.search(r"^\s*0\s+rolled back", shown, re.MULTILINE)  # settled: not listed


@pytest.mark.parametrize(("state", "words"), [
    ("pending", "pending"), ("inBatch", "in batch"), ("upgrading", "upgrading"),
    ("waitingForHealth", "waiting for health (Initializing, 1 m 05 s left)"),
    ("healthy", "healthy on 1.1.0"), ("rollingBack", "rolling back"),
    ("rolledBack", "rolled back: went back to 1.0.0"),
    ("failed", "failed: went back to 1.0.0"), ("protected", "protected"),
    ("skipped", "skipped"), ("idle", "idle")])
def test_every_instance_state_reads_as_words(state: str, words: str) -> None:
    one = rollout_view.Instance("3", state, health="Initializing", image_version="1.1.0",
                                seconds_left=65.0, reason="went back to 1.0.0")
    assert rollout_view.instance_text(one) == words
    assert state in rollout_view.STATE_LABELS and state in rollout_view.STATE_STYLES


def test_plain_lines_say_what_changed_one_line_each() -> None:
    first = rollout_view.parse(rollout())
    opening = rollout_view.changes(None, first)
    assert opening == [
        "rolling upgrade run1 (OSImage, started by Platform) to image 1.1.0: RollingForward",
        "batch 2/4 started: instances 2, 3, 4",
        "instance 1: failed: not healthy within 30 s of its upgrade",
        "instance 2: waiting for health (Initializing, 12 s left)",
        "instance 3: upgrading",
        "instance 4: in batch",
        "batches done: 1/4",
        "gate maxUnhealthyInstancePercent 12.5% (1/8) <= 20% ok",
        "gate maxUnhealthyUpgradedInstancePercent 50% <= 60% ok",
        "progress: succeeded 1 · failed 1 · in progress 3 · pending 3"]

    # The same answer again: nothing to say (the wait's countdown is no change of state).
    again = copy.deepcopy(rollout())
    again["instances"][2]["healthSecondsLeft"] = 11.3
    assert rollout_view.changes(first, rollout_view.parse(again)) == []

    # Batch 2 ends: its instances settle, the gates are said as the run evaluated them.
    settled = rollout(batches=[(["0", "1"], True), (["2", "3", "4"], True), (["5", "7"], False)],
                      counts=(4, 1, 2, 1), gates=(0.0, 25.0), instances=[
        instance("0", "healthy", batch=0, version="1.1.0"),
        instance("1", "failed", batch=0, reason="not healthy within 30 s of its upgrade"),
        *(instance(i, "healthy", batch=1, version="1.1.0") for i in "234"),
        instance("5", "inBatch", batch=2), instance("6", "protected"),
        instance("7", "inBatch", batch=2)])
    second = rollout_view.parse(settled)
    assert rollout_view.changes(first, second) == [
        "batch 3/4 started: instances 5, 7",
        "instance 2: healthy on 1.1.0", "instance 3: healthy on 1.1.0",
        "instance 4: healthy on 1.1.0", "instance 5: in batch", "instance 7: in batch",
        "batch 2/4 done",
        "gate maxUnhealthyInstancePercent 0% (0/8) <= 20% ok",
        "gate maxUnhealthyUpgradedInstancePercent 25% <= 60% ok",
        "progress: succeeded 4 · failed 1 · in progress 2 · pending 1"]

    # The run ends: the final status is the last line.
    done = copy.deepcopy(settled)
    done["run"]["status"] = "Completed"
    done["run"]["batches"][2]["end"] = "2026-12-07T15:02:00.000Z"
    done["run"]["progress"] = {"successfulInstanceCount": 6, "failedInstanceCount": 1,
                               "inProgressInstanceCount": 0, "pendingInstanceCount": 0}
    for i in (5, 7):
        done["instances"][i]["state"] = "healthy"
    final = rollout_view.changes(second, rollout_view.parse(done))
    assert final[-1] == "status: Completed"
    assert "batch 3/4 done" in final
    assert "progress: succeeded 6 · failed 1 · in progress 0 · pending 0" in final
    assert not any(ANSI.search(line) for line in opening + final)


def test_plain_lines_for_a_cancel_and_for_no_run_at_all() -> None:
    before = rollout_view.parse(rollout())
    cancelling = rollout_view.parse(rollout(cancel=True))
    assert rollout_view.changes(before, cancelling) == [
        "cancel requested: the run stops after its current batch"]
    nothing = rollout_view.parse({"scaleSet": {"name": "vmss1"}, "run": None, "instances": [
        instance("0", "idle")]})
    assert rollout_view.changes(None, nothing) == ["no rolling upgrade yet"]
    assert rollout_view.changes(nothing, nothing) == []
    assert "no rolling upgrade yet" in text(rollout_view.renderable(nothing))


@pytest.mark.parametrize(("status", "code"), [
    ("Completed", 0), ("Faulted", 1), ("Cancelled", 1), ("RollingForward", 1),
    ("RollingBack", 1)])
def test_only_a_completed_run_exits_0(status: str, code: int) -> None:
    assert rollout_view.exit_code(rollout_view.parse(rollout(status))) == code


def test_a_server_without_rollout_still_gets_status_and_counts() -> None:
    view = rollout_view.from_latest(json.loads(latest("RollingForward", ok=2, busy=1,
                                                      pending=3).content), "vmss1")
    assert (view.status, view.running, view.detailed) == ("RollingForward", True, False)
    lines = rollout_view.changes(None, view)
    assert lines[-1] == "progress: succeeded 2 · failed 0 · in progress 1 · pending 3"
    shown = text(rollout_view.renderable(view))
    assert "Batches" not in shown and "succeeded 2" in shown


# -- the loop --------------------------------------------------------------------------------

Clock = FakeClock


class Recorder:
    def __init__(self) -> None:
        self.views: list[View] = []
        self.notes: list[str] = []
        self.closed = False

    def show(self, view: View) -> None:
        self.views.append(view)

    def note(self, line: str) -> None:
        self.notes.append(line)

    def close(self) -> None:
        self.closed = True


def answers(*items: dict[str, Any] | Exception) -> Callable[[], View]:
    queue = list(items)

    def fetch() -> View:
        item = queue.pop(0) if len(queue) > 1 else queue[0]
        if isinstance(item, Exception):
            raise item
        return rollout_view.parse(item)
    return fetch


def test_the_loop_polls_each_second_until_the_run_ends() -> None:
    clock, shown = Clock(), Recorder()
    view = watch.watch(answers(rollout(), rollout(), rollout("Completed")), shown,
                       sleep=clock.sleep, clock=clock)
    assert view.status == "Completed"
    assert clock.sleeps == [1.0, 1.0]
    assert [v.status for v in shown.views] == ["RollingForward"] * 2 + ["Completed"]
    assert shown.closed


def test_the_loop_waits_for_a_run_then_follows_it() -> None:
    clock, shown = Clock(), Recorder()
    none = {"scaleSet": {"name": "vmss1"}, "run": None, "instances": []}
    view = watch.watch(answers(none, none, rollout(), rollout("Faulted")), shown,
                       sleep=clock.sleep, clock=clock)
    assert view.status == "Faulted" and len(clock.sleeps) == 3


def test_the_loop_gives_up_at_its_timeout_saying_what_it_saw() -> None:
    clock, shown = Clock(), Recorder()
    with pytest.raises(ClientError) as timed_out:
        watch.watch(answers(rollout()), shown, sleep=clock.sleep, clock=clock, timeout=5)
    assert timed_out.value.code == "WaitTimeout"
    assert "within 5 s" in timed_out.value.message
    assert "RollingForward: succeeded 1" in timed_out.value.message
    assert clock.now == 5.0 and shown.closed


def test_the_loop_rides_out_a_server_restart_but_not_a_long_outage() -> None:
    clock, shown = Clock(), Recorder()
    down = TransportError("ConnectionFailed", "cannot reach https://cp")
    view = watch.watch(answers(rollout(), down, down, rollout("Completed")), shown,
                       sleep=clock.sleep, clock=clock)
    assert view.status == "Completed"
    assert shown.notes == ["cannot reach the server (cannot reach https://cp); retrying",
                           "the server answers again"]
    with pytest.raises(TransportError):
        watch.watch(answers(rollout(), down), Recorder(), sleep=clock.sleep, clock=clock,
                    patience=10)


def test_a_terminal_gets_the_live_display_and_a_pipe_plain_lines() -> None:
    terminal = Console(file=io.StringIO(), force_terminal=True, width=100)
    pipe = Console(file=io.StringIO(), force_terminal=False)
    assert isinstance(watch.display_for(terminal), watch.LiveDisplay)
    assert isinstance(watch.display_for(pipe), watch.LineDisplay)
    live = watch.LiveDisplay(terminal)
    live.show(rollout_view.parse(rollout()))
    live.show(rollout_view.parse(rollout("Completed", batches=[(["0", "1"], True)])))
    live.close()
    drawn = terminal.file.getvalue()  # type: ignore[attr-defined]
    assert "\x1b[" in drawn and "Completed" in drawn  # redrawn in place, on a terminal


# -- the verbs -------------------------------------------------------------------------------

@pytest.fixture
def fake() -> FakeArm:
    return FakeArm()


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    """The watch's clock; the client's sleeps move it on."""
    found = Clock()
    monkeypatch.setattr(watch, "time", SimpleNamespace(monotonic=found))
    return found


@pytest.fixture
def cli(fake: FakeArm, clock: Clock, tmp_path: Path) -> Callable[..., Result]:
    """Run ``scaleset vmss ...`` against the fake (stderr is not a terminal: plain lines)."""
    def run(*args: str) -> Result:
        factory = ClientFactory(transport=httpx.MockTransport(fake), sleep=clock.sleep,
                                environ={"HOME": str(tmp_path), "SCALESET_ENDPOINT": ENDPOINT,
                                         "SCALESET_TOKEN": "tok"})
        return CliRunner().invoke(vmss.app, list(args[1:]), obj=factory,
                                  env={"COLUMNS": "200", "NO_COLOR": "1"})
    return run


def on_rollout(fake: FakeArm, *bodies: dict[str, Any]) -> None:
    fake.on("GET", SS + "/rollout", *(httpx.Response(200, json=b) for b in bodies))


def test_get_latest_without_watch_is_unchanged(fake: FakeArm, cli: Callable[..., Result]
                                               ) -> None:
    fake.on("GET", SS + "/rollingUpgrades/latest", latest("RollingForward", ok=3, pending=2))
    result = cli("vmss", "rolling-upgrade", "get-latest", "-g", "rg1", "-n", "vmss1")
    assert (result.exit_code, result.stderr) == (0, "")
    assert json.loads(result.stdout)["properties"]["runningStatus"]["code"] == "RollingForward"
    assert [r.url.path for r in fake.requests] == [SS + "/rollingUpgrades/latest"]


def test_get_latest_watch_follows_the_run_and_exits_0_when_it_completes(
        fake: FakeArm, cli: Callable[..., Result], clock: Clock) -> None:
    done = rollout("Completed", batches=[(["0", "1"], True), (["2", "3"], True)], total=2,
                   counts=(4, 0, 0, 0), instances=[instance(i, "healthy", batch=int(i) // 2,
                                                            version="1.1.0") for i in "0123"])
    on_rollout(fake, rollout(), rollout(), done)
    fake.on("GET", SS + "/rollingUpgrades/latest", latest("Completed", ok=4))
    result = cli("vmss", "rolling-upgrade", "get-latest", "-g", "rg1", "-n", "vmss1", "--watch")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["properties"]["runningStatus"]["code"] == "Completed"
    lines = result.stderr.splitlines()
    assert lines[0].startswith("rolling upgrade run1 (OSImage, started by Platform)")
    assert "instance 2: healthy on 1.1.0" in lines and lines[-1] == "status: Completed"
    assert not ANSI.search(result.stderr)
    assert clock.sleeps == [1.0, 1.0]
    polled = fake.sent("GET", SS + "/rollout")
    assert "runId" not in polled[0].url.params  # the latest run, then that run by its id
    assert [r.url.params.get("runId") for r in polled[1:]] == ["run1", "run1"]


def test_get_latest_watch_exits_1_with_the_error_of_a_faulted_run(
        fake: FakeArm, cli: Callable[..., Result]) -> None:
    error = {"code": "MaxUnhealthyUpgradedInstancePercentExceededInRollingUpgrade",
             "message": "1 of 2 upgraded instances (50%) are unhealthy"}
    on_rollout(fake, rollout(), rollout("Faulted", error=error, gates=(12.5, 75.0)))
    fake.on("GET", SS + "/rollingUpgrades/latest", latest("Faulted", ok=1, failed=1,
                                                          error=error))
    result = cli("vmss", "rolling-upgrade", "get-latest", "-g", "rg1", "-n", "vmss1", "-w")
    assert result.exit_code == 1
    assert result.stderr.splitlines()[-2:] == [
        "status: Faulted",
        "error (MaxUnhealthyUpgradedInstancePercentExceededInRollingUpgrade): 1 of 2 "
        "upgraded instances (50%) are unhealthy"]
    assert "gate maxUnhealthyUpgradedInstancePercent 75% > 60% exceeded" in result.stderr


def test_get_latest_watch_times_out_with_exit_1(fake: FakeArm, cli: Callable[..., Result],
                                               clock: Clock) -> None:
    on_rollout(fake, rollout())
    fake.on("GET", SS + "/rollingUpgrades/latest", latest("RollingForward"))
    result = cli("vmss", "rolling-upgrade", "get-latest", "-g", "rg1", "-n", "vmss1",
                 "--watch", "--timeout", "3")
    assert result.exit_code == 1
    assert "error (WaitTimeout): the rolling upgrade did not end within 3 s" in result.stderr
    assert clock.sleeps == [1.0, 1.0, 1.0]


def test_get_latest_watch_against_a_server_without_rollout_reads_latest(
        fake: FakeArm, cli: Callable[..., Result]) -> None:
    fake.on("GET", SS + "/rollingUpgrades/latest", latest("RollingForward", ok=1, pending=1),
            latest("Completed", ok=2))
    result = cli("vmss", "rolling-upgrade", "get-latest", "-g", "rg1", "-n", "vmss1", "--watch")
    assert result.exit_code == 0, result.output
    assert "progress: succeeded 2 · failed 0 · in progress 0 · pending 0" in result.stderr


def test_start_wait_shows_the_run_it_started(fake: FakeArm, cli: Callable[..., Result]
                                            ) -> None:
    fake.on("POST", SS + "/osRollingUpgrade", httpx.Response(
        202, headers=fake.operation("op9", "InProgress", "Succeeded")))
    on_rollout(fake, rollout(run_id="mine"), rollout("Completed", run_id="mine"))
    fake.on("GET", SS + "/rollingUpgrades/latest", latest("Completed", ok=8))
    result = cli("vmss", "rolling-upgrade", "start", "-g", "rg1", "-n", "vmss1", "--wait")
    assert result.exit_code == 0, result.output
    assert result.stderr.startswith("rolling upgrade mine (OSImage")
    assert json.loads(result.stdout)["properties"]["progress"]["successfulInstanceCount"] == 8


def test_cancel_shows_the_run_until_it_stopped(fake: FakeArm, cli: Callable[..., Result]
                                              ) -> None:
    fake.on("POST", SS + "/rollingUpgrades/cancel", httpx.Response(
        202, headers=fake.operation("opc", "InProgress", "Succeeded")))
    on_rollout(fake, rollout(cancel=True), rollout("Cancelled", cancel=True))
    fake.on("GET", SS + "/rollingUpgrades/latest", latest("Cancelled", ok=1, failed=1,
                                                          pending=3))
    result = cli("vmss", "rolling-upgrade", "cancel", "-g", "rg1", "-n", "vmss1")
    assert result.exit_code == 0, result.output
    assert "cancel requested: the run stops after its current batch" in result.stderr
    assert result.stderr.splitlines()[-1] == (
        "the rolling upgrade was cancelled: succeeded 1 · failed 1 · in progress 3 · "
        "pending 3")
    assert json.loads(result.stdout)["properties"]["runningStatus"]["code"] == "Cancelled"


def test_cancel_says_how_a_run_ended_that_finished_first(
        fake: FakeArm, cli: Callable[..., Result]) -> None:
    fake.on("POST", SS + "/rollingUpgrades/cancel", httpx.Response(
        202, headers=fake.operation("opd", "Succeeded")))
    on_rollout(fake, rollout("Completed", counts=(8, 0, 0, 0)))
    fake.on("GET", SS + "/rollingUpgrades/latest", latest("Completed", ok=8))
    result = cli("vmss", "rolling-upgrade", "cancel", "-g", "rg1", "-n", "vmss1")
    assert result.exit_code == 0, result.output
    assert result.stderr.splitlines()[-1] == (
        "the rolling upgrade ended Completed before the cancel took effect: succeeded 8 · "
        "failed 0 · in progress 0 · pending 0")


def test_a_missing_scale_set_is_an_error_not_an_old_server(
        fake: FakeArm, cli: Callable[..., Result]) -> None:
    fake.on("GET", SS + "/rollout", httpx.Response(404, json={"error": {
        "code": "ResourceNotFound", "message": "scale set 'vmss1' was not found"}}))
    result = cli("vmss", "rolling-upgrade", "get-latest", "-g", "rg1", "-n", "vmss1", "--watch")
    assert result.exit_code == 1
    assert result.stderr.startswith("error (ResourceNotFound)")


def test_ctrl_c_stops_watching_not_the_run(fake: FakeArm, cli: Callable[..., Result]) -> None:
    def interrupted(_: httpx.Request) -> httpx.Response:
        raise KeyboardInterrupt
    fake.on("GET", SS + "/rollout", httpx.Response(200, json=rollout()), interrupted)
    result = cli("vmss", "rolling-upgrade", "get-latest", "-g", "rg1", "-n", "vmss1", "--watch")
    assert result.exit_code == watch.INTERRUPTED
    assert result.stderr.splitlines()[-1] == "stopped watching; the rolling upgrade goes on"
    assert not fake.sent("POST", SS + "/rollingUpgrades/cancel")
