"""A GET body is always accepted back by a PUT, and writing it back changes nothing.

Issue 10, item 4. Every write validates the *effective* model (Azure's defaults
filled), which is what GET shows; so for any valid scale set ``x``:

* ``PUT x`` is 201, or a 400 in ARM's error envelope that stores nothing;
* ``G = GET x``; ``PUT G`` (exactly as received, read-only fields and all) is 200;
* afterwards GET shows ``G`` again (bar the etag), the instances are the same
  (no new model generation, ``latestModelApplied`` stays true) and no rolling
  upgrade was started;
* the same holds for ``PATCH G``.

The property runs in one world per test with a fresh scale-set name per example
(one migrated store per example would cost far more than the checks).
"""

from __future__ import annotations

import base64
import copy
import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, Phase, event, example, given, settings
from hypothesis import strategies as st

from scaleset.api.app import create_app
from scaleset.api.context import ApiContext
from scaleset.api.routes.common import scale_set_key
from scaleset.store.repository import Store
from tests.support import IMAGE, PROBE_ID, World

SUB = "00000000-0000-0000-0000-000000000001"
RG_NAME = "rg1"
RG = f"/subscriptions/{SUB}/resourceGroups/{RG_NAME}/providers/Microsoft.Compute"
V = "?api-version=2026-04-01"
BATCH_TARGET = "properties.upgradePolicy.rollingUpgradePolicy.maxBatchInstancePercent"
DEFAULT_PERCENT = 20  # Azure's default maxBatchInstancePercent and maxUnhealthyInstancePercent

ROUND_TRIP = settings(max_examples=40, deadline=None,
                      suppress_health_check=[HealthCheck.function_scoped_fixture,
                                             HealthCheck.too_slow])
_names = itertools.count()


def fresh_name() -> str:
    """A scale-set name no earlier example in this process used."""
    return f"rt{next(_names)}"


# -- the world ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Snapshot:
    """Everything a write that changes nothing must leave as it was."""

    resource: dict[str, Any]
    """GET of the scale set, etag removed (a write's new etag is the one legitimate change)."""
    etag: str
    generation: int
    image_version: str | None
    runs: int
    instances: list[dict[str, Any]]
    instance_view: dict[str, Any]
    latest_status: int
    history: Any


class RoundTrip:
    def __init__(self, world: World, client: TestClient) -> None:
        self.world = world
        self.client = client

    @staticmethod
    def url(name: str, tail: str = "") -> str:
        return f"{RG}/virtualMachineScaleSets/{name}{tail}{V}"

    @staticmethod
    def sid(name: str) -> str:
        return scale_set_key(SUB, RG_NAME, name)

    def settle(self, name: str) -> None:
        self.world.settle(self.sid(name))

    def snapshot(self, name: str) -> Snapshot:
        got = self.client.get(self.url(name))
        assert got.status_code == 200, got.text
        resource = got.json()
        etag = resource.pop("etag")
        assert got.headers["ETag"] == etag
        with self.world.store.transaction() as tx:
            row = tx.get_scale_set(self.sid(name))
            assert row is not None
            runs = len(tx.past_runs(row.id))
            assert tx.active_run(row.id) is None
        instances = self.client.get(self.url(name, "/virtualMachines") + "&$expand=instanceView")
        assert instances.status_code == 200, instances.text
        assert "nextLink" not in instances.json()
        view = self.client.get(self.url(name, "/instanceView")).json()
        for status in view["statuses"]:
            # The scale set's provisioning status is stamped with the time of its last
            # write (row.updated_at): a write moves it by definition.
            status.pop("time", None)
        history = self.client.get(self.url(name, "/osUpgradeHistory"))
        assert history.status_code == 200, history.text
        return Snapshot(
            resource=resource, etag=etag, generation=row.generation,
            image_version=row.image_version, runs=runs,
            instances=instances.json()["value"], instance_view=view,
            latest_status=self.client.get(self.url(name, "/rollingUpgrades/latest")).status_code,
            history=history.json())


@pytest.fixture
def rt(store: Store) -> Iterator[RoundTrip]:
    world = World.create(store)
    context = ApiContext(store=store, clock=world.clock, settings=world.settings,
                         auth_required=False)
    with TestClient(create_app(context), base_url="https://testserver") as client:
        yield RoundTrip(world, client)


# -- the bodies --------------------------------------------------------------------------------

