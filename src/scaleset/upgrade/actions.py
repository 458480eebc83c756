"""What ``decide`` asks the shell to do, and the decision that carries it.

Every action carries an operation id derived from the run and the instance,
so executing it twice is the same as executing it once.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from scaleset.upgrade.state import Run


@dataclass(frozen=True, slots=True)
class UpgradeInstance:
    """Replace the OS disk from ``image_version`` (keeping the old one) and apply the model."""

    op_id: str
    instance_id: str
    image_version: str | None
    generation: int


@dataclass(frozen=True, slots=True)
class RollbackInstance:
    """Restore the OS disk (and model) the instance had before this run."""

    op_id: str
    instance_id: str


@dataclass(frozen=True, slots=True)
class ReleasePreviousOsDisk:
    """The upgrade is healthy: the previous OS disk is no longer needed."""

    instance_id: str


Action = UpgradeInstance | RollbackInstance | ReleasePreviousOsDisk
ACTION_TYPES: tuple[type, ...] = (UpgradeInstance, RollbackInstance, ReleasePreviousOsDisk)


def upgrade_op_id(run_id: str, instance_id: str) -> str:
    return f"{run_id}/{instance_id}/upgrade"


def rollback_op_id(run_id: str, instance_id: str) -> str:
    return f"{run_id}/{instance_id}/rollback"


@dataclass(frozen=True, slots=True)
class Event:
    """A line of the run's append-only event log."""

    kind: str
    message: str
    instance_id: str | None = None
    data: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Decision:
    """The result of one ``decide`` pass.

    ``changed`` names the instances whose part in the run changed, so the
    shell writes only those rows. A pass that changed nothing answers with the
    very run it was given (``run is`` the input), which the shell need not write.
    """

    run: Run
    actions: tuple[Action, ...] = ()
    changed: frozenset[str] = frozenset()
    events: tuple[Event, ...] = ()
    wake_at: datetime | None = None
