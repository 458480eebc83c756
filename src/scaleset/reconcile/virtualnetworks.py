"""Virtual networks and subnets: their commands and their view.

A virtual network is a row of the generic ``resources`` table (type
``Microsoft.Network/virtualNetworks``); its subnets live inside its body, as
ARM returns them, so a subnet PUT or DELETE rewrites the network in one
transaction. ``resourceGuid`` is kept in ``state``. The subnets'
``ipConfigurations`` are never stored: ``view`` derives them from the scale
sets whose network profile names the subnet (one per instance, as ARM lists
NICs' ip configurations). A subnet a scale set names cannot be deleted,
dropped by a PUT of its network, or given another range (400
``InUseSubnetCannotBeDeleted`` / ``InUseSubnetCannotBeUpdated``).
"""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import datetime
from collections.abc import Callable
from typing import Any

from scaleset.errors import InvalidParameter, NotFound
from scaleset.model.netrules import Problem, name_problem
from scaleset.model.virtualnetwork import (
    SUBNET_TYPE,
    VIRTUAL_NETWORK_TYPE,
    Subnet,
    VirtualNetwork,
    layout_problems,
    subnet_problems,
)
from scaleset.reconcile import networkrefs
from scaleset.store.repository import ResourceRow, Store, Tx


def vnet_id(subscription: str, resource_group: str, name: str) -> str:
    return (f"/subscriptions/{subscription}/resourceGroups/{resource_group}/providers/"
            f"{VIRTUAL_NETWORK_TYPE}/{name}")


def etag(resource_id: str, body: dict[str, Any], now: datetime) -> str:
    """A weak etag from the content, the id and the instant (Network's ``W/"..."``)."""
    payload = json.dumps(body, sort_keys=True) + resource_id + now.isoformat()
    return 'W/"' + hashlib.sha1(payload.encode()).hexdigest()[:16] + '"'


def raise_first(problems: list[Problem]) -> None:
    """The first problem as the error; all of them as its details."""
    if problems:
        first = problems[0]
        raise InvalidParameter(first.message, target=first.target, code=first.code,
                               details=[{"code": p.code, "target": p.target,
                                         "message": p.message} for p in problems[1:]] or None)


def not_found(name: str, resource_group: str) -> NotFound:
    return NotFound(f"The Resource 'Microsoft.Network/virtualNetworks/{name}' under resource "
                    f"group '{resource_group}' was not found.")


def _subnet_in_use(tx: Tx, subnet_id: str) -> list[tuple[str, str, networkrefs.Reference]]:
    return networkrefs.users(tx, networkrefs.SUBNET, subnet_id)


def _in_use_error(tx: Tx, name: str, subnet_id: str,
                  users: list[tuple[str, str, networkrefs.Reference]], target: str
                  ) -> InvalidParameter:
    configs = networkrefs.ip_configuration_ids(tx, users) or [u[0] for u in users]
    return InvalidParameter(
        f"Subnet {name} is in use by {', '.join(configs[:5])} and cannot be deleted. In order "
        "to delete the subnet, delete all the resources within the subnet (the scale sets "
        f"{', '.join(sorted({u[0].rsplit('/', 1)[-1] for u in users}))}, or point their "
        "ipConfigurations at another subnet).", target=target,
        code="InUseSubnetCannotBeDeleted")


def _fill(display_id: str, name: str, model: VirtualNetwork, guid: str) -> dict[str, Any]:
    """The body to store: the model with the server's fields filled in."""
    subnets = []
    for subnet in model.properties.subnets:
        props = subnet.properties.model_copy(update={"provisioning_state": "Succeeded"})
        subnets.append(subnet.model_copy(update={
            "id": f"{display_id}/subnets/{subnet.name}", "type": SUBNET_TYPE,
            "properties": props}).to_wire())
    filled = model.model_copy(update={
        "id": display_id, "name": name, "type": VIRTUAL_NETWORK_TYPE,
        "properties": model.properties.model_copy(update={
            "provisioning_state": "Succeeded", "resource_guid": guid, "subnets": []})})
    body = filled.to_wire()
    body["properties"]["subnets"] = [
        {k: v for k, v in s.items() if k != "etag"} for s in subnets]
    for s in body["properties"]["subnets"]:
        s["properties"].pop("ipConfigurations", None)  # derived on read, never stored
    return body


