"""Every Prometheus metric ``scaleset serve`` records, in one registry per server.

``Metrics()`` builds the histograms and counters that moments in time feed
(a batch settled, a probe answered, a pass ran, a request was served); the
gauges that describe what the store holds (runs, instances) are not kept here
but computed at scrape time by a collector the API registers
(``add_collector``), so they always agree with what the API shows.

Names start with ``scaleset_``; label values are closed sets (statuses, kinds,
methods, route templates) or name what the store holds (scale sets, image
versions), never a raw path or query, so no request can grow the number of
series. The registry is the object's own,
not prometheus-client's global default: two servers in one process (tests)
keep separate counts.

>>> m = Metrics()
>>> m.probe_attempt("loadBalancer", "http", 0.004, False)
>>> b'scaleset_probe_failures_total{protocol="http",source="loadBalancer"} 1.0' \\
...     in m.exposition()
True
"""

from __future__ import annotations

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.registry import Collector

CONTENT_TYPE = CONTENT_TYPE_LATEST
"""The media type of what ``exposition`` returns (Prometheus' text format)."""

# Buckets fit each quantity's scale: a probe takes milliseconds, a batch minutes,
# the trigger's delay (publish -> run) hours to days with Azure's timing.
_PROBE = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
_PASS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_LAG = (0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
_REQUEST = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
_INSTANCE = (0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 3600.0)
_BATCH = (1.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0, 7200.0)
_TRIGGER = (1.0, 10.0, 60.0, 300.0, 900.0, 1800.0, 3600.0, 7200.0, 10800.0, 21600.0,
            43200.0, 86400.0, 172800.0, 604800.0)


class Metrics:
    """The metrics of one server. Thread-safe: prometheus-client locks every update."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.batch_duration = Histogram(
            "scaleset_batch_duration_seconds",
            "From a batch's start to its settling (every instance healthy, failed or "
            "rolled back), by run kind.", ["kind"], registry=r, buckets=_BATCH)
        self.instance_upgrade_duration = Histogram(
            "scaleset_instance_upgrade_duration_seconds",
            "From an instance's batch start to its outcome in the run: upgraded (healthy "
            "on the target) or failed.", ["outcome"], registry=r, buckets=_INSTANCE)
        self.probe_duration = Histogram(
            "scaleset_probe_duration_seconds",
            "How long one health probe attempt of the process driver took, by health "
            "source (loadBalancer probe, Application Health extension) and protocol.",
            ["source", "protocol"], registry=r, buckets=_PROBE)
        self.probe_failures = Counter(
            "scaleset_probe_failures_total",
            "Health probe attempts that failed (refused, timed out, not 200, unhealthy).",
            ["source", "protocol"], registry=r)
        self.reconcile_pass_duration = Histogram(
            "scaleset_reconcile_pass_duration_seconds",
            "How long one reconcile pass over one scale set took.", registry=r, buckets=_PASS)
        self.reconcile_pass_failures = Counter(
            "scaleset_reconcile_pass_failures_total",
            "Reconcile passes that raised (logged with their traceback, retried after a "
            "back-off).", registry=r)
        self.reconcile_round_duration = Histogram(
            "scaleset_reconcile_round_duration_seconds",
            "How long one reconcile round took: the passes of the scale sets that were due "
            "(a change, a timer, the safety-net resync) and the bookkeeping around them.",
            registry=r, buckets=(0.0001, 0.0005, *_PASS))
        self.reconcile_round_passes = Histogram(
            "scaleset_reconcile_round_passes",
            "How many scale sets one reconcile round passed over.", registry=r,
            buckets=(0, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000))
        self.reconcile_lag = Histogram(
            "scaleset_reconcile_lag_seconds",
            "How late a reconcile round began after it was due: the earlier of the wake-up "
            "it asked for and the first doorbell rung since the last round.",
            registry=r, buckets=_LAG)
        self.api_requests = Counter(
            "scaleset_api_requests_total",
            "API requests answered, by method, route template and status code.",
            ["method", "route", "status"], registry=r)
        self.api_request_duration = Histogram(
            "scaleset_api_request_duration_seconds",
            "From a request's arrival to the end of its response, by method and route "
            "template.", ["method", "route"], registry=r, buckets=_REQUEST)
        self.trigger_delay = Histogram(
            "scaleset_trigger_delay_seconds",
            "From an image version's publication to the start of the automatic run that "
            "rolls it out (rollout delays, maintenance windows and approvals included).",
            registry=r, buckets=_TRIGGER)

    def probe_attempt(self, source: str, protocol: str, seconds: float, ok: bool) -> None:
        """Record one probe attempt (the process driver's ``Prober`` calls this)."""
        self.probe_duration.labels(source=source, protocol=protocol).observe(seconds)
        if not ok:
            self.probe_failures.labels(source=source, protocol=protocol).inc()

    def add_collector(self, collector: Collector) -> None:
        """Register a collector whose metrics are computed at each scrape."""
        self.registry.register(collector)

    def exposition(self) -> bytes:
        """Every metric in the Prometheus text format (what ``GET /metrics`` answers)."""
        return generate_latest(self.registry)
