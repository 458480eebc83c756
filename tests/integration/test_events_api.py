"""``…/events`` and ``…/rollout`` through the API, on the virtual clock (simulated driver).

* a rollout's events: run started, each batch started and settled, the gate before each
  batch, each instance upgraded, the run finished; a bad image's failures name their
  cause and the rollbacks follow; filters by kind, run, time; pages without gaps;
* the rollout view: each instance's state while a batch is in flight (upgrading, waiting
  for health with the time left, pending), batches done/total, the gates against their
  thresholds; afterwards every instance healthy on the target;
* bad parameters are 400s naming the parameter.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from scaleset.api.app import create_app
from scaleset.api.context import ApiContext
from scaleset.store.repository import Store
from tests.integration.test_api import RG, V, Api, body
from tests.support import World

VMSS = f"{RG}/virtualMachineScaleSets/vmss1"
BOOTED = timedelta(seconds=60)


def make_api(store: Store, **world: Any) -> Iterator[Api]:
    w = World.create(store, **world)
    context = ApiContext(store=store, clock=w.clock, settings=w.settings, auth_required=False)
    with TestClient(create_app(context), base_url="https://testserver") as client:
        yield Api(w, client)


@pytest.fixture
def api(store: Store) -> Iterator[Api]:
    yield from make_api(store)


@pytest.fixture
def bad_api(store: Store) -> Iterator[Api]:
    yield from make_api(store, bad_images=frozenset({"1.1.0"}))


def create(api: Api, capacity: int = 10) -> str:
    api.world.clock.advance_to(api.world.clock.now() + timedelta(seconds=1))
    r = api.client.put(f"{VMSS}{V}", json=body(capacity))
    assert r.status_code == 201, r.text
    [sid] = api.world.scale_set_ids()
    api.world.reconciler.reconcile(sid)
    api.world.clock.advance_to(api.world.clock.now() + BOOTED)
    api.world.reconciler.reconcile(sid)
    return sid


def events(api: Api, query: str = "") -> list[dict[str, Any]]:
    """Every event, following nextLink."""
    out: list[dict[str, Any]] = []
    url: str | None = f"{VMSS}/events{V}{query}"
    while url is not None:
        r = api.client.get(url)
        assert r.status_code == 200, r.text
        out += r.json()["value"]
        url = r.json().get("nextLink")
    return out


def rollout(api: Api) -> dict[str, Any]:
    r = api.client.get(f"{VMSS}/rollout{V}")
    assert r.status_code == 200, r.text
    view = r.json()
    assert isinstance(view, dict)
    return view


def step(api: Api, sid: str, seconds: float) -> None:
    api.world.clock.advance_to(api.world.clock.now() + timedelta(seconds=seconds))
    api.world.reconciler.reconcile(sid)


def test_the_rollout_view_follows_a_run_instance_by_instance(api: Api) -> None:
    sid = create(api)
    before = rollout(api)
    assert before["run"] is None
    assert {i["state"] for i in before["instances"]} == {"idle"}
    assert before["scaleSet"]["automaticOSUpgrade"] is True
    assert before["scaleSet"]["capacity"] == 10

    api.world.publish("1.1.0")
    api.world.reconciler.reconcile(sid)
    view = rollout(api)
    run = view["run"]
    assert run["status"] == "RollingForward" and run["startedBy"] == "Platform"
    assert run["targetImageVersion"] == "1.1.0"
    assert len(run["batches"]) == 1 and run["batchesTotal"] == 5  # 20% of 10: 2 a batch
    states = {i["instanceId"]: i["state"] for i in view["instances"]}
    first = run["batches"][0]["instanceIds"]
    assert len(first) == 2
    assert {states[i] for i in first} <= {"inBatch", "upgrading"}
    assert {s for i, s in states.items() if i not in first} == {"pending"}
    gates = {g["name"]: g for g in run["gates"]}
    assert gates["maxUnhealthyInstancePercent"]["threshold"] == 20
    assert gates["maxUnhealthyUpgradedInstancePercent"]["value"] == 0.0

    # Step until the first batch waits for health: the time left counts down.
    waiting: list[dict[str, Any]] = []
    for _ in range(200):
        step(api, sid, 1)
        waiting = [i for i in rollout(api)["instances"] if i["state"] == "waitingForHealth"]
        if waiting:
            break
    assert waiting, "no instance ever waited for health"
    left = waiting[0]["healthSecondsLeft"]
    assert 0 < left <= 300
    step(api, sid, 0.5)
    again = {i["instanceId"]: i for i in rollout(api)["instances"]}[waiting[0]["instanceId"]]
    if again["state"] == "waitingForHealth":
        assert again["healthSecondsLeft"] < left

    api.settle()
    done = rollout(api)
    assert done["run"]["status"] == "Completed"
    assert len(done["run"]["batches"]) == done["run"]["batchesTotal"] == 5
    assert all(b["end"] is not None for b in done["run"]["batches"])
    assert {(i["state"], i["imageVersion"], i["health"]) for i in done["instances"]} == {
        ("healthy", "1.1.0", "Healthy")}
    assert done["run"]["progress"]["successfulInstanceCount"] == 10


def test_a_rollouts_events_tell_its_story_in_order(api: Api) -> None:
    sid = create(api)
    api.world.publish("1.1.0")
    api.world.reconciler.reconcile(sid)
    api.settle()
    run_id = rollout(api)["run"]["runId"]
    story = events(api, f"&runId={run_id}")
    kinds = [e["kind"] for e in story]
    assert kinds[0] == "RunStarted" and kinds[-1] == "RunFinished"
    assert story[-1]["data"]["status"] == "Completed"
    assert kinds.count("BatchStarted") == kinds.count("BatchCompleted") == 5
    assert kinds.count("InstanceUpgraded") == 10
    upgraded = {e["instanceId"] for e in story if e["kind"] == "InstanceUpgraded"}
    assert upgraded == {str(i) for i in range(10)}
    # A gate is evaluated before every batch, and after each one for the upgraded instances.
    gates = [e for e in story if e["kind"] == "GateEvaluated"]
    assert [g["data"]["gate"] for g in gates].count("maxUnhealthyInstancePercent") == 5
    assert [g["data"]["gate"] for g in gates].count("maxUnhealthyUpgradedInstancePercent") == 5
    assert all(g["data"]["passed"] and g["data"]["threshold"] == 20 for g in gates)
    for batch_start in (i for i, k in enumerate(kinds) if k == "BatchStarted"):
        assert kinds[batch_start - 1] == "GateEvaluated"  # the gate came just before
    ids = [int(e["id"]) for e in story]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    times = [e["time"] for e in story]
    assert times == sorted(times) and all(t.endswith("Z") for t in times)

    everything = events(api)
    assert everything[0]["kind"] == "ScaleSetCreated"
    assert [e for e in everything if e["runId"] == run_id] == story

    only = events(api, "&kind=BatchStarted,RunFinished")
    assert {e["kind"] for e in only} == {"BatchStarted", "RunFinished"}
    assert len(only) == 6
    second_batch = [e for e in story if e["kind"] == "BatchStarted"][1]["time"]
    since = events(api, f"&runId={run_id}&since={second_batch}")
    assert since[0]["time"] >= second_batch and len(since) < len(story)
    until = events(api, f"&runId={run_id}&until={second_batch}")
    assert until + since == story  # since is inclusive, until exclusive: nothing lost


def test_pages_of_events_have_no_gaps_and_no_repeats(api: Api) -> None:
    sid = create(api)
    api.world.publish("1.1.0")
    api.world.reconciler.reconcile(sid)
    api.settle()
    whole = events(api)
    pages: list[list[dict[str, Any]]] = []
    url: str | None = f"{VMSS}/events{V}&$top=7"
    while url is not None:
        r = api.client.get(url).json()
        pages.append(r["value"])
        url = r.get("nextLink")
        assert url is None or "api-version=" in url
    assert all(len(p) == 7 for p in pages[:-1]) and 1 <= len(pages[-1]) <= 7
    assert [e for p in pages for e in p] == whole
    resumed = events(api, f"&after={whole[10]['id']}")
    assert resumed == whole[11:]


def test_a_bad_images_events_name_each_failure_and_rollback(bad_api: Api) -> None:
    api = bad_api
    sid = create(api)
    api.world.publish("1.1.0")
    api.world.reconciler.reconcile(sid)
    api.settle()
    view = rollout(api)
    assert view["run"]["status"] == "Faulted"
    failed = [e for e in events(api, "&kind=InstanceFailed")]
    rolled = [e for e in events(api, "&kind=InstanceRolledBack")]
    assert failed and {e["instanceId"] for e in failed} == {e["instanceId"] for e in rolled}
    assert all("not healthy within" in e["message"] or "failed" in e["message"]
               for e in failed)
    states = {i["instanceId"]: i for i in view["instances"]}
    for e in rolled:
        assert states[e["instanceId"]]["state"] == "rolledBack"
        assert states[e["instanceId"]]["imageVersion"] == "1.0.0"
        assert states[e["instanceId"]]["reason"]
    breached = [g for g in events(api, "&kind=GateEvaluated") if not g["data"]["passed"]]
    assert breached and breached[-1]["data"]["gate"] == "maxUnhealthyUpgradedInstancePercent"
    assert breached[-1]["data"]["value"] > breached[-1]["data"]["threshold"]
    gate = {g["name"]: g for g in view["run"]["gates"]}["maxUnhealthyUpgradedInstancePercent"]
    assert gate["ok"] is False


@pytest.mark.parametrize(("query", "target"), [
    ("&$top=0", "$top"), ("&$top=5000", "$top"), ("&$top=x", "$top"),
    ("&after=-1", "after"), ("&after=abc", "after"),
    ("&since=yesterday", "since"), ("&until=2026-13-01", "until"),
    ("&kind=Batch%20Started", "kind"), ("&kind=" + ",".join(["A"] * 40), "kind"),
    ("&runId=" + "x" * 100, "runId"), ("&follow=maybe", "follow"),
])
def test_bad_event_queries_are_400s_naming_the_parameter(api: Api, query: str,
                                                         target: str) -> None:
    create(api, capacity=2)
    r = api.client.get(f"{VMSS}/events{V}{query}")
    assert r.status_code == 400, r.text
    assert r.json()["error"]["target"] == target


def test_a_bad_last_event_id_is_a_400(api: Api) -> None:
    create(api, capacity=2)
    r = api.client.get(f"{VMSS}/events{V}&follow=true", headers={"Last-Event-ID": "x1"})
    assert r.status_code == 400 and r.json()["error"]["target"] == "Last-Event-ID"


def test_unknown_scale_sets_and_runs_are_404s(api: Api) -> None:
    create(api, capacity=2)
    assert api.client.get(f"{RG}/virtualMachineScaleSets/nope/events{V}").status_code == 404
    assert api.client.get(f"{RG}/virtualMachineScaleSets/nope/rollout{V}").status_code == 404
    r = api.client.get(f"{VMSS}/rollout{V}&runId=0000-1111")
    assert r.status_code == 404, r.text
    assert api.client.get(f"{VMSS}/events").status_code == 400  # no api-version


def test_event_ids_keep_growing_when_a_scale_set_goes_and_comes_back(api: Api) -> None:
    """A stream resumes by id: a scale set deleted and created again under the same name
    must not hand out its old (largest) ids again, or a resumed stream would skip them."""
    sid = create(api, capacity=2)
    last = max(int(e["id"]) for e in events(api))
    with api.world.store.transaction(write=True) as tx:
        tx.delete_scale_set(sid)  # its events go with it, the largest ids among them
    assert api.client.get(f"{VMSS}{V}").status_code == 404
    create(api, capacity=2)
    again = events(api)
    assert again and min(int(e["id"]) for e in again) > last


@pytest.mark.parametrize("query", ["&$top=%C2%B2", "&after=%C2%B2", "&after=%D9%A3"])
def test_digits_of_other_scripts_are_400s_not_500s(api: Api, query: str) -> None:
    """'²'.isdigit() holds in Python but int('²') fails: such input is refused, not a crash."""
    create(api, capacity=2)
    r = api.client.get(f"{VMSS}/events{V}{query}")
    assert r.status_code == 400, r.text


def test_a_skiptoken_of_other_digits_is_a_400(api: Api) -> None:
    create(api, capacity=2)
    r = api.client.get(f"{VMSS}/virtualMachines{V}&$skiptoken=%C2%B2")
    assert r.status_code == 400, r.text
