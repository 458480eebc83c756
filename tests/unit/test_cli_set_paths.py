"""``vmss update --set`` refuses a path the scale set does not have, and sends nothing.

The server keeps unknown keys on purpose, so a misspelt path would be stored and
ignored; the CLI checks each key against the GET body and the typed model
(``scaleset.cli.setpaths``). Driven against the fake ARM server of
``test_cli_client``.
"""

from __future__ import annotations

import doctest
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import typer
from typer.testing import CliRunner, Result

from scaleset.cli import setpaths, vmss
from scaleset.cli.client import ClientFactory
from tests.unit.test_cli_client import ENDPOINT, SS, FakeArm, scale_set

Run = Callable[..., Result]


def _body() -> dict[str, Any]:
    """The scale set GET shows: no rolling policy, no tags, an untyped osDisk.managedDisk."""
    body = scale_set()
    body["properties"]["virtualMachineProfile"]["storageProfile"]["osDisk"] = {
        "createOption": "FromImage", "managedDisk": {"storageAccountType": "Premium_LRS"}}
    return body


@pytest.fixture
def fake() -> FakeArm:
    arm = FakeArm()
    arm.on("GET", SS, httpx.Response(200, json=_body(), headers={"ETag": '"7"'}))
    arm.on("PATCH", SS, lambda r: httpx.Response(200, json=json.loads(r.content)))
    return arm


@pytest.fixture
def update(fake: FakeArm, tmp_path: Path) -> Run:
    """``scaleset vmss update -g rg1 -n vmss1 ARGS... --no-wait`` against the fake."""
    def run(*args: str) -> Result:
        environ = {"HOME": str(tmp_path), "SCALESET_ENDPOINT": ENDPOINT, "SCALESET_TOKEN": "t"}
        factory = ClientFactory(transport=httpx.MockTransport(fake), sleep=lambda _: None,
                                environ=environ)
        return CliRunner().invoke(vmss.app, ["update", "-g", "rg1", "-n", "vmss1", *args,
                                             "--no-wait"], obj=factory,
                                  env={"COLUMNS": "200", "NO_COLOR": "1"})
    return run


def _said(result: Result) -> str:
    """The output as one line (the usage-error box folds long messages)."""
    return " ".join(result.output.replace("│", " ").split())


def _refused(result: Result, fake: FakeArm, *words: str) -> None:
    """Exit 2, every word in the message, and only the GET reached the server."""
    assert result.exit_code == 2, result.output
    said = _said(result)
    for word in ("--set", *words):
        assert word in said, said
    assert [r.method for r in fake.requests] == ["GET"]


def _patched(result: Result, fake: FakeArm) -> Any:
    assert result.exit_code == 0, result.output
    return fake.body("PATCH", SS)


def test_the_examples_in_the_docstrings_hold() -> None:
    result = doctest.testmod(setpaths)
    assert result.attempted > 0 and result.failed == 0


# -- refused --------------------------------------------------------------------------------

def test_a_misspelt_leaf_is_refused_with_the_closest_field(update: Run, fake: FakeArm) -> None:
    result = update("--set", "upgradePolicy.rollingUpgradePolicy.maxBatchInstancePercnt=50")
    _refused(result, fake, "upgradePolicy.rollingUpgradePolicy.maxBatchInstancePercnt:",
             "unknown field 'maxBatchInstancePercnt'",
             "in properties.upgradePolicy.rollingUpgradePolicy",
             "did you mean maxBatchInstancePercent")


def test_a_misspelt_intermediate_is_refused_where_it_goes_wrong(update: Run,
                                                                fake: FakeArm) -> None:
    result = update("--set", "upgradePolicy.rollingUpgradePolcy.maxSurge=true")
    _refused(result, fake, "unknown field 'rollingUpgradePolcy' in properties.upgradePolicy",
             "did you mean rollingUpgradePolicy")


def test_keys_the_resource_has_but_the_model_does_not_type_are_suggested_too(
        update: Run, fake: FakeArm) -> None:
    result = update("--set",
                    "virtualMachineProfile.storageProfile.osDisk.managedDsk.storageAccountType=x")
    _refused(result, fake, "unknown field 'managedDsk'", "did you mean managedDisk")


