"""What users ask for: each command validates, writes desired state, and returns.

Commands never call a driver; the next reconcile pass acts on what they wrote
(level-triggered). Each one commits in a single transaction, so bad input
changes nothing.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from scaleset.catalog import versions
from scaleset.errors import InvalidParameter, NotFound, OperationNotAllowed
from scaleset.model import sequencing
from scaleset.model.instance import InstanceRecord, PowerAction, PowerRequest
from scaleset.model.scaleset import ScaleSet
from scaleset.reconcile import automatic, images, networkrefs, quotas, requirements
from scaleset.reconcile.probes import check_health_probe
from scaleset.reconcile.settings import Limits, ShellSettings
from scaleset.reconcile.shell import run_id_for, run_policy
from scaleset.store.repository import ImageVersionRow, ScaleSetRow, Store, Tx
from scaleset.upgrade import run as run_machine
from scaleset.upgrade import trigger
from scaleset.upgrade.actions import Decision, Event
from scaleset.upgrade.observations import InstanceObservation
from scaleset.upgrade.state import IN_FLIGHT_STEPS, Policy, Run, RunKind, StartedBy, Target


def _etag(payload: str) -> str:
    return '"' + hashlib.sha1(payload.encode()).hexdigest()[:16] + '"'


def _next_etag(row: ScaleSetRow, model: ScaleSet, generation: int) -> str:
    """A new etag for every write: chained to the previous one and the new content, so two
    writes in the same instant (the clock may not move between them) still differ."""
    content = json.dumps(model.to_wire(), sort_keys=True, separators=(",", ":"))
    return _etag(f"{row.etag}/{generation}/{content}")


SECRET_OS_PROFILE_KEYS = ("adminPassword", "customData")
SECRET_EXTENSION_KEYS = ("protectedSettings", "protectedSettingsFromKeyVault")


def keep_write_only_secrets(stored: ScaleSet, new: ScaleSet) -> ScaleSet:
    """``new`` with the secrets it leaves out taken from ``stored``.

    GET never returns passwords, custom data or protected settings, so a client
    that PUTs back what it read (or PATCHes the extension list) leaves them out
    without meaning to remove them. A key sent explicitly, even as null, wins.
    """
    old = stored.model_dump(mode="json", by_alias=True, exclude_unset=True)
    body = new.model_dump(mode="json", by_alias=True, exclude_unset=True)
    old_profile = old.get("properties", {}).get("virtualMachineProfile", {})
    profile = body.get("properties", {}).get("virtualMachineProfile", {})
    changed = False
    old_os, os_profile = old_profile.get("osProfile"), profile.get("osProfile")
    if isinstance(old_os, dict) and isinstance(os_profile, dict):
        for key in SECRET_OS_PROFILE_KEYS:
            if key in old_os and key not in os_profile:
                os_profile[key] = old_os[key]
                changed = True
    old_extensions = {e.get("name"): e for e in (old_profile.get("extensionProfile") or {})
                      .get("extensions") or [] if isinstance(e, dict)}
    for extension in (profile.get("extensionProfile") or {}).get("extensions") or []:
        before = old_extensions.get(extension.get("name")) if isinstance(extension, dict) \
            else None
        props, old_props = (extension or {}).get("properties"), (before or {}).get("properties")
        if not isinstance(props, dict) or not isinstance(old_props, dict):
            continue
        for key in SECRET_EXTENSION_KEYS:
            if key in old_props and key not in props:
                props[key] = old_props[key]
                changed = True
    return ScaleSet.model_validate(body) if changed else new


def model_changes_instances(old: ScaleSet, new: ScaleSet) -> bool:
    """Whether ``new`` changes what runs on instances (a new model generation).

    Capacity, tags, the upgrade policy and ``latest`` image resolution are
    not instance changes; OS profile, extensions, disks, network and a pinned
    image version are.
    """
    def instance_facing(m: ScaleSet) -> dict[str, Any]:
        profile = m.properties.virtual_machine_profile.model_dump(
            mode="json", by_alias=True, exclude_none=True)
        ref = profile.get("storageProfile", {}).get("imageReference", {})
        ref.pop("exactVersion", None)
        return profile

    return instance_facing(old) != instance_facing(new)


def _image_identity(model: ScaleSet) -> tuple[str | None, ...]:
    ref = model.image_reference
    return tuple((v or "").lower() or None for v in
                 (ref.publisher, ref.offer, ref.sku, ref.version, ref.id))


CUSTOM_DATA_LIMIT = 64 * 1024  # bytes, decoded


def validate_model(model: ScaleSet) -> None:
    """Refuse a model the engine cannot run, naming the field and the fix."""
    policy = model.properties.upgrade_policy.rolling_upgrade_policy
    # The effective policy (Azure's defaults filled) is what GET shows and a client PUTs
    # back, so it is what gets checked: whether a field was sent must not matter.
    if policy is not None \
            and policy.max_batch_instance_percent > policy.max_unhealthy_instance_percent:
        raise InvalidParameter(
            f"rollingUpgradePolicy.maxBatchInstancePercent ({policy.max_batch_instance_percent}) "
            "must not exceed maxUnhealthyInstancePercent "
            f"({policy.max_unhealthy_instance_percent}): a batch that size could take the set "
            "over its unhealthy limit by itself. Lower the batch or raise the limit.",
            target="properties.upgradePolicy.rollingUpgradePolicy.maxBatchInstancePercent")
    names = [e.name for e in model.extensions]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise InvalidParameter(
            f"extension names must be unique; '{duplicates[0]}' appears more than once. "
            "Rename or remove the duplicate.",
            target="properties.virtualMachineProfile.extensionProfile.extensions")
    try:
        sequencing.extension_order(model.extensions)
    except sequencing.SequencingError as exc:
        raise InvalidParameter(str(exc), target=exc.target) from exc
    os_profile = model.properties.virtual_machine_profile.os_profile
    if os_profile is not None and os_profile.custom_data is not None:
        try:
            decoded = base64.b64decode(os_profile.custom_data, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise InvalidParameter(
                "osProfile.customData must be base64-encoded; encode the script or "
                "cloud-init file with base64", target="properties.virtualMachineProfile."
                "osProfile.customData") from exc
        if len(decoded) > CUSTOM_DATA_LIMIT:
            raise InvalidParameter(
                f"osProfile.customData decodes to {len(decoded)} bytes, more than the "
                f"{CUSTOM_DATA_LIMIT} allowed; move the payload to an extension's fileUris",
                target="properties.virtualMachineProfile.osProfile.customData")


def _auto(model: ScaleSet) -> bool:
    return model.automatic_os_upgrade.enable_automatic_os_upgrade


ScaleSetBuild = Callable[[ScaleSetRow | None], ScaleSet]
"""What a PUT makes of the stored scale set (None: there is none): it checks the request's
preconditions against it and merges the request into it, inside the write's transaction."""