def _check_kept_subnets(tx: Tx, existing: ResourceRow, new_body: dict[str, Any]) -> None:
    """A subnet a scale set uses may not go away or change its range."""
    new = {str(s["name"]).lower(): s for s in new_body["properties"]["subnets"]}
    for old in existing.body.get("properties", {}).get("subnets", []):
        subnet_id = f"{existing.body['id']}/subnets/{old['name']}"
        users = _subnet_in_use(tx, subnet_id)
        if not users:
            continue
        kept = new.get(str(old["name"]).lower())
        if kept is None:
            raise _in_use_error(tx, old["name"], subnet_id, users, "properties.subnets")
        ranges = ("addressPrefix", "addressPrefixes")
        if any(kept["properties"].get(k) != old["properties"].get(k) for k in ranges):
            raise InvalidParameter(
                f"Subnet {old['name']} is in use by scale set(s) "
                f"{', '.join(sorted({u[0].rsplit('/', 1)[-1] for u in users}))} and its "
                "address range cannot be changed; point their ipConfigurations at another "
                "subnet first.", target="properties.subnets", code="InUseSubnetCannotBeUpdated")


def put_vnet(store: Store, *, subscription: str, resource_group: str, name: str,
             model: VirtualNetwork, now: datetime,
             check: Callable[[str | None], None] | None = None) -> tuple[ResourceRow, bool]:
    """Create or replace a virtual network (its subnets too: those left out are removed,
    as in ARM); the row and whether it was created."""
    problem = name_problem(name, 2, 64)
    if problem is not None:
        raise InvalidParameter(f"virtual network name {problem}", target="name",
                               code="InvalidResourceName")
    raise_first(layout_problems(model, name))
    display_id = vnet_id(subscription, resource_group, name)
    with store.transaction() as tx:
        existing = tx.get_resource(display_id, for_update=True)
        if check is not None:  # If-Match / If-None-Match, on the locked row
            check(str(existing.body.get("etag")) if existing is not None else None)
        if existing is not None and existing.location.replace(" ", "").lower() != \
                model.location.replace(" ", "").lower():
            raise InvalidParameter(
                f"Changing property 'location' is not allowed: virtual network '{name}' is in "
                f"'{existing.location}'.", target="location")
        guid = str(existing.state["resourceGuid"]) if existing is not None \
            else str(uuid.uuid4())
        shown = existing.name if existing is not None else name
        body = _fill(vnet_id(subscription, resource_group, shown), shown, model, guid)
        if existing is not None:
            _check_kept_subnets(tx, existing, body)
        body["etag"] = etag(display_id, body, now)
        row = ResourceRow(
            id=display_id, type=VIRTUAL_NETWORK_TYPE, parent_id=None,
            subscription=subscription, resource_group=resource_group, name=shown,
            location=existing.location if existing else model.location, body=body,
            state={"resourceGuid": guid},
            created_at=existing.created_at if existing else now, updated_at=now)
        tx.put_resource(row)
    return row, existing is None


def _load(tx: Tx, subscription: str, resource_group: str, name: str, *,
          for_update: bool = False) -> ResourceRow:
    row = tx.get_resource(vnet_id(subscription, resource_group, name), for_update=for_update)
    if row is None or row.type.lower() != VIRTUAL_NETWORK_TYPE.lower():
        raise not_found(name, resource_group)
    return row


def patch_tags(store: Store, *, subscription: str, resource_group: str, name: str,
               tags: dict[str, str] | None, now: datetime,
               check: Callable[[str | None], None] | None = None) -> ResourceRow:
    """``UpdateTags``: replace the network's tags."""
    with store.transaction() as tx:
        row = _load(tx, subscription, resource_group, name, for_update=True)
        if check is not None:  # If-Match, on the locked row
            check(str(row.body.get("etag")))
        body = {k: v for k, v in row.body.items() if k not in ("tags", "etag")}
        if tags is not None:
            body["tags"] = dict(tags)
        body["etag"] = etag(row.id, body, now)
        updated = row.replace(body=body, updated_at=now)
        tx.put_resource(updated)
    return updated


def delete_vnet(store: Store, *, subscription: str, resource_group: str, name: str,
                check: Callable[[str | None], None] | None = None) -> bool:
    """Delete a network none of whose subnets a scale set uses; False when absent."""
    display_id = vnet_id(subscription, resource_group, name)
    with store.transaction() as tx:
        row = tx.get_resource(display_id, for_update=True)
        if row is None or row.type.lower() != VIRTUAL_NETWORK_TYPE.lower():
            return False
        if check is not None:  # If-Match, on the locked row
            check(str(row.body.get("etag")))
        for subnet in row.body.get("properties", {}).get("subnets", []):
            subnet_id = f"{row.body['id']}/subnets/{subnet['name']}"
            users = _subnet_in_use(tx, subnet_id)
            if users:
                raise _in_use_error(tx, subnet["name"], subnet_id, users, "name")
        return tx.delete_resource(display_id)


