"""The process driver's health-source state machines and the extension's settings (pure).

The properties compare ``LbProbeState`` and ``AppHealthState`` with reference
rules written from the other end: what the whole history of results says,
rather than step by step.
"""

from __future__ import annotations

import doctest
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from scaleset.drivers.process import probe_state
from scaleset.drivers.process.probe_state import (
    AppHealthState,
    HealthExtensionSpec,
    LbProbeState,
    rich_health,
)
from scaleset.model.instance import HealthState

H, U, INIT = HealthState.HEALTHY, HealthState.UNHEALTHY, HealthState.INITIALIZING

PROBE_COUNTS = st.integers(min_value=1, max_value=5)
RESULTS = st.sampled_from([H, U])
# (seconds since the previous result, result); gaps of 0 are allowed: results can coincide.
TIMED_RESULTS = st.lists(st.tuples(st.floats(min_value=0, max_value=4, allow_nan=False), RESULTS),
                         max_size=40)


def test_the_worked_examples_in_the_module_hold() -> None:
    result = doctest.testmod(probe_state)
    assert result.attempted > 0
    assert result.failed == 0


# -- load-balancer probe ------------------------------------------------------------------------


def _lb_reference(results: list[bool], n: int) -> HealthState:
    """N trailing failures: Unhealthy; else a success ever: Healthy; else Initializing."""
    trailing_failures = len(results) - (max(i for i, up in enumerate(results) if up) + 1
                                        if any(results) else 0)
    if trailing_failures >= n:
        return U
    return H if any(results) else INIT


@given(n=PROBE_COUNTS, results=st.lists(st.booleans(), max_size=40))
def test_lb_state_follows_the_last_success_and_the_failures_since(
        n: int, results: list[bool]) -> None:
    state = LbProbeState(number_of_probes=n)
    for i, up in enumerate(results):
        state = state.record(up)
        assert state.health is _lb_reference(results[:i + 1], n)


@given(n=PROBE_COUNTS, results=st.lists(st.booleans(), min_size=1, max_size=40))
def test_one_success_is_enough_for_healthy(n: int, results: list[bool]) -> None:
    state = LbProbeState(number_of_probes=n)
    for up in results:
        state = state.record(up)
    assert state.record(True).health is H


@given(n=PROBE_COUNTS, results=st.lists(st.booleans(), max_size=40))
def test_fewer_than_n_failures_never_make_an_instance_unhealthy(
        n: int, results: list[bool]) -> None:
    state = LbProbeState(number_of_probes=n).record(True)
    for _ in range(n - 1):
        state = state.record(False)
        assert state.health is H
    assert state.record(False).health is U


def test_lb_state_examples() -> None:
    fresh = LbProbeState(number_of_probes=3)
    assert fresh.health is INIT
    assert fresh.record(False).record(False).health is INIT
    assert fresh.record(False).record(False).record(False).health is U
    assert fresh.record(False).record(False).record(False).record(True).health is H
    with pytest.raises(ValueError, match="number_of_probes"):
        LbProbeState(number_of_probes=0)


# -- Application Health extension ---------------------------------------------------------------


def _app_reference(results: list[HealthState], n: int, in_grace: bool) -> HealthState:
    """The state of the latest N agreeing results; before any such Healthy run, Initializing
    while the grace period lasts; after it, Unhealthy if no N results ever agreed."""
    latest: HealthState | None = None
    healthy_once = False
    for i in range(n - 1, len(results)):
        window = results[i - n + 1:i + 1]
        if all(r is window[0] for r in window):
            latest = window[0]
            healthy_once = healthy_once or latest is H
    if in_grace:
        return latest if healthy_once and latest is not None else INIT
    return latest if latest is not None else U


def _play(n: int, grace: float, timed: list[tuple[float, HealthState]]
          ) -> list[tuple[float, AppHealthState]]:
    """Every (time, state) after each result, starting at time 0."""
    state = AppHealthState.started(now=0.0, number_of_probes=n, grace_period_seconds=grace)
    now, history = 0.0, []
    for gap, result in timed:
        now += gap
        state = state.record(result, now)
        history.append((now, state))
    return history


@given(n=PROBE_COUNTS, grace=st.floats(min_value=0, max_value=20), timed=TIMED_RESULTS,
       later=st.floats(min_value=0, max_value=30))
def test_extension_state_matches_the_reference_at_every_moment(
        n: int, grace: float, timed: list[tuple[float, HealthState]], later: float) -> None:
    results = [r for _, r in timed]
    for i, (now, state) in enumerate(_play(n, grace, timed)):
        assert state.current(now) is _app_reference(results[:i + 1], n, now < grace)
        # Between results only the clock moves: the grace period may run out.
        assert state.current(now + later) is _app_reference(results[:i + 1], n,
                                                            now + later < grace)