def create_scale_set(store: Store, *, scale_set_id: str, model: ScaleSet, now: datetime,
                     api_version: str | None = None, settings: ShellSettings | None = None
                     ) -> ScaleSetRow:
    """Record a new scale set; the reconciler creates its instances.

    ``api_version`` is the request's Compute api-version (None: the newest rules);
    ``settings`` holds the allow-list of images for automatic OS upgrade.
    """
    validate_model(model)
    shell_settings = settings or ShellSettings()

    def work(tx: Tx) -> ScaleSetRow:
        if tx.get_scale_set(scale_set_id, for_update=True) is not None:
            name = model.name or scale_set_id.rsplit("/", 1)[-1]
            raise OperationNotAllowed(f"scale set '{name}' already exists", target="name")
        return _create(tx, scale_set_id=scale_set_id, model=model, now=now,
                       api_version=api_version, settings=shell_settings)

    return store.write(work)


def _create(tx: Tx, *, scale_set_id: str, model: ScaleSet, now: datetime,
            api_version: str | None, settings: ShellSettings) -> ScaleSetRow:
    """Insert the scale set (the caller found none); a racing insert of the same id fails
    at the INSERT (``DuplicateKey``), which ``Store.write`` retries."""
    name = model.name or scale_set_id.rsplit("/", 1)[-1]
    quotas.enforce_total(tx, model, scale_set_id=scale_set_id, limits=settings.limits)
    check_health_probe(tx, model)
    networkrefs.check_references(tx, model, scale_set_id=model.id or scale_set_id)
    requirements.enforce(tx, model, api_version=api_version, settings=settings)
    image_version = images.resolve_image_version(tx, model.location, model, now)
    row = ScaleSetRow(
        id=scale_set_id, name=name, location=model.location, model=model, generation=1,
        image_version=image_version, next_instance_id=0,
        etag=_etag(f"{scale_set_id}/1/{now.isoformat()}"), created_at=now, updated_at=now,
        auto_os_upgrade_since=now if _auto(model) else None,
    )
    tx.insert_scale_set(row)
    tx.append_events(scale_set_id, None, [Event(
        "ScaleSetCreated", f"capacity {model.capacity}, image {image_version}")], now)
    return row


