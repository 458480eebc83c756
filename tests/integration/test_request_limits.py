"""Request bodies up to 4 MiB (413 beyond, nothing stored) and requests in flight up to a
bound (429 with Retry-After beyond, /healthz never shed)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from scaleset.api import admission
from scaleset.api.app import create_app
from scaleset.api.context import ApiContext
from scaleset.cli.client import ArmClient, ArmClientError
from scaleset.reconcile.settings import Limits, MiB, ShellSettings
from scaleset.store.repository import Store
from tests.integration.test_api import RG, V, body
from tests.support import World

SCALE_SET = f"{RG}/virtualMachineScaleSets/big{V}"


def _context(store: Store, **limits: Any) -> ApiContext:
    world = World.create(store)
    return ApiContext(store=store, clock=world.clock, auth_required=False,
                      settings=ShellSettings(limits=Limits(**limits)))


@pytest.fixture
def client(sqlite_store: Store) -> Iterator[TestClient]:
    with TestClient(create_app(_context(sqlite_store)), base_url="https://testserver") as c:
        yield c


def _padded(size: int) -> bytes:
    """A scale-set body of exactly ``size`` bytes (a long tag value pads it)."""
    model = body()
    model["tags"] = {"pad": ""}
    base = len(json.dumps(model).encode())
    model["tags"]["pad"] = "x" * (size - base)
    data = json.dumps(model).encode()
    assert len(data) == size
    return data


def test_a_body_over_4_mib_is_a_413_naming_the_limit_and_nothing_is_stored(
        client: TestClient) -> None:
    size = 4 * MiB + 1
    r = client.put(SCALE_SET, content=_padded(size),
                   headers={"Content-Type": "application/json"})
    assert r.status_code == 413
    error = r.json()["error"]
    assert error["code"] == "RequestEntityTooLarge"
    assert str(4 * MiB) in error["message"] and str(size) in error["message"]
    assert client.get(SCALE_SET).status_code == 404


def test_a_chunked_body_is_cut_at_the_limit_and_nothing_is_stored(client: TestClient) -> None:
    data = _padded(5 * MiB)
    sent: list[int] = []

    def chunks() -> Iterator[bytes]:  # no Content-Length: the server counts as it reads
        for start in range(0, len(data), 64 * 1024):
            sent.append(start)
            yield data[start:start + 64 * 1024]

    r = client.put(SCALE_SET, content=chunks(), headers={"Content-Type": "application/json"})
    assert r.status_code == 413
    assert r.json()["error"]["code"] == "RequestEntityTooLarge"
    assert "cut while it was read" in r.json()["error"]["message"]
    assert client.get(SCALE_SET).status_code == 404


def test_a_body_at_the_limit_is_read(client: TestClient) -> None:
    """4 MiB exactly passes the size check; the model's own rules then judge it."""
    r = client.put(SCALE_SET, content=_padded(4 * MiB),
                   headers={"Content-Type": "application/json"})
    assert r.status_code != 413
    small = client.put(SCALE_SET, json=body())
    assert small.status_code == 201


def test_the_limit_is_the_servers_setting(sqlite_store: Store) -> None:
    app = create_app(_context(sqlite_store, max_request_bytes=1000))
    with TestClient(app, base_url="https://testserver") as c:
        r = c.put(SCALE_SET, content=_padded(1500), headers={"Content-Type": "application/json"})
        assert r.status_code == 413 and "1000 bytes" in r.json()["error"]["message"]


def test_beyond_the_requests_in_flight_a_429_in_arms_shape_and_healthz_still_answers(
        sqlite_store: Store) -> None:
    app = create_app(_context(sqlite_store, max_requests_in_flight=2))

    async def scenario() -> None:
        release = asyncio.Event()
        started = asyncio.Semaphore(0)

        async def slow_body() -> AsyncIterator[bytes]:  # keeps its request in flight
            started.release()
            await release.wait()
            yield json.dumps(body()).encode()

        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="https://testserver") as c:
            held = [asyncio.create_task(c.put(
                f"{RG}/virtualMachineScaleSets/held{i}{V}", content=slow_body(),
                headers={"Content-Type": "application/json"})) for i in range(2)]
            for _ in held:
                await asyncio.wait_for(started.acquire(), 5)
            shed = await c.get(f"{RG}/virtualMachineScaleSets{V}")
            assert shed.status_code == 429
            assert shed.headers["Retry-After"] == "1"
            assert 1000 <= int(shed.headers["retry-after-ms"]) <= 3000  # azure-core's, jittered
            assert shed.headers["x-ms-ratelimit-remaining-subscription-reads"] == "0"
            error = shed.json()["error"]
            assert error["code"] == "TooManyRequests"
            assert "--max-requests-in-flight 2" in error["message"]
            write = await c.delete(f"{RG}/virtualMachineScaleSets/x{V}")
            assert write.status_code == 429
            assert write.headers["x-ms-ratelimit-remaining-subscription-writes"] == "0"
            health = await c.get("/healthz")
            assert health.status_code == 200 and health.json()["status"] == "ok"
            # A template deployment's own resource requests are the work of an admitted
            # request: they pass (api/deployments.py sends them through admission.internal).
            inner = httpx.ASGITransport(app=admission.internal(app))
            async with httpx.AsyncClient(transport=inner, base_url="https://testserver") as i:
                assert (await i.get(f"{RG}/virtualMachineScaleSets{V}")).status_code == 200
            release.set()
            assert [r.status_code for r in await asyncio.gather(*held)] == [201, 201]
            again = await c.get(f"{RG}/virtualMachineScaleSets{V}")  # slots are given back
            assert again.status_code == 200
            assert {v["name"] for v in again.json()["value"]} == {"held0", "held1"}

    asyncio.run(scenario())


