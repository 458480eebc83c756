"""Concurrent writers through the API: no lost update, one winner per etag, no 5xx.

Each write reads, checks If-Match / If-None-Match, merges and writes in one
transaction (SQLite: BEGIN IMMEDIATE; PostgreSQL: the row locked, a lost
insert race retried as an update). The requests run on threads against the
in-process app, on a SQLite file and on PostgreSQL when one is configured.
"""

from __future__ import annotations

import itertools
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, invariant, rule

from scaleset.api.app import create_app
from scaleset.api.context import ApiContext
from scaleset.store.repository import Store
from tests.support import IMAGE, PROBE_ID, World

SUB = "00000000-0000-0000-0000-000000000001"
SETS = f"/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.Compute/" \
       "virtualMachineScaleSets/"
V = "?api-version=2026-04-01"
NAMES = itertools.count()


def scale_set_body() -> dict[str, Any]:
    """A small valid scale set (no instances are made: no reconcile pass runs here)."""
    return {
        "location": "westus",
        "sku": {"name": "Standard_D2s_v3", "capacity": 1},
        "properties": {
            "upgradePolicy": {"mode": "Manual"},
            "virtualMachineProfile": {
                "osProfile": {"computerNamePrefix": "vm", "adminUsername": "azureuser",
                              "adminPassword": "S3cret!pass"},
                "storageProfile": {"imageReference": {**IMAGE, "version": "latest"}},
                "networkProfile": {"healthProbe": {"id": PROBE_ID}},
            },
        },
    }


@pytest.fixture
def client(store: Store) -> Iterator[TestClient]:
    world = World.create(store)
    context = ApiContext(store=store, clock=world.clock, settings=world.settings,
                         auth_required=False)
    # Server errors come back as responses (not raised in the test), so a 5xx is seen.
    with TestClient(create_app(context), base_url="https://testserver",
                    raise_server_exceptions=False) as c:
        yield c


def at_once(calls: list[Callable[[], httpx.Response]]) -> list[httpx.Response]:
    """Run the calls on as many threads, all started together; their responses in order."""
    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        return list(pool.map(lambda call: call(), calls))


def no_server_error(responses: list[httpx.Response]) -> None:
    bad = [(r.status_code, r.text[:300]) for r in responses if r.status_code >= 500]
    assert not bad, bad


def create(client: TestClient, name: str) -> str:
    r = client.put(SETS + name + V, json=scale_set_body())
    assert r.status_code == 201, r.text
    return str(r.headers["ETag"])


def tag_patches(client: TestClient, name: str, keys: list[str],
                headers: dict[str, str] | None = None) -> list[httpx.Response]:
    def patch(key: str) -> Callable[[], httpx.Response]:
        return lambda: client.patch(SETS + name + V, json={"tags": {key: "v-" + key}},
                                    headers=headers or {})

    return at_once([patch(k) for k in keys])


def test_twenty_concurrent_tag_patches_are_all_kept(client: TestClient) -> None:
    create(client, "tags20")
    keys = [f"k{i}" for i in range(20)]
    responses = tag_patches(client, "tags20", keys)
    assert [r.status_code for r in responses] == [200] * 20, [r.text for r in responses]
    tags = client.get(SETS + "tags20" + V).json()["tags"]
    assert tags == {k: "v-" + k for k in keys}
    etags = {r.headers["ETag"] for r in responses}
    assert len(etags) == 20  # each write produced its own version


def test_twenty_patches_with_one_etag_give_one_200_and_nineteen_412(client: TestClient) -> None:
    etag = create(client, "etag20")
    responses = tag_patches(client, "etag20", [f"k{i}" for i in range(20)],
                            headers={"If-Match": etag})
    codes = sorted(r.status_code for r in responses)
    assert codes == [200] + [412] * 19, [r.text for r in responses]
    winner = next(r for r in responses if r.status_code == 200)
    loser = next(r for r in responses if r.status_code == 412)
    assert loser.json()["error"]["code"] == "PreconditionFailed"
    assert etag in loser.json()["error"]["message"]
    tags = client.get(SETS + "etag20" + V).json()["tags"]
    assert tags == winner.json()["tags"] and len(tags) == 1


