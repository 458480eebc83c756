"""Resource groups: their commands, what is in one, and deleting one with everything in it.

A group is a row of the generic ``resources`` table (type
``Microsoft.Resources/resourceGroups``, its own name as ``resource_group``).
Groups come into being two ways: a PUT of the group, or a resource written
into a group that does not exist (``Tx.ensure_resource_group``: the group
takes the resource's location; ARM would refuse with ``ResourceGroupNotFound``).

Deleting a group (``delete_group``) happens in one transaction: every scale
set in it is marked ``Deleting`` as its own DELETE would (the reconciler then
removes its instances and the record), and every other resource in it (load
balancers, galleries, virtual networks, public IPs, network security groups,
Service Fabric clusters, deployments...) is removed at once; the group's
``provisioningState`` becomes ``Deleting``. The delete has finished when no
scale set is left in the group (``deletion_finished``): from then on the
group reads as absent, and the row is dropped by whoever looks first (the
operation's poll, a new PUT, a resource written into the group).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from scaleset.errors import Conflict, InvalidParameter, NotFound
from scaleset.model.resourcegroup import (
    DELETING,
    RESOURCE_GROUP_TYPE,
    ResourceGroup,
    check_tags,
    group_body,
    group_id,
    name_problem,
)
from scaleset.reconcile import commands
from scaleset.store.repository import ResourceRow, ScaleSetRow, Store, Tx

# Types that are not listed among a group's resources: ARM's own bookkeeping.
_UNLISTED_PREFIX = "microsoft.resources/"


def check_name(name: str) -> None:
    """400 ``InvalidResourceGroup`` (ARM's code) for a name outside ARM's rules."""
    problem = name_problem(name)
    if problem is not None:
        raise InvalidParameter(
            f"The provided resource group name '{name[:100]}' is not valid: {problem}. The "
            "name can only be letters, digits, '-', '.', '(', ')' or '_', 1 to 90 of them, "
            "not ending in '.'.", target="resourceGroupName",
            code="InvalidResourceGroup")


def not_found(name: str) -> NotFound:
    return NotFound(f"Resource group '{name}' could not be found.",
                    code="ResourceGroupNotFound")


def _deleting(row: ResourceRow) -> bool:
    return bool(row.body.get("properties", {}).get("provisioningState") == DELETING)


def deletion_finished(tx: Tx, subscription: str, name: str) -> bool:
    """Whether nothing is left of the group: no row, or a deleting row with no scale set
    left in it (such a row is dropped here)."""
    row = tx.get_resource(group_id(subscription, name))
    if row is None:
        return True
    if not _deleting(row) or tx.scale_set_ids_in_group(subscription, name):
        return False
    tx.delete_resource(row.id)
    return True


def visible_group(tx: Tx, subscription: str, name: str) -> ResourceRow | None:
    """The group as clients see it: None when absent or its delete has finished."""
    row = tx.get_resource(group_id(subscription, name))
    if row is None or row.type.lower() != RESOURCE_GROUP_TYPE.lower():
        return None
    if _deleting(row) and not tx.scale_set_ids_in_group(subscription, name):
        return None
    return row


def get_group(store: Store, subscription: str, name: str) -> ResourceRow:
    """The group, or 404 ``ResourceGroupNotFound``."""
    with store.transaction() as tx:
        row = visible_group(tx, subscription, name)
    if row is None:
        raise not_found(name)
    return row


def list_groups(store: Store, subscription: str) -> list[ResourceRow]:
    """The subscription's groups, by id (those whose delete finished left out)."""
    with store.transaction() as tx:
        rows = tx.resources(RESOURCE_GROUP_TYPE, subscription=subscription)
        return [r for r in rows if visible_group(tx, subscription, r.name) is not None]


def _same_location(a: str, b: str) -> bool:
    return a.replace(" ", "").lower() == b.replace(" ", "").lower()


def put_group(store: Store, *, subscription: str, name: str, model: ResourceGroup,
              now: datetime) -> tuple[ResourceRow, bool]:
    """Create a group or replace its tags and managedBy; the row and whether it was created.

    The location of an existing group cannot change (409 ``InvalidResourceGroupLocation``,
    as ARM); a group being deleted cannot be written (409 ``ResourceGroupBeingDeleted``).
    """
    check_name(name)
    with store.transaction() as tx:
        existing = tx.get_resource(group_id(subscription, name), for_update=True)
        if existing is not None and deletion_finished(tx, subscription, name):
            existing = None
        if existing is not None and _deleting(existing):
            raise Conflict(
                f"The resource group '{existing.name}' is in deprovisioning state and cannot "
                "perform this operation; wait for its delete to finish.",
                target="resourceGroupName", code="ResourceGroupBeingDeleted")
        if existing is not None and not _same_location(existing.location, model.location):
            raise Conflict(
                f"Invalid resource group location '{model.location}'. The Resource group "
                f"already exists in location '{existing.location}'.", target="location",
                code="InvalidResourceGroupLocation")
        shown = existing.name if existing is not None else name
        location = existing.location if existing is not None else model.location
        row = ResourceRow(
            id=group_id(subscription, shown), type=RESOURCE_GROUP_TYPE, parent_id=None,
            subscription=subscription, resource_group=shown, name=shown, location=location,
            body=group_body(subscription, shown, location=location, tags=model.tags,
                            managed_by=model.managed_by),
            state={}, created_at=existing.created_at if existing else now, updated_at=now)
        tx.put_resource(row)
    return row, existing is None


def patch_group(store: Store, *, subscription: str, name: str, patch: dict[str, Any],
                now: datetime) -> ResourceRow:
    """Change a group's tags and/or managedBy (``ResourceGroupPatchable``); a location
    sent must be the group's own."""
    with store.transaction() as tx:
        # Locked before it is read: a concurrent PATCH waits, then reads this one's result.
        tx.get_resource(group_id(subscription, name), for_update=True)
        existing = visible_group(tx, subscription, name)
        if existing is None:
            raise not_found(name)
        body = dict(existing.body)
        if "location" in patch and patch["location"] is not None and not _same_location(
                str(patch["location"]), existing.location):
            raise Conflict(
                f"Invalid resource group location '{patch['location']}'. The Resource group "
                f"already exists in location '{existing.location}'.", target="location",
                code="InvalidResourceGroupLocation")
        if "tags" in patch:
            tags = patch["tags"]
            if tags is not None and (not isinstance(tags, dict) or not all(
                    isinstance(k, str) and isinstance(v, str) for k, v in tags.items())):
                raise InvalidParameter("tags must be an object of string names to string "
                                       "values", target="tags")
            try:
                check_tags(tags)
            except ValueError as exc:
                raise InvalidParameter(str(exc), target="tags") from None
            body = {k: v for k, v in body.items() if k != "tags"}
            if tags is not None:
                body["tags"] = dict(tags)
        if "managedBy" in patch:
            managed_by = patch["managedBy"]
            if managed_by is not None and (not isinstance(managed_by, str)
                                           or len(managed_by) > 1024):
                raise InvalidParameter("managedBy must be a resource id of at most 1024 "
                                       "characters", target="managedBy")
            body = {k: v for k, v in body.items() if k != "managedBy"}
            if managed_by:
                body["managedBy"] = managed_by
        row = existing.replace(body=body, updated_at=now)
        tx.put_resource(row)
    return row


def delete_group(store: Store, *, subscription: str, name: str, now: datetime
                 ) -> ResourceRow | None:
    """Start deleting a group and everything in it (see the module's docstring); None when
    there is no such group. Deleting a group already being deleted changes nothing."""
    with store.transaction() as tx:
        existing = tx.get_resource(group_id(subscription, name), for_update=True)
        if existing is None or deletion_finished(tx, subscription, name):
            return None
        for scale_set_id in tx.scale_set_ids_in_group(subscription, name):
            scale_set = tx.get_scale_set(scale_set_id)
            if scale_set is not None and \
                    scale_set.model.properties.provisioning_state != commands.DELETING:
                commands.mark_deleting(tx, scale_set_id=scale_set_id, now=now)
        # The scale sets no longer need their network: a scale set being deleted never
        # looks up its probe or subnet again, so nothing else has to wait for them.
        for balancer in tx.load_balancers(subscription, name):
            tx.delete_load_balancer(balancer.id)
        for resource in tx.all_resources(subscription, name):
            if resource.type.lower() != RESOURCE_GROUP_TYPE.lower():
                tx.delete_resource(resource.id)
        properties = {**existing.body.get("properties", {}), "provisioningState": DELETING}
        row = existing.replace(body={**existing.body, "properties": properties},
                               updated_at=now)
        tx.put_resource(row)
    return row


# -- what is in a group ------------------------------------------------------------------

def _generic(body: dict[str, Any], *, created: datetime | None = None,
             changed: datetime | None = None, expand: frozenset[str] = frozenset()
             ) -> dict[str, Any]:
    """A resource as the Resources API lists it (``GenericResourceExpanded``)."""
    out = {k: body[k] for k in ("id", "name", "type", "location", "tags", "sku", "kind",
                                "managedBy", "plan", "identity", "zones", "extendedLocation")
           if body.get(k) is not None}
    if "createdtime" in expand and created is not None:
        out["createdTime"] = created.isoformat().replace("+00:00", "Z")
    if "changedtime" in expand and changed is not None:
        out["changedTime"] = changed.isoformat().replace("+00:00", "Z")
    if "provisioningstate" in expand:
        state = (body.get("properties") or {}).get("provisioningState")
        if state is not None:
            out["provisioningState"] = state
    return out


def _group_of(resource_id: str) -> str:
    parts = resource_id.split("/")
    return parts[4] if len(parts) > 4 and parts[3].lower() == "resourcegroups" else ""


def resources(store: Store, subscription: str, resource_group: str | None = None, *,
              expand: frozenset[str] = frozenset(),
              scale_set_view: Any = None) -> list[tuple[str, dict[str, Any]]]:
    """(resource group, resource) for every tracked resource of a subscription or group,
    by id: scale sets, load balancers and the generic resources (groups and
    ``Microsoft.Resources/*`` left out). ``scale_set_view`` turns a scale-set row into its
    GET body (the API's view, passed in so the read carries its provisioning state)."""
    out: list[tuple[str, dict[str, Any]]] = []
    prefix = f"/subscriptions/{subscription}/" + (
        f"resourcegroups/{resource_group}/" if resource_group is not None else "")
    with store.transaction() as tx:
        scale_sets: list[ScaleSetRow] = tx.scale_sets_under(prefix)
        for row in scale_sets:
            body = scale_set_view(row) if scale_set_view is not None else row.model.to_wire()
            out.append((_group_of(row.model.id or row.id),
                        _generic(body, created=row.created_at, changed=row.updated_at,
                                 expand=expand)))
        for balancer in tx.load_balancers(subscription, resource_group):
            out.append((balancer.resource_group, _generic(
                balancer.model.to_wire(), created=balancer.created_at,
                changed=balancer.updated_at, expand=expand)))
        for resource in tx.all_resources(subscription, resource_group):
            if resource.type.lower().startswith(_UNLISTED_PREFIX):
                continue
            out.append((resource.resource_group, _generic(
                dict(resource.body), created=resource.created_at,
                changed=resource.updated_at, expand=expand)))
    return sorted(out, key=lambda item: str(item[1].get("id", "")).lower())

