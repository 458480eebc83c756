"""What ``rolling-upgrade get-latest --watch`` (and ``start --wait``, ``cancel``) show of a run.

Pure: a :class:`View` is read from one answer of ``GET …/rollout`` (:func:`parse`;
or, from a server without that route, from ``rollingUpgrades/latest``:
:func:`from_latest`), then drawn two ways:

* :func:`renderable`: a Rich renderable for a live display on a terminal: the
  run's status, batches done of total, succeeded/failed/in progress/pending,
  each gate's value against its threshold, and the instances of the current
  batch with their state and the health wait left;
* :func:`changes`: plain lines (no escapes) saying what changed since the
  previous view, one line per change, for CI logs and pipes.

The watching loop (``cli/watch.py``) fetches, sleeps and decides when to stop;
nothing here does I/O, so the tests feed canned JSON and compare text.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

from rich import box
from rich.console import Group, RenderableType
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

RUNNING: Final = frozenset({"RollingForward", "RollingBack"})
ACTIVE_STATES: Final = frozenset({"inBatch", "upgrading", "waitingForHealth", "rollingBack"})
"""States of an instance the run is working on now: the live display lists these."""
QUIET_STATES: Final = frozenset({"pending", "skipped", "idle"})
"""States not worth a plain line of their own (the counts cover them)."""
STATE_LABELS: Final = {
    "pending": "pending", "inBatch": "in batch", "upgrading": "upgrading",
    "waitingForHealth": "waiting for health", "healthy": "healthy",
    "rollingBack": "rolling back", "rolledBack": "rolled back", "failed": "failed",
    "protected": "protected", "skipped": "skipped", "idle": "idle"}
STATE_STYLES: Final = {
    "pending": "dim", "inBatch": "cyan", "upgrading": "blue", "waitingForHealth": "yellow",
    "healthy": "green", "rollingBack": "magenta", "rolledBack": "magenta", "failed": "bold red",
    "protected": "dim italic", "skipped": "dim", "idle": "dim"}
STATUS_STYLES: Final = {"RollingForward": "bold blue", "RollingBack": "bold magenta",
                        "Completed": "bold green", "Faulted": "bold red",
                        "Cancelled": "bold yellow"}


@dataclass(frozen=True)
class Instance:
    """One instance's place in the run."""

    instance_id: str
    state: str
    health: str | None = None
    image_version: str | None = None
    batch: int | None = None
    seconds_left: float | None = None
    """Of its health wait (``waitingForHealth`` only)."""
    reason: str | None = None


@dataclass(frozen=True)
class Gate:
    """A rolling-upgrade gate: the value now against its threshold, both in percent."""

    name: str
    value: float
    threshold: float
    ok: bool
    unhealthy: int | None = None
    total: int | None = None


@dataclass(frozen=True)
class Batch:
    index: int
    instance_ids: tuple[str, ...]
    ended: bool


@dataclass(frozen=True)
class Counts:
    succeeded: int = 0
    failed: int = 0
    in_progress: int = 0
    pending: int = 0

    def line(self) -> str:
        """As ``start --wait`` has always said it.

        >>> Counts(2, 1, 1, 3).line()
        'succeeded 2 · failed 1 · in progress 1 · pending 3'
        """
        return (f"succeeded {self.succeeded} · failed {self.failed} · "
                f"in progress {self.in_progress} · pending {self.pending}")


@dataclass(frozen=True)
class View:
    """A run as the watcher shows it; ``run_id`` None: the scale set has no run yet."""

    scale_set: str = ""
    run_id: str | None = None
    status: str | None = None
    kind: str | None = None
    started_by: str | None = None
    target: str | None = None
    start_time: str | None = None
    now: str | None = None
    cancel_requested: bool = False
    error: tuple[str, str] | None = None
    """(code, message) of a faulted run."""
    batches: tuple[Batch, ...] = ()
    batches_total: int | None = None
    next_batch_at: str | None = None
    counts: Counts = field(default_factory=Counts)
    gates: tuple[Gate, ...] = ()
    instances: tuple[Instance, ...] = ()
    detailed: bool = True
    """False: read from ``rollingUpgrades/latest`` (status and counts only)."""

    @property
    def running(self) -> bool:
        return self.status in RUNNING

    @property
    def ended(self) -> bool:
        """The run has a final status (Completed, Faulted, Cancelled)."""
        return self.run_id is not None and self.status is not None and not self.running

    @property
    def batches_done(self) -> int:
        return sum(1 for b in self.batches if b.ended)

    @property
    def current_batch(self) -> Batch | None:
        """The batch under way (None between batches and once the run ended)."""
        last = self.batches[-1] if self.batches else None
        return last if last is not None and not last.ended and self.running else None

    def active(self) -> list[Instance]:
        """The instances the run works on now: the current batch's, and any rolling back
        (none once the run ended)."""
        if not self.running:
            return []
        batch = self.current_batch
        members = set(batch.instance_ids) if batch else set()
        return [i for i in self.instances
                if i.instance_id in members or i.state in ACTIVE_STATES]