def test_concurrent_creates_of_one_name_give_one_201_and_the_rest_200(
        client: TestClient) -> None:
    responses = at_once([lambda: client.put(SETS + "same" + V, json=scale_set_body())] * 12)
    no_server_error(responses)
    assert sorted(r.status_code for r in responses) == [200] * 11 + [201]


def test_concurrent_creates_with_if_none_match_give_one_201_and_the_rest_412(
        client: TestClient) -> None:
    responses = at_once([lambda: client.put(SETS + "once" + V, json=scale_set_body(),
                                            headers={"If-None-Match": "*"})] * 12)
    no_server_error(responses)
    assert sorted(r.status_code for r in responses) == [201] + [412] * 11


class Writers(RuleBasedStateMachine):
    """Bursts of concurrent writers; every burst's outcome is checked as it ends."""

    client: TestClient
    sets = Bundle("sets")

    def __init__(self) -> None:
        super().__init__()
        self.counter = 0
        self.kept: dict[str, dict[str, str]] = {}  # name -> tags a 200 PATCH set
        self.responses: list[httpx.Response] = []

    def _name(self) -> str:
        # Unique across examples: hypothesis replays machines on the same database.
        return f"m{next(NAMES)}"

    @rule(target=sets, n=st.integers(min_value=2, max_value=8),
          if_none_match=st.booleans())
    def concurrent_creates(self, n: int, if_none_match: bool) -> str:
        name = self._name()
        headers = {"If-None-Match": "*"} if if_none_match else {}
        responses = at_once([lambda: self.client.put(SETS + name + V, json=scale_set_body(),
                                                     headers=headers)] * n)
        self.responses += responses
        codes = sorted(r.status_code for r in responses)
        assert codes == sorted([201] + [412 if if_none_match else 200] * (n - 1)), \
            [(r.status_code, r.text[:200]) for r in responses]
        self.kept[name] = {}
        return name

    @rule(name=sets, n=st.integers(min_value=2, max_value=8))
    def concurrent_tag_patches(self, name: str, n: int) -> None:
        self.counter += 1
        keys = [f"t{self.counter}_{i}" for i in range(n)]
        responses = tag_patches(self.client, name, keys)
        self.responses += responses
        if name not in self.kept:  # deleted: each PATCH is refused or lands on a Deleting set
            return
        for key, r in zip(keys, responses, strict=True):
            if r.status_code == 200:
                self.kept[name][key] = "v-" + key
        tags = self.client.get(SETS + name + V).json().get("tags") or {}
        assert self.kept[name].items() <= tags.items(), (self.kept[name], tags)

    @rule(name=sets, n=st.integers(min_value=2, max_value=8))
    def patches_with_one_etag(self, name: str, n: int) -> None:
        got = self.client.get(SETS + name + V)
        if got.status_code != 200 or name not in self.kept:
            return
        self.counter += 1
        keys = [f"e{self.counter}_{i}" for i in range(n)]
        responses = tag_patches(self.client, name, keys, headers={"If-Match": got.headers["ETag"]})
        self.responses += responses
        codes = sorted(r.status_code for r in responses)
        assert codes == [200] + [412] * (n - 1), codes
        for key, r in zip(keys, responses, strict=True):
            if r.status_code == 200:
                self.kept[name][key] = "v-" + key

    @rule(name=sets, n=st.integers(min_value=1, max_value=4))
    def concurrent_deletes(self, name: str, n: int) -> None:
        responses = at_once([lambda: self.client.delete(SETS + name + V)] * n)
        self.responses += responses
        assert {r.status_code for r in responses} <= {202, 204}
        self.kept.pop(name, None)

    @invariant()
    def never_a_server_error(self) -> None:
        no_server_error(self.responses)


def test_concurrent_writers_state_machine(client: TestClient) -> None:
    """Creates, tag PATCHes, same-etag PATCHes and deletes in concurrent bursts."""
    Writers.client = client
    machine = Writers.TestCase
    machine.settings = settings(max_examples=10, stateful_step_count=8, deadline=None,
                                suppress_health_check=list(HealthCheck), database=None)
    machine().runTest()


def test_load_balancer_puts_with_one_etag_give_one_200_and_the_rest_412(
        client: TestClient) -> None:
    url = PROBE_ID.rsplit("/probes/", 1)[0] + "?api-version=2024-05-01"
    got = client.get(url)  # World.create made this load balancer
    assert got.status_code == 200, got.text
    responses = at_once([lambda: client.put(url, json=got.json(),
                                            headers={"If-Match": got.headers["ETag"]})] * 10)
    no_server_error(responses)
    assert sorted(r.status_code for r in responses) == [200] + [412] * 9


