"""The process driver's probes, counted: every attempt's latency, and the failed ones."""

from __future__ import annotations

from collections.abc import Callable

from scaleset.drivers.base import ProbeSpec
from scaleset.drivers.process.probes import Prober
from scaleset.model.instance import HealthState
from scaleset.telemetry.metrics import Metrics
from tests.integration.test_probes import (
    _Server,
    closed_port,
    http_extension,
    http_probe,
    pytestmark,
    serve,
    wait_for,
)

__all__ = ["pytestmark", "serve"]  # the Linux-only mark and the HTTP server fixture


def value(metrics: Metrics, name: str, **labels: str) -> float:
    found = metrics.registry.get_sample_value(name, labels)
    return 0.0 if found is None else found


def test_probe_attempts_are_timed_and_failures_counted_by_source_and_protocol(
        serve: Callable[[str], _Server]) -> None:
    metrics = Metrics()
    server = serve("127.0.0.1")
    with Prober(timeout_cap=0.5, on_attempt=metrics.probe_attempt) as prober:
        prober.watch("ok", server.address, probe=http_probe(server.port, "/ok"), extension=None)
        prober.watch("fail", server.address, probe=http_probe(server.port, "/fail"),
                     extension=None)
        prober.watch("app", server.address, probe=None,
                     extension=http_extension(server.port, "/unhealthy"))
        wait_for(lambda: prober.probe_health("ok") is HealthState.HEALTHY
                 and prober.probe_health("fail") is HealthState.UNHEALTHY
                 and prober.extension_health("app") is HealthState.UNHEALTHY)
    lb = {"source": "loadBalancer", "protocol": "http"}
    app = {"source": "extension", "protocol": "http"}
    attempts = value(metrics, "scaleset_probe_duration_seconds_count", **lb)
    failures = value(metrics, "scaleset_probe_failures_total", **lb)
    # An attempt cut short by stop() reached the server but was never counted: one per watch.
    assert attempts <= server.hits["/ok"] + server.hits["/fail"] <= attempts + 2
    assert failures <= server.hits["/fail"] <= failures + 1 and failures >= 2
    extension = value(metrics, "scaleset_probe_failures_total", **app)
    assert extension <= server.hits["/unhealthy"] <= extension + 1 and extension >= 1
    latency = value(metrics, "scaleset_probe_duration_seconds_sum", **lb)
    assert 0 < latency < 0.5 * attempts  # loopback answers in well under the timeout


def test_a_refused_tcp_probe_is_a_failure_too() -> None:
    metrics = Metrics()
    port = closed_port("127.0.0.1")

    with Prober(timeout_cap=0.5, on_attempt=metrics.probe_attempt) as prober:
        prober.watch("gone", "127.0.0.1", probe=ProbeSpec("Tcp", port, interval_seconds=0.05,
                                                          number_of_probes=1), extension=None)
        wait_for(lambda: value(metrics, "scaleset_probe_failures_total",
                               source="loadBalancer", protocol="tcp") >= 2)
