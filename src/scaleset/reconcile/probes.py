"""Load-balancer probes: what a scale set's ``healthProbe.id`` points at.

* ``probe_spec`` turns the reference into the driver's ``ProbeSpec`` (the shell
  hands it to ``Driver.configure_probe`` every pass);
* ``check_health_probe`` refuses a scale-set model whose reference is malformed
  or dangling (called by the scale-set commands, inside their transaction);
* ``put_load_balancer`` / ``delete_load_balancer`` are the load balancer's
  commands: neither may take away a probe a scale set uses.

A probe id is ``/subscriptions/{sub}/resourceGroups/{rg}/providers/
Microsoft.Network/loadBalancers/{lb}/probes/{probe}``, keywords and names
case-insensitive; the store keys a load balancer by its id lower-cased.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from datetime import datetime
from collections.abc import Callable
from typing import Final

from scaleset.drivers.base import ProbeSpec
from scaleset.errors import InvalidParameter
from scaleset.model import lbchildren
from scaleset.model.network import LOAD_BALANCER_TYPE, PROBE_TYPE, LoadBalancer, Probe
from scaleset.model.scaleset import ScaleSet
from scaleset.reconcile import networkrefs
from scaleset.store.repository import LoadBalancerRow, ParseCache, Store, Tx

HEALTH_PROBE_TARGET: Final = "properties.virtualMachineProfile.networkProfile.healthProbe.id"

_PROBE_ID = re.compile(
    r"^/subscriptions/(?P<subscription>[^/]+)/resourceGroups/(?P<resource_group>[^/]+)"
    r"/providers/Microsoft\.Network/loadBalancers/(?P<lb>[^/]+)/probes/(?P<probe>[^/]+)/?$",
    re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class ProbeRef:
    """A parsed probe id."""

    subscription: str
    resource_group: str
    load_balancer: str
    probe: str

    @property
    def load_balancer_id(self) -> str:
        """The load balancer's id in canonical casing (names as written)."""
        return load_balancer_id(self.subscription, self.resource_group, self.load_balancer)

    @property
    def key(self) -> str:
        """The store's key of the load balancer."""
        return self.load_balancer_id.lower()


def load_balancer_id(subscription: str, resource_group: str, name: str) -> str:
    """``/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Network/loadBalancers/{name}``."""
    return (f"/subscriptions/{subscription}/resourceGroups/{resource_group}/providers/"
            f"{LOAD_BALANCER_TYPE}/{name}")


def parse_probe_id(probe_id: str) -> ProbeRef | None:
    """The parts of a load-balancer probe id; None when it is not one.

    >>> parse_probe_id("/subscriptions/s/resourcegroups/RG/providers/microsoft.network/"
    ...                "loadBalancers/lb/probes/http").key
    '/subscriptions/s/resourcegroups/rg/providers/microsoft.network/loadbalancers/lb'
    >>> parse_probe_id("/x/probes/p") is None
    True
    """
    match = _PROBE_ID.match(probe_id.strip())
    if match is None:
        return None
    return ProbeRef(match["subscription"], match["resource_group"], match["lb"], match["probe"])


def health_probe_id(model: ScaleSet) -> str | None:
    """The model's ``networkProfile.healthProbe.id``, if it has one."""
    network = model.properties.virtual_machine_profile.network_profile
    if network is None or network.health_probe is None:
        return None
    return network.health_probe.id


def _find(tx: Tx, ref: ProbeRef, *, for_update: bool = False
          ) -> tuple[LoadBalancerRow | None, Probe | None]:
    row = tx.get_load_balancer(ref.key, for_update=for_update)
    return row, (row.model.properties.probe(ref.probe) if row is not None else None)


def probe_spec(tx: Tx, model: ScaleSet) -> ProbeSpec | None:
    """What the driver should probe for ``model``'s ``healthProbe``.

    None when the model has no health probe, or when the load balancer or the
    probe it names no longer exists (a scale set stored before load balancers
    were checked may point nowhere). ``number_of_probes`` is ``probeThreshold``
    when set, else ``numberOfProbes``.
    """
    probe_id = health_probe_id(model)
    ref = parse_probe_id(probe_id) if probe_id else None
    if ref is None:
        return None
    _, probe = _find(tx, ref)
    return _spec(probe) if probe is not None else None


