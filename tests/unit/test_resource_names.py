"""Resource names by ARM's rules: every accepted name fits its rule, the bad ones are refused."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st

from scaleset.api.app import create_app
from scaleset.api.context import ApiContext
from scaleset.api.names import name_problem, path_names
from scaleset.clock import EPOCH, VirtualClock
from scaleset.model import names
from scaleset.store.repository import Store

VMSS = "Microsoft.Compute/virtualMachineScaleSets"
SUB = "00000000-0000-0000-0000-000000000001"
RG = f"/subscriptions/{SUB}/resourceGroups/rg1/providers"
V = "?api-version=2026-04-01"

BAD = {
    "5,000 characters": "a" * 5000,
    "a device name": "con",
    "a device name with an extension": "LPT1.log",
    "a leading hyphen": "-lead",
    "a NUL byte": "web\x00",
    "a trailing period": "web.",
    "a space": "my vmss",
    "a slash-like character": "a\\b",
}


@pytest.mark.parametrize("name", list(BAD.values()), ids=list(BAD))
def test_the_documented_bad_names_are_refused_for_every_type(name: str) -> None:
    for resource_type in names.RULES:
        assert names.problem(resource_type, name) is not None, resource_type


@pytest.mark.parametrize("resource_type", sorted(names.RULES))
@settings(max_examples=25, deadline=None)
@given(name=st.text(min_size=0, max_size=90))
def test_every_accepted_name_fits_its_rule(resource_type: str, name: str) -> None:
    rule = names.RULES[resource_type]
    if names.problem(resource_type, name) is not None:
        return
    assert rule.min_length <= len(name) <= rule.max_length
    assert not any(ord(ch) < 32 or ord(ch) == 127 for ch in name)
    if rule.pattern is not None:
        assert re.fullmatch(rule.pattern, name)
        return
    assert re.fullmatch(f"[{rule.first}]", name[0]) and re.fullmatch(f"[{rule.last}]", name[-1])
    assert all(re.fullmatch(f"[{rule.allowed}]", ch) for ch in name)
    assert name.split(".", 1)[0].lower() not in names.DEVICE_NAMES


@settings(max_examples=100, deadline=None)
@given(name=st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}[A-Za-z0-9_]", fullmatch=True))
def test_names_that_follow_the_compute_rule_are_accepted(name: str) -> None:
    stem = name.split(".", 1)[0].lower()
    expected_ok = stem not in names.DEVICE_NAMES
    assert (names.problem("virtualMachineScaleSets", name) is None) == expected_ok


def test_each_message_names_the_rule_and_the_value() -> None:
    assert names.problem(VMSS, "a" * 5000) == (
        f"'{'a' * 40}…' is 5000 characters long; a virtual machine scale set name must be 1 "
        "to 64 characters")
    assert names.problem(VMSS, "con") == (
        "'con' is a reserved device name (CON); choose another name")
    assert "U+0000" in (names.problem(VMSS, "web\x00") or "")
    assert names.problem("Microsoft.ServiceFabric/clusters", "mymicrosoftcluster") == (
        "'mymicrosoftcluster' contains the reserved word 'MICROSOFT'; choose another name")


def test_paths_are_walked_to_every_typed_name() -> None:
    assert path_names(f"{RG}/{VMSS}/web/virtualMachines/3/instanceView") == [
        (VMSS, "web"), (f"{VMSS}/virtualMachines", "3")]
    assert name_problem("PUT", f"{RG}/{VMSS}/web/virtualMachines/x")[:2] == (  # type: ignore[index]
        400, "InvalidResourceName")
    # Reads and deletes refuse only names nothing can be called (a stored legacy name stays
    # readable); the others reach the route, which answers 404.
    assert name_problem("GET", f"{RG}/{VMSS}/con") is None
    assert name_problem("DELETE", f"{RG}/{VMSS}/a\x00")[0] == 404  # type: ignore[index]


@pytest.fixture
def client(sqlite_store: Store) -> Iterator[TestClient]:
    context = ApiContext(store=sqlite_store, clock=VirtualClock(EPOCH), auth_required=False)
    with TestClient(create_app(context), base_url="https://testserver") as c:
        yield c


@pytest.mark.parametrize("path", [
    f"{VMSS}/con", f"{VMSS}/-lead", f"{VMSS}/web%00", f"{VMSS}/{'v' * 5000}",
    "Microsoft.Network/loadBalancers/lb./probes", "Microsoft.Network/virtualNetworks/v",
    "Microsoft.Network/networkSecurityGroups/nsg%20", "Microsoft.Compute/galleries/g-1",
    "Microsoft.ServiceFabric/clusters/SF1", "Microsoft.Resources/deployments/d%2A"])
def test_a_put_of_a_bad_name_is_a_400_in_arms_envelope_and_nothing_is_stored(
        client: TestClient, path: str) -> None:
    body = {"location": "westus", "properties": {}}
    r = client.put(f"{RG}/{path}{V}", json=body)
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert error["code"] == "InvalidResourceName" and error["target"] == "name"
    assert client.get(f"{RG}/{path}{V}").status_code in (400, 404)


def test_a_lowercase_path_keyword_is_checked_as_well(client: TestClient) -> None:
    r = client.put(f"{RG.lower()}/microsoft.compute/virtualmachinescalesets/aux{V}",
                   json={"location": "westus"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "InvalidResourceName"