def test_virtual_network_writes_check_their_etag_in_the_write(client: TestClient) -> None:
    url = f"/subscriptions/{SUB}/resourceGroups/net/providers/Microsoft.Network/" \
          "virtualNetworks/vnet1?api-version=2024-07-01"
    body = {"location": "westus",
            "properties": {"addressSpace": {"addressPrefixes": ["10.0.0.0/16"]}}}
    made = client.put(url, json=body)
    assert made.status_code == 201, made.text
    etag = made.headers["ETag"]

    def patch(i: int) -> Callable[[], httpx.Response]:
        return lambda: client.patch(url, json={"tags": {"n": str(i)}}, headers={"If-Match": etag})

    responses = at_once([patch(i) for i in range(10)])
    no_server_error(responses)
    assert sorted(r.status_code for r in responses) == [200] + [412] * 9
    creates = at_once([lambda: client.put(url.replace("vnet1", "vnet2"), json=body,
                                          headers={"If-None-Match": "*"})] * 8)
    no_server_error(creates)
    assert sorted(r.status_code for r in creates) == [201] + [412] * 7


def test_concurrent_creates_of_one_resource_group_give_one_201_and_the_rest_200(
        client: TestClient) -> None:
    url = f"/subscriptions/{SUB}/resourceGroups/together?api-version=2022-09-01"
    responses = at_once([lambda: client.put(url, json={"location": "westus"})] * 10)
    no_server_error(responses)
    assert sorted(r.status_code for r in responses) == [200] * 9 + [201]


def test_concurrent_gallery_writes_give_one_201_and_no_server_error(
        client: TestClient) -> None:
    galleries = f"/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.Compute/galleries"
    gallery = galleries + "/shared?api-version=2025-03-03"
    responses = at_once([lambda: client.put(gallery, json={"location": "westus"})] * 10)
    no_server_error(responses)
    assert sorted(r.status_code for r in responses) == [200] * 9 + [201]
    image = (galleries + "/shared/images/web?api-version=2025-03-03")
    body = {"location": "westus", "properties": {
        "osType": "Linux", "osState": "Generalized",
        "identifier": {"publisher": "Contoso", "offer": "Web", "sku": "1"}}}
    responses = at_once([lambda: client.put(image, json=body)] * 10)
    no_server_error(responses)
    assert sorted(r.status_code for r in responses) == [200] * 9 + [201]


def test_a_write_waits_out_another_writers_lock_on_sqlite(store: Store,
                                                          client: TestClient) -> None:
    if store.engine.dialect.name != "sqlite":
        pytest.skip("SQLite's database lock; PostgreSQL locks rows (the tests above)")
    create(client, "waits")
    holder = sqlite3.connect(str(store.engine.url.database), isolation_level=None,
                             check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")  # another writer (a reconcile pass, say) holds the lock

    def release() -> None:
        time.sleep(1.0)
        holder.execute("COMMIT")

    releaser = threading.Thread(target=release)
    started = time.monotonic()
    releaser.start()
    r = client.patch(SETS + "waits" + V, json={"tags": {"after": "lock"}})
    releaser.join()
    holder.close()
    assert r.status_code == 200, r.text  # waited (busy_timeout), not a 503
    assert time.monotonic() - started >= 0.9
    assert client.get(SETS + "waits" + V).json()["tags"] == {"after": "lock"}


def test_a_lock_held_past_the_bound_is_a_503_with_retry_after(store: Store,
                                                             client: TestClient) -> None:
    if store.engine.dialect.name != "sqlite":
        pytest.skip("SQLite's database lock; PostgreSQL locks rows (the tests above)")
    create(client, "stuck")
    holder = sqlite3.connect(str(store.engine.url.database), isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    started = time.monotonic()
    try:
        r = client.patch(SETS + "stuck" + V, json={"tags": {"never": "written"}})
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    waited = time.monotonic() - started
    assert r.status_code == 503 and r.headers["Retry-After"], r.text
    assert 4.5 <= waited < 8, waited  # busy_timeout (5 s) waited once, then the answer
    assert "never" not in (client.get(SETS + "stuck" + V).json().get("tags") or {})