def kept_probe_spec(tx: Tx, model: ScaleSet, parsed: ParseCache[LoadBalancer]
                    ) -> ProbeSpec | None:
    """``probe_spec``, validating the load balancer only when its stored body changed
    since ``parsed`` saw it (the reconciler asks every pass)."""
    probe_id = health_probe_id(model)
    ref = parse_probe_id(probe_id) if probe_id else None
    if ref is None:
        return None
    body = tx.load_balancer_text(ref.key)
    if body is None:
        return None
    balancer = parsed.get(ref.key.lower(), body,
                          lambda stored: LoadBalancer.model_validate(json.loads(stored)))
    probe = balancer.properties.probe(ref.probe)
    return _spec(probe) if probe is not None else None


def _spec(probe: Probe) -> ProbeSpec:
    p = probe.properties
    return ProbeSpec(protocol=p.protocol, port=p.port, request_path=p.request_path,
                     interval_seconds=float(p.interval_in_seconds),
                     number_of_probes=p.failures_to_mark_down)


def check_health_probe(tx: Tx, model: ScaleSet, *, previous: ScaleSet | None = None) -> None:
    """Refuse ``model`` when its ``healthProbe.id`` is not an existing load-balancer probe.

    With ``previous`` (an update), an id that did not change is not checked
    again: deleting a load balancer in use is refused, so it can only dangle
    for a scale set stored before load balancers existed, and such a scale set
    must stay updatable (its probe then simply does not run). The load balancer
    row is locked so that a concurrent delete of it waits for this transaction.
    """
    probe_id = health_probe_id(model)
    if probe_id is None:
        return
    if previous is not None:
        before = health_probe_id(previous)
        if before is not None and before.strip().lower() == probe_id.strip().lower():
            return
    ref = parse_probe_id(probe_id)
    if ref is None:
        raise InvalidParameter(
            f"healthProbe.id '{probe_id}' is not a load balancer probe id; use "
            "/subscriptions/{subscription}/resourceGroups/{group}/providers/"
            "Microsoft.Network/loadBalancers/{loadBalancer}/probes/{probe}",
            target=HEALTH_PROBE_TARGET)
    row, probe = _find(tx, ref, for_update=True)
    if row is None:
        raise InvalidParameter(
            f"healthProbe.id names load balancer '{ref.load_balancer}' in resource group "
            f"'{ref.resource_group}', which does not exist; create it first with PUT "
            f"{ref.load_balancer_id} (or 'scaleset network lb create -g {ref.resource_group} "
            f"-n {ref.load_balancer}') and add probe '{ref.probe}' to it",
            target=HEALTH_PROBE_TARGET)
    if probe is None:
        names = ", ".join(p.name for p in row.model.properties.probes) or "none"
        raise InvalidParameter(
            f"load balancer '{row.name}' has no probe '{ref.probe}' (it has: {names}); "
            f"add it first with PUT {ref.load_balancer_id} (or 'scaleset network lb probe "
            f"create -g {ref.resource_group} --lb-name {row.name} -n {ref.probe} ...')",
            target=HEALTH_PROBE_TARGET)


# -- the load balancer's commands ----------------------------------------------------------

def users(tx: Tx, lb_key: str) -> dict[str, list[str]]:
    """Probe name (lower-cased) -> names of the scale sets whose model uses it."""
    out: dict[str, list[str]] = {}
    for row in tx.scale_sets_with_probe_under(lb_key.lower() + "/probes/"):
        probe_id = health_probe_id(row.model)
        ref = parse_probe_id(probe_id) if probe_id else None
        if row is not None and ref is not None and ref.key == lb_key.lower():
            out.setdefault(ref.probe.lower(), []).append(row.name)
    return out


def _etag(lb_id: str, model: LoadBalancer, now: datetime) -> str:
    payload = json.dumps(model.to_wire(), sort_keys=True) + lb_id + now.isoformat()
    return 'W/"' + hashlib.sha1(payload.encode()).hexdigest()[:16] + '"'