def update_scale_set(store: Store, *, scale_set_id: str, model: ScaleSet | None = None,
                     mutate: Callable[[ScaleSetRow], ScaleSet] | None = None, now: datetime,
                     api_version: str | None = None, settings: ShellSettings | None = None
                     ) -> ScaleSetRow:
    """Replace a scale set's model; instance-facing changes bump its generation.

    The new model is ``model``, or ``mutate(stored row)`` computed inside the write's
    transaction, with the row locked: a PATCH merges into what is stored at that
    moment (and checks If-Match against it), so concurrent writers lose nothing.
    The requirements of automatic OS upgrade are checked as in ``create_scale_set``,
    counting only what this change breaks.
    """
    if mutate is None:
        if model is None:
            raise TypeError("update_scale_set needs a model or a mutate function")
        mutate = _constant(model)
    change, settings = mutate, settings or ShellSettings()
    return store.write(lambda tx: _update(tx, scale_set_id=scale_set_id, mutate=change,
                                          now=now, api_version=api_version, settings=settings))


def _constant(model: ScaleSet) -> Callable[[ScaleSetRow], ScaleSet]:
    return lambda _row: model


def put_scale_set(store: Store, *, scale_set_id: str, build: ScaleSetBuild, now: datetime,
                  api_version: str | None = None, settings: ShellSettings | None = None
                  ) -> tuple[ScaleSetRow, bool]:
    """Create or replace a scale set in one write transaction; True when it was created.

    ``build`` sees the row as stored (locked) and returns the model to write. Two PUTs
    creating one name both see none; the one whose insert loses the race is run again
    (``Store.write``), finds the winner's row and becomes an update.
    """
    settings = settings or ShellSettings()

    def work(tx: Tx) -> tuple[ScaleSetRow, bool]:
        existing = tx.get_scale_set(scale_set_id, for_update=True)
        model = build(existing)
        if existing is None:
            validate_model(model)
            return _create(tx, scale_set_id=scale_set_id, model=model, now=now,
                           api_version=api_version, settings=settings), True
        return _update(tx, scale_set_id=scale_set_id, mutate=_constant(model), now=now,
                       api_version=api_version, settings=settings), False

    return store.write(work)


