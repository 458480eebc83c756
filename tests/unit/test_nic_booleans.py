"""Network interface booleans written as strings (as ARM templates write them) read as booleans."""

from __future__ import annotations

from scaleset.model.scaleset import NetworkProfile


def test_template_strings_become_booleans_and_everything_else_stays() -> None:
    sent = {"networkInterfaceConfigurations": [{"name": "nic", "properties": {
        "primary": "true", "enableAcceleratedNetworking": "False", "dnsSettings": {},
        "ipConfigurations": [{"name": "ip", "properties": {
            "primary": "TRUE", "subnet": {"id": "/s"}, "privateIPAddressVersion": "IPv4"}}],
        "networkSecurityGroup": {"id": "/nsg"}}}]}
    got = NetworkProfile.model_validate(sent).model_dump(by_alias=True, exclude_unset=True)
    (nic,) = got["networkInterfaceConfigurations"]
    assert nic["properties"]["primary"] is True
    assert nic["properties"]["enableAcceleratedNetworking"] is False
    (ip,) = nic["properties"]["ipConfigurations"]
    assert ip["properties"] == {"primary": True, "subnet": {"id": "/s"},
                                "privateIPAddressVersion": "IPv4"}
    assert nic["properties"]["networkSecurityGroup"] == {"id": "/nsg"}


def test_a_string_that_is_no_boolean_is_left_for_validation_to_see() -> None:
    sent = {"networkInterfaceConfigurations": [{"name": "nic", "properties": {
        "primary": "yes"}}]}
    got = NetworkProfile.model_validate(sent).model_dump(by_alias=True, exclude_unset=True)
    assert got["networkInterfaceConfigurations"][0]["properties"]["primary"] == "yes"