def test_the_cli_resends_a_throttled_write_after_retry_after() -> None:
    """A 429 was never run, so scaleset's own client sends a PUT again (the Azure SDK and
    az do too); a 503 on a write is not resent (it may have been applied)."""
    answers = [429, 201, 503]
    seen: list[str] = []

    def arm(request: httpx.Request) -> httpx.Response:
        seen.append(request.method)
        status = answers.pop(0)
        headers = {"Retry-After": "1"} if status in (429, 503) else {}
        return httpx.Response(status, json={} if status < 400 else {"error": {
            "code": "TooManyRequests" if status == 429 else "ServiceUnavailable",
            "message": "m"}}, headers=headers)

    sleeps: list[float] = []
    client = ArmClient(endpoint="https://cp.test", token="t", subscription="s",
                       transport=httpx.MockTransport(arm), sleep=sleeps.append)
    assert client.send("PUT", "/x", json={}).status_code == 201
    assert seen == ["PUT", "PUT"] and sleeps == [1.0]
    with pytest.raises(ArmClientError):
        client.send("PUT", "/x", json={})
    assert seen == ["PUT", "PUT", "PUT"]


def test_a_trickling_body_is_a_408_and_gives_its_place_back(
        sqlite_store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """A client that never finishes its body would hold an in-flight place for ever."""
    monkeypatch.setattr(admission, "BODY_SECONDS", 0.3)
    app = create_app(_context(sqlite_store, max_requests_in_flight=1))

    async def scenario() -> None:
        async def stalled() -> AsyncIterator[bytes]:
            yield b'{"location": '
            await asyncio.sleep(3)
            yield b'"westus"}'

        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="https://testserver") as c:
            started = time.monotonic()
            r = await c.put(SCALE_SET, content=stalled(),
                            headers={"Content-Type": "application/json"})
            assert r.status_code == 408 and r.json()["error"]["code"] == "RequestTimeout"
            assert time.monotonic() - started < 2.5
            assert (await c.get(SCALE_SET)).status_code == 404  # nothing stored, place free

    asyncio.run(scenario())


def test_post_and_patch_wait_for_a_place_before_a_429(
        sqlite_store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """The Azure SDK resends a throttled GET/PUT/DELETE but not a POST or PATCH, so those
    wait (a bounded time) for a place instead of failing the caller at once."""
    monkeypatch.setattr(admission, "WAIT_SECONDS", 0.5)
    app = create_app(_context(sqlite_store, max_requests_in_flight=1))

    async def scenario() -> None:
        async def held_for(seconds: float) -> AsyncIterator[bytes]:
            await asyncio.sleep(seconds)
            yield json.dumps(body()).encode()

        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="https://testserver") as c:
            put = {"Content-Type": "application/json"}
            held = asyncio.create_task(c.put(SCALE_SET, content=held_for(0.2), headers=put))
            await asyncio.sleep(0.05)
            assert (await c.get(SCALE_SET)).status_code == 429  # resent by SDKs: at once
            patch = await c.patch(SCALE_SET, json={"tags": {"a": "b"}})  # waits its turn
            assert patch.status_code == 200, patch.text
            assert (await held).status_code == 201
            held = asyncio.create_task(c.put(SCALE_SET, content=held_for(1.5), headers=put))
            await asyncio.sleep(0.05)
            late = await c.post(f"{RG}/virtualMachineScaleSets/big/restart{V}")
            assert late.status_code == 429 and late.headers["Retry-After"] == "1"
            assert (await held).status_code == 200
            assert (await c.get(SCALE_SET)).json()["tags"] == {"a": "b"}

    asyncio.run(scenario())