def _update(tx: Tx, *, scale_set_id: str, mutate: Callable[[ScaleSetRow], ScaleSet],
            now: datetime, api_version: str | None, settings: ShellSettings) -> ScaleSetRow:
    row = _get(tx, scale_set_id)
    model = keep_write_only_secrets(row.model, mutate(row))
    validate_model(model)
    if model.location.replace(" ", "").lower() != row.location.replace(" ", "").lower():
        raise InvalidParameter(
            f"Changing property 'location' is not allowed: scale set '{row.name}' is in "
            f"'{row.location}'. Create a new scale set in '{model.location}' instead.",
            target="location")
    quotas.enforce_total(tx, model, scale_set_id=scale_set_id, limits=settings.limits,
                         previous=row.model)
    check_health_probe(tx, model, previous=row.model)
    networkrefs.check_references(tx, model, scale_set_id=row.model.id or row.id,
                                 previous=row.model)
    requirements.enforce(tx, model, api_version=api_version, settings=settings,
                         previous=row.model)
    generation = row.generation + (1 if model_changes_instances(row.model, model) else 0)
    image_version = row.image_version
    if _image_identity(model) != _image_identity(row.model):
        # A different image (or pinned version): resolved now, refused if unknown.
        image_version = images.resolve_image_version(tx, row.location, model, now)
    since = row.auto_os_upgrade_since if _auto(row.model) else None
    updated = row.replace(model=model, generation=generation, image_version=image_version,
                          etag=_next_etag(row, model, generation),
                          updated_at=now,
                          auto_os_upgrade_since=(since or now) if _auto(model) else None)
    tx.update_scale_set(updated)
    if generation != row.generation:
        tx.append_events(scale_set_id, None, [Event(
            "ModelChanged", f"model generation {generation}")], now)
    return updated


def set_capacity(store: Store, *, scale_set_id: str, capacity: int, now: datetime,
                 limits: Limits | None = None) -> ScaleSetRow:
    """Set ``sku.capacity`` alone, within the per-set and total limits (``quotas``)."""
    limits = limits or Limits()
    quotas.check_capacity(capacity, limits)
    with store.transaction() as tx:
        row = _get(tx, scale_set_id)
        model = row.model.model_copy(update={
            "sku": row.model.sku.model_copy(update={"capacity": capacity})})
        quotas.enforce_total(tx, model, scale_set_id=scale_set_id, limits=limits,
                             previous=row.model)
        updated = row.replace(model=model, updated_at=now,
                              etag=_next_etag(row, model, row.generation))
        tx.update_scale_set(updated)
    return updated


def publish_image_version(
    store: Store, *, location: str, publisher: str, offer: str, sku: str, version: str,
    os_type: str = "Linux", properties: Mapping[str, Any] | None = None, now: datetime,
) -> ImageVersionRow:
    """Publish a platform image version (the trigger picks it up on the next pass)."""
    if not versions.is_version(version):
        raise InvalidParameter(
            f"image version '{version}' must be dotted integers such as '1.2.0'", target="version")
    # The store keys on lower-cased names; the names as published are kept for display.
    stored = {**(properties or {}),
              "displayNames": {"publisher": publisher, "offer": offer, "sku": sku}}
    row = ImageVersionRow(location, publisher, offer, sku, version, os_type, stored, now)
    with store.transaction() as tx:
        tx.put_image_version(row)
    return row


def _fleet(records: Mapping[str, InstanceRecord]) -> dict[str, InstanceObservation]:
    return {
        iid: InstanceObservation(iid, r.zone, r.update_domain, r.health_state, r.image_version,
                                 r.model_generation, r.protect_from_scale_set_actions)
        for iid, r in records.items()
    }


def _insert_started_run(tx: Tx, row: ScaleSetRow, run: Run, now: datetime) -> None:
    reference = images.target_reference(row.model, run.target.image_version)
    tx.insert_run(run, target_image_reference=reference)
    tx.append_events(row.id, run.run_id, [Event(
        "RunStarted", f"{run.kind} run started by {run.started_by}: "
                      f"{len(run.instances)} instances")], now)


def _ensure_idle(tx: Tx, row: ScaleSetRow, operation: str) -> None:
    active = tx.active_run(row.id)
    if active is not None:
        raise OperationNotAllowed(
            f"Operation '{operation}' is not allowed on Virtual Machine Scale Set '{row.name}' "
            f"while rolling upgrade {active.run_id} is {active.status}; cancel it "
            "(rollingUpgrades/cancel) or wait for it to finish",
        )