# -- reading ---------------------------------------------------------------------------------

def _int(value: Any) -> int:
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0


def _float(value: Any) -> float | None:
    try:
        return None if value is None else float(value)
    except (TypeError, ValueError):
        return None


def _str(value: Any) -> str | None:
    return None if value is None or value == "" else str(value)


def _counts(progress: Any) -> Counts:
    p = progress if isinstance(progress, Mapping) else {}
    return Counts(_int(p.get("successfulInstanceCount")), _int(p.get("failedInstanceCount")),
                  _int(p.get("inProgressInstanceCount")), _int(p.get("pendingInstanceCount")))


def _error(error: Any) -> tuple[str, str] | None:
    if not isinstance(error, Mapping) or not error.get("code"):
        return None
    return str(error["code"]), str(error.get("message") or "")


def parse(rollout: Mapping[str, Any]) -> View:
    """The view of one ``GET …/rollout`` answer (fields missing or odd read as empty)."""
    scale_set = rollout.get("scaleSet") if isinstance(rollout.get("scaleSet"), Mapping) else {}
    run = rollout.get("run") if isinstance(rollout.get("run"), Mapping) else None
    instances = tuple(
        Instance(instance_id=str(i.get("instanceId")), state=str(i.get("state") or "pending"),
                 health=_str(i.get("health")), image_version=_str(i.get("imageVersion")),
                 batch=i.get("batch") if isinstance(i.get("batch"), int) else None,
                 seconds_left=_float(i.get("healthSecondsLeft")), reason=_str(i.get("reason")))
        for i in rollout.get("instances") or [] if isinstance(i, Mapping))
    name = str((scale_set or {}).get("name") or "")
    if run is None:
        return View(scale_set=name, now=_str(rollout.get("now")), instances=instances)
    batches = tuple(
        Batch(index=_int(b.get("index")),
              instance_ids=tuple(str(x) for x in b.get("instanceIds") or []),
              ended=b.get("end") is not None)
        for b in run.get("batches") or [] if isinstance(b, Mapping))
    gates = tuple(
        Gate(name=str(g.get("name")), value=_float(g.get("value")) or 0.0,
             threshold=_float(g.get("threshold")) or 0.0, ok=bool(g.get("ok", True)),
             unhealthy=g.get("unhealthy") if isinstance(g.get("unhealthy"), int) else None,
             total=g.get("total") if isinstance(g.get("total"), int) else None)
        for g in run.get("gates") or [] if isinstance(g, Mapping))
    total = run.get("batchesTotal")
    return View(
        scale_set=name, run_id=_str(run.get("runId")), status=_str(run.get("status")),
        kind=_str(run.get("kind")), started_by=_str(run.get("startedBy")),
        target=_str(run.get("targetImageVersion")), start_time=_str(run.get("startTime")),
        now=_str(rollout.get("now")), cancel_requested=bool(run.get("cancelRequested")),
        error=_error(run.get("error")), batches=batches,
        batches_total=total if isinstance(total, int) else None,
        next_batch_at=_str(run.get("nextBatchAt")), counts=_counts(run.get("progress")),
        gates=gates, instances=instances)


def from_latest(latest: Mapping[str, Any] | None, scale_set: str = "") -> View:
    """The view of a ``rollingUpgrades/latest`` answer (None: no run): status and counts.

    For servers without ``…/rollout`` (real ARM, older scaleset); the run has no id
    there, so its start time stands in for one.
    """
    props = (latest or {}).get("properties") or {}
    status = props.get("runningStatus") or {}
    code = _str(status.get("code"))
    if latest is None or code is None:
        return View(scale_set=scale_set, detailed=False)
    return View(scale_set=scale_set, run_id=_str(status.get("startTime")) or "latest",
                status=code, start_time=_str(status.get("startTime")),
                error=_error(props.get("error")), counts=_counts(props.get("progress")),
                detailed=False)


