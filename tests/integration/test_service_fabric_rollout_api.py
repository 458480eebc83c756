"""Automatic OS upgrade of a Service Fabric node type through the API, on the simulated fleet.

No probe: the node type is accepted because its extension is Service Fabric's (Silver, 1.1,
the cluster's durability). A new version rolls out update domain by update domain, and a
cluster whose other node type is unhealthy holds the rollout, then faults it untouched.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient

from scaleset.api.app import create_app
from scaleset.api.context import ApiContext
from scaleset.api.routes.common import scale_set_key
from scaleset.model.instance import HealthState
from scaleset.reconcile.loop import run_until
from scaleset.store.repository import Store
from scaleset.upgrade.run import CLUSTER_UNHEALTHY
from scaleset.upgrade.state import RunStatus, StartedBy
from tests.integration.test_requirements_api import SUB, VMSS, Api, body, sf_extension
from tests.support import World

V = {"api-version": "2026-04-01"}


def scale_set_id(name: str) -> str:
    return scale_set_key(SUB, "rg1", name)


@pytest.fixture
def api(store: Store) -> Iterator[Api]:
    world = World.create(store)
    context = ApiContext(store=store, clock=world.clock, settings=world.settings,
                         auth_required=False)
    with TestClient(create_app(context), base_url="https://testserver") as client:
        yield Api(world, client)


def up(api: Api, *names: str, healthy: bool = True) -> None:
    """Passes on the virtual clock until every node of the named node types is up (and,
    with ``healthy``, reports healthy)."""
    world = api.world

    def ready(_last: object) -> bool:
        with world.store.transaction() as tx:
            for name in names:
                records = tx.instances(scale_set_id(name)).values()
                if not records or any(r.provisioning_state != "Succeeded" or
                                      (healthy and r.health_state is not HealthState.HEALTHY)
                                      for r in records):
                    return False
        return True

    run_until(world.reconciler, world.clock, world.driver, world.scale_set_ids(), done=ready)


def node_type(api: Api, name: str, endpoint: str, *, capacity: int, version: str = "latest",
              automatic: bool = True) -> str:
    model = body(probe=None, version=version, automatic=automatic,
                 extensions=[sf_extension(endpoint, node_type=name)])
    model["sku"]["capacity"] = capacity
    r = api.put(name, model)
    assert r.status_code in (200, 201), r.text
    return scale_set_id(name)


def test_a_new_version_rolls_out_update_domain_by_update_domain(api: Api) -> None:
    endpoint = api.cluster(nt1="Silver")["properties"]["clusterEndpoint"]
    sid = node_type(api, "nt1", endpoint, capacity=7)
    up(api, "nt1")
    api.world.publish("1.1.0")
    api.world.settle()

    with api.world.store.transaction() as tx:
        summary = tx.past_runs(sid)[0]
        run = tx.get_run(summary.run_id)
        domain = {iid: r.update_domain for iid, r in tx.instances(sid).items()}
        images = {r.image_version for r in tx.instances(sid).values()}
    assert (run.started_by, run.status) == (StartedBy.PLATFORM, RunStatus.COMPLETED)
    assert [sorted({domain[i] for i in b.instance_ids}) for b in run.batches] == \
        [[0], [1], [2], [3], [4]]
    assert [len(b.instance_ids) for b in run.batches] == [2, 2, 1, 1, 1]
    assert images == {"1.1.0"}
    history = api.client.get(f"{VMSS}/nt1/osUpgradeHistory", params=V).json()["value"]
    assert history[0]["properties"]["runningStatus"]["code"] == "Completed"


def test_an_unhealthy_node_type_of_the_same_cluster_holds_then_faults_the_rollout(
        api: Api) -> None:
    endpoint = api.cluster(nt1="Silver", nt2="Silver")["properties"]["clusterEndpoint"]
    sid = node_type(api, "nt1", endpoint, capacity=3)
    other = node_type(api, "nt2", endpoint, capacity=2, automatic=False)
    up(api, "nt1", "nt2")
    api.world.driver.set_health(other, "1", HealthState.UNHEALTHY)  # a node of nt2 goes down
    published = api.world.clock.now()
    api.world.publish("1.1.0")
    api.world.settle(sid)

    with api.world.store.transaction() as tx:
        run = tx.get_run(tx.past_runs(sid)[0].run_id)
        images = {r.image_version for r in tx.instances(sid).values()}
    assert run.status is RunStatus.FAULTED
    assert run.error is not None and run.error.code == CLUSTER_UNHEALTHY
    assert run.batches == ()  # not one node was taken down on an unhealthy cluster
    assert images == {"1.0.0"}
    assert run.end_time is not None
    assert run.end_time - published >= timedelta(minutes=5)  # it waited the health timeout