def start_os_upgrade(store: Store, *, scale_set_id: str, now: datetime,
                     settings: ShellSettings | None = None,
                     started_by: StartedBy = StartedBy.USER) -> Run:
    """A run to the latest image version, now.

    Started by a user (``osRollingUpgrade``) it never rolls back; the
    simulator also starts Platform runs this way, which follow the model's
    ``disableAutomaticRollback``.
    """
    settings = settings or ShellSettings()
    with store.transaction() as tx:
        row = _get(tx, scale_set_id)
        _ensure_idle(tx, row, "osRollingUpgrade")
        ref = row.model.image_reference
        if not images.wants_latest(row.model):  # a gallery image's id without /versions/
            raise OperationNotAllowed(
                "The OS Rolling Upgrade API needs a platform or gallery image with version "
                f"'latest'; scale set '{row.name}' pins version '{ref.version or ref.id}'. Set "
                "imageReference.version to 'latest' (for a gallery image: imageReference.id "
                "to the image definition's id).",
                target="properties.virtualMachineProfile.storageProfile.imageReference.version",
            )
        target = images.resolve_image_version(tx, row.location, row.model, now)
        records = tx.instances(scale_set_id)
        run = run_machine.start_run(
            run_id=run_id_for(row.id, len(tx.past_runs(row.id)) + 1),
            scale_set_id=row.id, kind=RunKind.OS_IMAGE, started_by=started_by,
            target=Target(target, row.generation),
            policy=run_policy(row.model, settings),
            fleet=_fleet(records), now=now,
            disable_automatic_rollback=row.model.automatic_os_upgrade.disable_automatic_rollback,
        )
        _insert_started_run(tx, row, run, now)
    return run


def _start_for_instances(store: Store, *, scale_set_id: str, instance_ids: Iterable[str] | None,
                         kind: RunKind, operation: str, now: datetime,
                         settings: ShellSettings | None, reset_data_disks: bool = False) -> Run:
    """A User run over the named instances (all when ``None``), all at once, no rollback.

    ``reset_data_disks`` (``reimageall``): each instance's new OS disk comes with empty
    data disks, recorded on its record in the same transaction as the run.
    """
    settings = settings or ShellSettings()
    with store.transaction() as tx:
        row = _get(tx, scale_set_id)
        _ensure_idle(tx, row, operation)
        records = tx.instances(scale_set_id)
        ids = list(records) if instance_ids is None else list(instance_ids)
        missing = [i for i in ids if i not in records]
        if missing:
            raise NotFound(f"instances {', '.join(missing)} are not in scale set '{row.name}'",
                           target="instanceIds", code="NotFound")
        # Both give the instance the scale set's current model, its image included; a
        # reimage replaces the OS disk even when the instance already runs it.
        image = row.image_version
        run = run_machine.start_run(
            run_id=run_id_for(row.id, len(tx.past_runs(row.id)) + 1),
            scale_set_id=row.id, kind=kind, started_by=StartedBy.USER,
            target=Target(image, row.generation),
            policy=Policy.from_model(row.model.rolling_upgrade_policy,
                                     health_timeout=settings.health_timeout),
            fleet=_fleet(records), now=now, all_at_once=True, only=ids,
        )
        _insert_started_run(tx, row, run, now)
        if reset_data_disks:
            tx.update_instances([records[i].replace(reset_data_disks_run=run.run_id)
                                 for i in run.instances])
    return run


def manual_upgrade(store: Store, *, scale_set_id: str, instance_ids: Iterable[str],
                   now: datetime, settings: ShellSettings | None = None) -> Run:
    """Bring the named instances to the latest model, all at once (``manualupgrade``)."""
    return _start_for_instances(store, scale_set_id=scale_set_id,
                                instance_ids=list(instance_ids), kind=RunKind.MODEL,
                                operation="manualUpgrade", now=now, settings=settings)


