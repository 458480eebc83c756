"""``GET /metrics`` in process: parsed with prometheus-client's own parser and checked
against what the API shows (instances, rollingUpgrades/latest, osUpgradeHistory), who
may read it, and what it counts (requests by route template)."""

from __future__ import annotations

import collections
import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from scaleset.api.app import create_app
from scaleset.api.context import ApiContext
from scaleset.security.tokens import Role, create_token
from scaleset.store.repository import Store
from scaleset.upgrade.timing import RolloutTiming
from tests.integration.test_api import RG, V, body
from tests.support import World

VMSS = f"{RG}/virtualMachineScaleSets/vmss1"
METRICS_TOKEN = "scrape-9f86d081884c7d659a2feaa0"
ROLLOUT_DELAY = timedelta(minutes=10)


@dataclass
class Served:
    world: World
    client: TestClient
    reader: dict[str, str]
    writer: dict[str, str]
    scraper: dict[str, str]

    def scrape(self, headers: dict[str, str] | None = None) -> dict[str, Any]:
        """Every sample of /metrics: {name: [(labels, value)]}."""
        r = self.client.get("/metrics", headers=headers or self.scraper)
        assert r.status_code == 200, r.text
        assert r.headers["content-type"].startswith("text/plain")
        samples: dict[str, list[tuple[dict[str, str], float]]] = collections.defaultdict(list)
        for family in text_string_to_metric_families(r.text):
            for s in family.samples:
                samples[s.name].append((s.labels, s.value))
        return samples


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def served(store: Store) -> Iterator[Served]:
    """SQLite, and PostgreSQL when one is configured (the census is plain SQL)."""
    world = World.create(store, bad_images=frozenset({"1.2.0"}))
    world.settings = dataclasses.replace(world.settings,
                                         rollout_timing=RolloutTiming(rollout_delay=ROLLOUT_DELAY))
    world.restart()
    now = world.clock.now()
    reader = create_token(store, role=Role.READER, now=now).token
    writer = create_token(store, role=Role.CONTRIBUTOR, now=now).token
    context = ApiContext(store=store, clock=world.clock, settings=world.settings,
                         metrics_token=METRICS_TOKEN)
    with TestClient(create_app(context), base_url="https://testserver") as client:
        yield Served(world, client, bearer(reader), bearer(writer), bearer(METRICS_TOKEN))


def rollout(s: Served) -> None:
    """A scale set of 4; an automatic run to 1.1.0 (completes) and one to 1.2.0 (never
    healthy: faults and rolls back); then a user's run."""
    assert s.client.put(f"{VMSS}{V}", json=body(capacity=4, maxBatchInstancePercent=50,
                                               maxUnhealthyInstancePercent=50),
                        headers=s.writer).status_code == 201
    s.world.settle()
    for version in ("1.1.0", "1.2.0"):
        s.world.publish(version)
        s.world.clock.advance(ROLLOUT_DELAY)
        s.world.settle()
    assert s.client.post(f"{VMSS}/osRollingUpgrade{V}", headers=s.writer).status_code == 202
    s.world.settle()


def test_instances_by_health_and_image_version_are_what_get_instances_shows(
        served: Served) -> None:
    rollout(served)
    vms = served.client.get(f"{VMSS}/virtualMachines{V}&$expand=instanceView",
                            headers=served.reader).json()["value"]
    shown = collections.Counter(
        (vm["properties"]["instanceView"]["vmHealth"]["status"]["code"].split("/")[1].lower(),
         vm["properties"]["storageProfile"]["imageReference"]["exactVersion"]) for vm in vms)
    counted = {(labels["health"].lower(), labels["image_version"]): value
               for labels, value in served.scrape()["scaleset_instances"]
               if labels["scale_set"] == "vmss1"}
    assert counted == shown and sum(shown.values()) == 4
    labels = served.scrape()["scaleset_instances"][0][0]
    assert (labels["subscription"], labels["resource_group"]) == (
        "00000000-0000-0000-0000-000000000001", "rg1")


def test_runs_by_status_and_starter_are_what_the_history_and_latest_show(
        served: Served) -> None:
    rollout(served)
    history = served.client.get(f"{VMSS}/osUpgradeHistory{V}", headers=served.reader).json()
    shown = collections.Counter((h["properties"]["startedBy"],
                                 h["properties"]["runningStatus"]["code"])
                                for h in history["value"])
    runs = served.scrape()["scaleset_rolling_upgrade_runs"]
    counted = {(labels["started_by"], labels["status"]): value for labels, value in runs
               if labels["kind"] == "OSImage" and labels["scale_set"] == "vmss1"}
    assert counted == shown
    assert set(shown) >= {("Platform", "Completed"), ("Platform", "Faulted")}
    latest = served.client.get(f"{VMSS}/rollingUpgrades/latest{V}",
                               headers=served.reader).json()
    # The newest run is the user's; its status is one the gauge counts for User runs.
    assert (("User", latest["properties"]["runningStatus"]["code"]) in counted)


