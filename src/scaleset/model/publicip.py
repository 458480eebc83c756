"""The public IP address (``Microsoft.Network/publicIPAddresses``).

There is no internet here, so the "public" address is drawn from the shared
address space of RFC 6598 (``100.64.0.0/10``): never anyone's LAN, never
routed on the internet, and apart from the 127.N.0.0/16 ranges the process
driver gives instances. Typed: the sku (``Standard`` by default: Azure
retired Basic public IPs in September 2025), the allocation method
(``Static`` by default for Standard, ``Dynamic`` for Basic, as Azure
defaults; Standard refuses Dynamic), the IP version (IPv4 only here), the
idle timeout (4-30 minutes) and the DNS label; everything else is kept.
``ipAddress``, ``ipConfiguration``, ``dnsSettings.fqdn``,
``provisioningState`` and ``resourceGuid`` are the server's.

>>> pip = PublicIPAddress.model_validate({"location": "westus", "sku": {"name": "basic"}})
>>> pip.sku.name, pip.properties.allocation(pip.sku.name)
('Basic', 'Dynamic')
>>> str(address(0)), str(address(1))
('100.64.0.1', '100.64.0.2')
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any, Final, Literal

from pydantic import Field, field_validator
from pydantic_core import PydanticCustomError

from scaleset.model import limits
from scaleset.model.base import ArmModel

PUBLIC_IP_TYPE: Final = "Microsoft.Network/publicIPAddresses"
POOL: Final = ipaddress.IPv4Network("100.64.0.0/10")
"""Where addresses come from (RFC 6598 shared address space)."""
_LABEL = re.compile(r"^[a-z][a-z0-9-]{1,61}[a-z0-9]$")


def address(index: int) -> ipaddress.IPv4Address:
    """The ``index``-th address of the pool (the network address itself is skipped)."""
    if not 0 <= index < POOL.num_addresses - 2:
        raise ValueError(f"the public address pool {POOL} is exhausted")
    return POOL.network_address + 1 + index


def _canonical(value: Any, choices: dict[str, str], what: str) -> Any:
    if isinstance(value, str) and value.lower() in choices:
        return choices[value.lower()]
    raise PydanticCustomError("enum", "'{value}' is not a {what}; use one of {choices}",
                              {"value": str(value), "what": what,
                               "choices": ", ".join(choices.values())})


class PublicIPSku(ArmModel):
    name: Literal["Basic", "Standard"] = "Standard"
    tier: Literal["Regional", "Global"] = "Regional"

    @field_validator("name", mode="before")
    @classmethod
    def _name(cls, value: Any) -> Any:
        return _canonical(value, {"basic": "Basic", "standard": "Standard"},
                          "public IP sku")

    @field_validator("tier", mode="before")
    @classmethod
    def _tier(cls, value: Any) -> Any:
        return _canonical(value, {"regional": "Regional", "global": "Global"},
                          "public IP sku tier")


class DnsSettings(ArmModel):
    domain_name_label: str | None = None
    fqdn: str | None = None

    @field_validator("domain_name_label", mode="after")
    @classmethod
    def _label(cls, value: str | None) -> str | None:
        if value is not None and not _LABEL.match(value):
            raise PydanticCustomError(
                "label", "domainNameLabel '{value}' is not valid: use 3-63 lower-case "
                "letters, digits and '-', starting with a letter and not ending with '-'",
                {"value": value})
        return value


class PublicIPProperties(ArmModel):
    public_ip_allocation_method: Literal["Static", "Dynamic"] | None = Field(
        default=None, alias="publicIPAllocationMethod")
    public_ip_address_version: Literal["IPv4"] = Field(default="IPv4",
                                                       alias="publicIPAddressVersion")
    idle_timeout_in_minutes: int = Field(default=4, ge=4, le=30)
    dns_settings: DnsSettings | None = None
    ip_address: str | None = Field(default=None, alias="ipAddress")
    provisioning_state: str | None = None
    resource_guid: str | None = None

    @field_validator("public_ip_allocation_method", mode="before")
    @classmethod
    def _method(cls, value: Any) -> Any:
        return None if value is None else _canonical(
            value, {"static": "Static", "dynamic": "Dynamic"}, "publicIPAllocationMethod")

    @field_validator("public_ip_address_version", mode="before")
    @classmethod
    def _version(cls, value: Any) -> Any:
        if isinstance(value, str) and value.lower() == "ipv4":
            return "IPv4"
        raise PydanticCustomError("version", "publicIPAddressVersion '{value}' is not served "
                                  "here; only IPv4 public addresses are", {"value": str(value)})

    def allocation(self, sku: str) -> str:
        """The allocation method in effect: as written, else Azure's default for the sku."""
        return self.public_ip_allocation_method or ("Static" if sku == "Standard"
                                                    else "Dynamic")


class PublicIPAddress(ArmModel):
    id: str | None = None
    name: str | None = None
    type: str = PUBLIC_IP_TYPE
    location: str = Field(min_length=1, max_length=64)
    tags: limits.Tags = None
    etag: str | None = None
    zones: list[str] | None = Field(default=None, max_length=3)
    sku: PublicIPSku = Field(default_factory=PublicIPSku)
    properties: PublicIPProperties = Field(default_factory=PublicIPProperties)