def cancel(store: Store, *, scale_set_id: str, now: datetime) -> Run:
    """Ask the active run to stop after its current batch."""
    with store.transaction() as tx:
        row = _get(tx, scale_set_id)
        active = tx.active_run(scale_set_id)
        if active is None:
            raise OperationNotAllowed(
                f"There is no ongoing Rolling Upgrade to cancel for Virtual Machine Scale Set "
                f"'{row.name}'.")
        if active.cancel_requested:
            return active  # already asked: asking again changes nothing
        cancelled = run_machine.request_cancel(active, now)
        tx.save_decision(active, Decision(cancelled, events=(
            Event("CancelRequested", "cancel requested; the run stops after this batch"),)), now)
    return cancelled


def approve_rolling_upgrade(store: Store, *, scale_set_id: str,
                            instance_ids: Iterable[str] | None, now: datetime,
                            settings: ShellSettings | None = None) -> Run:
    """Start the Platform OS run ``osRollingUpgradeDeferral`` holds (``approveRollingUpgrade``).

    It starts at once, maintenance windows notwithstanding, and follows the rules
    of a Platform run (automatic rollback unless disabled). ``instance_ids``
    limits it to those instances; the others stay pending. Refused (409) when no
    deferred upgrade awaits approval.
    """
    settings = settings or ShellSettings()
    with store.transaction() as tx:
        row = _get(tx, scale_set_id)
        records = tx.instances(scale_set_id)
        fleet = _fleet(records)
        assessed = automatic.assess(tx, row, fleet, now, settings,
                                    active=tx.active_run(scale_set_id))
        pending = assessed.decision.pending
        start = trigger.approved(pending, row.generation)
        if start is None:
            raise OperationNotAllowed(automatic.nothing_to_approve(row, pending))
        ids = None if instance_ids is None else list(instance_ids)
        missing = [i for i in ids or () if i not in records]
        if missing:
            raise NotFound(f"instances {', '.join(missing)} are not in scale set '{row.name}'",
                           target="instanceIds", code="NotFound")
        run = run_machine.start_run(
            run_id=run_id_for(row.id, len(assessed.runs) + 1),
            scale_set_id=row.id, kind=start.kind, started_by=StartedBy.PLATFORM,
            target=start.target, policy=run_policy(row.model, settings), fleet=fleet, now=now,
            disable_automatic_rollback=row.model.automatic_os_upgrade.disable_automatic_rollback,
            only=ids)
        if not run.instances:
            raise OperationNotAllowed(
                f"instances {', '.join(ids or ())} of scale set '{row.name}' have no deferred "
                f"OS upgrade (they run {start.target.image_version} already, or are protected "
                "from scale-set actions); name instances that are behind, or omit instanceIds",
                target="instanceIds")
        _insert_started_run(tx, row, run, now)
        tx.append_events(row.id, run.run_id, [Event(
            "OSUpgradeApproved", f"deferred OS upgrade to {start.target.image_version} "
                                 f"approved for {len(run.instances)} instances")], now)
    return run


def set_protection(store: Store, *, scale_set_id: str, instance_id: str,
                   protect_from_scale_in: bool, protect_from_scale_set_actions: bool,
                   now: datetime,
                   check: Callable[[ScaleSetRow, InstanceRecord], None] | None = None
                   ) -> InstanceRecord:
    """Set an instance's protection policy; ``check`` (If-Match) sees the scale set, locked,
    and the instance as stored, in the same transaction, and may refuse."""
    with store.transaction() as tx:
        row = _get(tx, scale_set_id)
        records = tx.instances(scale_set_id)
        if instance_id not in records:
            raise NotFound(f"instance '{instance_id}' is not in scale set '{row.name}'",
                           code="NotFound")
        if check is not None:
            check(row, records[instance_id])
        updated = records[instance_id].replace(
            protect_from_scale_in=protect_from_scale_in,
            protect_from_scale_set_actions=protect_from_scale_set_actions)
        tx.update_instances([updated])
    return updated


