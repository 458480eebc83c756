"""Network security groups: their commands and their view.

A group is a row of the generic ``resources`` table; its rules live in its
body; ``defaultSecurityRules`` are added by the server. A group a scale set's
network interface configurations name cannot be deleted (400
``InUseNetworkSecurityGroupCannotBeDeleted``).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime

from scaleset.errors import InvalidParameter, NotFound
from scaleset.model.netrules import name_problem
from scaleset.model.securitygroup import (
    RULE_TYPE,
    SECURITY_GROUP_TYPE,
    NetworkSecurityGroup,
    default_rules,
    rule_problems,
)
from scaleset.reconcile import networkrefs
from scaleset.reconcile.virtualnetworks import etag, raise_first
from scaleset.store.repository import ResourceRow, Store, Tx


def group_id(subscription: str, resource_group: str, name: str) -> str:
    return (f"/subscriptions/{subscription}/resourceGroups/{resource_group}/providers/"
            f"{SECURITY_GROUP_TYPE}/{name}")


def not_found(name: str, resource_group: str) -> NotFound:
    return NotFound(f"The Resource 'Microsoft.Network/networkSecurityGroups/{name}' under "
                    f"resource group '{resource_group}' was not found.")


def put_group(store: Store, *, subscription: str, resource_group: str, name: str,
              model: NetworkSecurityGroup, now: datetime,
              check: Callable[[str | None], None] | None = None) -> tuple[ResourceRow, bool]:
    """Create or replace a network security group (its rules too)."""
    problem = name_problem(name, 1, 80)
    if problem is not None:
        raise InvalidParameter(f"network security group name {problem}", target="name",
                               code="InvalidResourceName")
    raise_first(rule_problems(model.properties.security_rules))
    display_id = group_id(subscription, resource_group, name)
    with store.transaction() as tx:
        existing = tx.get_resource(display_id, for_update=True)
        if check is not None:  # If-Match / If-None-Match, on the locked row
            check(str(existing.body.get("etag")) if existing is not None else None)
        if existing is not None and existing.location.replace(" ", "").lower() != \
                model.location.replace(" ", "").lower():
            raise InvalidParameter(
                f"Changing property 'location' is not allowed: network security group "
                f"'{name}' is in '{existing.location}'.", target="location")
        guid = str(existing.state["resourceGuid"]) if existing else str(uuid.uuid4())
        shown = existing.name if existing is not None else name
        shown_id = group_id(subscription, resource_group, shown)
        rules = [r.model_copy(update={
            "id": f"{shown_id}/securityRules/{r.name}", "type": RULE_TYPE, "etag": None,
            "properties": r.properties.model_copy(update={"provisioning_state": "Succeeded"})})
            for r in model.properties.security_rules]
        body = model.model_copy(update={
            "id": shown_id, "name": shown, "type": SECURITY_GROUP_TYPE, "etag": None,
            "properties": model.properties.model_copy(update={
                "security_rules": rules, "provisioning_state": "Succeeded",
                "resource_guid": guid})}).to_wire()
        body["properties"]["defaultSecurityRules"] = default_rules(shown_id)
        for key in ("networkInterfaces", "subnets"):
            body["properties"].pop(key, None)
        body["etag"] = etag(display_id, body, now)
        row = ResourceRow(
            id=display_id, type=SECURITY_GROUP_TYPE, parent_id=None,
            subscription=subscription, resource_group=resource_group, name=shown,
            location=existing.location if existing else model.location, body=body,
            state={"resourceGuid": guid},
            created_at=existing.created_at if existing else now, updated_at=now)
        tx.put_resource(row)
    return row, existing is None


def delete_group(store: Store, *, subscription: str, resource_group: str, name: str,
                 check: Callable[[str | None], None] | None = None) -> bool:
    """Delete a group no scale set names; False when absent."""
    display_id = group_id(subscription, resource_group, name)
    with store.transaction() as tx:
        row = tx.get_resource(display_id, for_update=True)
        if row is None or row.type.lower() != SECURITY_GROUP_TYPE.lower():
            return False
        if check is not None:  # If-Match, on the locked row
            check(str(row.body.get("etag")))
        users = networkrefs.users(tx, networkrefs.SECURITY_GROUP, str(row.body["id"]))
        if users:
            raise InvalidParameter(
                f"Network security group {row.body['id']} cannot be deleted because it is in "
                f"use by the scale set(s) "
                f"{', '.join(sorted({repr(u[0].rsplit('/', 1)[-1]) for u in users}))}; remove "
                "it from their networkInterfaceConfigurations (or delete them) first.",
                target="name", code="InUseNetworkSecurityGroupCannotBeDeleted")
        return tx.delete_resource(display_id)


def load(tx: Tx, subscription: str, resource_group: str, name: str) -> ResourceRow:
    row = tx.get_resource(group_id(subscription, resource_group, name))
    if row is None or row.type.lower() != SECURITY_GROUP_TYPE.lower():
        raise not_found(name, resource_group)
    return row
