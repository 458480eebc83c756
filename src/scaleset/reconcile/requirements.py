"""The requirement checks of automatic OS upgrade and Rolling mode, with their facts.

The rules live in :mod:`scaleset.upgrade.requirements` (pure); this module
looks up what the model alone does not say — the image's OS type, the sku of
the health probe's load balancer, the Service Fabric cluster — and refuses a
model that breaks a rule. The scale-set commands call :func:`enforce` inside
their transaction, so a refusal stores nothing.
"""

from __future__ import annotations

from scaleset.catalog import versions
from scaleset.errors import ScalesetError
from scaleset.model.scaleset import ScaleSet
from scaleset.reconcile import images, probes, servicefabric
from scaleset.reconcile.settings import ShellSettings
from scaleset.store.repository import Tx
from scaleset.upgrade import requirements
from scaleset.upgrade.requirements import Facts, ImageKind, LoadBalancerFacts, Violation


class RequirementNotMet(ScalesetError):
    """A scale set model that may not have automatic OS upgrade (400; the code is the
    violated rule's, ``details`` lists every violation)."""

    code = "InvalidParameter"
    status = 400


GALLERY_IMAGE_TYPE = "Microsoft.Compute/galleries/images"


def _os_type(tx: Tx, model: ScaleSet) -> str | None:
    image = requirements.image_of(model)
    if image.kind is ImageKind.PLATFORM:
        found = images.candidates(tx, model.location, model)
        if not found:
            return None
        wanted = image.version
        chosen = next((c for c in found if c.version == wanted), None) if wanted else None
        chosen = chosen or max(found, key=lambda c: versions.version_key(c.version))
        return chosen.os_type
    ref = model.image_reference
    if image.kind is ImageKind.GALLERY and ref.id:
        definition = ref.id.strip().rstrip("/")
        marker = definition.lower().rfind("/versions/")
        if marker != -1:
            definition = definition[:marker]
        row = tx.get_resource(definition)
        if row is not None and row.type.lower() == GALLERY_IMAGE_TYPE.lower():
            os_type = row.body.get("properties", {}).get("osType")
            return str(os_type) if os_type else None
    return None


def _load_balancer(tx: Tx, model: ScaleSet) -> LoadBalancerFacts | None:
    probe_id = probes.health_probe_id(model)
    ref = probes.parse_probe_id(probe_id) if probe_id else None
    row = tx.get_load_balancer(ref.key) if ref is not None else None
    return LoadBalancerFacts(row.name, row.model.sku.name) if row is not None else None


def facts(tx: Tx, model: ScaleSet) -> Facts:
    """Everything the pure check needs to know beyond the model."""
    return Facts(os_type=_os_type(tx, model), load_balancer=_load_balancer(tx, model),
                 cluster=servicefabric.cluster_facts(tx, model))


def violations(tx: Tx, model: ScaleSet, *, api_version: str | None, settings: ShellSettings
               ) -> list[Violation]:
    """The rules ``model`` breaks at ``api_version`` (only upgrade mode's when automatic
    upgrade is off)."""
    if not requirements.requested(model):  # the facts are not needed: skip the lookups
        return requirements.check(model, api_version=api_version, images=(), facts=Facts())
    return requirements.check(model, api_version=api_version,
                              images=settings.auto_upgrade_images, facts=facts(tx, model))


def enforce(tx: Tx, model: ScaleSet, *, api_version: str | None, settings: ShellSettings,
            previous: ScaleSet | None = None) -> None:
    """Refuse ``model`` (400, the first violation; all in ``details``) when it breaks a rule.

    With ``previous`` (an update), only what the change breaks counts: a violation the
    stored model already had at the same api-version is not held against it.
    """
    found = violations(tx, model, api_version=api_version, settings=settings)
    if found and previous is not None:
        found = requirements.new_violations(found, violations(
            tx, previous, api_version=api_version, settings=settings))
    if not found:
        return
    first = found[0]
    more = f" (and {len(found) - 1} more, see details)" if len(found) > 1 else ""
    raise RequirementNotMet(first.message + more, target=first.target, code=first.code,
                            details=[v.to_wire() for v in found])