def _get(tx: Tx, scale_set_id: str) -> ScaleSetRow:
    """The scale set, locked for this write transaction (its revision bumped first)."""
    tx.touch(scale_set_id)
    row = tx.get_scale_set(scale_set_id)
    if row is None:
        name = scale_set_id.rsplit("/", 1)[-1]
        raise NotFound(
            f"The Resource 'Microsoft.Compute/virtualMachineScaleSets/{name}' was not found.")
    return row


def reimage(store: Store, *, scale_set_id: str, instance_ids: Iterable[str] | None,
            now: datetime, settings: ShellSettings | None = None) -> Run:
    """A fresh OS disk from the scale set's image for the named instances (all when None).

    Data disks are kept; custom data and extensions run again; nothing is rolled back.
    """
    return _start_for_instances(store, scale_set_id=scale_set_id, instance_ids=instance_ids,
                                kind=RunKind.REIMAGE, operation="reimage", now=now,
                                settings=settings)


def reimage_all(store: Store, *, scale_set_id: str, instance_ids: Iterable[str] | None,
                now: datetime, settings: ShellSettings | None = None) -> Run:
    """``reimageall``: a reimage whose instances' data disks come back empty too.

    A run of kind Reimage like ``reimage`` (all at once, no rollback); the data disks
    keep their ids and luns, their content is gone.
    """
    return _start_for_instances(store, scale_set_id=scale_set_id, instance_ids=instance_ids,
                                kind=RunKind.REIMAGE, operation="reimageall", now=now,
                                settings=settings, reset_data_disks=True)


MAX_INSTANCE_IDS = 1000
"""The most instance ids one request may name."""


def _not_active(instance_id: str) -> InvalidParameter:
    # Azure's answer, word for word, for an instance id the scale set does not have.
    return InvalidParameter(f"The provided instanceId {instance_id} is not an active Virtual "
                            "Machine Scale Set VM instanceId.", target="instanceIds")


def _named(records: Mapping[str, InstanceRecord], instance_ids: Iterable[str]) -> list[str]:
    """The named instances, each once, in the order named; refused if one is not a member."""
    ids = list(dict.fromkeys(instance_ids))
    for iid in ids:
        if iid not in records:
            raise _not_active(iid)
    return ids


@dataclass(frozen=True, slots=True)
class PowerRequested:
    """What ``request_power`` recorded: the operation id and the instances it covers."""

    op_id: str
    instance_ids: tuple[str, ...]


def request_power(store: Store, *, scale_set_id: str, instance_ids: Iterable[str] | None,
                  action: PowerAction, now: datetime, skip_shutdown: bool = False,
                  whole_scale_set: bool = False) -> PowerRequested:
    """Ask for a power verb on the named instances (every instance when ``None``).

    ``whole_scale_set``: the verb was sent to the scale set without naming instances,
    so instances protected from scale-set actions are left out (as Azure does). A
    verb meets each instance in whatever state it is in: one already there
    succeeds without change. Refused (nothing written) when an instance is not a
    member (400) or a rolling upgrade is working on it right now (409). A newer
    verb replaces an older one still under way, whose operation then ends
    ``OperationPreempted``.
    """
    with store.transaction() as tx:
        row = _get(tx, scale_set_id)
        if row.model.properties.provisioning_state == DELETING:
            raise OperationNotAllowed(
                f"Operation '{action}' is not allowed on Virtual Machine Scale Set "
                f"'{row.name}' since it is being deleted.")
        records = tx.instances(scale_set_id)
        if instance_ids is None:
            ids = [i for i, r in records.items()
                   if not (whole_scale_set and r.protect_from_scale_set_actions)]
        else:
            ids = _named(records, instance_ids)
        active = tx.active_run(scale_set_id)
        busy = [i for i in ids if active is not None and i in active.instances
                and active.instances[i].step in IN_FLIGHT_STEPS]
        if busy and active is not None:
            raise OperationNotAllowed(
                f"Operation '{action}' is not allowed on instances {', '.join(busy)} of "
                f"Virtual Machine Scale Set '{row.name}' while rolling upgrade "
                f"{active.run_id} is upgrading them; wait for their batch to finish or "
                "cancel the upgrade (rollingUpgrades/cancel)", target="instanceIds")
        op_id = f"power/{uuid.uuid4()}"
        request = PowerRequest(op_id, action, skip_shutdown)
        tx.update_instances([records[i].replace(power_request=request) for i in ids])
        tx.append_events(scale_set_id, None, [
            Event("PowerRequested", f"{action} requested", i) for i in ids], now)
    return PowerRequested(op_id, tuple(ids))


