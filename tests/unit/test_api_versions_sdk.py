"""Every api-version the installed Azure SDK for Python may send is accepted."""

from __future__ import annotations

import inspect
import re

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


def test_the_javascript_sdks_compute_version_is_accepted() -> None:
    # @azure/arm-compute 24.1 sends 2026-03-01 (measured for issue 11).
    assert versions.check("2026-03-01", versions.COMPUTE, provider="Microsoft.Compute")