@given(n=PROBE_COUNTS, grace=st.floats(min_value=0, max_value=20), timed=TIMED_RESULTS)
def test_a_result_changes_the_state_only_after_n_agreeing_results(
        n: int, grace: float, timed: list[tuple[float, HealthState]]) -> None:
    results = [r for _, r in timed]
    previous = AppHealthState.started(now=0.0, number_of_probes=n, grace_period_seconds=grace)
    for i, (now, state) in enumerate(_play(n, grace, timed)):
        before, after = previous.current(now), state.current(now)
        if after is not before:
            assert i + 1 >= n
            assert all(r is after for r in results[i + 1 - n:i + 1])
        previous = state


@given(n=PROBE_COUNTS, grace=st.floats(min_value=0.1, max_value=20), timed=TIMED_RESULTS)
def test_never_unhealthy_within_the_grace_period_unless_it_was_healthy_first(
        n: int, grace: float, timed: list[tuple[float, HealthState]]) -> None:
    been_healthy = False
    for now, state in _play(n, grace, timed):
        if now >= grace:
            break
        been_healthy = been_healthy or state.current(now) is H
        if not been_healthy:
            assert state.current(now) is INIT


@given(n=PROBE_COUNTS, grace=st.floats(min_value=0, max_value=20), timed=TIMED_RESULTS)
def test_initializing_until_n_healthy_results_or_the_end_of_the_grace_period(
        n: int, grace: float, timed: list[tuple[float, HealthState]]) -> None:
    run = 0
    decided = False
    for (now, state), (_, result) in zip(_play(n, grace, timed), timed, strict=True):
        run = run + 1 if result is H else 0
        decided = decided or run >= n or now >= grace
        assert (state.current(now) is INIT) is not decided


def test_no_result_by_the_end_of_the_grace_period_is_unhealthy() -> None:
    state = AppHealthState.started(now=100.0, number_of_probes=1, grace_period_seconds=10.0)
    assert state.current(100.0) is INIT
    assert state.current(109.9) is INIT
    assert state.current(110.0) is U


def test_extension_state_examples() -> None:
    s = AppHealthState.started(now=0.0, number_of_probes=3, grace_period_seconds=30.0)
    s = s.record(H, 1).record(H, 2)
    assert s.current(2) is INIT  # two of three
    s = s.record(H, 3)
    assert s.current(3) is H
    s = s.record(U, 4).record(U, 5)
    assert s.current(5) is H  # Healthy -> Unhealthy needs three too
    s = s.record(U, 6)
    assert s.current(6) is U  # ... even inside the grace period
    s = s.record(H, 7).record(U, 8).record(H, 9).record(H, 10)
    assert s.current(10) is U  # a broken run starts again
    with pytest.raises(ValueError, match="Healthy or Unhealthy"):
        s.record(HealthState.UNKNOWN, 11)


# -- rich health responses ----------------------------------------------------------------------


@pytest.mark.parametrize(("status", "body", "expected"), [
    (200, b'{"ApplicationHealthState": "Healthy"}', H),
    (200, b'{"ApplicationHealthState": "Unhealthy"}', U),
    (200, b'{"applicationhealthstate": "UNHEALTHY", "other": 1}', U),
    (200, b'{"APPLICATIONHEALTHSTATE": "healthy"}', H),
    (200, b'{"ApplicationHealthState": "Busy"}', U),
    (200, b'{"ApplicationHealthState": null}', U),
    (200, b'{"status": "down"}', H),
    (200, b'["ApplicationHealthState"]', H),
    (200, b"OK", H),
    (200, b"", H),
    (200, b"\xff\xfe not utf-8", H),
    (200, b"[" * 100_000, H),
    (500, b'{"ApplicationHealthState": "Healthy"}', U),
    (204, b"", U),
    (301, b"", U),
])
def test_rich_health_reads_the_response(status: int, body: bytes, expected: HealthState) -> None:
    assert rich_health(status, body) is expected


# -- the extension's settings -------------------------------------------------------------------


def test_settings_as_azure_documents_them() -> None:
    spec = HealthExtensionSpec.from_settings({
        "protocol": "https", "port": 8443, "requestPath": "/healthz",
        "intervalInSeconds": 10, "numberOfProbes": 3, "gracePeriod": 600,
    })
    assert spec == HealthExtensionSpec(protocol="https", port=8443, request_path="/healthz",
                                       interval_seconds=10, number_of_probes=3,
                                       grace_period_seconds=600)