def base_body(capacity: int = 2, *, mode: str = "Rolling",
              rolling: dict[str, Any] | None = None) -> dict[str, Any]:
    """A valid scale set body (the probe is the one ``World.create`` made)."""
    upgrade: dict[str, Any] = {"mode": mode,
                               "automaticOSUpgradePolicy": {"enableAutomaticOSUpgrade": True}}
    if rolling is not None:
        upgrade["rollingUpgradePolicy"] = rolling
    return {
        "location": "westus",
        "sku": {"name": "Standard_D2s_v3", "capacity": capacity},
        "properties": {
            "upgradePolicy": upgrade,
            "virtualMachineProfile": {
                "storageProfile": {"imageReference": {**IMAGE, "version": "latest"}},
                "networkProfile": {"healthProbe": {"id": PROBE_ID}},
            },
        },
    }


SECRETS = ("adminPassword", "customData", "protectedSettings")
"""What GET never returns (``views.scrub_secrets``), so what ``PUT(GET)`` cannot send back."""

_short_text = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=0x24F), max_size=12)
_tag_name = st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJ0123456789-_.", min_size=1,
                    max_size=10)
_durations = st.sampled_from(["PT0S", "PT5S", "PT30S", "PT1M", "PT90S", "PT2M30S", "PT1H",
                              "P1D"])


@st.composite
def scale_set_bodies(draw: st.DrawFn, *, secrets: bool) -> dict[str, Any]:
    """A random scale set body; with ``secrets``, one that carries at least one secret.

    Some have a rolling batch above the effective unhealthy limit (which the
    server must refuse); the rest are valid.
    """
    upgrade: dict[str, Any] = {"mode": draw(st.sampled_from(["Manual", "Automatic", "Rolling"]))}
    automatic: dict[str, Any] | None = draw(st.none() | st.fixed_dictionaries({}, optional={
        "enableAutomaticOSUpgrade": st.booleans(),
        "disableAutomaticRollback": st.booleans(),
        "useRollingUpgradePolicy": st.booleans(),
        "osRollingUpgradeDeferral": st.booleans(),
    }))
    if automatic is not None:
        upgrade["automaticOSUpgradePolicy"] = automatic
    rolling: dict[str, Any] | None = draw(st.none() | st.fixed_dictionaries({}, optional={
        "maxBatchInstancePercent": st.integers(5, 100),
        "maxUnhealthyInstancePercent": st.integers(5, 100),
        "maxUnhealthyUpgradedInstancePercent": st.integers(0, 100),
        "pauseTimeBetweenBatches": _durations,
        "prioritizeUnhealthyInstances": st.booleans(),
        "enableCrossZoneUpgrade": st.booleans(),
        "rollbackFailedInstancesOnPolicyBreach": st.booleans(),
        "maxSurge": st.booleans(),
    }))
    if rolling is not None:
        limit = rolling.get("maxUnhealthyInstancePercent", DEFAULT_PERCENT)
        batch = rolling.get("maxBatchInstancePercent", DEFAULT_PERCENT)
        if batch > limit and draw(st.booleans()):
            rolling["maxBatchInstancePercent"] = draw(st.integers(5, limit))
        upgrade["rollingUpgradePolicy"] = rolling

    wanted = draw(st.sets(st.sampled_from(SECRETS), min_size=1)) if secrets else set()
    profile: dict[str, Any] = {
        "storageProfile": {
            "imageReference": {**IMAGE, "version": "latest"},
            "dataDisks": [
                {"lun": lun, "createOption": "Empty", "diskSizeGB": draw(st.integers(1, 64)),
                 **draw(st.fixed_dictionaries({}, optional={
                     "caching": st.sampled_from(["None", "ReadOnly", "ReadWrite"])}))}
                for lun in range(draw(st.integers(0, 2)))],
        },
        "networkProfile": {"healthProbe": {"id": PROBE_ID}},
    }
    if draw(st.booleans()) or {"adminPassword", "customData"} & wanted:
        os_profile: dict[str, Any] = {"computerNamePrefix": "vm", "adminUsername": "azureuser"}
        if "adminPassword" in wanted:
            os_profile["adminPassword"] = "S3cret!" + draw(st.text("abcdef0123", max_size=6))
        if "customData" in wanted:
            os_profile["customData"] = base64.b64encode(
                draw(st.binary(min_size=1, max_size=64))).decode()
        profile["osProfile"] = os_profile
    if draw(st.booleans()) or "protectedSettings" in wanted:
        ext: dict[str, Any] = {"publisher": "Microsoft.Azure.Extensions", "type": "CustomScript",
                               "typeHandlerVersion": "2.1",
                               "settings": {"commandToExecute": draw(_short_text)}}
        if "protectedSettings" in wanted:
            ext["protectedSettings"] = {"commandToExecute": "echo " + draw(_short_text)}
        profile["extensionProfile"] = {"extensions": [{"name": "script", "properties": ext}]}

    body: dict[str, Any] = {
        "location": "westus",
        "sku": {"name": "Standard_D2s_v3", "capacity": draw(st.integers(0, 4))},
        "properties": {"upgradePolicy": upgrade, "virtualMachineProfile": profile},
    }
    if draw(st.booleans()):
        body["properties"]["overprovision"] = draw(st.booleans())
    if draw(st.booleans()):
        # A property scaleset does not interpret: kept and returned as written.
        body["properties"]["doNotRunExtensionsOnOverprovisionedVMs"] = draw(st.booleans())
    tags = draw(st.none() | st.dictionaries(_tag_name, _short_text, max_size=3))
    if tags is not None:
        body["tags"] = tags
    zones = draw(st.none() | st.lists(st.sampled_from(["1", "2", "3"]), unique=True))
    if zones is not None:
        body["zones"] = zones
    return body