def _in_use_error(lb_name: str, probe: str, scale_sets: list[str]) -> InvalidParameter:
    return InvalidParameter(
        f"probe '{probe}' of load balancer '{lb_name}' is the health probe of scale set(s) "
        f"{', '.join(repr(s) for s in sorted(scale_sets))}; point their "
        "networkProfile.healthProbe elsewhere (or remove it) first",
        target="properties.probes", code="InUseProbeCannotBeDeleted")


def put_load_balancer(store: Store, *, subscription: str, resource_group: str, name: str,
                      model: LoadBalancer, now: datetime,
                      check: Callable[[str | None], None] | None = None
                      ) -> tuple[LoadBalancerRow, bool]:
    """Create or replace a load balancer; the row stored and whether it was created.

    ``check`` (the request's If-Match / If-None-Match) sees the stored etag, None when
    there is none, in the write's transaction with the row locked, and may refuse.

    The server owns ``id``, ``name``, ``type``, ``etag`` and ``provisioningState``
    (of the load balancer and of every probe); probes a scale set uses may not
    be dropped, and the location may not change.
    """
    display_id = load_balancer_id(subscription, resource_group, name)
    probes = [p.model_copy(update={
        "id": f"{display_id}/probes/{p.name}", "type": PROBE_TYPE,
        "properties": p.properties.model_copy(update={"provisioning_state": "Succeeded"})})
        for p in model.properties.probes]
    filled = model.model_copy(update={
        "id": display_id, "name": name, "type": LOAD_BALANCER_TYPE,
        "properties": model.properties.model_copy(update={
            "provisioning_state": "Succeeded", "probes": probes})})
    filled = _with_children(filled, display_id)
    with store.transaction() as tx:
        check_frontend_references(tx, filled, display_id)
        existing = tx.get_load_balancer(display_id, for_update=True)
        if check is not None:
            check(existing.model.etag if existing else None)
        if existing is not None:
            if existing.location.replace(" ", "").lower() != \
                    model.location.replace(" ", "").lower():
                raise InvalidParameter(
                    f"Changing property 'location' is not allowed: load balancer '{name}' is "
                    f"in '{existing.location}'. Create a new load balancer in "
                    f"'{model.location}' instead.", target="location")
            kept = {p.name.lower() for p in filled.properties.probes}
            for probe, scale_sets in users(tx, display_id).items():
                if probe not in kept:
                    raise _in_use_error(name, probe, scale_sets)
        etag = _etag(display_id, filled, now)
        filled = filled.model_copy(update={
            "etag": etag, "properties": filled.properties.model_copy(update={"probes": [
                p.model_copy(update={"etag": etag}) for p in filled.properties.probes]})})
        row = LoadBalancerRow(
            id=display_id.lower(), subscription=subscription, resource_group=resource_group,
            name=name, location=model.location, model=filled,
            created_at=existing.created_at if existing else now, updated_at=now)
        tx.put_load_balancer(row)
    return row, existing is None


def _with_children(model: LoadBalancer, display_id: str) -> LoadBalancer:
    """``model`` with its frontends, pools and rules filled in as ARM returns them (ids,
    types, provisioningState, integers for az's string ports); 400 for unnamed or
    duplicate children."""
    wire = model.to_wire()
    properties = wire.get("properties", {})
    found = lbchildren.problems(properties)
    if found:
        target, message = found[0]
        raise InvalidParameter(message, target=target)
    wire["properties"] = {**lbchildren.normalise(properties, display_id),
                          "probes": properties.get("probes", [])}
    return LoadBalancer.model_validate(wire)