def _subnet_index(row: ResourceRow, name: str) -> int | None:
    subnets = row.body.get("properties", {}).get("subnets", [])
    return next((i for i, s in enumerate(subnets) if str(s["name"]).lower() == name.lower()),
                None)


def put_subnet(store: Store, *, subscription: str, resource_group: str, vnet: str, name: str,
               subnet: Subnet, now: datetime) -> tuple[dict[str, Any], bool]:
    """Create or replace one subnet of an existing network; (the subnet's view, created)."""
    subnet = subnet.model_copy(update={"name": name})
    problems = subnet_problems(subnet, None)
    raise_first(problems)
    with store.transaction() as tx:
        row = _load(tx, subscription, resource_group, vnet, for_update=True)
        model = VirtualNetwork.model_validate(row.body)
        subnets = list(model.properties.subnets)
        index = _subnet_index(row, name)
        if index is None:
            subnets.append(subnet)
        else:
            subnets[index] = subnet.model_copy(update={"name": subnets[index].name})
        changed = model.model_copy(update={"properties": model.properties.model_copy(
            update={"subnets": subnets})})
        raise_first(layout_problems(changed, row.name))
        body = _fill(str(row.body["id"]), row.name, changed, str(row.state["resourceGuid"]))
        _check_kept_subnets(tx, row, body)
        body["etag"] = etag(row.id, body, now)
        tx.put_resource(row.replace(body=body, updated_at=now))
        stored = body["properties"]["subnets"][index if index is not None else -1]
        return subnet_view(tx, body, stored), index is None


def delete_subnet(store: Store, *, subscription: str, resource_group: str, vnet: str,
                  name: str, now: datetime) -> bool:
    """Delete a subnet no scale set uses; False when absent."""
    with store.transaction() as tx:
        row = _load(tx, subscription, resource_group, vnet, for_update=True)
        index = _subnet_index(row, name)
        if index is None:
            return False
        subnets = list(row.body["properties"]["subnets"])
        subnet_id = f"{row.body['id']}/subnets/{subnets[index]['name']}"
        users = _subnet_in_use(tx, subnet_id)
        if users:
            raise _in_use_error(tx, subnets[index]["name"], subnet_id, users, "name")
        del subnets[index]
        body = {**row.body, "properties": {**row.body["properties"], "subnets": subnets}}
        body["etag"] = etag(row.id, body, now)
        tx.put_resource(row.replace(body=body, updated_at=now))
    return True


# -- reads ---------------------------------------------------------------------------------

def subnet_view(tx: Tx, vnet_body: dict[str, Any], subnet: dict[str, Any]) -> dict[str, Any]:
    """A subnet as GET returns it: the network's etag, and the ip configurations of the scale
    sets' instances in it."""
    out = {**subnet, "etag": vnet_body.get("etag"),
           "properties": dict(subnet.get("properties", {}))}
    configs = networkrefs.ip_configuration_ids(tx, _subnet_in_use(tx, str(subnet["id"])))
    if configs:
        out["properties"]["ipConfigurations"] = [{"id": c} for c in configs]
    return out


def view(tx: Tx, row: ResourceRow) -> dict[str, Any]:
    """A network as GET returns it (its subnets with their ip configurations)."""
    body = dict(row.body)
    props = dict(body.get("properties", {}))
    props["subnets"] = [subnet_view(tx, body, s) for s in props.get("subnets", [])]
    body["properties"] = props
    return body


def get_vnet(store: Store, subscription: str, resource_group: str, name: str
             ) -> dict[str, Any]:
    with store.transaction() as tx:
        return view(tx, _load(tx, subscription, resource_group, name))


def get_subnet(store: Store, subscription: str, resource_group: str, vnet: str, name: str
               ) -> dict[str, Any]:
    with store.transaction() as tx:
        row = _load(tx, subscription, resource_group, vnet)
        index = _subnet_index(row, name)
        if index is None:
            raise NotFound(f"Resource {row.body['id']}/subnets/{name} not found.",
                           code="NotFound")
        return subnet_view(tx, dict(row.body), row.body["properties"]["subnets"][index])


def list_vnets(store: Store, subscription: str, resource_group: str | None = None
               ) -> list[dict[str, Any]]:
    with store.transaction() as tx:
        return [view(tx, r) for r in tx.resources(VIRTUAL_NETWORK_TYPE, subscription=subscription,
                                                  resource_group=resource_group)]


def list_subnets(store: Store, subscription: str, resource_group: str, vnet: str
                 ) -> list[dict[str, Any]]:
    with store.transaction() as tx:
        row = _load(tx, subscription, resource_group, vnet)
        return [subnet_view(tx, dict(row.body), s)
                for s in row.body.get("properties", {}).get("subnets", [])]
