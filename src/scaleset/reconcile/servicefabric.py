"""Service Fabric clusters: their commands, and which cluster a scale set belongs to.

A cluster is stored in the generic ``resources`` table (type
``Microsoft.ServiceFabric/clusters``), its body as GET returns it and its
generated ``clusterId`` in ``state``. Its ``clusterEndpoint`` is
``https://{location}.servicefabric.azure.com/runtime/clusters/{clusterId}``, as
Azure writes it; a scale set's Service Fabric extension names its cluster by
that endpoint (``settings.clusterEndpoint``) and its node type by
``settings.nodeTypeRef``.

* ``cluster_of(tx, model)`` finds a scale set's cluster (None: not a node type,
  or no such cluster) — the one lookup everything else should use;
* ``cluster_facts`` turns it into what the requirement checks need;
* ``put_cluster`` / ``delete_cluster`` are the cluster's commands: neither may
  take away a node type a scale set uses.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any, Final

from scaleset.errors import InvalidParameter, OperationNotAllowed
from scaleset.model.scaleset import ScaleSet
from scaleset.model.servicefabric import CLUSTER_TYPE, Cluster
from scaleset.store.repository import ResourceRow, Store, Tx
from scaleset.upgrade import requirements
from scaleset.upgrade.requirements import ClusterFacts

_RUNTIME = re.compile(r"/runtime/clusters/(?P<id>[^/?#]+)/?$", re.IGNORECASE)
ENDPOINT_TEMPLATE: Final = "https://{location}.servicefabric.azure.com/runtime/clusters/{id}"


def cluster_id(subscription: str, resource_group: str, name: str) -> str:
    """The cluster's ARM id: ``/subscriptions/{sub}/resourceGroups/{rg}/providers/
    Microsoft.ServiceFabric/clusters/{name}``."""
    return (f"/subscriptions/{subscription}/resourceGroups/{resource_group}/providers/"
            f"{CLUSTER_TYPE}/{name}")


def endpoint_for(location: str, generated_id: str) -> str:
    """The cluster's ``clusterEndpoint``.

    >>> endpoint_for("West Europe", "8c6d")
    'https://westeurope.servicefabric.azure.com/runtime/clusters/8c6d'
    """
    return ENDPOINT_TEMPLATE.format(location=location.replace(" ", "").lower(), id=generated_id)


def endpoint_key(endpoint: str) -> str:
    """What two spellings of one endpoint share: the cluster id when the URL has Azure's
    form, else the URL itself (lower-cased, no trailing slash)."""
    text = endpoint.strip()
    match = _RUNTIME.search(text)
    return (match["id"] if match else text.rstrip("/")).lower()


def find_cluster(tx: Tx, endpoint: str) -> ResourceRow | None:
    """The cluster whose ``clusterEndpoint`` is ``endpoint`` (any casing), if any."""
    key = endpoint_key(endpoint)
    for row in tx.resources(CLUSTER_TYPE):
        stored = str(row.body.get("properties", {}).get("clusterEndpoint") or "")
        if stored and endpoint_key(stored) == key:
            return row
    return None


def cluster_of(tx: Tx, model: ScaleSet) -> ResourceRow | None:
    """The cluster a scale set's Service Fabric extension names; None when the scale set
    is not a node type or no cluster has that endpoint."""
    found = requirements.service_fabric_extension(model)
    if found is None:
        return None
    endpoint = requirements.service_fabric_setting(found[1], "clusterEndpoint")
    return find_cluster(tx, endpoint) if endpoint else None


def node_type_of(model: ScaleSet) -> str | None:
    """The node type a scale set's Service Fabric extension names (``nodeTypeRef``)."""
    found = requirements.service_fabric_extension(model)
    return requirements.service_fabric_setting(found[1], "nodeTypeRef") if found else None


def cluster_facts(tx: Tx, model: ScaleSet) -> ClusterFacts | None:
    """The node types and durabilities of the scale set's cluster, for the requirement check."""
    row = cluster_of(tx, model)
    if row is None:
        return None
    cluster = Cluster.model_validate(row.body)
    return ClusterFacts(row.name, {n.name: n.durability_level
                                   for n in cluster.properties.node_types})


