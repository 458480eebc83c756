"""``GET /metrics``: the server's Prometheus metrics, for a reader or the metrics token.

What moments feed (durations, requests, probes) lives in the context's
``telemetry.metrics.Metrics``; what the store holds is counted at each scrape
by ``StoreCollector`` (``reconcile.census``, one read transaction), so the
gauges always say what the API says:

* ``scaleset_rolling_upgrade_runs{subscription,resource_group,scale_set,kind,
  started_by,status}``: the runs stored (``osUpgradeHistory`` shows the
  ``OSImage`` ones, ``rollingUpgrades/latest`` the newest non-``Reimage`` one);
* ``scaleset_instances{subscription,resource_group,scale_set,health,
  image_version}``: the instances, by the health and image version ``GET
  .../virtualMachines`` shows.

Who may read: a token with the reader role (or more), as for any GET, or a
request with ``Authorization: Bearer <metrics token>`` (``serve
--metrics-token-file``), which opens this route and no other: it is no API
token, so every ARM route answers it 401. Anything else is a 401 in ARM's
envelope.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable

from fastapi import FastAPI, Request, Response
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from scaleset.api import access, auth
from scaleset.api.context import ApiContext, get_context
from scaleset.reconcile import census
from scaleset.store.repository import Store
from scaleset.telemetry.metrics import CONTENT_TYPE

PATH = "/metrics"
RUNS = "scaleset_rolling_upgrade_runs"
INSTANCES = "scaleset_instances"
_WHERE = ["subscription", "resource_group", "scale_set"]
RUN_LABELS = [*_WHERE, "kind", "started_by", "status"]
INSTANCE_LABELS = [*_WHERE, "health", "image_version"]


def _families() -> tuple[GaugeMetricFamily, GaugeMetricFamily]:
    runs = GaugeMetricFamily(
        RUNS, "Runs stored per scale set, by kind (OSImage, Model, Reimage), starter "
              "(Platform, User) and status.", labels=RUN_LABELS)
    instances = GaugeMetricFamily(
        INSTANCES, "Instances per scale set, by health and OS image version.",
        labels=INSTANCE_LABELS)
    return runs, instances


class StoreCollector(Collector):
    """The store's runs and instances, counted when scraped."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def describe(self) -> Iterable[GaugeMetricFamily]:
        """The families without samples, so registering reads no database."""
        return _families()

    def collect(self) -> Iterable[GaugeMetricFamily]:
        """Every count, read in one transaction."""
        counted = census.census(self.store)
        runs, instances = _families()
        for r in counted.runs:
            where = r.scale_set
            runs.add_metric([where.subscription, where.resource_group, where.name, r.kind,
                             r.started_by, r.status], r.count)
        for i in counted.instances:
            where = i.scale_set
            instances.add_metric([where.subscription, where.resource_group, where.name,
                                  i.health, i.image_version], i.count)
        return runs, instances


def install(app: FastAPI, context: ApiContext) -> None:
    """Serve ``GET /metrics`` from ``context.metrics``, with the store's gauges in it."""
    try:
        context.metrics.add_collector(StoreCollector(context.store))
    except ValueError:  # a second app over the same context: its collector is there
        pass

    @app.get(PATH, tags=["service"], response_class=Response, responses={
        200: {"description": "Prometheus text format", "content": {CONTENT_TYPE: {}}}})
    def metrics(request: Request) -> Response:
        """The server's metrics in Prometheus' text format (reader role or the metrics
        token). Sync: the store's counts are read on the thread pool."""
        admit(request, get_context(request))
        return Response(context.metrics.exposition(), media_type=CONTENT_TYPE)


def admit(request: Request, context: ApiContext) -> None:
    """Let the metrics token or a reader in; otherwise raise the 401/403 ``READ`` raises."""
    if not context.auth_required:
        return
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    expected = context.metrics_token
    if expected and scheme.lower() == "bearer" and hmac.compare_digest(
            token.strip().encode(), expected.encode()):
        access.note_caller(request, role="metrics")
        return
    auth.READ(request, context)
