"""What the process driver's health sources conclude from probe results (pure: no I/O, no clock).

This module owns three things, and the rules in them live only here:

* ``HealthExtensionSpec``: the Application Health extension's public settings
  (``ApplicationHealthLinux``/``ApplicationHealthWindows``), parsed and checked
  as Azure spells them.
* ``LbProbeState``: a load-balancer probe's verdict. One success marks the
  instance Healthy; ``number_of_probes`` consecutive failures mark it
  Unhealthy; before either has happened since the watch (re)started it is
  Initializing.
* ``AppHealthState``: the extension's verdict. The reported state changes only
  after ``number_of_probes`` consecutive results agree on a new state. It
  starts Initializing; during the grace period Unhealthy results cannot turn
  Initializing into Unhealthy; once the grace period is over an instance that
  is still Initializing reads as Unhealthy, and from then on the
  consecutive-results rule alone decides.

Both state machines are immutable: ``record`` returns the next state and the
caller keeps it. That is what lets ``probes.Prober`` publish them to other
threads by a plain attribute assignment. Time is a float in seconds on
whatever monotonic clock the caller uses.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, Literal

from scaleset.model.instance import HealthState

MAX_GRACE_PERIOD_SECONDS = 7200
"""Azure's documented ceiling for ``gracePeriod``."""

MAX_INTERVAL_SECONDS = 60
MAX_NUMBER_OF_PROBES = 24
"""Ceilings of the extension handler's settings schema."""

DEFAULT_PORTS = {"http": 80, "https": 443}

ExtensionProtocol = Literal["http", "https", "tcp"]
_PROTOCOLS: tuple[ExtensionProtocol, ...] = ("http", "https", "tcp")

_SETTING_NAMES = ("protocol", "port", "requestPath", "intervalInSeconds", "numberOfProbes",
                  "gracePeriod")


@dataclass(frozen=True, slots=True)
class HealthExtensionSpec:
    """The Application Health extension's settings: what it probes in the instance, how often.

    ``grace_period_seconds`` left as ``None`` becomes Azure's default,
    ``interval_seconds * number_of_probes`` (at most 7200); after construction it
    is never ``None`` (``grace_seconds`` reads it typed).
    """

    protocol: ExtensionProtocol
    port: int
    request_path: str | None = None
    interval_seconds: float = 5.0
    number_of_probes: int = 1
    grace_period_seconds: float | None = None

    def __post_init__(self) -> None:
        if self.protocol not in _PROTOCOLS:
            raise ValueError(f"protocol must be one of http, https, tcp, not {self.protocol!r}")
        if not 1 <= self.port <= 65535:
            raise ValueError(f"port must be between 1 and 65535, not {self.port}")
        if self.protocol == "tcp" and self.request_path is not None:
            raise ValueError("request_path is not allowed for the tcp protocol")
        if self.protocol != "tcp" and not self.request_path:
            raise ValueError(f"request_path is required for the {self.protocol} protocol")
        if not (self.interval_seconds > 0 and math.isfinite(self.interval_seconds)):
            raise ValueError(f"interval_seconds must be positive, not {self.interval_seconds}")
        if self.number_of_probes < 1:
            raise ValueError(f"number_of_probes must be at least 1, not {self.number_of_probes}")
        if self.grace_period_seconds is None:
            # Setting a field of a frozen dataclass once, while constructing it, is how a
            # computed default is applied in exactly one place.
            object.__setattr__(self, "grace_period_seconds",
                               min(self.interval_seconds * self.number_of_probes,
                                   MAX_GRACE_PERIOD_SECONDS))
        elif not 0 <= self.grace_period_seconds <= MAX_GRACE_PERIOD_SECONDS:
            raise ValueError(f"grace_period_seconds must be between 0 and "
                             f"{MAX_GRACE_PERIOD_SECONDS}, not {self.grace_period_seconds}")

    @property
    def grace_seconds(self) -> float:
        """The grace period in seconds (the default already applied)."""
        assert self.grace_period_seconds is not None  # __post_init__ filled it in
        return self.grace_period_seconds

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> HealthExtensionSpec:
        """Parse the extension's public settings, as Azure spells them.

        ``protocol`` (http, https or tcp, any case) is required; ``port`` is
        required for tcp and defaults to 80 (http) or 443 (https);
        ``requestPath`` is required for http/https and not allowed for tcp;
        ``intervalInSeconds`` (default 5, at most 60), ``numberOfProbes``
        (default 1, at most 24) and ``gracePeriod`` (default interval x
        probes, at most 7200) are optional. Other keys (``vmWatchSettings``,
        say) are ignored. Azure's handler wants ``intervalInSeconds`` >= 5; a
        shorter one is accepted here so that local scale sets settle quickly.

        Raises ``ValueError`` naming the setting and the fix.

        >>> spec = HealthExtensionSpec.from_settings({"protocol": "HTTP", "requestPath": "health"})
        >>> spec.protocol, spec.port, spec.request_path, spec.grace_seconds
        ('http', 80, '/health', 5)
        """
        _refuse_misspelt_keys(settings)
        protocol = _protocol(settings.get("protocol"))
        raw_path = settings.get("requestPath")
        request_path: str | None
        if protocol == "tcp":
            if raw_path not in (None, ""):
                raise ValueError(
                    "requestPath is not allowed when protocol is tcp: remove requestPath, "
                    "or use protocol http or https to probe a path")
            if settings.get("port") is None:
                raise ValueError("port is required when protocol is tcp: set port to the TCP "
                                 "port the application listens on (1-65535)")
            request_path = None
        else:
            if raw_path is None or raw_path == "":
                raise ValueError(f"requestPath is required when protocol is {protocol}: set "
                                 "requestPath to the path that answers health probes, "
                                 "e.g. \"/health\"")
            if not isinstance(raw_path, str):
                raise ValueError(f"requestPath must be a string such as \"/health\", "
                                 f"not {raw_path!r}")
            # Azure's handler builds the URL with the path under the host: "health" means "/health".
            request_path = raw_path if raw_path.startswith("/") else "/" + raw_path
        port = _integer(settings, "port", DEFAULT_PORTS.get(protocol, 0), 1, 65535)
        interval = _integer(settings, "intervalInSeconds", 5, 1, MAX_INTERVAL_SECONDS)
        probes = _integer(settings, "numberOfProbes", 1, 1, MAX_NUMBER_OF_PROBES)
        grace = _integer(settings, "gracePeriod", min(interval * probes, MAX_GRACE_PERIOD_SECONDS),
                         0, MAX_GRACE_PERIOD_SECONDS)
        return cls(protocol=protocol, port=port, request_path=request_path,
                   interval_seconds=interval, number_of_probes=probes,
                   grace_period_seconds=grace)