def check_frontend_references(tx: Tx, model: LoadBalancer, display_id: str) -> None:
    """A frontend's ``publicIPAddress.id`` and ``subnet.id`` must name an existing public IP
    and subnet in the load balancer's region (400 ``InvalidResourceReference``)."""
    frontends = model.to_wire().get("properties", {}).get("frontendIPConfigurations") or []
    for i, frontend in enumerate(frontends):
        props = frontend.get("properties") if isinstance(frontend, dict) else None
        for key, kind in (("publicIPAddress", "publicIPAddresses"), ("subnet", "subnets")):
            ref = networkrefs.get(networkrefs.get(props, key), "id")
            if not isinstance(ref, str):
                continue
            target = f"properties.frontendIPConfigurations[{i}].properties.{key}.id"
            parsed = networkrefs.parse(ref)
            wanted = ("microsoft.network/publicipaddresses", None) if kind != "subnets" \
                else ("microsoft.network/virtualnetworks", "subnets")
            if parsed is None or (parsed[2], parsed[3]) != wanted:
                raise InvalidParameter(
                    f"Property id '{ref}' at path '{target}' is invalid. Expect a fully "
                    "qualified resource id of a " + ("subnet" if kind == "subnets" else
                                                     "public IP address") + ".",
                    target=target, code="LinkedInvalidPropertyId")
            row = tx.get_resource(networkrefs.parent_id(ref), for_update=True)
            ok = row is not None and row.type.lower() == wanted[0] and \
                row.location.replace(" ", "").lower() == \
                model.location.replace(" ", "").lower()
            if ok and row is not None and wanted[1] is not None:
                names = [str(s.get("name", "")).lower() for s in
                         row.body.get("properties", {}).get("subnets", [])]
                ok = (parsed[4] or "").lower() in names
            if not ok:
                raise InvalidParameter(
                    f"Resource {ref} referenced by resource {display_id} was not found. "
                    "Please make sure that the referenced resource exists, and that both "
                    "resources are in the same region.", target=target,
                    code="InvalidResourceReference")


def delete_load_balancer(store: Store, *, lb_id: str,
                         check: Callable[[str | None], None] | None = None) -> bool:
    """Delete a load balancer no scale set uses; False when it did not exist.

    ``check`` (If-Match) sees the stored etag of an existing one, with its row locked.

    Refused (400 ``LoadBalancerInUseByVirtualMachineScaleSet``, Azure's code) when
    a scale set's model names one of its probes, naming the scale set.
    """
    with store.transaction() as tx:
        row = tx.get_load_balancer(lb_id, for_update=True)
        if row is None:
            return False
        if check is not None:
            check(row.model.etag)
        in_use = users(tx, lb_id)
        if in_use:
            probe, scale_sets = sorted(in_use.items())[0]
            raise InvalidParameter(
                f"Cannot delete load balancer {row.model.id or row.id} since its probe "
                f"'{probe}' is in use by virtual machine scale set(s) "
                f"{', '.join(repr(s) for s in sorted(scale_sets))}; remove the scale sets' "
                "networkProfile.healthProbe (or delete them) first",
                target="name", code="LoadBalancerInUseByVirtualMachineScaleSet")
        pools = [u for kind in (networkrefs.BACKEND_POOL, networkrefs.NAT_POOL)
                 for u in networkrefs.users(tx, kind, row.model.id or lb_id)]
        if pools:
            raise InvalidParameter(
                f"Cannot delete load balancer {row.model.id or row.id} since its pool "
                f"{pools[0][2].id.rsplit('/', 1)[-1]} is in use by virtual machine scale "
                f"set(s) {', '.join(sorted({repr(u[0].rsplit('/', 1)[-1]) for u in pools}))}; "
                "remove the pool from their ipConfigurations (or delete them) first",
                target="name", code="LoadBalancerInUseByVirtualMachineScaleSet")
        return tx.delete_load_balancer(lb_id)


def ensure_probe(store: Store, probe_id: str, *, location: str, now: datetime) -> None:
    """Create the load balancer and Http probe (port 80, ``/health``) ``probe_id`` names,
    if missing: the stand-in infrastructure of a simulation. Not a probe id: nothing."""
    ref = parse_probe_id(probe_id)
    if ref is None:
        return
    with store.transaction() as tx:
        row, probe = _find(tx, ref)
    if probe is not None:
        return
    model = row.model if row is not None else LoadBalancer(location=location)
    added = Probe.model_validate({"name": ref.probe, "properties": {
        "protocol": "Http", "port": 80, "requestPath": "/health"}})
    model = model.model_copy(update={"properties": model.properties.model_copy(update={
        "probes": [*model.properties.probes, added]})})
    put_load_balancer(store, subscription=ref.subscription, resource_group=ref.resource_group,
                      name=row.name if row is not None else ref.load_balancer, model=model,
                      now=now)
