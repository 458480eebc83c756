"""``Microsoft.Network/loadBalancers`` over the ARM routes, and the probe lookup the shell uses."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from scaleset.api.app import create_app
from scaleset.api.context import ApiContext
from scaleset.drivers.base import ProbeSpec
from scaleset.errors import InvalidParameter
from scaleset.model.scaleset import ScaleSet
from scaleset.reconcile import commands, probes
from scaleset.store.repository import Store
from tests.integration.test_api import body as scale_set_body
from tests.support import PROBE_ID as PROBE_ID_OF_WORLD
from tests.support import World, scale_set_id, scale_set_model

SUB = "00000000-0000-0000-0000-000000000001"
NET = f"/subscriptions/{SUB}/resourceGroups/web/providers/Microsoft.Network"
VMSS = f"/subscriptions/{SUB}/resourceGroups/web/providers/Microsoft.Compute/" \
       "virtualMachineScaleSets"
NV = "?api-version=2024-05-01"
CV = "?api-version=2026-04-01"
PROBE_ID = f"{NET}/loadBalancers/lb1/probes/http"


@pytest.fixture
def world(store: Store) -> World:
    return World.create(store)


@pytest.fixture
def client(world: World) -> Iterator[TestClient]:
    context = ApiContext(store=world.store, clock=world.clock, settings=world.settings,
                         auth_required=False, page_size=2)
    with TestClient(create_app(context), base_url="https://testserver") as c:
        yield c


def http_probe(name: str = "http", **properties: Any) -> dict[str, Any]:
    return {"name": name, "properties": {"protocol": "Http", "port": 80,
                                         "requestPath": "/health", **properties}}


def lb_body(*probe_list: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"location": "westus", **extra,
            "properties": {"probes": list(probe_list or [http_probe()])}}


def vmss_body(probe_id: str = PROBE_ID) -> dict[str, Any]:
    out = scale_set_body(capacity=2)
    out["properties"]["virtualMachineProfile"]["networkProfile"] = {
        "healthProbe": {"id": probe_id}}
    return out


def error(r: Any) -> dict[str, Any]:
    payload = r.json()["error"]
    assert isinstance(payload, dict)
    return payload


# -- the resource --------------------------------------------------------------------------

def test_create_get_update_list_and_delete(client: TestClient) -> None:
    r = client.put(f"{NET}/loadBalancers/lb1{NV}",
                   json=lb_body(http_probe(), tags={"team": "web"},
                                sku={"name": "standard"}))
    assert r.status_code == 201, r.text
    lb = r.json()
    assert lb["id"] == f"{NET}/loadBalancers/lb1"
    assert lb["name"] == "lb1" and lb["type"] == "Microsoft.Network/loadBalancers"
    assert lb["sku"]["name"] == "Standard" and lb["tags"] == {"team": "web"}
    assert lb["properties"]["provisioningState"] == "Succeeded"
    probe = lb["properties"]["probes"][0]
    assert probe["id"] == f"{NET}/loadBalancers/lb1/probes/http"
    assert probe["type"] == "Microsoft.Network/loadBalancers/probes"
    assert probe["properties"] == {"protocol": "Http", "port": 80, "requestPath": "/health",
                                   "intervalInSeconds": 15, "numberOfProbes": 2,
                                   "provisioningState": "Succeeded"}
    assert r.headers["ETag"] == lb["etag"]

    got = client.get(f"{NET}/loadBalancers/LB1{NV}")  # names are case-insensitive
    assert got.status_code == 200 and got.json() == lb
    assert client.get(f"{NET}/loadBalancers/lb1/probes/HTTP{NV}").json() == probe

    r = client.put(f"{NET}/loadBalancers/lb1{NV}",
                   json=lb_body(http_probe(), {"name": "tcp", "properties": {
                       "protocol": "TCP", "port": 22, "probeThreshold": 3}}))
    assert r.status_code == 200, r.text
    updated = r.json()
    assert [p["name"] for p in updated["properties"]["probes"]] == ["http", "tcp"]
    assert updated["properties"]["probes"][1]["properties"]["protocol"] == "Tcp"
    assert updated["sku"]["name"] == "Basic"  # a PUT replaces: the default again
    assert updated["etag"] != lb["etag"]
    listed = client.get(f"{NET}/loadBalancers/lb1/probes{NV}").json()
    assert [p["name"] for p in listed["value"]] == ["http", "tcp"]

    for name in ("lb2", "lb3"):
        assert client.put(f"{NET}/loadBalancers/{name}{NV}", json=lb_body()).status_code == 201
    other = f"/subscriptions/{SUB}/resourceGroups/other/providers/Microsoft.Network"
    assert client.put(f"{other}/loadBalancers/lb4{NV}", json=lb_body()).status_code == 201
    page = client.get(f"{NET}/loadBalancers{NV}").json()
    assert [i["name"] for i in page["value"]] == ["lb1", "lb2"]  # page size 2
    assert "api-version=2024-05-01" in page["nextLink"]
    rest = client.get(page["nextLink"]).json()
    assert [i["name"] for i in rest["value"]] == ["lb3"] and "nextLink" not in rest
    everywhere: list[str] = []
    url: str | None = f"/subscriptions/{SUB}/providers/Microsoft.Network/loadBalancers{NV}"
    while url:
        chunk = client.get(url).json()
        everywhere += [i["name"] for i in chunk["value"]]
        url = chunk.get("nextLink")
    # every load balancer of the subscription: ours, lb4, and the one World.create made
    assert sorted(everywhere) == ["lb", "lb1", "lb2", "lb3", "lb4"]

    assert client.delete(f"{NET}/loadBalancers/lb2{NV}").status_code == 200
    assert client.get(f"{NET}/loadBalancers/lb2{NV}").status_code == 404
    assert client.delete(f"{NET}/loadBalancers/lb2{NV}").status_code == 204  # idempotent


def test_a_missing_load_balancer_or_probe_is_a_404(client: TestClient) -> None:
    r = client.get(f"{NET}/loadBalancers/nope{NV}")
    assert r.status_code == 404 and error(r)["code"] == "ResourceNotFound"
    client.put(f"{NET}/loadBalancers/lb1{NV}", json=lb_body())
    r = client.get(f"{NET}/loadBalancers/lb1/probes/nope{NV}")
    assert r.status_code == 404 and "nope" in error(r)["message"]


@pytest.mark.parametrize(("probe", "target", "needle"), [
    ({"protocol": "Http", "port": 80}, "properties.probes[0].properties.requestPath",
     "requestPath is required"),
    ({"protocol": "Tcp", "port": 22, "requestPath": "/x"},
     "properties.probes[0].properties.requestPath", "only for Http and Https"),
    ({"protocol": "Udp", "port": 53}, "properties.probes[0].properties.protocol",
     "Http, Https, Tcp"),
    ({"protocol": "Tcp", "port": 70000}, "properties.probes[0].properties.port",
     "1 to 65535"),
    ({"protocol": "Tcp", "port": 22, "intervalInSeconds": 0},
     "properties.probes[0].properties.intervalInSeconds", "at least 1"),
    ({"protocol": "Tcp", "port": 22, "numberOfProbes": 0},
     "properties.probes[0].properties.numberOfProbes", "at least 1"),
    ({"protocol": "Tcp", "port": 22, "probeThreshold": 0},
     "properties.probes[0].properties.probeThreshold", "at least 1"),
    ({"protocol": "Https", "port": 443, "requestPath": "health"},
     "properties.probes[0].properties.requestPath", "must start with '/'"),
])
def test_a_bad_probe_is_a_400_naming_the_field(client: TestClient, probe: dict[str, Any],
                                               target: str, needle: str) -> None:
    r = client.put(f"{NET}/loadBalancers/lb1{NV}",
                   json={"location": "westus",
                         "properties": {"probes": [{"name": "p", "properties": probe}]}})
    assert r.status_code == 400, r.text
    e = error(r)
    assert e["code"] == "InvalidParameter" and e["target"] == target
    assert needle in e["message"]
    assert client.get(f"{NET}/loadBalancers/lb1{NV}").status_code == 404


def test_probe_names_are_unique_and_location_is_required(client: TestClient) -> None:
    r = client.put(f"{NET}/loadBalancers/lb1{NV}",
                   json=lb_body(http_probe("a"), http_probe("A")))
    assert r.status_code == 400
    assert error(r)["target"] == "properties.probes"
    assert "unique" in error(r)["message"]
    r = client.put(f"{NET}/loadBalancers/lb1{NV}", json={"properties": {}})
    assert r.status_code == 400 and error(r)["target"] == "location"
    r = client.put(f"{NET}/loadBalancers/lb1{NV}", json=lb_body(sku={"name": "Premium"}))
    assert r.status_code == 400 and error(r)["target"] == "sku.name"
    r = client.put(f"{NET}/loadBalancers/lb1{NV}", json=lb_body(sku={"name": "gateway"}))
    assert r.status_code == 201 and r.json()["sku"]["name"] == "Gateway"


def test_the_location_cannot_change(client: TestClient) -> None:
    client.put(f"{NET}/loadBalancers/lb1{NV}", json=lb_body())
    r = client.put(f"{NET}/loadBalancers/lb1{NV}", json={**lb_body(), "location": "eastus"})
    assert r.status_code == 400 and error(r)["target"] == "location"


def test_the_api_version_is_checked_against_the_network_calendar(client: TestClient) -> None:
    r = client.get(f"{NET}/loadBalancers")
    assert r.status_code == 400 and error(r)["code"] == "MissingApiVersionParameter"
    r = client.get(f"{NET}/loadBalancers?api-version=2026-04-01")  # a Compute version
    assert r.status_code == 400 and error(r)["code"] == "NoRegisteredProviderFound"
    assert "for type 'loadBalancers'" in error(r)["message"]
    assert "2018-10-01" in error(r)["message"]
    for version in ("2018-10-01", "2025-05-01"):
        assert client.get(f"{NET}/loadBalancers?api-version={version}").status_code == 200


def test_if_match_guards_a_replace(client: TestClient) -> None:
    etag = client.put(f"{NET}/loadBalancers/lb1{NV}", json=lb_body()).json()["etag"]
    r = client.put(f"{NET}/loadBalancers/lb1{NV}", json=lb_body(),
                   headers={"If-Match": 'W/"stale"'})
    assert r.status_code == 412
    assert client.put(f"{NET}/loadBalancers/lb1{NV}", json=lb_body(),
                      headers={"If-Match": etag}).status_code == 200


def test_keyword_segments_are_case_insensitive(client: TestClient) -> None:
    path = f"/subscriptions/{SUB}/resourcegroups/web/providers/microsoft.network/loadbalancers"
    assert client.put(f"{path}/lb1{NV}", json=lb_body()).status_code == 201
    assert client.get(f"{NET}/loadBalancers/lb1{NV}").status_code == 200


# -- scale sets that name a probe -----------------------------------------------------------

def test_a_scale_set_naming_a_missing_probe_is_refused_and_nothing_stored(
        client: TestClient) -> None:
    r = client.put(f"{VMSS}/vmss1{CV}", json=vmss_body())
    assert r.status_code == 400, r.text
    e = error(r)
    assert e["code"] == "InvalidParameter"
    assert e["target"] == "properties.virtualMachineProfile.networkProfile.healthProbe.id"
    assert "create it first with PUT" in e["message"] and "loadBalancers/lb1" in e["message"]
    assert client.get(f"{VMSS}/vmss1{CV}").status_code == 404

    client.put(f"{NET}/loadBalancers/lb1{NV}", json=lb_body(http_probe("other")))
    r = client.put(f"{VMSS}/vmss1{CV}", json=vmss_body())
    assert r.status_code == 400
    assert "has no probe 'http'" in error(r)["message"] and "other" in error(r)["message"]
    assert client.get(f"{VMSS}/vmss1{CV}").status_code == 404

    r = client.put(f"{VMSS}/vmss1{CV}", json=vmss_body("/subscriptions/x/probes/p"))
    assert r.status_code == 400 and "not a load balancer probe id" in error(r)["message"]
    assert client.get(f"{VMSS}/vmss1{CV}").status_code == 404


def test_a_scale_set_naming_an_existing_probe_is_created_and_pins_it(
        client: TestClient) -> None:
    client.put(f"{NET}/loadBalancers/lb1{NV}",
               json=lb_body(http_probe(), {"name": "tcp", "properties": {
                   "protocol": "Tcp", "port": 22}}))
    mixed_case = PROBE_ID.replace("loadBalancers/lb1", "LOADBALANCERS/LB1")
    r = client.put(f"{VMSS}/vmss1{CV}", json=vmss_body(mixed_case))
    assert r.status_code == 201, r.text

    # Its load balancer cannot go, nor can its probe; the other probe can.
    r = client.delete(f"{NET}/loadBalancers/lb1{NV}")
    assert r.status_code == 400, r.text
    assert error(r)["code"] == "LoadBalancerInUseByVirtualMachineScaleSet"
    assert "'vmss1'" in error(r)["message"]
    r = client.put(f"{NET}/loadBalancers/lb1{NV}", json=lb_body(
        {"name": "tcp", "properties": {"protocol": "Tcp", "port": 22}}))
    assert r.status_code == 400
    assert error(r)["code"] == "InUseProbeCannotBeDeleted" and "'vmss1'" in error(r)["message"]
    assert client.put(f"{NET}/loadBalancers/lb1{NV}", json=lb_body()).status_code == 200
    assert client.get(f"{NET}/loadBalancers/lb1{NV}").status_code == 200

    # An update that keeps the probe is not checked again, and goes through.
    r = client.patch(f"{VMSS}/vmss1{CV}", json={"sku": {"capacity": 3}})
    assert r.status_code == 200, r.text


def test_deleting_the_scale_set_frees_the_load_balancer(world: World,
                                                        client: TestClient) -> None:
    client.put(f"{NET}/loadBalancers/lb1{NV}", json=lb_body())
    assert client.put(f"{VMSS}/vmss1{CV}", json=vmss_body()).status_code == 201
    assert client.delete(f"{VMSS}/vmss1{CV}").status_code == 202
    sid = f"{VMSS}/vmss1".lower()
    for _ in range(20):  # the reconciler removes the instances, then the record
        world.reconciler.reconcile(sid)
        with world.store.transaction() as tx:
            if tx.get_scale_set(sid) is None:
                break
    assert client.delete(f"{NET}/loadBalancers/lb1{NV}").status_code == 200


# -- the lookup the shell uses ------------------------------------------------------------

def _model(probe_id: str | None) -> ScaleSet:
    raw = scale_set_model(capacity=1).model_dump(by_alias=True, exclude_none=True)
    raw["properties"]["virtualMachineProfile"]["networkProfile"] = \
        {} if probe_id is None else {"healthProbe": {"id": probe_id}}
    return ScaleSet.model_validate(raw)


def test_probe_spec_follows_the_load_balancer(world: World, client: TestClient) -> None:
    client.put(f"{NET}/loadBalancers/lb1{NV}", json=lb_body(
        http_probe(intervalInSeconds=5, numberOfProbes=4),
        {"name": "tcp", "properties": {"protocol": "tcp", "port": 5432, "numberOfProbes": 2,
                                       "probeThreshold": 3}}))
    with world.store.transaction() as tx:
        http = probes.probe_spec(tx, _model(PROBE_ID))
        tcp = probes.probe_spec(tx, _model(PROBE_ID.replace("/http", "/TCP")))
        assert probes.probe_spec(tx, _model(None)) is None
        assert probes.probe_spec(tx, _model(PROBE_ID.replace("/http", "/gone"))) is None
        assert probes.probe_spec(tx, _model(PROBE_ID.replace("lb1", "lb9"))) is None
    assert http == ProbeSpec(protocol="Http", port=80, request_path="/health",
                             interval_seconds=5.0, number_of_probes=4)
    assert tcp == ProbeSpec(protocol="Tcp", port=5432, request_path=None,
                            interval_seconds=15.0, number_of_probes=3)  # the threshold counts


def test_check_health_probe_refuses_with_the_target(world: World) -> None:
    with world.store.transaction() as tx:
        probes.check_health_probe(tx, _model(None))  # no probe: nothing to check
        with pytest.raises(InvalidParameter) as err:
            probes.check_health_probe(tx, _model(PROBE_ID))
    assert err.value.target == probes.HEALTH_PROBE_TARGET
    assert "PUT " + f"{NET}/loadBalancers/lb1" in err.value.message


def test_commands_refuse_a_dangling_probe_and_store_nothing(world: World) -> None:
    sid = scale_set_id("dangling")
    with pytest.raises(InvalidParameter):
        commands.create_scale_set(world.store, scale_set_id=sid, model=_model(PROBE_ID),
                                  now=world.clock.now())
    with world.store.transaction() as tx:
        assert tx.get_scale_set(sid) is None
    # An update that moves the probe onto a missing one is refused too.
    sid = world.add_scale_set("ok", capacity=1)
    with pytest.raises(InvalidParameter):
        commands.update_scale_set(world.store, scale_set_id=sid, model=_model(PROBE_ID),
                                  now=world.clock.now())
    with world.store.transaction() as tx:
        row = tx.get_scale_set(sid)
    assert row is not None and probes.health_probe_id(row.model) != PROBE_ID


def test_a_delete_racing_a_create_that_uses_the_probe_waits_and_is_refused(
        world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """The create holds the load balancer's row from its check to its commit, so the
    delete sees the new scale set (rather than deleting what it just started to use)."""
    checked = threading.Event()
    original = probes.check_health_probe

    def check_then_dawdle(tx: Any, model: ScaleSet, **kwargs: Any) -> None:
        original(tx, model, **kwargs)
        checked.set()
        time.sleep(0.3)  # the delete arrives now, and must wait for this commit

    monkeypatch.setattr(commands, "check_health_probe", check_then_dawdle)
    outcome: dict[str, object] = {}

    def delete() -> None:
        checked.wait(5)
        try:
            outcome["deleted"] = probes.delete_load_balancer(
                world.store, lb_id=PROBE_ID_OF_WORLD.rsplit("/probes/", 1)[0])
        except InvalidParameter as exc:
            outcome["refused"] = exc.code

    deleter = threading.Thread(target=delete)
    deleter.start()
    commands.create_scale_set(world.store, scale_set_id=scale_set_id("racer"),
                              model=scale_set_model("racer", capacity=1), now=world.clock.now())
    deleter.join()
    assert outcome == {"refused": "LoadBalancerInUseByVirtualMachineScaleSet"}