# -- words -----------------------------------------------------------------------------------

def seconds(value: float) -> str:
    """A duration as the display shows it.

    >>> seconds(4.2), seconds(75), seconds(3600 + 61)
    ('4 s', '1 m 15 s', '1 h 01 m')
    """
    whole = max(0, int(value + 0.5))
    if whole < 60:
        return f"{whole} s"
    if whole < 3600:
        return f"{whole // 60} m {whole % 60:02d} s"
    return f"{whole // 3600} h {whole % 3600 // 60:02d} m"


def percent(value: float) -> str:
    """A percentage, as short as it goes.

    >>> percent(12.5), percent(20.0), percent(33.333)
    ('12.5%', '20%', '33.33%')
    """
    return f"{round(value, 2):g}%"


def gate_text(gate: Gate) -> str:
    """A gate against its threshold, e.g. ``maxUnhealthyInstancePercent 12.5% (1/8) <= 20%
    ok``; a gate past its threshold says ``exceeded``."""
    share = f" ({gate.unhealthy}/{gate.total})" if gate.unhealthy is not None and gate.total \
        else ""
    relation = "<=" if gate.ok else ">"
    return (f"{gate.name} {percent(gate.value)}{share} {relation} {percent(gate.threshold)} "
            f"{'ok' if gate.ok else 'exceeded'}")


def instance_text(instance: Instance) -> str:
    """One instance's state in words, e.g. ``waiting for health (Initializing, 12 s left)``."""
    label = STATE_LABELS.get(instance.state, instance.state)
    if instance.state == "waitingForHealth":
        extra = [instance.health or "Unknown"]
        if instance.seconds_left is not None:
            extra.append(f"{seconds(instance.seconds_left)} left")
        return f"{label} ({', '.join(extra)})"
    if instance.state in ("failed", "rolledBack") and instance.reason:
        return f"{label}: {instance.reason}"
    if instance.state == "healthy" and instance.image_version:
        return f"{label} on {instance.image_version}"
    return label


def _ids(ids: Sequence[str]) -> str:
    shown = ", ".join(ids[:12])
    return shown + (f" and {len(ids) - 12} more" if len(ids) > 12 else "")


def _batch_of(view: View, batch: Batch) -> str:
    total = view.batches_total if view.batches_total else "?"
    return f"batch {batch.index + 1}/{total}"


def _run_words(view: View) -> str:
    if not view.detailed:
        return f"rolling upgrade started {view.start_time}" if view.start_time \
            else "rolling upgrade"
    who = ", ".join(x for x in (view.kind, f"started by {view.started_by}"
                               if view.started_by else None) if x)
    target = f" to image {view.target}" if view.target else ""
    return f"rolling upgrade {view.run_id}" + (f" ({who})" if who else "") + target


def summary(view: View) -> str:
    """How the run ended (or stands), one line: status, counts, error."""
    if view.run_id is None:
        return "no rolling upgrade yet"
    line = f"{view.status}: {view.counts.line()}"
    if view.error:
        line += f"; error ({view.error[0]}): {view.error[1]}"
    return line


def exit_code(view: View) -> int:
    """0 when the run Completed; 1 otherwise (Faulted, Cancelled, still running, none)."""
    return 0 if view.status == "Completed" else 1


# -- plain lines -----------------------------------------------------------------------------

