"""``scaleset vmss events`` against a fake ARM server: listing, filters, and a follow that
survives dropped connections without missing or repeating an event."""

from __future__ import annotations

import doctest
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner, Result

from scaleset.cli import events, vmss
from scaleset.cli.client import ArmClient, ClientError, ClientFactory
from tests.unit.test_cli_client import ENDPOINT, SS, SUB, FakeArm
from tests.support import FakeClock

EVENTS = SS + "/events"


def event(n: int, kind: str = "InstanceUpgraded", instance: str | None = "3",
          message: str | None = None) -> dict[str, Any]:
    return {"id": str(n), "time": f"2026-12-07T15:00:{n:02d}.000Z", "kind": kind,
            "runId": "run1", "instanceId": instance,
            "message": message or f"event {n}", "data": {}}


def sse(*items: dict[str, Any], ping: bool = True) -> bytes:
    """Items as the server frames them: ``id`` and ``data`` lines, a blank line each."""
    out = ": ping\n\n" if ping else ""
    for item in items:
        out += f"id: {item['id']}\ndata: {json.dumps(item)}\n\n"
    return out.encode()


class Dropped(httpx.SyncByteStream):
    """A body that sends ``chunks`` and then loses the connection."""

    def __init__(self, *chunks: bytes, error: Exception | None = None) -> None:
        self.chunks = chunks
        self.error = error or httpx.RemoteProtocolError("peer closed connection")

    def __iter__(self) -> Iterator[bytes]:
        yield from self.chunks
        raise self.error


Clock = FakeClock


@pytest.fixture
def fake() -> FakeArm:
    return FakeArm()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def cli(fake: FakeArm, clock: Clock, tmp_path: Path) -> Callable[..., Result]:
    def run(*args: str) -> Result:
        factory = ClientFactory(transport=httpx.MockTransport(fake), sleep=clock.sleep,
                                environ={"HOME": str(tmp_path), "SCALESET_ENDPOINT": ENDPOINT,
                                         "SCALESET_TOKEN": "tok"})
        return CliRunner().invoke(vmss.app, ["events", "-g", "rg1", "-n", "vmss1", *args],
                                  obj=factory, env={"COLUMNS": "200", "NO_COLOR": "1"})
    return run


def client(fake: FakeArm, clock: Clock) -> ArmClient:
    return ArmClient(endpoint=ENDPOINT, token="tok", subscription=SUB,
                     transport=httpx.MockTransport(fake), sleep=clock.sleep)


def test_the_examples_in_the_docstrings_hold() -> None:
    result = doctest.testmod(events)
    assert result.attempted > 0 and result.failed == 0


# -- listing ---------------------------------------------------------------------------------

def test_events_list_oldest_first_one_line_each_across_pages(
        fake: FakeArm, cli: Callable[..., Result]) -> None:
    link = f"{ENDPOINT}{EVENTS}?api-version=2026-04-01&after=2"
    fake.on("GET", EVENTS, httpx.Response(200, json={
        "value": [event(1, "RunStarted", None, "run1 started by Platform to 1.1.0"),
                  event(2, "BatchStarted", None, "batch 1: 2 instances")],
        "nextLink": link}),
        httpx.Response(200, json={"value": [event(3, "InstanceFailed", "1",
                                                  "not healthy within 30 s\nlast: 503")]}))
    result = cli()
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["Time", "Kind", "Instance", "Message"]
    assert [line.split()[:3] for line in lines[1:]] == [
        ["2026-12-07T15:00:01.000Z", "RunStarted", "-"],
        ["2026-12-07T15:00:02.000Z", "BatchStarted", "-"],
        ["2026-12-07T15:00:03.000Z", "InstanceFailed", "1"]]
    assert lines[3].endswith("not healthy within 30 s last: 503")  # one line per event
    assert len(fake.sent("GET", EVENTS)) == 2


def test_events_filters_reach_the_server(fake: FakeArm, cli: Callable[..., Result]) -> None:
    fake.on("GET", EVENTS, httpx.Response(200, json={"value": [event(1), event(2)]}))
    result = cli("--kind", "BatchStarted,RunFinished", "--kind", "GateEvaluated",
                 "--since", "2026-12-07T15:00:00Z", "--run-id", "run1", "--top", "1",
                 "-o", "json")
    assert result.exit_code == 0, result.output
    assert [e["id"] for e in json.loads(result.stdout)] == ["1"]  # --top: at most one
    params = fake.sent("GET", EVENTS)[0].url.params
    assert params["kind"] == "BatchStarted,RunFinished,GateEvaluated"
    assert params["since"] == "2026-12-07T15:00:00Z"
    assert (params["runId"], params["$top"]) == ("run1", "1")


def test_since_takes_a_span_before_now_and_refuses_nonsense(
        fake: FakeArm, cli: Callable[..., Result]) -> None:
    fake.on("GET", EVENTS, httpx.Response(200, json={"value": []}))
    assert cli("--since", "10m").exit_code == 0
    assert fake.sent("GET", EVENTS)[0].url.params["since"].endswith("Z")
    bad = cli("--since", "yesterday")
    assert bad.exit_code == 2
    assert "--since" in bad.stderr and "30s, 10m, 2h, 1d" in bad.stderr


