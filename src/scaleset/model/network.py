"""The load balancer resource (``Microsoft.Network/loadBalancers``), reduced to its probes.

Scale sets name a probe in ``networkProfile.healthProbe.id``; the control plane
runs that probe against every instance. Only probes are typed; frontends,
pools and rules a client sends are kept as-is (see
:class:`~scaleset.model.base.ArmModel`). Defaults are Azure's, except the
probe interval's lower bound (see :class:`ProbeProperties`).

>>> lb = LoadBalancer.model_validate({"location": "westus", "properties": {"probes": [
...     {"name": "http", "properties": {"protocol": "HTTP", "port": 80,
...                                     "requestPath": "/health"}}]}})
>>> lb.sku.name, lb.properties.probes[0].properties.protocol
('Basic', 'Http')
>>> lb.properties.probes[0].properties.failures_to_mark_down
2
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Final, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator
from pydantic_core import PydanticCustomError

from scaleset.model import limits
from scaleset.model.base import ArmModel

LOAD_BALANCER_TYPE: Final = "Microsoft.Network/loadBalancers"
PROBE_TYPE: Final = "Microsoft.Network/loadBalancers/probes"

ProbeProtocol = Literal["Http", "Https", "Tcp"]
SkuName = Literal["Basic", "Standard", "Gateway"]

PROTOCOLS: Final[dict[str, ProbeProtocol]] = {"http": "Http", "https": "Https", "tcp": "Tcp"}
SKU_NAMES: Final[dict[str, SkuName]] = {"basic": "Basic", "standard": "Standard",
                                         "gateway": "Gateway"}

# Azure's rule for load-balancer child resource names: 1-80 characters, letters, digits,
# '_', '.', '-'; starting with a letter or digit, ending with one or '_'. It also keeps
# '/' out, which would break the probe's id.
_NAME = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9_.-]{0,78}[A-Za-z0-9_])?$")


def _canonical(value: Any, choices: Mapping[str, str], what: str) -> Any:
    """``value`` spelled as ``choices`` spell it (input is case-insensitive)."""
    if isinstance(value, str) and value.lower() in choices:
        return choices[value.lower()]
    raise PydanticCustomError(
        "enum", "'{value}' is not a {what}; use one of {choices}",
        {"value": str(value), "what": what, "choices": ", ".join(choices.values())})


class ProbeProperties(ArmModel):
    """What to probe and how often.

    ``intervalInSeconds`` is at least 1 here, though Azure's minimum is 5: a
    self-hosted demo or test wants to see an instance go down in seconds.
    """

    protocol: ProbeProtocol
    port: int
    request_path: str | None = None
    interval_in_seconds: int = 15
    number_of_probes: int = 2
    probe_threshold: int | None = None
    provisioning_state: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _request_path_given(cls, data: Any) -> Any:
        # An absent requestPath is made an explicit null so that its rule runs and an
        # error about it is reported at 'requestPath' (a default's error would carry the
        # Python name).
        if isinstance(data, dict) and "requestPath" not in data and "request_path" not in data:
            return {**data, "requestPath": None}
        return data

    @field_validator("protocol", mode="before")
    @classmethod
    def _protocol(cls, value: Any) -> Any:
        return _canonical(value, PROTOCOLS, "probe protocol")

    @field_validator("port", mode="after")
    @classmethod
    def _port(cls, value: int) -> int:
        if not 1 <= value <= 65535:
            raise PydanticCustomError(
                "port", "port {port} is out of range; use a TCP port from 1 to 65535",
                {"port": value})
        return value

    @field_validator("request_path", mode="after")
    @classmethod
    def _request_path(cls, value: str | None, info: ValidationInfo) -> str | None:
        # ``protocol`` is declared first, so it is in ``info.data`` when it was valid;
        # when it was not, its own error says so and this rule has nothing to check.
        protocol = info.data.get("protocol")
        if protocol in ("Http", "Https") and not value:
            raise PydanticCustomError(
                "request_path", "requestPath is required for an {protocol} probe; give the "
                "path that answers 200 when the instance is healthy, e.g. '/health'",
                {"protocol": protocol})
        if protocol == "Tcp" and value is not None:
            raise PydanticCustomError(
                "request_path", "requestPath is only for Http and Https probes; remove it, "
                "or set protocol to Http", {})
        if value is not None and not value.startswith("/"):
            raise PydanticCustomError(
                "request_path", "requestPath '{path}' must start with '/', e.g. '/{path}'",
                {"path": value})
        return value

    @field_validator("interval_in_seconds", mode="after")
    @classmethod
    def _interval(cls, value: int) -> int:
        if value < 1:  # Azure refuses below 5; 1 is allowed here for self-hosted demos.
            raise PydanticCustomError(
                "interval", "intervalInSeconds must be at least 1 (Azure's minimum is 5); "
                "got {value}", {"value": value})
        return value

    @field_validator("number_of_probes", "probe_threshold", mode="after")
    @classmethod
    def _count(cls, value: int | None, info: ValidationInfo) -> int | None:
        if value is not None and value < 1:
            name = "numberOfProbes" if info.field_name == "number_of_probes" \
                else "probeThreshold"
            raise PydanticCustomError(
                "count", "{name} must be at least 1 (consecutive failed probes that mark an "
                "instance down); got {value}", {"name": name, "value": value})
        return value

    @property
    def failures_to_mark_down(self) -> int:
        """Consecutive failures that mark an instance down: ``probeThreshold`` if set,
        else ``numberOfProbes`` (Azure's rule since probeThreshold was introduced)."""
        return self.probe_threshold if self.probe_threshold is not None \
            else self.number_of_probes


class Probe(ArmModel):
    """A health probe of a load balancer; ``id`` is filled in by the server."""

    id: str | None = None
    name: str
    type: str | None = None
    etag: str | None = None
    properties: ProbeProperties

    @field_validator("name", mode="after")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _NAME.match(value):
            raise PydanticCustomError(
                "name", "probe name '{name}' is not valid: use 1-80 letters, digits, '_', "
                "'.' or '-', starting with a letter or digit and ending with one or '_'",
                {"name": value})
        return value


class LoadBalancerSku(ArmModel):
    """``sku``: Azure's default for a load balancer written without one is Basic. A scale
    set with ``singlePlacementGroup: false`` needs its health probe on a Standard one."""

    name: SkuName = "Basic"
    tier: str | None = None
    """Regional or Global (kept as written)."""

    @field_validator("name", mode="before")
    @classmethod
    def _sku_name(cls, value: Any) -> Any:
        return _canonical(value, SKU_NAMES, "load balancer sku")


class LoadBalancerProperties(ArmModel):
    provisioning_state: str | None = None
    probes: list[Probe] = Field(default_factory=list, max_length=limits.MAX_PROBES)

    @field_validator("probes", mode="after")
    @classmethod
    def _unique(cls, probes: list[Probe]) -> list[Probe]:
        seen: dict[str, int] = {}
        for index, probe in enumerate(probes):
            first = seen.setdefault(probe.name.lower(), index)
            if first != index:  # ARM names are case-insensitive
                raise PydanticCustomError(
                    "unique", "probe names must be unique within a load balancer: probes[{a}] "
                    "and probes[{b}] are both named '{name}'; rename or remove one",
                    {"a": first, "b": index, "name": probe.name})
        return probes

    def probe(self, name: str) -> Probe | None:
        """The probe called ``name`` (case-insensitive), if any."""
        return next((p for p in self.probes if p.name.lower() == name.lower()), None)


class LoadBalancer(ArmModel):
    """``Microsoft.Network/loadBalancers``: id, name, type, etag and provisioningState are
    the server's; a client's values for them are ignored."""

    id: str | None = None
    name: str | None = None
    type: str = LOAD_BALANCER_TYPE
    location: str
    tags: limits.Tags = None
    etag: str | None = None
    sku: LoadBalancerSku = Field(default_factory=LoadBalancerSku)
    properties: LoadBalancerProperties = Field(default_factory=LoadBalancerProperties)
