"""The network security group (``Microsoft.Network/networkSecurityGroups``).

Security rules are typed: protocol (``Tcp``, ``Udp``, ``Icmp``, ``Esp``,
``Ah``, ``*``; case-insensitive in, canonical out), access (Allow, Deny),
direction (Inbound, Outbound), priority 100-4096, unique names and no two
rules of one direction with the same priority (Azure's
``SecurityRuleConflict``). Port and address fields are kept as written.
``defaultSecurityRules`` are the server's: Azure's six, the same in every
group. Nothing here filters traffic: instances are local processes.

>>> nsg = NetworkSecurityGroup.model_validate({"location": "westus", "properties": {
...     "securityRules": [{"name": "ssh", "properties": {"protocol": "tcp", "access": "allow",
...         "direction": "inbound", "priority": 1000, "destinationPortRange": "22"}}]}})
>>> nsg.properties.security_rules[0].properties.protocol
'Tcp'
>>> [r["name"] for r in default_rules("/nsg")][:2]
['AllowVnetInBound', 'AllowAzureLoadBalancerInBound']
"""

from __future__ import annotations

from typing import Any, Final

from pydantic import Field, field_validator
from pydantic_core import PydanticCustomError

from scaleset.model import limits
from scaleset.model.base import ArmModel
from scaleset.model.netrules import Problem, name_problem

SECURITY_GROUP_TYPE: Final = "Microsoft.Network/networkSecurityGroups"
RULE_TYPE: Final = "Microsoft.Network/networkSecurityGroups/securityRules"
DEFAULT_RULE_TYPE: Final = "Microsoft.Network/networkSecurityGroups/defaultSecurityRules"
MAX_RULES: Final = 1000
PROTOCOLS: Final = {"tcp": "Tcp", "udp": "Udp", "icmp": "Icmp", "esp": "Esp", "ah": "Ah",
                    "*": "*"}


def _canonical(value: Any, choices: dict[str, str], what: str) -> Any:
    if isinstance(value, str) and value.lower() in choices:
        return choices[value.lower()]
    raise PydanticCustomError("enum", "'{value}' is not a {what}; use one of {choices}",
                              {"value": str(value), "what": what,
                               "choices": ", ".join(choices.values())})


class SecurityRuleProperties(ArmModel):
    protocol: str
    access: str
    direction: str
    priority: int = Field(ge=100, le=4096)
    provisioning_state: str | None = None

    @field_validator("protocol", mode="before")
    @classmethod
    def _protocol(cls, value: Any) -> Any:
        return _canonical(value, PROTOCOLS, "security rule protocol")

    @field_validator("access", mode="before")
    @classmethod
    def _access(cls, value: Any) -> Any:
        return _canonical(value, {"allow": "Allow", "deny": "Deny"}, "security rule access")

    @field_validator("direction", mode="before")
    @classmethod
    def _direction(cls, value: Any) -> Any:
        return _canonical(value, {"inbound": "Inbound", "outbound": "Outbound"},
                          "security rule direction")


class SecurityRule(ArmModel):
    id: str | None = None
    name: str | None = None
    type: str | None = None
    etag: str | None = None
    properties: SecurityRuleProperties


class SecurityGroupProperties(ArmModel):
    security_rules: list[SecurityRule] = Field(default_factory=list, max_length=MAX_RULES)
    provisioning_state: str | None = None
    resource_guid: str | None = None


class NetworkSecurityGroup(ArmModel):
    id: str | None = None
    name: str | None = None
    type: str = SECURITY_GROUP_TYPE
    location: str = Field(min_length=1, max_length=64)
    tags: limits.Tags = None
    etag: str | None = None
    properties: SecurityGroupProperties = Field(default_factory=SecurityGroupProperties)


def rule_problems(rules: list[SecurityRule], where: str = "properties.securityRules"
                  ) -> list[Problem]:
    """Names (Azure's rule, unique) and priorities (unique per direction)."""
    out = []
    names: dict[str, int] = {}
    slots: dict[tuple[str, int], str] = {}
    for i, rule in enumerate(rules):
        problem = name_problem(rule.name or "", 1, 80)
        if problem is not None:
            out.append(Problem("InvalidResourceName", f"{where}[{i}].name",
                               f"security rule name {problem}"))
            continue
        first = names.setdefault(rule.name.lower() if rule.name else "", i)
        if first != i:
            out.append(Problem("InvalidRequestFormat", f"{where}[{i}].name",
                               f"securityRules[{first}] and [{i}] are both named "
                               f"'{rule.name}'; rule names are unique within a group"))
        key = (rule.properties.direction, rule.properties.priority)
        if key in slots:
            out.append(Problem(
                "SecurityRuleConflict", f"{where}[{i}].properties.priority",
                f"Security rule {rule.name} conflicts with rule {slots[key]}. Rules cannot "
                f"have the same Priority ({key[1]}) and Direction ({key[0]})."))
        slots.setdefault(key, rule.name or "")
    return out


_DEFAULTS: Final = (
    ("AllowVnetInBound", "Allow", "Inbound", 65000, "VirtualNetwork", "VirtualNetwork",
     "Allow inbound traffic from all VMs in VNET"),
    ("AllowAzureLoadBalancerInBound", "Allow", "Inbound", 65001, "AzureLoadBalancer", "*",
     "Allow inbound traffic from azure load balancer"),
    ("DenyAllInBound", "Deny", "Inbound", 65500, "*", "*", "Deny all inbound traffic"),
    ("AllowVnetOutBound", "Allow", "Outbound", 65000, "VirtualNetwork", "VirtualNetwork",
     "Allow outbound traffic from all VMs to all VMs in VNET"),
    ("AllowInternetOutBound", "Allow", "Outbound", 65001, "*", "Internet",
     "Allow outbound traffic from all VMs to Internet"),
    ("DenyAllOutBound", "Deny", "Outbound", 65500, "*", "*", "Deny all outbound traffic"),
)


def default_rules(group_id: str) -> list[dict[str, Any]]:
    """Azure's default security rules of every group, as GET shows them."""
    return [{"id": f"{group_id}/defaultSecurityRules/{name}", "name": name,
             "type": DEFAULT_RULE_TYPE, "properties": {
                 "description": description, "protocol": "*", "sourcePortRange": "*",
                 "destinationPortRange": "*", "sourceAddressPrefix": source,
                 "destinationAddressPrefix": destination, "access": access,
                 "priority": priority, "direction": direction,
                 "sourcePortRanges": [], "destinationPortRanges": [],
                 "sourceAddressPrefixes": [], "destinationAddressPrefixes": [],
                 "provisioningState": "Succeeded"}}
            for name, access, direction, priority, source, destination, description
            in _DEFAULTS]