def batch_exceeds_limit(body: dict[str, Any]) -> bool:
    """Whether the effective rolling policy (defaults filled) has batch > unhealthy limit."""
    rolling = body["properties"]["upgradePolicy"].get("rollingUpgradePolicy")
    if rolling is None:
        return False
    return bool(rolling.get("maxBatchInstancePercent", DEFAULT_PERCENT)
                > rolling.get("maxUnhealthyInstancePercent", DEFAULT_PERCENT))


# -- the checks --------------------------------------------------------------------------------

def assert_refused(response: Any, target: str) -> None:
    """A 400 in ARM's error envelope naming ``target``."""
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert {"code", "message", "target"} <= set(error), error
    assert error["code"] == "InvalidParameter"
    assert error["target"] == target
    assert error["message"]


def assert_nothing_stored(rt: RoundTrip, name: str) -> None:
    missing = rt.client.get(rt.url(name))
    assert missing.status_code == 404, missing.text
    assert "error" in missing.json()
    assert rt.sid(name) not in rt.world.scale_set_ids()


def create(rt: RoundTrip, name: str, body: dict[str, Any]) -> Snapshot:
    """PUT ``body`` as a new scale set, settle, and return what GET then shows."""
    created = rt.client.put(rt.url(name), json=body)
    assert created.status_code == 201, created.text
    rt.settle(name)
    first = rt.snapshot(name)
    assert first.resource["properties"]["provisioningState"] == "Succeeded"
    assert first.latest_status == 404  # creating instances is not a rolling upgrade
    assert first.runs == 0
    assert len(first.instances) == body["sku"]["capacity"]
    assert all(i["properties"]["latestModelApplied"] for i in first.instances)
    return first


def assert_unchanged(before: Snapshot, after: Snapshot) -> None:
    """Nothing but the etag moved: same body, same instances, no new generation, no run."""
    assert after.resource == before.resource
    assert after.generation == before.generation
    assert after.image_version == before.image_version
    assert after.instances == before.instances
    assert all(i["properties"]["latestModelApplied"] for i in after.instances)
    assert after.instance_view == before.instance_view
    assert after.runs == before.runs
    assert after.latest_status == before.latest_status == 404
    assert after.history == before.history


def write_back(rt: RoundTrip, name: str, before: Snapshot) -> Snapshot:
    """PUT the GET body back exactly as received, then PATCH it; neither may change a thing."""
    got = copy.deepcopy({**before.resource, "etag": before.etag})
    put = rt.client.put(rt.url(name), json=got)
    assert put.status_code == 200, put.text
    assert_answers_with(put, before)
    rt.settle(name)
    after_put = rt.snapshot(name)
    assert_unchanged(before, after_put)
    # The etag is left out of the comparison: an accepted write may give the resource a
    # new one (ARM's counters do) or keep it when nothing changed; both are correct.

    again = copy.deepcopy({**after_put.resource, "etag": after_put.etag})
    patch = rt.client.patch(rt.url(name), json=again)
    assert patch.status_code == 200, patch.text
    assert_answers_with(patch, before)
    rt.settle(name)
    after_patch = rt.snapshot(name)
    assert_unchanged(before, after_patch)
    return after_patch


def assert_answers_with(response: Any, before: Snapshot) -> None:
    """A write's answer is the resource as GET showed it, Updating until its operation ends."""
    answered = response.json()
    assert answered.pop("etag") == response.headers["ETag"]
    assert answered["properties"].pop("provisioningState") == "Updating"
    expected = copy.deepcopy(before.resource)
    del expected["properties"]["provisioningState"]
    assert answered == expected


