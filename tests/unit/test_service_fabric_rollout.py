"""Service Fabric node types roll out update domain by update domain, on a healthy cluster.

The pure core against the simulated driver on a virtual clock (tests/unit/harness.py):
a batch is one whole update domain, lowest first; no domain starts while any node of
the cluster reports unhealthy; a cluster that stays unhealthy faults the run before
another instance is touched.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from scaleset.clock import EPOCH
from scaleset.upgrade.observations import InstanceObservation
from scaleset.upgrade.run import CLUSTER_UNHEALTHY
from scaleset.upgrade.state import Policy, RunStatus, StartedBy
from tests.unit.harness import NEW, OLD, Harness, Placement

SF = Policy(by_update_domain=True)


def all_nodes_healthy(_now: datetime, fleet: Mapping[str, InstanceObservation]) -> bool:
    """What the shell computes: every node reports healthy."""
    return all(o.healthy for o in fleet.values())


@settings(max_examples=40, deadline=None)
@given(domains=st.lists(st.integers(min_value=0, max_value=4), min_size=1, max_size=16))
def test_batches_are_whole_update_domains_in_ascending_order(domains: list[int]) -> None:
    placement = {str(i): Placement(update_domain=ud) for i, ud in enumerate(domains)}
    h = Harness.build(placement, policy=SF)
    h.cluster = all_nodes_healthy
    run = h.run_to_end()

    assert run.status is RunStatus.COMPLETED
    expected = [sorted((iid for iid, p in placement.items() if p.update_domain == ud), key=int)
                for ud in sorted(set(domains))]
    assert [list(b.instance_ids) for b in run.batches] == expected
    assert all(h.image(iid) == NEW for iid in placement)


def test_a_domain_waits_for_the_cluster_to_recover_then_goes_on() -> None:
    h = Harness.build(10, policy=SF)
    sick_until = EPOCH + timedelta(minutes=2)
    # A node of another node type is down for two minutes from the start.
    h.cluster = lambda now, fleet: now >= sick_until and all_nodes_healthy(now, fleet)
    run = h.run_to_end()

    assert run.status is RunStatus.COMPLETED
    assert run.batches[0].start >= sick_until
    assert len(run.batches) == 5  # update domains 0..4, two instances each


def test_a_cluster_that_stays_unhealthy_faults_the_run_before_the_next_domain() -> None:
    h = Harness.build(10, policy=SF)
    h.cluster = lambda now, fleet: (now < EPOCH + timedelta(minutes=1)
                                    and all_nodes_healthy(now, fleet))
    run = h.run_to_end()

    assert run.status is RunStatus.FAULTED
    assert run.error is not None and run.error.code == CLUSTER_UNHEALTHY
    upgraded = {iid for b in run.batches for iid in b.instance_ids}
    assert upgraded == {"0", "5"}  # update domain 0 ran while the cluster was healthy
    assert all(h.image(iid) == OLD for iid in map(str, range(10)) if iid not in upgraded)
    # It waited the health timeout (5 minutes) for the cluster before giving up.
    assert run.end_time is not None
    assert run.end_time - run.batches[0].end >= SF.health_timeout  # type: ignore[operator]


def test_a_user_run_on_a_service_fabric_node_type_also_goes_domain_by_domain() -> None:
    h = Harness.build(6, policy=SF, started_by=StartedBy.USER)
    h.cluster = all_nodes_healthy
    run = h.run_to_end()
    assert [list(b.instance_ids) for b in run.batches] == [["0", "5"], ["1"], ["2"], ["3"],
                                                           ["4"]]
