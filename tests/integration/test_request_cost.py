"""Cheap requests (issue 14 item 3), as a user would notice them.

Tokens' roles are kept in memory, yet a revoke or role change (here, or through another
store on the same database, as ``scaleset token revoke`` beside ``serve``) counts from the
next request; a GET of a scale set is one transaction; ``provisioningState`` is stored
with the scale set and reads exactly as the derivation from the operations table did.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, event, select

from scaleset.api import lro
from scaleset.api.app import create_app
from scaleset.api.context import ApiContext
from scaleset.model.instance import ExtensionStatus
from scaleset.security import tokens
from scaleset.store import operations
from scaleset.store import tables as t
from scaleset.store.database import make_engine
from scaleset.store.repository import Store
from tests.integration.test_api import RG, V, body
from tests.support import World

SET = f"{RG}/virtualMachineScaleSets/vmss1"
CHOSEN = "sst_chosen00_a-token-whose-value-the-operator-chose"


class Api:
    def __init__(self, world: World, client: TestClient, context: ApiContext) -> None:
        self.world, self.client, self.context = world, client, context

    def get(self, path: str, token: str) -> Any:
        return self.client.get(path, headers={"Authorization": f"Bearer {token}"})

    def send(self, method: str, path: str, token: str, **kwargs: Any) -> Any:
        return self.client.request(method, path, headers={"Authorization": f"Bearer {token}"},
                                   **kwargs)

    def token(self, role: str, **kwargs: Any) -> str:
        return tokens.create_token(self.world.store, role=role, now=self.world.clock.now(),
                                   **kwargs).token


@pytest.fixture
def api(store: Store) -> Iterator[Api]:
    world = World.create(store)
    context = ApiContext(store=store, clock=world.clock, settings=world.settings)
    with TestClient(create_app(context), base_url="https://testserver") as client:
        yield Api(world, client, context)


@pytest.fixture
def second_store(store: Store) -> Iterator[Store]:
    """Another process's view of the same database: its own engine and connections."""
    other = Store(make_engine(store.engine.url.render_as_string(hide_password=False)))
    yield other
    other.close()


def _created(api: Api, owner: str, capacity: int = 2) -> Any:
    r = api.send("PUT", SET + V, owner, json=body(capacity))
    assert r.status_code == 201, r.text
    return r


def test_a_revoked_token_is_refused_by_the_very_next_request(api: Api) -> None:
    owner, reader = api.token("contributor"), api.token("reader")
    _created(api, owner)
    assert api.get(SET + V, reader).status_code == 200
    assert api.get(SET + V, reader).status_code == 200  # now answered from memory
    token_id = reader.split("_")[1]
    assert tokens.revoke_token(api.world.store, token_id)
    refused = api.get(SET + V, reader)
    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == "InvalidAuthenticationToken"
    assert api.get(SET + V, owner).status_code == 200


def test_a_token_revoked_by_another_process_is_refused_by_the_next_request(
        api: Api, second_store: Store) -> None:
    owner, reader = api.token("contributor"), api.token("reader")
    _created(api, owner)
    for _ in range(3):
        assert api.get(SET + V, reader).status_code == 200
    assert tokens.revoke_token(second_store, reader.split("_")[1])
    assert api.get(SET + V, reader).status_code == 401
    # Every route's check honours it, not only the scale set's GET.
    assert api.get(f"{SET}/virtualMachines{V}", reader).status_code == 401