def test_a_rollout_fills_the_duration_histograms(served: Served) -> None:
    """Measured from the stored events (``server/outcome_log``): here fed by hand, as serve
    does after each round."""
    from scaleset.server.outcome_log import OutcomeLog

    metrics = served.client.app.state.context.metrics  # type: ignore[attr-defined]
    tail = OutcomeLog(store=served.world.store, metrics=metrics)
    rollout(served)
    tail.catch_up()
    samples = served.scrape()
    count = {name: sum(v for labels, v in samples[name]) for name in (
        "scaleset_batch_duration_seconds_count", "scaleset_trigger_delay_seconds_count")}
    assert count["scaleset_batch_duration_seconds_count"] >= 4  # 2 batches of 2, 3 runs
    # Both automatic runs waited exactly the rollout delay after their publication.
    assert count["scaleset_trigger_delay_seconds_count"] == 2
    delay = sum(v for _, v in samples["scaleset_trigger_delay_seconds_sum"])
    assert delay == pytest.approx(2 * ROLLOUT_DELAY.total_seconds())
    upgraded = {labels["outcome"]: v for labels, v in
                samples["scaleset_instance_upgrade_duration_seconds_count"]}
    assert upgraded["upgraded"] >= 4 and upgraded["failed"] >= 1


def test_the_request_counter_moves_with_requests_by_route_template(served: Served) -> None:
    route = ("/subscriptions/{subscription}/resourceGroups/{resource_group}/providers/"
             "Microsoft.Compute/virtualMachineScaleSets/{name}")

    def gets(status: str) -> float:
        return sum(v for labels, v in served.scrape()["scaleset_api_requests_total"]
                   if labels == {"method": "GET", "route": route, "status": status})

    before = gets("404")
    for name in ("absent1", "absent2", "absent3"):
        assert served.client.get(f"{RG}/virtualMachineScaleSets/{name}{V}",
                                 headers=served.reader).status_code == 404
    assert gets("404") == before + 3  # three names, one series: the template, not the path
    durations = served.scrape()["scaleset_api_request_duration_seconds_count"]
    assert any(labels == {"method": "GET", "route": route} and v >= 3
               for labels, v in durations)
    paths = {labels["route"] for labels, _ in served.scrape()["scaleset_api_requests_total"]}
    assert not any("absent" in p for p in paths)


def test_without_a_token_metrics_is_a_401_in_arms_envelope(served: Served) -> None:
    for headers in ({}, bearer("not-a-known-token"), {"Authorization": "Basic eDp5"}):
        r = served.client.get("/metrics", headers=headers)
        assert r.status_code == 401, headers
        assert r.json()["error"]["code"] in ("AuthenticationFailed",
                                             "InvalidAuthenticationToken")
        assert r.headers["WWW-Authenticate"].startswith("Bearer")


def test_a_reader_token_reads_metrics(served: Served) -> None:
    served.client.get("/healthz")
    assert "scaleset_api_requests_total" in served.scrape(served.reader)


def test_the_metrics_token_reads_metrics_and_nothing_else(served: Served) -> None:
    assert served.scrape(served.scraper)
    for method, path in (("GET", f"{VMSS}{V}"), ("GET", f"{RG}/virtualMachineScaleSets{V}"),
                         ("POST", f"{VMSS}/osRollingUpgrade{V}"), ("GET", "/scaleset/tokens")):
        r = served.client.request(method, path, headers=served.scraper)
        assert r.status_code == 401, (method, path, r.text)
        assert r.json()["error"]["code"] == "InvalidAuthenticationToken"


def test_two_servers_in_one_process_count_apart(served: Served, tmp_path: Any) -> None:
    from scaleset.store.database import make_engine, migrate

    engine = make_engine(f"sqlite:///{tmp_path}/other.db")
    migrate(engine)
    other = Store(engine)
    try:
        context = ApiContext(store=other, clock=served.world.clock, auth_required=False)
        with TestClient(create_app(context), base_url="https://testserver") as client:
            for _ in range(3):
                client.get("/healthz")
            text = client.get("/metrics").text
        served.client.get("/healthz")
        mine = served.scrape()["scaleset_api_requests_total"]
        theirs = [s for f in text_string_to_metric_families(text) for s in f.samples
                  if s.name == "scaleset_api_requests_total"
                  and s.labels["route"] == "/healthz"]
        assert [s.value for s in theirs] == [3.0]
        assert [v for labels, v in mine if labels["route"] == "/healthz"] == [1.0]
    finally:
        other.close()


def test_a_path_in_other_casing_counts_under_the_same_route_template(served: Served) -> None:
    """The canonical-path layer copies the request's scope; the route still reaches the
    count."""
    lower = f"{RG}/virtualMachineScaleSets/absent{V}".replace("virtualMachineScaleSets",
                                                               "virtualmachinescalesets")
    assert served.client.get(lower, headers=served.reader).status_code == 404
    routes = {labels["route"] for labels, _ in served.scrape()["scaleset_api_requests_total"]}
    assert ("/subscriptions/{subscription}/resourceGroups/{resource_group}/providers/"
            "Microsoft.Compute/virtualMachineScaleSets/{name}") in routes