def delete_instances(store: Store, *, scale_set_id: str, instance_ids: Iterable[str] | None,
                     now: datetime) -> list[str]:
    """Delete the named instances (all when ``None``) and lower the capacity by as many.

    An explicit delete is the user's choice: protection from scale-in does not stop
    it (it protects from the scale set's own scale-in), as in Azure. Unknown ids
    refuse the whole request (400, nothing deleted).
    """
    with store.transaction() as tx:
        row = _get(tx, scale_set_id)
        records = tx.instances(scale_set_id)
        ids = list(records) if instance_ids is None else _named(records, instance_ids)
        model = row.model.model_copy(update={"sku": row.model.sku.model_copy(
            update={"capacity": max(0, (row.model.sku.capacity or 0) - len(ids))})})
        tx.delete_instances(scale_set_id, ids)
        tx.update_scale_set(row.replace(model=model, updated_at=now))
        tx.append_events(scale_set_id, None, [
            Event("InstanceDeleted", "instance deleted on request", i) for i in ids], now)
    return ids


DELETING = "Deleting"


def delete_scale_set(store: Store, *, scale_set_id: str, now: datetime,
                     check: Callable[[ScaleSetRow], None] | None = None) -> ScaleSetRow:
    """Mark a scale set for deletion; the reconciler deletes its instances, then the record.

    ``check`` (If-Match) sees the row locked in the same transaction and may refuse.
    ``NotFound`` when there is no such scale set.
    """
    def work(tx: Tx) -> ScaleSetRow:
        if check is not None:
            check(_get(tx, scale_set_id))
        return mark_deleting(tx, scale_set_id=scale_set_id, now=now)

    return store.write(work)


def mark_deleting(tx: Tx, *, scale_set_id: str, now: datetime) -> ScaleSetRow:
    """``delete_scale_set`` inside the caller's transaction (a resource group's delete
    marks all its scale sets in one)."""
    row = _get(tx, scale_set_id)
    model = row.model.model_copy(update={
        "sku": row.model.sku.model_copy(update={"capacity": 0}),
        "properties": row.model.properties.model_copy(
            update={"provisioning_state": DELETING})})
    updated = row.replace(model=model, updated_at=now)
    tx.update_scale_set(updated)
    tx.append_events(scale_set_id, None, [Event("ScaleSetDeleting", "delete requested")], now)
    return updated


def delete_instance(store: Store, *, scale_set_id: str, instance_id: str, now: datetime
                    ) -> None:
    """Remove one instance (its disks go with it) and lower the capacity by one."""
    with store.transaction() as tx:
        row = _get(tx, scale_set_id)
        records = tx.instances(scale_set_id)
        if instance_id not in records:
            raise NotFound(f"instance '{instance_id}' is not in scale set '{row.name}'",
                           code="NotFound")
        model = row.model.model_copy(update={"sku": row.model.sku.model_copy(
            update={"capacity": max(0, (row.model.sku.capacity or 0) - 1)})})
        tx.delete_instances(scale_set_id, [instance_id])
        tx.update_scale_set(row.replace(model=model, updated_at=now))
        tx.append_events(scale_set_id, None, [Event(
            "InstanceDeleted", "instance deleted on request", instance_id)], now)