def test_a_role_changed_by_another_process_is_honoured_at_the_next_request(
        api: Api, second_store: Store) -> None:
    owner = api.token("contributor")
    _created(api, owner)
    api.token("reader", value=CHOSEN)
    assert api.get(SET + V, CHOSEN).status_code == 200
    patch = {"tags": {"by": "chosen"}}
    assert api.send("PATCH", SET + V, CHOSEN, json=patch).status_code == 403
    # The same token value, re-issued as a contributor by another process.
    assert tokens.revoke_token(second_store, tokens.token_digest(second_store, CHOSEN)[:8])
    tokens.create_token(second_store, role="contributor", value=CHOSEN,
                        now=api.world.clock.now())
    assert api.send("PATCH", SET + V, CHOSEN, json=patch).status_code == 200
    assert api.get(SET + V, CHOSEN).json()["tags"] == {"by": "chosen"}
    # And back to a reader: the next write is refused again.
    assert tokens.revoke_token(second_store, tokens.token_digest(second_store, CHOSEN)[:8])
    tokens.create_token(second_store, role="reader", value=CHOSEN, now=api.world.clock.now())
    assert api.send("PATCH", SET + V, CHOSEN, json=patch).status_code == 403
    assert api.get(SET + V, CHOSEN).status_code == 200


def test_a_token_kept_in_memory_still_expires_on_time(api: Api) -> None:
    owner = api.token("contributor")
    _created(api, owner)
    brief = api.token("reader", expires_at=api.world.clock.now() + timedelta(minutes=5))
    assert api.get(SET + V, brief).status_code == 200
    api.world.clock.advance(timedelta(minutes=5))
    assert api.get(SET + V, brief).status_code == 401
    assert api.get(SET + V, owner).status_code == 200


def _begins(engine: Engine) -> list[int]:
    counted: list[int] = []
    event.listen(engine, "begin", lambda conn: counted.append(1))
    return counted


def test_a_get_of_a_scale_set_is_one_transaction(api: Api, second_store: Store) -> None:
    owner = api.token("contributor")
    _created(api, owner, capacity=1)
    api.world.settle()
    assert api.get(SET + V, owner).json()["properties"]["provisioningState"] == "Succeeded"
    begins = _begins(api.world.store.engine)
    for _ in range(3):  # cached token and cached answer
        assert api.get(SET + V, owner).status_code == 200
    assert len(begins) == 3
    fresh = api.token("reader")  # a token not yet in memory: read in the same transaction
    begins.clear()
    assert api.get(SET + V, fresh).status_code == 200
    assert len(begins) == 1
    tokens.revoke_token(second_store, fresh.split("_")[1])
    begins.clear()
    assert api.get(SET + V, fresh).status_code == 401
    assert api.get(f"{RG}/virtualMachineScaleSets/nothere{V}", owner).status_code == 404
    assert len(begins) == 2


def test_reads_of_instances_are_one_transaction_too(api: Api) -> None:
    owner = api.token("contributor")
    _created(api, owner, capacity=2)
    api.world.settle()
    begins = _begins(api.world.store.engine)
    for path in (f"{SET}/virtualMachines{V}", f"{SET}/virtualMachines/0{V}",
                 f"{SET}/virtualMachines/0/instanceView{V}", f"{SET}/instanceView{V}"):
        begins.clear()
        assert api.get(path, owner).status_code == 200, path
        assert len(begins) == 1, path
    assert api.get(f"{SET}/virtualMachines/9{V}", owner).status_code == 404


def test_a_kept_answer_follows_every_change_of_the_scale_set(api: Api) -> None:
    owner = api.token("contributor")
    _created(api, owner, capacity=1)
    api.world.settle()
    first = api.get(SET + V, owner)
    assert api.get(SET + V, owner).content == first.content
    r = api.send("PATCH", SET + V, owner, json={"tags": {"a": "1"}})
    assert r.status_code == 200
    updating = api.get(SET + V, owner)
    assert updating.json()["tags"] == {"a": "1"}
    assert updating.headers["ETag"] == updating.json()["etag"] != first.headers["ETag"]
    api.world.settle()
    done = api.get(SET + V, owner).json()
    assert done["tags"] == {"a": "1"} and done["properties"]["provisioningState"] == "Succeeded"
    api.world.publish("1.1.0")
    api.world.settle()
    ref = api.get(SET + V, owner).json()["properties"]["virtualMachineProfile"][
        "storageProfile"]["imageReference"]
    assert ref["exactVersion"] == "1.1.0"