def _refuse_misspelt_keys(settings: Mapping[str, Any]) -> None:
    # Unknown keys are ignored (the handler has more settings than this driver uses), but a
    # known name in the wrong case would otherwise be silently dropped: say so instead.
    by_folded = {name.lower(): name for name in _SETTING_NAMES}
    for key in settings:
        name = by_folded.get(str(key).lower())
        if name is not None and name != key:
            raise ValueError(f"{key} is not a setting of the Application Health extension: "
                             f"spell it {name}")


def _protocol(raw: object) -> ExtensionProtocol:
    if raw is None:
        raise ValueError("protocol is required: set protocol to http, https or tcp")
    if isinstance(raw, str):
        folded = raw.strip().lower()
        for protocol in _PROTOCOLS:
            if folded == protocol:
                return protocol
    raise ValueError(f"protocol must be http, https or tcp, not {raw!r}")


def _integer(settings: Mapping[str, Any], name: str, default: int, low: int, high: int) -> int:
    raw = settings.get(name)
    if raw is None:
        return default
    # JSON has one number type: 5.0 is 5, but true is not 1 and "5" is not a number.
    value: int | None = None
    if isinstance(raw, int) and not isinstance(raw, bool):
        value = raw
    elif isinstance(raw, float) and raw.is_integer():
        value = int(raw)
    if value is None:
        raise ValueError(f"{name} must be a whole number between {low} and {high}, not {raw!r}")
    if not low <= value <= high:
        raise ValueError(f"{name} must be between {low} and {high}, not {value}: "
                         f"set {name} within that range")
    return value


@dataclass(frozen=True, slots=True)
class LbProbeState:
    """A load-balancer probe's verdict on one instance (immutable; ``record`` returns the next).

    >>> s = LbProbeState(number_of_probes=2)
    >>> s.health
    <HealthState.INITIALIZING: 'Initializing'>
    >>> s.record(True).health
    <HealthState.HEALTHY: 'Healthy'>
    >>> s.record(True).record(False).health
    <HealthState.HEALTHY: 'Healthy'>
    >>> s.record(True).record(False).record(False).health
    <HealthState.UNHEALTHY: 'Unhealthy'>
    """

    number_of_probes: int
    health: HealthState = HealthState.INITIALIZING
    consecutive_failures: int = 0

    def __post_init__(self) -> None:
        if self.number_of_probes < 1:
            raise ValueError(f"number_of_probes must be at least 1, not {self.number_of_probes}")

    def record(self, up: bool) -> LbProbeState:
        """The state after one probe result (``up``: 200 / connection accepted)."""
        if up:
            return replace(self, health=HealthState.HEALTHY, consecutive_failures=0)
        failures = self.consecutive_failures + 1
        health = HealthState.UNHEALTHY if failures >= self.number_of_probes else self.health
        return replace(self, health=health, consecutive_failures=failures)