def changes(before: View | None, after: View) -> list[str]:
    """What changed from ``before`` (None: nothing shown yet) to ``after``, a line each.

    The first view says which run it is and where it stands; later ones add a
    line per new batch, ended batch, instance state, count or status. Gate values
    are said when the run evaluates them, as a batch ends (and in the first and
    the last view): between, an instance under upgrade counts as unhealthy.
    A final status comes last.
    """
    if after.run_id is None:
        return ["no rolling upgrade yet"] if before is None or before.run_id is not None \
            else []
    lines: list[str] = []
    fresh = before is None or before.run_id != after.run_id
    prior = View() if fresh or before is None else before
    final: str | None = None
    if fresh:
        lines.append(f"{_run_words(after)}: {after.status}")
    elif after.status != prior.status:
        if after.ended:
            final = f"status: {after.status}"
        else:
            lines.append(f"status: {after.status}")
    if after.cancel_requested and not prior.cancel_requested and after.running:
        lines.append("cancel requested: the run stops after its current batch")
    ended_before = {b.index for b in prior.batches if b.ended}
    known = {b.index for b in prior.batches}
    for batch in after.batches:
        if batch.index not in known and not (fresh and batch.ended):
            lines.append(f"{_batch_of(after, batch)} started: instances "
                         f"{_ids(batch.instance_ids)}")
    old = {i.instance_id: i for i in prior.instances}
    for instance in after.instances:
        was = old.get(instance.instance_id)
        if was is not None and was.state == instance.state:
            continue
        if instance.state in QUIET_STATES or (fresh and instance.state in ("healthy",
                                                                            "protected")):
            continue
        lines.append(f"instance {instance.instance_id}: {instance_text(instance)}")
    settled = False
    if fresh and after.batches:
        lines.append(f"batches done: {after.batches_done}/{after.batches_total or '?'}")
    else:
        for batch in after.batches:
            if batch.ended and batch.index not in ended_before:
                lines.append(f"{_batch_of(after, batch)} done")
                settled = True
    if fresh or settled or final:
        lines.extend(f"gate {gate_text(gate)}" for gate in after.gates)
    if fresh or after.counts != prior.counts:
        lines.append(f"progress: {after.counts.line()}")
    if after.next_batch_at and after.next_batch_at != prior.next_batch_at and after.running \
            and after.current_batch is None:
        lines.append(f"next batch at {after.next_batch_at}")
    if final:
        lines.append(final)
    return lines


# -- the live display ------------------------------------------------------------------------

def _elapsed(view: View) -> str | None:
    if not view.start_time or not view.now:
        return None
    try:
        start = datetime.fromisoformat(view.start_time.replace("Z", "+00:00"))
        now = datetime.fromisoformat(view.now.replace("Z", "+00:00"))
    except ValueError:
        return None
    return seconds((now - start).total_seconds())


def renderable(view: View) -> RenderableType:
    """The live display of ``view`` (what a terminal shows, redrawn on every poll)."""
    if view.run_id is None:
        return Text(f"{view.scale_set or 'scale set'}: no rolling upgrade yet", style="dim")
    head = Text()
    head.append(f"{view.scale_set or 'scale set'} ", style="bold")
    head.append(view.status or "?", style=STATUS_STYLES.get(view.status or "", "bold"))
    details = [x for x in (
        f"run {view.run_id}" if view.detailed else None, view.kind,
        f"started by {view.started_by}" if view.started_by else None,
        f"to {view.target}" if view.target else None, _elapsed(view)) if x]
    if details:
        head.append("  " + " · ".join(details), style="dim")
    parts: list[RenderableType] = [head]
    if view.cancel_requested and view.running:
        parts.append(Text("cancel requested: the run stops after its current batch",
                          style="yellow"))
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column()
    if view.detailed:
        total = view.batches_total or max(len(view.batches), 1)
        bar = Table.grid(padding=(0, 1))
        bar.add_row(ProgressBar(total=total, completed=view.batches_done, width=30),
                    Text(f"{view.batches_done}/{total}"))
        grid.add_row("Batches", bar)
    counts = view.counts
    count_text = Text()
    for label, number, style in (("succeeded", counts.succeeded, "green"),
                                 ("failed", counts.failed, "red"),
                                 ("in progress", counts.in_progress, "blue"),
                                 ("pending", counts.pending, "dim")):
        if count_text:
            count_text.append(" · ")
        count_text.append(f"{label} {number}", style=style if number else "")
    grid.add_row("Instances", count_text)
    for gate in view.gates:
        grid.add_row("Gate", Text(gate_text(gate), style="" if gate.ok else "bold red"))
    if view.next_batch_at and view.running and view.current_batch is None:
        grid.add_row("Next batch", view.next_batch_at)
    if view.error:
        grid.add_row("Error", Text(f"({view.error[0]}) {view.error[1]}", style="red"))
    parts.append(grid)
    active = view.active()
    if active:
        batch = view.current_batch
        title = f"{_batch_of(view, batch)}" if batch else "in progress"
        table = Table(title=title, title_justify="left", expand=False, box=box.SIMPLE_HEAD,
                      pad_edge=False)
        for header in ("Instance", "State", "Health", "Image", "Health wait left"):
            table.add_column(header, no_wrap=True)
        for instance in active:
            left = seconds(instance.seconds_left) if instance.seconds_left is not None \
                and instance.state == "waitingForHealth" else ""
            table.add_row(instance.instance_id,
                          Text(STATE_LABELS.get(instance.state, instance.state),
                               style=STATE_STYLES.get(instance.state, "")),
                          instance.health or "", instance.image_version or "", left)
        parts.append(table)
    return Group(*parts)
