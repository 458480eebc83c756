"""The client stories' write check (tests/e2e/story.py): every unnamed difference is listed."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from tests.e2e.story import (
    ABSENT,
    ANY,
    CHANGED,
    assert_only_changed,
    changes,
    from_json,
    step,
    unexpected_changes,
)


def body() -> dict[str, Any]:
    return {
        "name": "web", "etag": '"1"', "sku": {"name": "Standard_D2s_v3", "capacity": 3},
        "properties": {
            "provisioningState": "Succeeded", "timeCreated": "2026-01-01T00:00:00Z",
            "upgradePolicy": {"mode": "Rolling", "rollingUpgradePolicy": {
                "maxBatchInstancePercent": 20, "prioritizeUnhealthyInstances": False}},
            "virtualMachineProfile": {"extensionProfile": {"extensions": [
                {"name": "health", "properties": {"settings": {"port": 80}}}]}},
        },
    }


def test_an_unchanged_body_has_nothing_to_report() -> None:
    assert unexpected_changes(body(), body(), {}) == []


def test_the_named_field_may_change_and_must_show_its_value() -> None:
    after = body()
    after["sku"]["capacity"] = 4
    assert unexpected_changes(body(), after, {"sku.capacity": 4}) == []
    assert unexpected_changes(body(), after, {"sku.capacity": 5}) == [
        "sku.capacity: expected 5, GET shows 4"]
    assert unexpected_changes(body(), after, {"sku.capacity": ANY}) == []


def test_every_unnamed_difference_is_listed_with_both_values() -> None:
    after = body()
    after["sku"]["capacity"] = 4
    after["sku"]["name"] = "Standard_D4s_v3"
    after["properties"]["upgradePolicy"]["mode"] = "Manual"
    problems = unexpected_changes(body(), after, {"sku.capacity": 4})
    assert problems == [
        "properties.upgradePolicy.mode: changed from 'Rolling' to 'Manual', "
        "but the write did not name it",
        "sku.name: changed from 'Standard_D2s_v3' to 'Standard_D4s_v3', "
        "but the write did not name it"]


def test_fields_that_appear_or_vanish_count_and_say_so() -> None:
    after = body()
    del after["properties"]["timeCreated"]
    after["properties"]["upgradePolicy"]["automaticOSUpgradePolicy"] = {
        "enableAutomaticOSUpgrade": True}
    assert unexpected_changes(body(), after, {}) == [
        "properties.timeCreated: changed from '2026-01-01T00:00:00Z' to <absent>, "
        "but the write did not name it",
        "properties.upgradePolicy.automaticOSUpgradePolicy.enableAutomaticOSUpgrade: "
        "changed from <absent> to True, but the write did not name it"]
    # Naming the leaf covers the objects created to hold it.
    assert unexpected_changes(body(), after, {
        "properties.upgradePolicy.automaticOSUpgradePolicy.enableAutomaticOSUpgrade": True,
        "properties.timeCreated": ABSENT}) == []


def test_types_are_told_apart() -> None:
    after = body()
    after["properties"]["upgradePolicy"]["rollingUpgradePolicy"][
        "prioritizeUnhealthyInstances"] = 0  # False == 0 in Python, not in JSON
    after["properties"]["upgradePolicy"]["rollingUpgradePolicy"][
        "maxBatchInstancePercent"] = 20.0
    assert len(unexpected_changes(body(), after, {})) == 2


def test_list_items_are_compared_by_index_and_a_resized_list_as_a_whole() -> None:
    after = body()
    extensions = after["properties"]["virtualMachineProfile"]["extensionProfile"]["extensions"]
    extensions[0]["properties"]["settings"]["port"] = 8080
    assert [p for p, _, _ in changes(body(), after)] == [
        "properties.virtualMachineProfile.extensionProfile.extensions.0.properties.settings.port"]
    extensions.append({"name": "other"})
    [(path, old, new)] = changes(body(), after)
    assert path == "properties.virtualMachineProfile.extensionProfile.extensions"
    assert len(old) == 1 and len(new) == 2


def test_only_etag_and_provisioning_state_move_freely() -> None:
    after = body()
    after["etag"] = '"2"'
    assert unexpected_changes(body(), after, {}) == []
    after["properties"]["provisioningState"] = "Updating"
    assert unexpected_changes(body(), after, {}) == [
        "properties.provisioningState: 'Updating' after the operation ended "
        "(expected 'Succeeded')"]
    assert unexpected_changes(body(), after, {}, settled=False) == []


def test_a_prefix_of_a_name_is_not_the_name() -> None:
    before = {"sku": {"capacity": 3, "capacityReservation": 1}}
    after = copy.deepcopy(before)
    after["sku"]["capacityReservation"] = 2
    assert unexpected_changes(before, after, {"sku.capacity": 3}, settled=False) == [
        "sku.capacityReservation: changed from 1 to 2, but the write did not name it"]


def test_failures_name_the_write_and_the_step() -> None:
    after = body()
    after["name"] = "other"
    with pytest.raises(AssertionError, match=r"the GET after 'scale' differs.*\n  name: "):
        assert_only_changed("scale", body(), after, {})
    with pytest.raises(AssertionError, match=r"step 'scale out' failed: KeyError"):
        with step("scale out"):
            raise KeyError("sku")


def test_changed_means_a_new_value() -> None:
    after = body()
    after["name"] = "other"
    assert unexpected_changes(body(), after, {"name": CHANGED}) == []
    assert unexpected_changes(body(), body(), {"name": CHANGED}) == [
        "name: expected a new value, GET still shows 'web'"]
    assert from_json({"name": {"$changed": True}, "sku.capacity": 4}) == {
        "name": CHANGED, "sku.capacity": 4}