_RESULTS = (HealthState.HEALTHY, HealthState.UNHEALTHY)
_RICH_KEY = "applicationhealthstate"


def rich_health(status_code: int, body: bytes) -> HealthState:
    """One http/https probe result of the extension, from the response.

    A 200 whose body is a JSON object with ``ApplicationHealthState`` (key
    and value in any case) says Healthy or Unhealthy itself; a 200 without
    that key (or not JSON at all) is Healthy, as in Azure's binary mode; a
    value that is neither Healthy nor Unhealthy is Unhealthy (Azure reports
    Unknown there, which is not healthy either); any other status is Unhealthy.

    >>> rich_health(200, b'{"applicationHealthState": "unhealthy"}')
    <HealthState.UNHEALTHY: 'Unhealthy'>
    >>> rich_health(200, b"OK")
    <HealthState.HEALTHY: 'Healthy'>
    >>> rich_health(503, b'{"ApplicationHealthState": "Healthy"}')
    <HealthState.UNHEALTHY: 'Unhealthy'>
    """
    if status_code != 200:
        return HealthState.UNHEALTHY
    try:
        document = json.loads(body)
    except (ValueError, RecursionError):  # not JSON, not UTF-8, or absurdly nested
        return HealthState.HEALTHY
    if not isinstance(document, dict):
        return HealthState.HEALTHY
    for key, value in document.items():
        if key.lower() == _RICH_KEY:
            folded = value.lower() if isinstance(value, str) else None
            return HealthState.HEALTHY if folded == "healthy" else HealthState.UNHEALTHY
    return HealthState.HEALTHY


@dataclass(frozen=True, slots=True)
class AppHealthState:
    """The Application Health extension's verdict on one instance (immutable).

    ``grace_ends_at`` is when the watch started plus the grace period, on the
    caller's clock. ``reported`` is the state as last decided by ``record``;
    ``current(now)`` is what to show, which also accounts for the grace period
    having run out since.

    >>> s = AppHealthState.started(now=0.0, number_of_probes=2, grace_period_seconds=10.0)
    >>> s.record(HealthState.UNHEALTHY, 1.0).record(HealthState.UNHEALTHY, 2.0).current(2.0)
    <HealthState.INITIALIZING: 'Initializing'>
    >>> s.record(HealthState.UNHEALTHY, 1.0).record(HealthState.UNHEALTHY, 2.0).current(10.0)
    <HealthState.UNHEALTHY: 'Unhealthy'>
    >>> s.record(HealthState.HEALTHY, 1.0).record(HealthState.HEALTHY, 2.0).current(2.0)
    <HealthState.HEALTHY: 'Healthy'>
    """

    number_of_probes: int
    grace_ends_at: float
    reported: HealthState = HealthState.INITIALIZING
    streak_state: HealthState | None = None
    """The state the latest results agree on (``None`` before any result)."""
    streak: int = 0
    """How many consecutive latest results were ``streak_state``."""

    def __post_init__(self) -> None:
        if self.number_of_probes < 1:
            raise ValueError(f"number_of_probes must be at least 1, not {self.number_of_probes}")

    @classmethod
    def started(cls, *, now: float, number_of_probes: int,
                grace_period_seconds: float) -> AppHealthState:
        """A fresh state for a watch that starts at ``now``."""
        return cls(number_of_probes=number_of_probes, grace_ends_at=now + grace_period_seconds)

    def current(self, now: float) -> HealthState:
        """The state at ``now``: still Initializing when the grace period is over is Unhealthy."""
        if self.reported is HealthState.INITIALIZING and now >= self.grace_ends_at:
            return HealthState.UNHEALTHY
        return self.reported

    def record(self, result: HealthState, now: float) -> AppHealthState:
        """The state after one probe ``result`` (Healthy or Unhealthy) at ``now``."""
        if result not in _RESULTS:
            raise ValueError(f"a probe result is Healthy or Unhealthy, not {result}")
        streak = self.streak + 1 if result is self.streak_state else 1
        base = self.current(now)
        reported = base
        if streak >= self.number_of_probes and result is not base:
            # Only the grace period holds a verdict back, and only Initializing -> Unhealthy:
            # base is Initializing only while the grace period lasts (see current()).
            if not (base is HealthState.INITIALIZING and result is HealthState.UNHEALTHY):
                reported = result
        return replace(self, reported=reported, streak_state=result, streak=streak)