def test_a_bad_filter_is_the_servers_error(fake: FakeArm, cli: Callable[..., Result]) -> None:
    fake.on("GET", EVENTS, httpx.Response(400, json={"error": {
        "code": "InvalidParameter", "target": "kind",
        "message": "kind must be up to 32 comma-separated event kinds"}}))
    result = cli("--kind", "no-such-kind!")
    assert result.exit_code == 1
    assert result.stderr.startswith("error (InvalidParameter): kind must be")


# -- the stream ------------------------------------------------------------------------------

def test_messages_follow_the_event_stream_rules() -> None:
    lines = ["retry: 2500", "id: 4", "data: {\"a\":", "data:1}", "", ": ping", "",
             "event: x", "", "id: 5", "data: cut off by a drop"]
    assert list(events.messages(lines)) == [events.Message('{"a":\n1}', "4", 2500)]


def test_follow_reconnects_with_last_event_id_and_shows_each_event_once(
        fake: FakeArm, clock: Clock) -> None:
    first = httpx.Response(200, headers={"Content-Type": "text/event-stream"},
                           stream=Dropped(sse(event(1), event(2)), b"id: 3\ndata: {\"id\""))
    refused = httpx.ConnectError("connection refused")

    def down(_: httpx.Request) -> httpx.Response:
        raise refused
    # The server sends 2 again after the reconnection: the client must not show it twice.
    second = httpx.Response(200, headers={"Content-Type": "text/event-stream"},
                            content=sse(event(2), event(3), event(4)))
    fake.on("GET", EVENTS, first, down, second)
    shown: list[dict[str, Any]] = []
    follower = events.Follower(client(fake, clock), SS, params={"kind": "InstanceUpgraded"},
                               on_event=shown.append, top=4, clock=clock)
    follower.run()
    assert [e["id"] for e in shown] == ["1", "2", "3", "4"]
    sent = fake.sent("GET", EVENTS)
    assert len(sent) == 3
    assert "last-event-id" not in sent[0].headers
    assert [r.headers["last-event-id"] for r in sent[1:]] == ["2", "2"]
    assert all(r.url.params["follow"] == "true" and r.url.params["kind"] == "InstanceUpgraded"
               and r.headers["accept"] == "text/event-stream" for r in sent)
    assert clock.sleeps == [1.0, 1.0] and follower.connections == 2


def test_follow_honours_the_servers_retry_and_a_clean_end(fake: FakeArm, clock: Clock) -> None:
    fake.on("GET", EVENTS,
            httpx.Response(200, content=b"retry: 3000\n\n" + sse(event(7))),  # then it ends
            httpx.Response(200, content=sse(event(8))))
    shown: list[dict[str, Any]] = []
    events.Follower(client(fake, clock), SS, params={}, on_event=shown.append, top=2,
                    clock=clock).run()
    assert [e["id"] for e in shown] == ["7", "8"]
    assert clock.sleeps == [3.0]
    assert fake.sent("GET", EVENTS)[1].headers["last-event-id"] == "7"


def test_follow_gives_up_after_its_patience_without_a_connection(
        fake: FakeArm, clock: Clock) -> None:
    def down(_: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused")
    fake.on("GET", EVENTS, httpx.Response(200, content=sse(event(1))), down)
    shown: list[dict[str, Any]] = []
    with pytest.raises(ClientError) as lost:
        events.Follower(client(fake, clock), SS, params={}, on_event=shown.append,
                        clock=clock, patience=5).run()
    assert lost.value.code == "EventStreamLost"
    assert "last event shown: 1" in lost.value.message
    assert clock.now == 5.0 and [e["id"] for e in shown] == ["1"]


def test_follow_stops_at_once_on_a_refusal(fake: FakeArm, clock: Clock) -> None:
    fake.on("GET", EVENTS, httpx.Response(403, json={"error": {
        "code": "AuthorizationFailed", "message": "the token may not read events"}}))
    with pytest.raises(ClientError) as refused:
        events.Follower(client(fake, clock), SS, params={}, on_event=print,
                        clock=clock).run()
    assert refused.value.code == "AuthorizationFailed" and clock.sleeps == []


def test_follow_prints_json_lines_and_ctrl_c_exits_0(fake: FakeArm,
                                                     cli: Callable[..., Result]) -> None:
    fake.on("GET", EVENTS, lambda _: httpx.Response(200, stream=Dropped(
        sse(event(1), event(2, "RunFinished", None)), error=KeyboardInterrupt())))
    result = cli("--follow", "-o", "json")
    assert result.exit_code == 0, result.output
    assert [json.loads(line)["id"] for line in result.stdout.splitlines()] == ["1", "2"]
    table = cli("-f", "--top", "2")
    assert table.exit_code == 0, table.output
    lines = table.stdout.splitlines()
    assert lines[0].split() == ["Time", "Kind", "Instance", "Message"]
    assert lines[2].split()[1:3] == ["RunFinished", "-"]