def round_trip(rt: RoundTrip, body: dict[str, Any]) -> None:
    """The property, for one body."""
    name = fresh_name()
    if batch_exceeds_limit(body):
        assert_refused(rt.client.put(rt.url(name), json=body), BATCH_TARGET)
        assert_nothing_stored(rt, name)
        event("refused: batch above the effective unhealthy limit")
        return
    event("accepted and written back")
    write_back(rt, name, create(rt, name, body))


# -- the property ------------------------------------------------------------------------------

@ROUND_TRIP
@given(body=scale_set_bodies(secrets=False))
@example(body=base_body(rolling={"maxBatchInstancePercent": 34}))
@example(body=base_body(rolling={"maxBatchInstancePercent": 34,
                                 "maxUnhealthyInstancePercent": 34}))
@example(body=base_body(rolling=None))
@example(body=base_body(mode="Manual", rolling={}))
def test_put_of_get_is_accepted_and_changes_nothing(rt: RoundTrip, body: dict[str, Any]) -> None:
    round_trip(rt, body)




@settings(ROUND_TRIP, max_examples=10, phases=[Phase.explicit, Phase.generate])
@given(body=scale_set_bodies(secrets=True))
def test_put_of_get_with_secrets_changes_nothing(rt: RoundTrip, body: dict[str, Any]) -> None:
    round_trip(rt, body)


@st.composite
def over_limit_policies(draw: st.DrawFn) -> dict[str, Any]:
    """A rolling policy whose batch exceeds its effective unhealthy limit (sent or 20)."""
    policy: dict[str, Any] = draw(st.fixed_dictionaries({}, optional={
        "maxUnhealthyUpgradedInstancePercent": st.integers(0, 100),
        "pauseTimeBetweenBatches": _durations,
        "prioritizeUnhealthyInstances": st.booleans(),
        "maxSurge": st.booleans(),
    }))
    limit = draw(st.none() | st.integers(5, 99))
    if limit is not None:
        policy["maxUnhealthyInstancePercent"] = limit
    policy["maxBatchInstancePercent"] = draw(st.integers((limit or DEFAULT_PERCENT) + 1, 100))
    return policy


@settings(ROUND_TRIP, max_examples=20)
@given(policy=over_limit_policies(), mode=st.sampled_from(["Manual", "Automatic", "Rolling"]))
def test_a_batch_above_the_effective_limit_is_refused_on_every_write(
        rt: RoundTrip, policy: dict[str, Any], mode: str) -> None:
    refused = fresh_name()
    assert_refused(rt.client.put(rt.url(refused), json=base_body(mode=mode, rolling=policy)),
                   BATCH_TARGET)
    assert_nothing_stored(rt, refused)

    name = fresh_name()
    before = create(rt, name, base_body(mode=mode, rolling=None))
    assert_refused(rt.client.put(rt.url(name), json=base_body(mode=mode, rolling=policy)),
                   BATCH_TARGET)
    edited = copy.deepcopy({**before.resource, "etag": before.etag})
    edited["properties"]["upgradePolicy"]["rollingUpgradePolicy"] = policy
    assert_refused(rt.client.put(rt.url(name), json=edited), BATCH_TARGET)
    assert_refused(rt.client.patch(rt.url(name), json={"properties": {"upgradePolicy": {
        "rollingUpgradePolicy": policy}}}), BATCH_TARGET)
    after = rt.snapshot(name)
    assert after.etag == before.etag  # a refused write writes nothing
    assert_unchanged(before, after)


# -- explicit cases ----------------------------------------------------------------------------

def test_a_batch_above_the_default_limit_is_refused_on_create_and_stores_nothing(
        rt: RoundTrip) -> None:
    name = fresh_name()
    r = rt.client.put(rt.url(name), json=base_body(rolling={"maxBatchInstancePercent": 34}))
    assert_refused(r, BATCH_TARGET)
    assert "34" in r.json()["error"]["message"]
    assert_nothing_stored(rt, name)


def test_a_batch_above_the_default_limit_is_refused_on_update_and_patch(rt: RoundTrip) -> None:
    name = fresh_name()
    before = create(rt, name, base_body(rolling={"maxBatchInstancePercent": 20}))
    put = rt.client.put(rt.url(name), json=base_body(rolling={"maxBatchInstancePercent": 34}))
    assert_refused(put, BATCH_TARGET)
    patch = rt.client.patch(rt.url(name), json={"properties": {"upgradePolicy": {
        "rollingUpgradePolicy": {"maxBatchInstancePercent": 34}}}})
    assert_refused(patch, BATCH_TARGET)
    after = rt.snapshot(name)
    assert after.etag == before.etag  # a refused write writes nothing
    assert_unchanged(before, after)


