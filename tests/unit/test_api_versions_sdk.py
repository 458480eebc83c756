"""Every api-version the installed Azure SDK for Python may send is accepted."""

from __future__ import annotations

import inspect
import os
import re
from pathlib import Path

import pytest

from scaleset.api import versions

operations = pytest.importorskip("azure.mgmt.compute.operations._operations",
                                 reason="azure-mgmt-compute is a test dependency")


def _listed(cls: type) -> set[str]:
    source = inspect.getsource(cls)
    lists = " ".join(re.findall(r"api_versions_list=\[[^\]]*\]", source))
    return set(re.findall(r'"(\d{4}-\d{2}-\d{2})"', lists))


@pytest.mark.parametrize(("name", "accepted"), [
    ("VirtualMachineScaleSetsOperations", versions.COMPUTE),
    ("GalleryImageVersionsOperations", versions.GALLERY),
])
def test_the_sdks_api_versions_are_accepted(name: str, accepted: tuple[str, ...]) -> None:
    listed = _listed(getattr(operations, name))
    assert listed, f"no api_versions_list found in {name}: the SDK's layout changed"
    assert listed <= set(accepted), sorted(listed - set(accepted))


def _python_network_versions() -> set[str]:
    network = pytest.importorskip("azure.mgmt.network.operations._operations",
                                  reason="azure-mgmt-network is a test dependency")
    source = inspect.getsource(network)
    return set(re.findall(r'_params.pop\("api-version", "(\d{4}-\d{2}-\d{2})"\)', source))


def test_the_python_network_sdks_api_versions_are_accepted() -> None:
    sent = _python_network_versions()
    assert sent, "no default api-version found in azure-mgmt-network: its layout changed"
    assert sent <= set(versions.NETWORK), sorted(sent - set(versions.NETWORK))


# The JavaScript SDK's operation groups that scaleset serves, by calendar.
JS_GROUPS = {
    "arm-compute": {
        versions.COMPUTE: ("virtualMachineScaleSets", "virtualMachineScaleSetVMs",
                           "virtualMachineScaleSetRollingUpgrades",
                           "virtualMachineScaleSetExtensions", "virtualMachineImages",
                           "operations"),
        versions.GALLERY: ("galleries", "galleryImages", "galleryImageVersions"),
    },
}


def _js_dir() -> Path:
    folder = os.environ.get("SCALESET_TEST_JS_DIR")
    if not folder:
        pytest.skip("the JavaScript SDK is not installed: make test installs it into "
                    "tests/clients/js and sets SCALESET_TEST_JS_DIR")
    return Path(folder) / "node_modules" / "@azure"


@pytest.mark.parametrize("package", sorted(JS_GROUPS))
def test_the_javascript_sdks_api_versions_are_accepted(package: str) -> None:
    api = _js_dir() / package / "dist" / "commonjs" / "api"
    for accepted, groups in JS_GROUPS[package].items():
        for group in groups:
            source = (api / group / "operations.js").read_text()
            sent = set(re.findall(r'"(\d{4}-\d{2}-\d{2})"', source))
            assert sent, f"no api-version found in {package} {group}: its layout changed"
            assert sent <= set(accepted), (group, sorted(sent - set(accepted)))


def test_the_javascript_network_sdks_api_version_is_accepted() -> None:
    parameters = (_js_dir() / "arm-network" / "dist" / "commonjs" / "models" /
                  "parameters.js").read_text()
    # exports.apiVersion = { parameterPath: "apiVersion", mapper: { defaultValue: "..." ...
    sent = set(re.findall(r'exports\.apiVersion = \{[^}]*?defaultValue: "(\d{4}-\d{2}-\d{2})"',
                          parameters))
    assert sent, "no default api-version found in @azure/arm-network: its layout changed"
    assert sent <= set(versions.NETWORK), sorted(sent - set(versions.NETWORK))


def test_a_version_past_the_newest_is_refused_as_arm_refuses_it() -> None:
    newest = max(versions.COMPUTE)
    later = f"{int(newest[:4]) + 1}{newest[4:]}"
    with pytest.raises(versions.InvalidApiVersion) as refused:
        versions.check(later, versions.COMPUTE, provider="Microsoft.Compute")
    assert refused.value.status == 400 and newest in str(refused.value)
