"""Public IP addresses: their commands and their view.

A public IP is a row of the generic ``resources`` table; its address (from
``model/publicip.POOL``) is chosen when it is created, the lowest one no other
public IP of this server holds, and kept in ``state`` with the
``resourceGuid`` for as long as the resource lives: Static and Dynamic alike
(here nothing stops or deallocates, so a Dynamic address never has to
change). ``ipConfiguration`` is derived on read from the load-balancer
frontends that name the address; such an address cannot be deleted (400
``PublicIPAddressInUse``).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from collections.abc import Callable
from typing import Any

from scaleset.errors import InvalidParameter, NotFound
from scaleset.model.netrules import name_problem
from scaleset.model.publicip import PUBLIC_IP_TYPE, PublicIPAddress, address
from scaleset.reconcile import networkrefs
from scaleset.reconcile.virtualnetworks import etag
from scaleset.store.repository import ResourceRow, Store, Tx


def public_ip_id(subscription: str, resource_group: str, name: str) -> str:
    return (f"/subscriptions/{subscription}/resourceGroups/{resource_group}/providers/"
            f"{PUBLIC_IP_TYPE}/{name}")


def not_found(name: str, resource_group: str) -> NotFound:
    return NotFound(f"The Resource 'Microsoft.Network/publicIPAddresses/{name}' under "
                    f"resource group '{resource_group}' was not found.")


def _next_address(tx: Tx) -> str:
    taken = {str(r.state.get("ipAddress")) for r in tx.resources(PUBLIC_IP_TYPE)}
    index = 0
    while str(address(index)) in taken:
        index += 1
    return str(address(index))


def frontends_using(tx: Tx, resource_id: str, subscription: str) -> list[str]:
    """Ids of the load-balancer frontend IP configurations naming this public IP."""
    key = resource_id.lower()
    out = []
    for balancer in tx.load_balancers(subscription):
        wire = balancer.model.to_wire()
        for frontend in wire.get("properties", {}).get("frontendIPConfigurations") or []:
            props = frontend.get("properties") if isinstance(frontend, dict) else None
            ref = networkrefs.get(networkrefs.get(props, "publicIPAddress"), "id")
            if isinstance(ref, str) and ref.strip().rstrip("/").lower() == key:
                out.append(str(frontend.get("id")))
    return out


def view(tx: Tx, row: ResourceRow) -> dict[str, Any]:
    """The public IP as GET returns it (with the frontend that uses it, if any)."""
    body = dict(row.body)
    used = frontends_using(tx, str(body["id"]), row.subscription)
    if used:
        body["properties"] = {**body["properties"], "ipConfiguration": {"id": used[0]}}
    return body


def put_public_ip(store: Store, *, subscription: str, resource_group: str, name: str,
                  model: PublicIPAddress, now: datetime,
                  check: Callable[[str | None], None] | None = None) -> tuple[ResourceRow, bool]:
    """Create or replace a public IP (its address and resourceGuid are kept)."""
    problem = name_problem(name, 1, 80)
    if problem is not None:
        raise InvalidParameter(f"public IP address name {problem}", target="name",
                               code="InvalidResourceName")
    method = model.properties.allocation(model.sku.name)
    if model.sku.name == "Standard" and method == "Dynamic":
        raise InvalidParameter(
            "A Standard sku public IP address must have publicIPAllocationMethod Static; set "
            "it to Static, or use sku Basic", target="properties.publicIPAllocationMethod")
    display_id = public_ip_id(subscription, resource_group, name)
    with store.transaction() as tx:
        existing = tx.get_resource(display_id, for_update=True)
        if check is not None:  # If-Match / If-None-Match, on the locked row
            check(str(existing.body.get("etag")) if existing is not None else None)
        if existing is not None and existing.location.replace(" ", "").lower() != \
                model.location.replace(" ", "").lower():
            raise InvalidParameter(
                f"Changing property 'location' is not allowed: public IP '{name}' is in "
                f"'{existing.location}'.", target="location")
        state = dict(existing.state) if existing is not None else {
            "ipAddress": _next_address(tx), "resourceGuid": str(uuid.uuid4())}
        shown = existing.name if existing is not None else name
        dns = model.properties.dns_settings
        if dns is not None and dns.domain_name_label:
            dns = dns.model_copy(update={"fqdn": f"{dns.domain_name_label}."
                                         f"{model.location.replace(' ', '').lower()}"
                                         ".cloudapp.azure.com"})
        props = model.properties.model_copy(update={
            "public_ip_allocation_method": method, "ip_address": state["ipAddress"],
            "provisioning_state": "Succeeded", "resource_guid": state["resourceGuid"],
            "dns_settings": dns})
        body = model.model_copy(update={
            "id": public_ip_id(subscription, resource_group, shown), "name": shown,
            "type": PUBLIC_IP_TYPE, "properties": props}).to_wire()
        body["properties"].pop("ipConfiguration", None)  # derived on read
        body.pop("etag", None)
        body["etag"] = etag(display_id, body, now)
        row = ResourceRow(
            id=display_id, type=PUBLIC_IP_TYPE, parent_id=None, subscription=subscription,
            resource_group=resource_group, name=shown,
            location=existing.location if existing else model.location, body=body,
            state=state, created_at=existing.created_at if existing else now, updated_at=now)
        tx.put_resource(row)
    return row, existing is None


def delete_public_ip(store: Store, *, subscription: str, resource_group: str, name: str,
                     check: Callable[[str | None], None] | None = None) -> bool:
    """Delete a public IP no load-balancer frontend uses; False when absent."""
    display_id = public_ip_id(subscription, resource_group, name)
    with store.transaction() as tx:
        row = tx.get_resource(display_id, for_update=True)
        if row is None or row.type.lower() != PUBLIC_IP_TYPE.lower():
            return False
        if check is not None:  # If-Match, on the locked row
            check(str(row.body.get("etag")))
        used = frontends_using(tx, str(row.body["id"]), subscription)
        if used:
            raise InvalidParameter(
                f"Public IP address {row.body['id']} can not be deleted since it is still "
                f"allocated to resource {used[0]}. In order to delete the public IP, "
                "disassociate/detach the Public IP address from the resource.",
                target="name", code="PublicIPAddressInUse")
        return tx.delete_resource(display_id)


def load(tx: Tx, subscription: str, resource_group: str, name: str) -> ResourceRow:
    row = tx.get_resource(public_ip_id(subscription, resource_group, name))
    if row is None or row.type.lower() != PUBLIC_IP_TYPE.lower():
        raise not_found(name, resource_group)
    return row