def test_a_batch_within_its_own_limit_round_trips(rt: RoundTrip) -> None:
    name = fresh_name()
    body = base_body(rolling={"maxBatchInstancePercent": 34, "maxUnhealthyInstancePercent": 34})
    first = create(rt, name, body)
    policy = first.resource["properties"]["upgradePolicy"]["rollingUpgradePolicy"]
    # GET shows the effective policy: the fields not sent come back with Azure's defaults.
    assert policy == {"maxBatchInstancePercent": 34, "maxUnhealthyInstancePercent": 34,
                      "maxUnhealthyUpgradedInstancePercent": 20,
                      "pauseTimeBetweenBatches": "PT0S", "prioritizeUnhealthyInstances": False,
                      "enableCrossZoneUpgrade": False,
                      "rollbackFailedInstancesOnPolicyBreach": False, "maxSurge": False}
    write_back(rt, name, first)


def test_a_scale_set_without_a_rolling_policy_round_trips(rt: RoundTrip) -> None:
    name = fresh_name()
    first = create(rt, name, base_body(rolling=None))
    assert "rollingUpgradePolicy" not in first.resource["properties"]["upgradePolicy"]
    write_back(rt, name, first)


def test_a_get_body_put_back_with_a_lowered_limit_is_refused(rt: RoundTrip) -> None:
    """The check is on the effective policy GET shows, so editing GET's body is checked too."""
    name = fresh_name()
    first = create(rt, name, base_body(rolling={"maxBatchInstancePercent": 34,
                                                "maxUnhealthyInstancePercent": 34}))
    edited = copy.deepcopy({**first.resource, "etag": first.etag})
    edited["properties"]["upgradePolicy"]["rollingUpgradePolicy"][
        "maxUnhealthyInstancePercent"] = 33
    assert_refused(rt.client.put(rt.url(name), json=edited), BATCH_TARGET)
    assert_unchanged(first, rt.snapshot(name))


def _with_secret(secret: str) -> dict[str, Any]:
    body = base_body(mode="Automatic")
    profile = body["properties"]["virtualMachineProfile"]
    if secret == "protectedSettings":
        profile["extensionProfile"] = {"extensions": [{"name": "script", "properties": {
            "publisher": "Microsoft.Azure.Extensions", "type": "CustomScript",
            "settings": {"commandToExecute": "./run.sh"},
            "protectedSettings": {"token": "do-not-echo"}}}]}
    else:
        profile["osProfile"] = {"computerNamePrefix": "vm", "adminUsername": "azureuser",
                                secret: "ZWNobyBoaQ==" if secret == "customData" else "S3cret!pw"}
    return body


@pytest.mark.parametrize("secret", SECRETS)
def test_put_of_get_keeps_a_write_only_secret(rt: RoundTrip, secret: str) -> None:
    name = fresh_name()
    first = create(rt, name, _with_secret(secret))
    with rt.world.store.transaction() as tx:
        row = tx.get_scale_set(rt.sid(name))
        assert row is not None
        stored = row.model.properties.virtual_machine_profile.model_dump(mode="json",
                                                                        by_alias=True)
    put = rt.client.put(rt.url(name), json={**first.resource, "etag": first.etag})
    assert put.status_code == 200, put.text
    with rt.world.store.transaction() as tx:
        row = tx.get_scale_set(rt.sid(name))
        assert row is not None
        assert row.generation == first.generation
        kept = row.model.properties.virtual_machine_profile.model_dump(mode="json",
                                                                      by_alias=True)
    assert kept == stored  # the secret the client could not see is still there
    rt.settle(name)
    assert_unchanged(first, rt.snapshot(name))




def test_a_write_that_changes_the_resource_gives_it_a_new_etag(rt: RoundTrip) -> None:
    name = fresh_name()
    first = create(rt, name, base_body())
    changed = copy.deepcopy({**first.resource, "etag": first.etag})
    changed["tags"] = {"owner": "alice"}
    put = rt.client.put(rt.url(name), json=changed, headers={"If-Match": first.etag})
    assert put.status_code == 200, put.text
    assert put.headers["ETag"] != first.etag
    stale = rt.client.patch(rt.url(name), json={"tags": {"owner": "bob"}},
                            headers={"If-Match": first.etag})
    assert stale.status_code == 412, stale.text
