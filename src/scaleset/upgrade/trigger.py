"""When a new run starts on its own (pure).

Two kinds of run start without a user asking:

* a **Platform OS run**, when automatic OS upgrade is enabled and a version
  newer than what some eligible instance runs has become ``latest``; a target
  whose run (automatic or manual) already ended Faulted or Cancelled is not
  retried automatically (a newer version, or a manual start, starts a new run);
* a **model run**, when the scale set's model generation moved on and the
  upgrade mode is Automatic (all instances at once) or Rolling (in batches);
  again, a generation whose run ended Faulted or Cancelled is not retried.
  Manual mode waits for a manual-upgrade command.

At most one run is active per scale set; while one is, nothing starts.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from scaleset.catalog import versions
from scaleset.upgrade.observations import InstanceObservation
from scaleset.upgrade.state import RunKind, RunStatus, StartedBy, Target


@dataclass(frozen=True, slots=True)
class PastRun:
    kind: RunKind
    started_by: StartedBy
    target_image_version: str | None
    status: RunStatus
    target_generation: int = 0


@dataclass(frozen=True, slots=True)
class StartRun:
    kind: RunKind
    target: Target
    all_at_once: bool = False


def next_run(
    *,
    fleet: Mapping[str, InstanceObservation],
    generation: int,
    upgrade_mode: str,
    automatic_os_upgrade: bool,
    latest_image_version: str | None,
    past_runs: Iterable[PastRun],
    active: bool,
    model_image_version: str | None = None,
) -> StartRun | None:
    """The run that should start now, if any.

    >>> fleet = {"0": InstanceObservation("0", image_version="1.0.0", generation=1)}
    >>> next_run(fleet=fleet, generation=1, upgrade_mode="Manual", automatic_os_upgrade=True,
    ...          latest_image_version="1.1.0", past_runs=[], active=False)
    StartRun(kind=<RunKind.OS_IMAGE: 'OSImage'>, target=Target(image_version='1.1.0', generation=1), all_at_once=False)
    >>> failed = PastRun(RunKind.OS_IMAGE, StartedBy.PLATFORM, "1.1.0", RunStatus.FAULTED)
    >>> next_run(fleet=fleet, generation=1, upgrade_mode="Manual", automatic_os_upgrade=True,
    ...          latest_image_version="1.1.0", past_runs=[failed], active=False) is None
    True
    """
    if active:
        return None
    eligible = [o for o in fleet.values() if not o.protected]
    if automatic_os_upgrade and latest_image_version is not None:
        behind = any(versions.newer(latest_image_version, o.image_version) for o in eligible)
        # A Faulted or Cancelled run to this version, automatic or manual, is
        # not retried by the platform: someone must act (a newer version, or a
        # manual start).
        given_up = any(
            r.kind is RunKind.OS_IMAGE
            and r.target_image_version == latest_image_version
            and r.status in (RunStatus.FAULTED, RunStatus.CANCELLED)
            for r in past_runs
        )
        if behind and not given_up:
            return StartRun(RunKind.OS_IMAGE, Target(latest_image_version, generation))
    model_given_up = any(
        r.kind is RunKind.MODEL
        and r.target_generation == generation
        and r.status in (RunStatus.FAULTED, RunStatus.CANCELLED)
        for r in past_runs
    )
    if upgrade_mode in ("Automatic", "Rolling") and not model_given_up and any(
        o.generation < generation for o in eligible
    ):
        # Applying a new model gives the instance the model's image too (a changed or
        # pinned image reference is part of the model).
        return StartRun(RunKind.MODEL, Target(model_image_version, generation),
                        all_at_once=upgrade_mode == "Automatic")
    return None
