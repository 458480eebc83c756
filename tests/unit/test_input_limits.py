"""Per-resource limits as ARM has them: tags, data disks, extensions, probes, names in bodies."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from scaleset.api.app import create_app
from scaleset.api.context import ApiContext
from scaleset.clock import EPOCH, VirtualClock
from scaleset.errors import InvalidParameter
from scaleset.model import lbchildren, limits
from scaleset.model.network import LoadBalancer
from scaleset.model.publicip import PublicIPAddress
from scaleset.model.scaleset import ScaleSet
from scaleset.model.securitygroup import NetworkSecurityGroup
from scaleset.model.virtualnetwork import VirtualNetwork
from scaleset.reconcile import commands
from scaleset.sim.runner import simulate
from scaleset.sim.scenario import Scenario
from scaleset.store.repository import Store

SUB = "00000000-0000-0000-0000-000000000001"
RG = f"/subscriptions/{SUB}/resourceGroups/rg1/providers"


def _refused(model: type[Any], data: dict[str, Any]) -> str:
    with pytest.raises(ValidationError) as caught:
        model.model_validate(data)
    return str(caught.value.errors()[0]["msg"])


def _scale_set(**profile: Any) -> dict[str, Any]:
    return {"location": "westus", "sku": {"capacity": 1},
            "properties": {"virtualMachineProfile": profile}}


TAG_CASES = {
    "51 tags": ({f"t{i}": "v" for i in range(51)}, "at most 50 tags; got 51"),
    "a 513-character name": ({"n" * 513: "v"}, "is 513 characters long; use 1 to 512"),
    "a 257-character value": ({"n": "v" * 257}, "is 257 characters long; at most 256"),
    "a name with '<'": ({"a<b": "v"}, "holds characters tag names may not: '<'"),
    "a name with '/'": ({"a/b": "v"}, "holds characters tag names may not: '/'"),
}


@pytest.mark.parametrize("model", [ScaleSet, LoadBalancer, VirtualNetwork,
                                   NetworkSecurityGroup, PublicIPAddress])
@pytest.mark.parametrize("case", list(TAG_CASES))
def test_tags_beyond_arms_limits_are_refused_on_every_resource(model: type[Any],
                                                               case: str) -> None:
    tags, words = TAG_CASES[case]
    assert words in _refused(model, {"location": "westus", "tags": tags})
    ok = {f"t{i}": "v" * 256 for i in range(50)}
    assert model.model_validate({"location": "westus", "tags": ok}).tags == ok


def test_data_disks_are_at_most_64_on_unique_luns_from_0_to_63() -> None:
    def disks(luns: list[int]) -> dict[str, Any]:
        return _scale_set(storageProfile={"dataDisks": [{"lun": n} for n in luns]})
    assert len(ScaleSet.model_validate(disks(list(range(64)))).data_disks) == 64
    assert "at most 64 data disks; got 65" in _refused(ScaleSet, disks(list(range(65))))
    assert "lun is 64; a LUN must be between 0 and 63" in _refused(ScaleSet, disks([64]))
    assert "dataDisks[1].lun 3 is used by another" in _refused(ScaleSet, disks([3, 3]))


def _extension(name: str) -> dict[str, Any]:
    return {"name": name, "properties": {"publisher": "P", "type": "T"}}


def test_extensions_are_bounded_and_named_by_the_rule() -> None:
    many = _scale_set(extensionProfile={"extensions": [_extension(f"e{i}") for i in range(101)]})
    assert "at most 100" in _refused(ScaleSet, many)
    bad = _scale_set(extensionProfile={"extensions": [_extension("-x")]})
    assert "'-x' must start with a letter or digit" in _refused(ScaleSet, bad)
    assert "5000 characters" in _refused(
        ScaleSet, _scale_set(extensionProfile={"extensions": [_extension("e" * 5000)]}))


def test_computer_name_prefix_fits_the_os() -> None:
    windows: dict[str, Any] = {"windowsConfiguration": {}}
    assert ScaleSet.model_validate(_scale_set(osProfile={"computerNamePrefix": "w" * 9,
                                                         **windows}))
    message = _refused(ScaleSet, _scale_set(osProfile={"computerNamePrefix": "w" * 10,
                                                       **windows}))
    assert "on Windows it must be 1 to 9" in message
    assert ScaleSet.model_validate(_scale_set(osProfile={"computerNamePrefix": "l" * 58}))
    assert "on Linux it must be 1 to 58" in _refused(
        ScaleSet, _scale_set(osProfile={"computerNamePrefix": "l" * 59}))


def test_huge_strings_in_typed_fields_are_refused() -> None:
    ref = {"imageReference": {"publisher": "p" * (limits.MAX_SHORT_STRING + 1)}}
    assert "at most 1024 characters" in _refused(ScaleSet, _scale_set(storageProfile=ref))
    assert "at most 64 characters" in _refused(
        ScaleSet, _scale_set(osProfile={"adminUsername": "u" * 65}))
    nics = [{"name": f"n{i}"} for i in range(9)]
    assert "at most 8" in _refused(ScaleSet, _scale_set(
        networkProfile={"networkInterfaceConfigurations": nics}))


@pytest.mark.parametrize("value", [True, 2.5])
def test_a_capacity_must_be_a_whole_number(value: object) -> None:
    assert "whole number" in _refused(ScaleSet, {"location": "westus",
                                                 "sku": {"capacity": value}})


def test_custom_data_is_base64_of_at_most_64_kib() -> None:
    def with_data(data: str) -> ScaleSet:
        return ScaleSet.model_validate(_scale_set(osProfile={"customData": data}))
    commands.validate_model(with_data(base64.b64encode(b"x" * limits.CUSTOM_DATA_BYTES).decode()))
    with pytest.raises(InvalidParameter, match="more than the 65536 allowed"):
        commands.validate_model(with_data(base64.b64encode(
            b"x" * (limits.CUSTOM_DATA_BYTES + 1)).decode()))
    with pytest.raises(InvalidParameter, match="base64"):
        commands.validate_model(with_data("not base64!"))


def test_probes_and_load_balancer_children_names_are_bounded() -> None:
    probe = {"properties": {"protocol": "Tcp", "port": 80}}
    many = [{"name": f"p{i}", **probe} for i in range(limits.MAX_PROBES + 1)]
    assert "at most 1000" in _refused(LoadBalancer, {"location": "westus",
                                                     "properties": {"probes": many}})
    # Subnet and security rule names keep their checks (model/netrules.py, 400
    # InvalidResourceName); load balancer children use model/names.py's rules.
    frontends = [{"name": "-f"}]
    assert "frontendIPConfigurations[0].name: '-f' must start with a letter or digit" in [
        message for _, message in lbchildren.problems({"frontendIPConfigurations": frontends})]


@pytest.fixture
def client(sqlite_store: Store) -> Iterator[TestClient]:
    context = ApiContext(store=sqlite_store, clock=VirtualClock(EPOCH), auth_required=False)
    with TestClient(create_app(context), base_url="https://testserver") as c:
        yield c


def test_a_put_beyond_a_limit_is_a_400_naming_it_and_stores_nothing(client: TestClient) -> None:
    lb = f"{RG}/Microsoft.Network/loadBalancers/lb1?api-version=2024-05-01"
    r = client.put(lb, json={"location": "westus", "tags": {f"t{i}": "" for i in range(51)}})
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert error["code"] == "InvalidParameter" and error["target"] == "tags"
    assert "at most 50 tags; got 51" in error["message"]
    assert client.get(lb).status_code == 404


def test_the_simulator_is_not_capped_below_its_scenario() -> None:
    """A what-if of 1,001 instances runs although a server would refuse that capacity."""
    scenario = Scenario.model_validate_json(
        (Path(__file__).parents[2] / "examples/scenarios/bad-image-50.json").read_text())
    raw = scenario.model_dump(by_alias=True)
    raw["scaleSet"]["sku"]["capacity"] = 1001
    report = simulate(Scenario.model_validate(raw))
    assert report.instances == 1001
