"""model/fields: the keys a typed model knows, so hand-written JSON cannot hide a typo."""

from __future__ import annotations

from scaleset.model.fields import unknown_keys
from scaleset.model.scaleset import ScaleSet
from tests.support import scale_set_model


def test_what_the_model_writes_it_knows() -> None:
    model = scale_set_model(policy={"maxBatchInstancePercent": 20, "maxSurge": True},
                            zones=["1"], extra_properties={"singlePlacementGroup": True})
    assert unknown_keys(ScaleSet, model.to_wire()) == []


def test_a_misspelt_key_is_named_with_its_place_and_the_closest_names() -> None:
    (found,) = unknown_keys(ScaleSet, {"properties": {"upgradePolicy": {
        "rollingUpgradePolicy": {"maxSurg": True}}}})
    assert (found.path, found.key) == ("properties.upgradePolicy.rollingUpgradePolicy",
                                       "maxSurg")
    assert "did you mean maxSurge?" in found.message()


def test_list_items_are_walked_and_free_form_maps_take_any_key() -> None:
    data = {"tags": {"whatever": "x"}, "properties": {"virtualMachineProfile": {
        "extensionProfile": {"extensions": [
            {"name": "a", "properties": {"publisher": "p", "type": "t",
                                         "settings": {"anything": 1}}},
            {"name": "b", "properties": {"publisher": "p", "type": "t", "settngs": {}}}]}}}}
    (found,) = unknown_keys(ScaleSet, data)
    assert found.path.endswith("extensions[1].properties") and found.key == "settngs"


def test_attribute_names_are_accepted_as_pydantic_accepts_them() -> None:
    assert unknown_keys(ScaleSet, {"properties": {"upgrade_policy": {"mode": "Manual"}}}) == []