def test_below_an_untyped_object_only_its_keys_go(update: Run, fake: FakeArm) -> None:
    result = update("--set", "virtualMachineProfile.storageProfile.osDisk.managedDisk."
                             "storageAcountType=Standard_LRS")
    _refused(result, fake, "in properties.virtualMachineProfile.storageProfile.osDisk.managedDisk",
             "did you mean storageAccountType")


def test_one_bad_path_among_good_ones_sends_nothing(update: Run, fake: FakeArm) -> None:
    result = update("--set", "sku.capacity=5", "--set", "sku.capacty=5",
                    "--max-batch-instance-percent", "50")
    _refused(result, fake, "sku.capacty:", "in sku", "did you mean capacity")


def test_a_key_below_a_plain_value_is_refused(update: Run, fake: FakeArm) -> None:
    # rollingUpgradePolicy is absent, so only the model says maxSurge is a bool.
    result = update("--set", "upgradePolicy.rollingUpgradePolicy.maxSurge.enabled=true")
    _refused(result, fake, "unknown field 'enabled'", "maxSurge, which is not an object")


# -- accepted -------------------------------------------------------------------------------

def test_a_typed_field_the_get_body_leaves_out_is_accepted(update: Run, fake: FakeArm) -> None:
    result = update("--set", "upgradePolicy.rollingUpgradePolicy.maxSurge=true")
    assert _patched(result, fake) == {"properties": {"upgradePolicy": {
        "rollingUpgradePolicy": {"maxSurge": True}}}}


def test_a_typed_field_is_sent_as_the_model_spells_it(update: Run, fake: FakeArm) -> None:
    # The server would keep 'MAXSURGE' as an unknown key and ignore it.
    result = update("--set", "upgradePolicy.RollingUpgradePolicy.MAXSURGE=true")
    assert _patched(result, fake) == {"properties": {"upgradePolicy": {
        "rollingUpgradePolicy": {"maxSurge": True}}}}


def test_policy_flags_set_fields_the_get_body_leaves_out(update: Run, fake: FakeArm) -> None:
    result = update("--max-batch-instance-percent", "10", "--max-surge", "true")
    assert _patched(result, fake) == {"properties": {"upgradePolicy": {
        "rollingUpgradePolicy": {"maxBatchInstancePercent": 10, "maxSurge": True}}}}


def test_any_tag_goes(update: Run, fake: FakeArm) -> None:
    result = update("--set", "tags.anything-at-all=yes")
    assert _patched(result, fake) == {"tags": {"anything-at-all": "yes"}}


@pytest.mark.parametrize("key", ["settings", "protectedSettings"])
def test_any_key_goes_under_an_extensions_settings(update: Run, fake: FakeArm, key: str
                                                   ) -> None:
    result = update("--set", f"virtualMachineProfile.extensionProfile.extensions[0].{key}."
                             "requestPth=/health")
    extension = _patched(result, fake)["properties"]["virtualMachineProfile"][
        "extensionProfile"]["extensions"][0]
    assert extension["properties"][key]["requestPth"] == "/health"


# -- build_patch keeps its other rules ------------------------------------------------------

@pytest.mark.parametrize(("assignment", "words"), [
    ("virtualMachineProfile.extensionProfile.extensions[3].name=x", "index [3] is out of range"),
    ("location.city=x", "cannot set 'city' inside a str value"),
    ("upgradePolicy.mode.x=1", "cannot set 'x' inside a str value"),
])
def test_other_impossible_paths_keep_their_own_message(assignment: str, words: str) -> None:
    with pytest.raises(typer.BadParameter, match=words.replace("[", r"\[")):
        vmss.build_patch(_body(), [vmss.parse_assignment(assignment)])


def test_keys_the_resource_has_keep_its_spelling() -> None:
    assert vmss.build_patch(_body(), [vmss.parse_assignment(
        "VirtualMachineProfile.StorageProfile.OSDISK.ManagedDisk.StorageAccountType=x")]) == {
        "properties": {"virtualMachineProfile": {"storageProfile": {"osDisk": {
            "managedDisk": {"storageAccountType": "x"}}}}}}
