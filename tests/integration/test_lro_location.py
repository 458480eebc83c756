"""The ``Location`` URL of an operation, as clients that poll only it see it.

A poller that follows ``Location`` alone (ARM's pattern D; azure-core's
``LocationPolling``, core-lro's "ResourceLocation" mode) reads 202 as running,
any other 2xx as succeeded and everything else as failed: so a finished
operation answers 200 with the final resource, and a failed or cancelled one
must not answer 2xx.
"""

from __future__ import annotations

from tests.integration.test_api import LOC_IMAGES, RG, V, Api, api, body

__all__ = ["api"]  # the fixture


def _rolling_without_automatic(capacity: int) -> dict[str, object]:
    data = body(capacity=capacity)
    data["properties"] = {**data["properties"], "upgradePolicy": {  # type: ignore[dict-item]
        "mode": "Rolling", "rollingUpgradePolicy": {"maxBatchInstancePercent": 20}}}
    return data


def test_a_patchs_location_answers_the_patched_scale_set_with_its_etag(api: Api) -> None:
    api.client.put(f"{RG}/virtualMachineScaleSets/vmss1{V}", json=body(capacity=2))
    api.settle()
    r = api.client.patch(f"{RG}/virtualMachineScaleSets/vmss1{V}",
                         json={"sku": {"capacity": 3}, "tags": {"team": "web"}})
    assert r.status_code == 200
    running = api.client.get(r.headers["Location"])
    assert (running.status_code, running.headers["Retry-After"]) == (202, "1")
    api.settle()
    final = api.client.get(r.headers["Location"])
    assert final.status_code == 200
    assert final.json()["sku"]["capacity"] == 3 and final.json()["tags"] == {"team": "web"}
    got = api.client.get(f"{RG}/virtualMachineScaleSets/vmss1{V}")
    assert final.headers["ETag"] == got.headers["ETag"]


def test_a_cancelled_runs_location_answers_409_with_the_reason(api: Api) -> None:
    api.client.put(f"{RG}/virtualMachineScaleSets/vmss1{V}", json=_rolling_without_automatic(5))
    api.settle()
    api.client.put(f"{LOC_IMAGES}/1.1.0{V}", json={"location": "westus"})
    start = api.client.post(f"{RG}/virtualMachineScaleSets/vmss1/osRollingUpgrade{V}")
    assert start.status_code == 202
    cancel = api.client.post(f"{RG}/virtualMachineScaleSets/vmss1/rollingUpgrades/cancel{V}")
    assert cancel.status_code == 202
    api.settle()

    assert api.op(start)["status"] == "Canceled"
    failed = api.client.get(start.headers["Location"])
    assert failed.status_code == 409
    assert failed.json()["error"]["code"] == "OperationCanceled"
    assert "cancel" in failed.json()["error"]["message"]
    # The cancel itself succeeded: its Location is a plain 200.
    done = api.client.get(cancel.headers["Location"])
    assert (done.status_code, done.content) == (200, b"")


def test_an_unknown_operation_is_a_404_in_the_envelope(api: Api) -> None:
    sub = RG.split("/")[2]
    r = api.client.get(f"/subscriptions/{sub}/providers/Microsoft.Compute/locations/westus/"
                       f"operations/00000000-0000-0000-0000-00000000dead{V}&monitor=true")
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "NotFound"
