"""``scaleset simulate``: a what-if rollout on simulated instances, batch by batch."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from scaleset.cli import jsonpaths
from scaleset.errors import ScalesetError
from scaleset.sim import plot as plots  # imports matplotlib only when it draws
from scaleset.sim.runner import SimulationReport
from scaleset.sim.runner import simulate as run_scenario
from scaleset.sim.scenario import Scenario


_POLICY = ("scaleSet", "properties", "upgradePolicy", "rollingUpgradePolicy")


def _load(path: Path | None) -> dict[str, Any]:
    if path is None:
        return {}
    try:
        data = json.loads(path.read_text())
    except OSError as exc:
        raise typer.BadParameter(f"cannot read {path}: {exc.strerror}") from exc
    except json.JSONDecodeError as exc:
        raise typer.BadParameter(f"{path} is not JSON: {exc.msg} at line {exc.lineno}") from exc
    if not isinstance(data, dict):
        raise typer.BadParameter(f"{path} must hold a JSON object")
    return data


def _explain(exc: ValidationError) -> str:
    lines = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "(scenario)"
        lines.append(f"  {where}: {err['msg']}")
    return "invalid scenario:\n" + "\n".join(lines)


def _plot_path(value: Path | None) -> Path | None:
    # Refused before the run, so a typo does not cost a simulation.
    if value is not None and value.suffix.lower() not in plots.SUFFIXES:
        raise typer.BadParameter(
            f"{value} must end in {' or '.join(plots.SUFFIXES)} (a PNG image, or an HTML page "
            "with the image inside)", param_hint="'--plot'")
    return value


def simulate(
    scenario: Annotated[Path | None, typer.Argument(
        help="A JSON scenario file (scaleSet, seed, startedBy, timings, faults, "
             "rolloutTiming).",
        exists=False, dir_okay=False)] = None,
    as_json: Annotated[bool, typer.Option("--json", help="End with one JSON summary line.")]
    = False,
    instances: Annotated[int | None, typer.Option(help="Instances in the scale set.", min=0)]
    = None,
    seed: Annotated[int | None, typer.Option(help="Seed of the fault draws.")] = None,
    started_by: Annotated[str | None, typer.Option(
        "--started-by",
        help="Platform (automatic, rolls back) or User (manual, never rolls back).")]
    = None,
    never_healthy: Annotated[float | None, typer.Option(
        "--never-healthy", help="Probability an upgraded instance never becomes healthy.")] = None,
    reimage_fail: Annotated[float | None, typer.Option(
        "--reimage-fail", help="Probability an OS disk replacement fails.")] = None,
    late_healthy: Annotated[float | None, typer.Option(
        "--late-healthy", help="Probability an upgraded instance becomes healthy late.")] = None,
    flap: Annotated[float | None, typer.Option(
        "--flap", help="Probability an upgraded instance flaps.")] = None,
    extension_fail: Annotated[float | None, typer.Option(
        "--extension-fail", help="Probability an extension fails to provision.")] = None,
    bad_image: Annotated[bool | None, typer.Option(
        "--bad-image/--good-image", help="The target image never comes up healthy.")] = None,
    health_timeout: Annotated[str | None, typer.Option(
        "--health-timeout", help="Health wait: seconds or ISO 8601 (default PT5M).")] = None,
    max_batch_percent: Annotated[int | None, typer.Option(
        "--max-batch-percent", help="maxBatchInstancePercent (rolling policy)")] = None,
    max_unhealthy_percent: Annotated[int | None, typer.Option(
        "--max-unhealthy-percent", help="maxUnhealthyInstancePercent (rolling policy)")]
    = None,
    max_unhealthy_upgraded_percent: Annotated[int | None, typer.Option(
        "--max-unhealthy-upgraded-percent",
        help="maxUnhealthyUpgradedInstancePercent (rolling policy)")] = None,
    pause: Annotated[str | None, typer.Option(
        "--pause", help="pauseTimeBetweenBatches (rolling policy), ISO 8601.")] = None,
    prioritize_unhealthy: Annotated[bool | None, typer.Option(
        "--prioritize-unhealthy/--no-prioritize-unhealthy")] = None,
    cross_zone: Annotated[bool | None, typer.Option("--cross-zone/--no-cross-zone")] = None,
    zones: Annotated[str | None, typer.Option(help="Comma-separated zones, e.g. 1,2,3.")] = None,
    database: Annotated[str, typer.Option(
        help="Database URL to persist the run in (default: SQLite in memory).")] = "sqlite://",
    plot: Annotated[Path | None, typer.Option(
        "--plot", metavar="FILE.png|FILE.html", callback=_plot_path, dir_okay=False,
        help="Also draw the run: instances by state over time, and the healthy fraction "
             "against the gates (.png, or a self-contained .html page).")] = None,
) -> None:
    """Simulate one rolling OS image upgrade and print what happened, batch by batch."""
    raw = _load(scenario)
    overrides: list[tuple[tuple[str, ...], Any]] = [
        (("scaleSet", "sku", "capacity"), instances),
        (("seed",), seed),
        (("startedBy",), started_by),
        (("healthTimeout",), health_timeout),
        (("faults", "neverHealthyProbability"), never_healthy),
        (("faults", "reimageFailProbability"), reimage_fail),
        (("faults", "lateHealthyProbability"), late_healthy),
        (("faults", "flapProbability"), flap),
        (("faults", "extensionFailProbability"), extension_fail),
        (("faults", "badImage"), bad_image),
        ((*_POLICY, "maxBatchInstancePercent"), max_batch_percent),
        ((*_POLICY, "maxUnhealthyInstancePercent"), max_unhealthy_percent),
        ((*_POLICY, "maxUnhealthyUpgradedInstancePercent"), max_unhealthy_upgraded_percent),
        ((*_POLICY, "pauseTimeBetweenBatches"), pause),
        ((*_POLICY, "prioritizeUnhealthyInstances"), prioritize_unhealthy),
        ((*_POLICY, "enableCrossZoneUpgrade"), cross_zone),
        (("scaleSet", "zones"), [z.strip() for z in zones.split(",") if z.strip()]
         if zones else None),
    ]
    for path, value in overrides:
        if value is not None:
            jsonpaths.set_path(raw, path, value)
    err = Console(stderr=True)
    try:
        parsed = Scenario.model_validate(raw)
        parsed.build_scale_set()
    except ValidationError as exc:
        err.print(f"[red]error:[/red] {_explain(exc)}", highlight=False)
        raise typer.Exit(2) from exc
    try:
        report = run_scenario(parsed, database_url=database, record_timeline=plot is not None)
    except ScalesetError as exc:
        err.print(f"[red]error ({exc.code}):[/red] {exc.message}", highlight=False)
        raise typer.Exit(2) from exc
    if plot is not None:
        try:
            plots.write(report, plot)
        except OSError as exc:
            err.print(f"[red]error:[/red] cannot write {plot}: {exc.strerror}", highlight=False)
            raise typer.Exit(1) from exc
        # stderr: with --json the summary stays the last line of stdout.
        err.print(f"Plot written to {plot}", highlight=False)
    if as_json:
        print(json.dumps(report.to_json()))
        return
    _print_report(Console(), report)


def _clock(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    total = int(seconds)
    return f"{total // 3600:d}:{total % 3600 // 60:02d}:{total % 60:02d}"


def _ids(ids: tuple[str, ...], limit: int = 12) -> str:
    shown = ", ".join(ids[:limit])
    return shown + (f", … (+{len(ids) - limit})" if len(ids) > limit else "")


def _print_report(console: Console, r: SimulationReport) -> None:
    console.print(
        f"[bold]Rolling OS upgrade to {r.target_version}[/bold], started by {r.started_by}: "
        f"{r.eligible} of {r.instances} instances eligible (seed {r.seed})"
    )
    if r.trigger_delay_seconds:
        console.print(f"The trigger started it {_clock(r.trigger_delay_seconds)} after the "
                      "target was published (rolloutTiming).", highlight=False)
    table = Table(title="Batches", show_lines=False)
    for col in ("#", "start", "end", "size", "instances", "ok", "failed", "rolled back"):
        table.add_column(col, justify="right" if col not in ("instances",) else "left")
    for b in r.batches:
        table.add_row(str(b.index + 1), _clock(b.start_seconds), _clock(b.end_seconds),
                      str(len(b.instances)), _ids(b.instances), str(b.succeeded),
                      str(b.failed), str(b.rolled_back))
    console.print(table)
    # Instance events, grouped: a bad image fails a whole batch with one reason.
    groups: dict[tuple[str, str], list[str]] = {}
    for e in r.events:
        if e["kind"] in ("InstanceFailed", "InstanceRolledBack", "InstanceRollbackFailed",
                         "RollingBack", "InstanceLeftRun"):
            groups.setdefault((e["kind"], e["message"]), []).append(e["instance_id"] or "")
    for (kind, message), ids in groups.items():
        who = f" ({len(ids)}: {_ids(tuple(i for i in ids if i), 8)})" if any(ids) else ""
        console.print(f"  {kind}{who}: {message}", highlight=False)
    colour = {"Completed": "green", "Faulted": "red", "Cancelled": "yellow"}.get(r.status, "white")
    console.print(f"Status: [bold {colour}]{r.status}[/bold {colour}]")
    if r.error:
        console.print(f"Error: {r.error['code']}: {r.error['message']}", highlight=False)
    console.print(
        f"Makespan {_clock(r.makespan_seconds)} ({r.makespan_seconds:.0f} s; lower bound "
        f"{r.lower_bound_seconds:.0f} s) · batches {len(r.batches)} · successes {r.successful} · "
        f"failures {r.failed} · rollbacks {r.rolled_back} · pending {r.pending}",
        highlight=False,
    )
