"""What an extension is, decided in one place: every module that asks agrees with it."""

from __future__ import annotations

import doctest
from typing import Any

import pytest

from scaleset.drivers.base import ExtensionSpec
from scaleset.drivers.process import extensions as process_extensions
from scaleset.model import extensions
from scaleset.model.extensions import ExtensionKind, kind_of
from scaleset.model.scaleset import ScaleSet
from scaleset.reconcile.membership import has_health_source
from scaleset.sim.scenario import DEFAULT_PROBE, Scenario

CASES: list[tuple[str, str, ExtensionKind]] = [
    ("Microsoft.ManagedServices", "ApplicationHealthLinux", ExtensionKind.APPLICATION_HEALTH),
    ("microsoft.managedservices", "APPLICATIONHEALTHWINDOWS", ExtensionKind.APPLICATION_HEALTH),
    ("Contoso.Health", "ApplicationHealthLinux", ExtensionKind.OTHER),  # a look-alike
    ("Microsoft.ManagedServices", "ApplicationHealthLinuxV2", ExtensionKind.OTHER),
    ("Microsoft.Azure.ServiceFabric", "ServiceFabricNode", ExtensionKind.SERVICE_FABRIC),
    ("Microsoft.Azure.ServiceFabric", "ServiceFabricLinuxNode", ExtensionKind.SERVICE_FABRIC),
    ("Contoso", "ServiceFabricLinuxNode", ExtensionKind.OTHER),
    ("Microsoft.Azure.Extensions", "CustomScript", ExtensionKind.CUSTOM_SCRIPT),
    ("Microsoft.Compute", "CustomScriptExtension", ExtensionKind.CUSTOM_SCRIPT),
    ("Microsoft.Compute", "CustomScript", ExtensionKind.OTHER),
]

HEALTH_SETTINGS = {"protocol": "http", "port": 8080, "requestPath": "/health"}


def _extension(publisher: str, type_: str) -> dict[str, Any]:
    return {"name": "ext", "properties": {"publisher": publisher, "type": type_,
                                          "typeHandlerVersion": "2.0",
                                          "settings": HEALTH_SETTINGS}}


def _model(publisher: str, type_: str) -> ScaleSet:
    return ScaleSet.model_validate({"location": "westus", "properties": {
        "virtualMachineProfile": {"extensionProfile": {"extensions": [
            _extension(publisher, type_)]}}}})


def test_the_doctests_hold() -> None:
    assert doctest.testmod(extensions).failed == 0


@pytest.mark.parametrize(("publisher", "type_", "kind"), CASES)
def test_publisher_and_type_decide_the_kind_everywhere(
        publisher: str, type_: str, kind: ExtensionKind) -> None:
    assert kind_of(publisher, type_) is kind
    model = _model(publisher, type_)
    assert model.extensions[0].kind is kind
    assert (model.health_extension is not None) is (kind is ExtensionKind.APPLICATION_HEALTH)
    assert (model.service_fabric_extension is not None) is (kind is ExtensionKind.SERVICE_FABRIC)
    # The health source the drivers are told about: the extension or the SF node.
    assert has_health_source(model) is (kind in (ExtensionKind.APPLICATION_HEALTH,
                                                 ExtensionKind.SERVICE_FABRIC))
    # The simulator adds its default probe only when no health extension is there.
    scenario = Scenario.model_validate({"scaleSet": {"properties": {"virtualMachineProfile": {
        "extensionProfile": {"extensions": [_extension(publisher, type_)]}}}}})
    simulated = scenario.build_scale_set()
    assert (simulated.health_probe_id == DEFAULT_PROBE) is (
        kind is not ExtensionKind.APPLICATION_HEALTH)
    # The process driver probes only the real Application Health extension.
    spec = ExtensionSpec(name="ext", publisher=publisher, type=type_, settings=HEALTH_SETTINGS)
    assert (process_extensions.health_spec(spec) is not None) is (
        kind is ExtensionKind.APPLICATION_HEALTH)


def test_values_that_are_not_text_are_no_known_extension() -> None:
    assert kind_of(None, "CustomScript") is ExtensionKind.OTHER
    assert kind_of("Microsoft.Azure.Extensions", 3) is ExtensionKind.OTHER