# -- provisioningState: stored, and exactly what the derivation said -------------------

def _derived(store: Store, scale_set_id: str) -> str:
    """provisioningState as the GET derived it before it was stored: the latest PUT in the
    operations table still in progress, derived from the instances now (no write)."""
    c = t.operations.c
    with store.transaction() as tx:
        row = tx.conn.execute(
            select(c.id, c.data).where(c.scale_set_id == scale_set_id,
                                       c.kind == lro.SCALE_SET_PUT,
                                       c.status == lro.IN_PROGRESS)
            .order_by(c.start_time.desc())).first()
        if row is None:
            return "Succeeded"
        op = operations.get_operation(tx, row.id)
        assert op is not None
        if lro._derive(tx, op)[0] != lro.IN_PROGRESS:
            return "Succeeded"
    return "Creating" if row.data.get("created") else "Updating"


def _shown(api: Api, token: str) -> str:
    state = api.get(SET + V, token).json()["properties"]["provisioningState"]
    assert isinstance(state, str)
    return state


def test_provisioning_state_across_a_put_lifecycle_is_what_was_derived(api: Api) -> None:
    owner = api.token("contributor")
    sid = SET.lower()
    created = _created(api, owner)
    assert _derived(api.world.store, sid) == _shown(api, owner) == "Creating"
    api.world.reconciler.reconcile(api.world.scale_set_ids()[0])
    assert _derived(api.world.store, sid) == _shown(api, owner)
    api.world.settle()
    assert _derived(api.world.store, sid) == _shown(api, owner) == "Succeeded"
    assert api.get(created.headers["Azure-AsyncOperation"], owner).json()["status"] == \
        "Succeeded"
    with api.world.store.transaction() as tx:
        assert operations.provisioning(tx, sid) is None  # the GET wrote its finish back
    # A scale-out by PATCH: Updating until the new instances have provisioned.
    r = api.send("PATCH", SET + V, owner, json={"sku": {"capacity": 3}})
    assert r.status_code == 200 and r.json()["properties"]["provisioningState"] == "Updating"
    assert _derived(api.world.store, sid) == _shown(api, owner) == "Updating"
    api.world.settle()
    assert _derived(api.world.store, sid) == _shown(api, owner) == "Succeeded"


def test_a_failed_extension_fails_the_put_and_the_state_reads_as_derived(api: Api) -> None:
    owner = api.token("contributor")
    sid = SET.lower()
    created = _created(api, owner, capacity=1)
    api.world.reconciler.reconcile(api.world.scale_set_ids()[0])
    api.world.clock.advance(api.world.driver.timings.per_upgrade)
    api.world.reconciler.reconcile(api.world.scale_set_ids()[0])
    with api.world.store.transaction(write=True) as tx:
        records = tx.instances(sid)
        tx.update_instances([r.replace(extensions=(ExtensionStatus(
            "script", "CustomScript", "Failed", "exit code 1"),)) for r in records.values()])
    assert _derived(api.world.store, sid) == _shown(api, owner) == "Succeeded"
    status = api.get(created.headers["Azure-AsyncOperation"], owner).json()
    assert status["status"] == "Failed"
    assert status["error"]["code"] == "VMExtensionProvisioningError"


def test_the_reconcile_pass_can_settle_a_finished_put(api: Api) -> None:
    owner = api.token("contributor")
    sid = SET.lower()
    created = _created(api, owner, capacity=1)
    with api.world.store.transaction() as tx:
        assert operations.settle_scale_set_put(tx, sid, api.world.clock.now()) == "Creating"
    api.world.settle()
    with api.world.store.transaction() as tx:
        assert operations.settle_scale_set_put(tx, sid, api.world.clock.now()) is None
        assert operations.provisioning(tx, sid) is None
        op_id = created.headers["Azure-AsyncOperation"].split("/operations/")[1].split("?")[0]
        op = operations.get_operation(tx, op_id)
        assert op is not None and op.status == operations.SUCCEEDED
    assert _shown(api, owner) == "Succeeded"