def users(tx: Tx, row: ResourceRow) -> dict[str, list[str]]:
    """Node type (lower-cased) -> names of the scale sets that are that node type of ``row``."""
    out: dict[str, list[str]] = {}
    for scale_set in tx.service_fabric_scale_sets():
        found = cluster_of(tx, scale_set.model)
        if found is not None and found.id.lower() == row.id.lower():
            node_type = (node_type_of(scale_set.model) or "").lower()
            out.setdefault(node_type, []).append(scale_set.name)
    return out


def _etag(resource_id: str, body: dict[str, Any], now: datetime) -> str:
    payload = json.dumps(body, sort_keys=True) + resource_id + now.isoformat()
    return 'W/"' + hashlib.sha1(payload.encode()).hexdigest()[:16] + '"'


def put_cluster(store: Store, *, subscription: str, resource_group: str, name: str,
                model: Cluster, now: datetime,
                check: Callable[[str | None], None] | None = None) -> tuple[ResourceRow, bool]:
    """Create or replace a cluster; the row stored and whether it was created.

    The generated ``clusterId`` (and so the ``clusterEndpoint``) is kept across
    updates; the location may not change, and a node type a scale set uses may
    not be dropped.
    """
    display_id = cluster_id(subscription, resource_group, name)
    with store.transaction() as tx:
        existing = tx.get_resource(display_id, for_update=True)
        if check is not None:  # If-Match / If-None-Match, on the locked row
            check(str(existing.body.get("etag")) if existing is not None else None)
        if existing is not None:
            if existing.location.replace(" ", "").lower() != \
                    model.location.replace(" ", "").lower():
                raise InvalidParameter(
                    f"Changing property 'location' is not allowed: cluster '{name}' is in "
                    f"'{existing.location}'. Create a new cluster in '{model.location}' "
                    "instead.", target="location")
            kept = {n.name.lower() for n in model.properties.node_types}
            for node_type, scale_sets in sorted(users(tx, existing).items()):
                if node_type not in kept:
                    raise InvalidParameter(
                        f"node type '{node_type}' of cluster '{name}' is used by scale set(s) "
                        f"{', '.join(repr(s) for s in sorted(scale_sets))}; remove their "
                        "Service Fabric extension (or point it at another node type) first",
                        target="properties.nodeTypes")
        generated = str(existing.state["clusterId"]) if existing is not None \
            else str(uuid.uuid4())
        properties = model.properties.model_copy(update={
            "cluster_id": generated, "cluster_endpoint": endpoint_for(model.location, generated),
            "provisioning_state": "Succeeded"})
        filled = model.model_copy(update={"id": display_id, "name": name, "type": CLUSTER_TYPE,
                                          "properties": properties})
        body = filled.to_wire()
        body["etag"] = _etag(display_id, body, now)
        row = ResourceRow(
            id=display_id, type=CLUSTER_TYPE, parent_id=None, subscription=subscription,
            resource_group=resource_group, name=name, location=model.location, body=body,
            state={"clusterId": generated},
            created_at=existing.created_at if existing else now, updated_at=now)
        tx.put_resource(row)
    return row, existing is None


def delete_cluster(store: Store, *, resource_id: str,
                   check: Callable[[str | None], None] | None = None) -> bool:
    """Delete a cluster no scale set belongs to; False when it did not exist.

    Refused (409 ``OperationNotAllowed``) while a scale set's Service Fabric
    extension names it, naming the scale set.
    """
    with store.transaction() as tx:
        row = tx.get_resource(resource_id, for_update=True)
        if row is None:
            return False
        if check is not None:  # If-Match, on the locked row
            check(str(row.body.get("etag") or ""))
        in_use = sorted(name for names in users(tx, row).values() for name in names)
        if in_use:
            raise OperationNotAllowed(
                f"Cannot delete Service Fabric cluster '{row.name}': scale set(s) "
                f"{', '.join(repr(s) for s in in_use)} are its node types; delete them or "
                "remove their Service Fabric extension first", target="name")
        return tx.delete_resource(resource_id)


def get_cluster(store: Store, resource_id: str) -> ResourceRow | None:
    """The cluster with this id (any casing), if any."""
    with store.transaction() as tx:
        return tx.get_resource(resource_id)


def list_clusters(store: Store, subscription: str, resource_group: str | None = None
                  ) -> list[ResourceRow]:
    """Clusters of a subscription (or of one resource group in it), by id."""
    with store.transaction() as tx:
        return tx.resources(CLUSTER_TYPE, subscription=subscription,
                            resource_group=resource_group)