@pytest.mark.parametrize(("settings", "protocol", "port", "path"), [
    ({"protocol": "http", "requestPath": "/"}, "http", 80, "/"),
    ({"protocol": "HTTPS", "requestPath": "/h"}, "https", 443, "/h"),
    ({"protocol": "Tcp", "port": 22}, "tcp", 22, None),
    ({"protocol": "tcp", "port": 22, "requestPath": ""}, "tcp", 22, None),
    ({"protocol": "http", "requestPath": "health"}, "http", 80, "/health"),
    ({"protocol": "http", "port": 8080.0, "requestPath": "/"}, "http", 8080, "/"),
    ({"protocol": "http", "requestPath": "/", "vmWatchSettings": {"enabled": True}},
     "http", 80, "/"),
])
def test_settings_defaults(settings: dict[str, Any], protocol: str, port: int,
                           path: str | None) -> None:
    spec = HealthExtensionSpec.from_settings(settings)
    assert (spec.protocol, spec.port, spec.request_path) == (protocol, port, path)
    assert (spec.interval_seconds, spec.number_of_probes) == (5, 1)
    assert spec.grace_seconds == 5


def test_the_grace_period_defaults_to_interval_times_probes() -> None:
    spec = HealthExtensionSpec.from_settings({"protocol": "tcp", "port": 1,
                                              "intervalInSeconds": 7, "numberOfProbes": 4})
    assert spec.grace_seconds == 28
    assert HealthExtensionSpec("tcp", 1, interval_seconds=0.5, number_of_probes=3
                               ).grace_seconds == 1.5


@pytest.mark.parametrize(("settings", "message"), [
    ({}, "protocol is required"),
    ({"protocol": "udp", "port": 1}, "protocol must be http, https or tcp"),
    ({"protocol": 7}, "protocol must be http, https or tcp"),
    ({"protocol": "tcp"}, "port is required when protocol is tcp"),
    ({"protocol": "tcp", "port": 80, "requestPath": "/health"},
     "requestPath is not allowed when protocol is tcp: remove requestPath"),
    ({"protocol": "http"}, "requestPath is required when protocol is http: set requestPath"),
    ({"protocol": "https", "requestPath": ""}, "requestPath is required when protocol is https"),
    ({"protocol": "http", "requestPath": 5}, "requestPath must be a string"),
    ({"protocol": "http", "requestPath": "/", "port": 0}, "port must be between 1 and 65535"),
    ({"protocol": "http", "requestPath": "/", "port": 70000}, "port must be between 1 and 65535"),
    ({"protocol": "http", "requestPath": "/", "port": "80"}, "port must be a whole number"),
    ({"protocol": "http", "requestPath": "/", "port": True}, "port must be a whole number"),
    ({"protocol": "http", "requestPath": "/", "intervalInSeconds": 0},
     "intervalInSeconds must be between 1 and 60"),
    ({"protocol": "http", "requestPath": "/", "intervalInSeconds": 2.5},
     "intervalInSeconds must be a whole number"),
    ({"protocol": "http", "requestPath": "/", "numberOfProbes": 0},
     "numberOfProbes must be between 1 and 24"),
    ({"protocol": "http", "requestPath": "/", "gracePeriod": 7201},
     "gracePeriod must be between 0 and 7200"),
    ({"protocol": "http", "requestPath": "/", "gracePeriod": -1},
     "gracePeriod must be between 0 and 7200"),
    ({"protocol": "http", "requestpath": "/"}, "requestpath is not a setting .*: spell it "
                                               "requestPath"),
    ({"Protocol": "http", "requestPath": "/"}, "spell it protocol"),
])
def test_bad_settings_are_refused_naming_the_setting_and_the_fix(
        settings: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        HealthExtensionSpec.from_settings(settings)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"protocol": "tcp", "port": 80, "request_path": "/x"}, "request_path is not allowed"),
    ({"protocol": "http", "port": 80}, "request_path is required"),
    ({"protocol": "ftp", "port": 21}, "protocol must be one of"),
    ({"protocol": "tcp", "port": 0}, "port must be between"),
    ({"protocol": "tcp", "port": 1, "interval_seconds": 0}, "interval_seconds must be positive"),
    ({"protocol": "tcp", "port": 1, "number_of_probes": 0}, "number_of_probes must be at least"),
    ({"protocol": "tcp", "port": 1, "grace_period_seconds": 7300}, "grace_period_seconds must"),
])
def test_a_spec_built_directly_is_checked_too(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        HealthExtensionSpec(**kwargs)
