"""``scaleset simulate --plot``: the simulated rollout drawn, as a PNG or one HTML file.

Two panels share the virtual-time axis. Above, one row per instance coloured by
its state in the run (hatched while its health is not Healthy), with the
batches' starts and ends marked; below, the healthy fraction of the scale set
and of the upgraded instances, against the two gates as horizontal lines, and
the run's end with its status. Everything drawn comes from the samples the
simulation recorded (``sim.timeline``), never from a second derivation.

matplotlib is imported inside the functions, on its Agg canvas (no display,
no network), so importing this module, and ``scaleset --help``, stays fast.
The palette is Okabe and Ito's, which reads with the common colour-vision
deficiencies; the hatching and the line styles do not depend on colour at all.
"""

from __future__ import annotations

import base64
import html
import io
import json
from collections.abc import Mapping
from pathlib import Path
from string import Template
from typing import TYPE_CHECKING

from scaleset.sim.runner import SimulationReport
from scaleset.sim.timeline import STATE_MEANINGS, STATES, Timeline

if TYPE_CHECKING:
    from matplotlib.artist import Artist
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

SUFFIXES = (".png", ".html")
"""What ``--plot`` can write, by the file name's suffix."""

COLOURS: Mapping[str, str] = {
    "pending": "#DDDDDD",
    "upgrading": "#56B4E9",
    "waitingForHealth": "#F0E442",
    "healthy": "#009E73",
    "rollingBack": "#E69F00",
    "rolledBack": "#CC79A7",
    "failed": "#D55E00",
    "protected": "#000000",
    "skipped": "#888888",
}
_WHOLE_SET = "#0072B2"  # the two series and their gates: blue and vermillion, solid and dashed
_UPGRADED = "#D55E00"
_MAX_LABELLED_ROWS = 60
_MAX_LABELLED_BATCHES = 20
_MAX_HATCHED_ROWS = 150

_PAGE = Template("""\
<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy"
      content="default-src 'none'; img-src data:; style-src 'unsafe-inline'">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>$title</title>
<style>
body { font-family: system-ui, sans-serif; margin: 1.5rem; color: #111; }
img { max-width: 100%; height: auto; border: 1px solid #ccc; }
table { border-collapse: collapse; margin: 0.5rem 0 1.5rem; }
th, td { text-align: left; padding: 0.2rem 0.6rem; border-bottom: 1px solid #ddd; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
.swatch { display: inline-block; width: 1.4em; height: 1em;
           border: 1px solid #333; vertical-align: middle; }
</style>
</head>
<body>
<h1>$title</h1>
<p>Status: <strong>$status</strong> after $end
($counts); lowest healthy fraction
$lowest.</p>
$error
<img src="data:image/png;base64,$image" alt="$alt">
<h2>States</h2>
<table>
<thead><tr><th></th><th scope="col">state</th><th scope="col">meaning</th>
<th scope="col">instances at the end</th></tr></thead>
<tbody>
$legend
</tbody>
</table>
<h2>Batches</h2>
<table>
<thead><tr><th scope="col">#</th><th scope="col">start</th><th scope="col">end</th>
<th scope="col">size</th><th scope="col">instances</th></tr></thead>
<tbody>
$batches
</tbody>
</table>
<script type="application/json" id="timeline-data">$data</script>
</body>
</html>
""")


def clock(seconds: float) -> str:
    """Virtual seconds as h:mm:ss.

    >>> clock(1680)
    '0:28:00'
    """
    total = round(seconds)
    return f"{total // 3600:d}:{total % 3600 // 60:02d}:{total % 60:02d}"


def _title(report: SimulationReport) -> str:
    return (f"Rolling OS upgrade to {report.target_version or 'the latest model'}, started by "
            f"{report.started_by}: {report.instances} instances, {len(report.batches)} batches "
            f"(seed {report.seed})")


def _outcome(report: SimulationReport, timeline: Timeline) -> str:
    line = f"{report.status} at {clock(timeline.end_seconds)}"
    if report.error:
        line += f": {report.error['code']}"
    return line


def figure(report: SimulationReport) -> Figure:
    """The two panels of ``report``'s run (which must have been simulated with
    ``record_timeline=True``)."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter, MultipleLocator

    timeline = report.timeline
    if timeline is None:
        raise ValueError("the simulation recorded no timeline (record_timeline=True)")
    rows = timeline.instance_ids()
    # Room past the run's end to see each instance's final state (a minute at least, for a
    # run that faulted before its first batch).
    right = max(timeline.end_seconds * 1.04, 60.0)
    height = min(16.0, 4.5 + 0.16 * len(rows))
    fig = Figure(figsize=(13, height), dpi=100, layout="constrained")
    top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=[max(2.0, height - 3.2), 2.6])
    fig.suptitle(_title(report), fontsize=12)
    _instances(top, report, timeline, rows, right)
    _health(bottom, report, timeline, right)
    for b in report.batches:
        for ax in (top, bottom):
            ax.axvline(b.start_seconds, color="#444444", linewidth=0.9)
            if b.end_seconds is not None:
                ax.axvline(b.end_seconds, color="#444444", linewidth=0.9, linestyle=":")
        if len(report.batches) <= _MAX_LABELLED_BATCHES:
            top.annotate(f"batch {b.index + 1}", (b.start_seconds, 1.0),
                         xycoords=("data", "axes fraction"), xytext=(3, 3),
                         textcoords="offset points", fontsize=8, va="bottom")
    for ax in (top, bottom):
        ax.axvline(timeline.end_seconds, color="black", linewidth=1.6)
    bottom.set_xlim(0, right)
    bottom.xaxis.set_major_locator(MultipleLocator(tick_step(right)))
    bottom.xaxis.set_major_formatter(FuncFormatter(lambda x, _pos: clock(x)))
    bottom.set_xlabel("virtual time since the run started (h:mm:ss)")
    return fig


def _instances(ax: Axes, report: SimulationReport, timeline: Timeline, rows: list[str],
               right: float) -> None:
    """The upper panel: a row per instance, a rectangle per stretch in one state."""
    from matplotlib.collections import PolyCollection
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    # One collection of rectangles per state (and one for the hatching): a thousand rows
    # of bars as patches would take seconds. Past _MAX_HATCHED_ROWS a row is a pixel or
    # two high: rows touch, and hatching would only be noise.
    dense = len(rows) > _MAX_HATCHED_ROWS
    half = 0.5 if dense else 0.4
    boxes: dict[str, list[list[tuple[float, float]]]] = {}
    unhealthy: list[list[tuple[float, float]]] = []
    for y, iid in enumerate(rows):
        segments = timeline.segments(iid)
        for index, seg in enumerate(segments):
            end = right if index == len(segments) - 1 else seg.end  # the final state, past the end
            box = [(seg.start, y - half), (end, y - half), (end, y + half), (seg.start, y + half)]
            boxes.setdefault(seg.state, []).append(box)
            if not seg.healthy and not dense:
                unhealthy.append(box)
    for state in STATES:
        if state in boxes:
            ax.add_collection(PolyCollection(boxes[state], facecolors=COLOURS[state],
                                             linewidths=0, antialiased=not dense))
    if unhealthy:
        ax.add_collection(PolyCollection(unhealthy, facecolors="none", hatch="////",
                                         edgecolors="#333333", linewidths=0))
    ax.set_ylim(len(rows) - 0.5, -0.5)  # the first batch at the top
    if len(rows) <= _MAX_LABELLED_ROWS:
        ax.set_yticks(range(len(rows)), rows, fontsize=7 if len(rows) > 30 else 9)
    else:
        step = -(-len(rows) // _MAX_LABELLED_ROWS)
        ax.set_yticks(range(0, len(rows), step), rows[::step], fontsize=7)
    ax.set_ylabel("instance (in batch order)")
    if not rows:
        ax.text(0.5, 0.5, "no instances", transform=ax.transAxes, ha="center")

    handles: list[Artist] = [
        Patch(facecolor=COLOURS[s], edgecolor="#333333", linewidth=0.5, label=s)
        for s in STATES if s in boxes]
    if unhealthy:
        handles.append(Patch(facecolor="white", edgecolor="#333333", hatch="////",
                             label="health not Healthy"))
    if report.batches:
        handles += [Line2D([], [], color="#444444", linewidth=0.9, label="batch start"),
                    Line2D([], [], color="#444444", linewidth=0.9, linestyle=":",
                           label="batch end")]
    handles.append(Line2D([], [], color="black", linewidth=1.6, label="run end"))
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.005, 1.0), fontsize=9,
              title="state in the run", title_fontsize=9, frameon=False)


def _health(ax: Axes, report: SimulationReport, timeline: Timeline, right: float) -> None:
    """The lower panel: the healthy fractions against the gates, and how the run ended."""
    from matplotlib.ticker import PercentFormatter

    if timeline.samples:
        # A sample holds until the next pass: a step plot, extended to the right edge.
        xs = [*(s.seconds for s in timeline.samples), right]
        whole = [s.healthy_fraction for s in timeline.samples]
        ax.step(xs, [*whole, whole[-1]], where="post", color=_WHOLE_SET, linewidth=2,
                label="healthy, whole scale set")
        upgraded = [s.upgraded_healthy_fraction for s in timeline.samples]
        if timeline.max_unhealthy_upgraded_percent is not None and any(
                u is not None for u in upgraded):
            ys = [float("nan") if u is None else u for u in upgraded]  # a gap: none upgraded
            ax.step(xs, [*ys, ys[-1]], where="post", color=_UPGRADED, linewidth=2,
                    linestyle="--", label="healthy, upgraded instances")
    _gates(ax, timeline)
    ax.set_ylim(-0.02, 1.08)
    ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    ax.set_ylabel("healthy instances")
    ax.grid(axis="y", color="#DDDDDD", linewidth=0.6)
    ax.legend(loc="upper left", bbox_to_anchor=(1.005, 1.0), fontsize=9, frameon=False)
    late = timeline.end_seconds > right / 2  # the label inside the axes, beside the end line
    ax.annotate(_outcome(report, timeline), (timeline.end_seconds, 0.04),
                xycoords=("data", "axes fraction"), xytext=(-4 if late else 4, 0),
                textcoords="offset points", ha="right" if late else "left", fontsize=9,
                fontweight="bold", bbox={"boxstyle": "round", "facecolor": "white",
                                         "edgecolor": "#333333", "linewidth": 0.6})


def _gates(ax: Axes, timeline: Timeline) -> None:
    """The gates as horizontal lines at the healthy fraction each one allows."""
    whole = timeline.max_unhealthy_percent
    upgraded = timeline.max_unhealthy_upgraded_percent
    if upgraded == whole:  # one line, so neither hides the other
        ax.axhline(1 - whole / 100, color="#333333", linewidth=1.2, linestyle=":",
                   label=f"gates: maxUnhealthyInstancePercent and\n"
                         f"maxUnhealthyUpgradedInstancePercent {whole}% "
                         f"(at least {100 - whole}% healthy)")
        return
    ax.axhline(1 - whole / 100, color=_WHOLE_SET, linewidth=1.2, linestyle=":",
               label=f"gate: maxUnhealthyInstancePercent {whole}%\n"
                     f"(at least {100 - whole}% of the scale set healthy)")
    if upgraded is not None:
        ax.axhline(1 - upgraded / 100, color=_UPGRADED, linewidth=1.2, linestyle="-.",
                   label=f"gate: maxUnhealthyUpgradedInstancePercent {upgraded}%\n"
                         f"(at least {100 - upgraded}% of the upgraded healthy)")


def tick_step(span: float) -> float:
    """A round time step (seconds) that puts at most eight ticks on ``span`` (h:mm:ss labels
    are wide).

    >>> tick_step(1750), tick_step(60), tick_step(86400)
    (300, 10, 10800)
    """
    for step in (1, 2, 5, 10, 15, 30, 60, 120, 180, 300, 600, 900, 1800, 3600, 7200, 10800,
                 21600, 43200):
        if span / step <= 8:
            return step
    return 86400 * (int(span // (86400 * 8)) + 1)


def png_bytes(report: SimulationReport, *, dpi: int = 100) -> bytes:
    """``report``'s figure as PNG bytes."""
    buffer = io.BytesIO()
    # No Software/date metadata: the same scenario gives the same file.
    figure(report).savefig(buffer, format="png", dpi=dpi, metadata={"Software": None})
    return buffer.getvalue()


def html_page(report: SimulationReport) -> str:
    """One self-contained page: the figure inline, the legend, the batches and the series
    as JSON (no external URL; the page's policy refuses to load anything)."""
    timeline = report.timeline
    if timeline is None:
        raise ValueError("the simulation recorded no timeline (record_timeline=True)")
    image = base64.b64encode(png_bytes(report, dpi=150)).decode("ascii")
    e = html.escape
    final = timeline.final_states()
    counts = {s: sum(1 for v in final.values() if v == s) for s in STATES}
    legend = "\n".join(
        f'<tr><td><span class="swatch" style="background:{COLOURS[s]}"></span></td>'
        f"<th scope=\"row\">{e(s)}</th><td>{e(STATE_MEANINGS[s])}</td>"
        f'<td class="n">{counts[s]}</td></tr>' for s in STATES)
    batches = "\n".join(
        f'<tr><td class="n">{b.index + 1}</td><td class="n">{clock(b.start_seconds)}</td>'
        f'<td class="n">{"-" if b.end_seconds is None else clock(b.end_seconds)}</td>'
        f'<td class="n">{len(b.instances)}</td><td>{e(", ".join(b.instances))}</td></tr>'
        for b in report.batches) or '<tr><td colspan="5">no batch started</td></tr>'
    error = (f"<p><strong>{e(report.error['code'])}</strong>: {e(report.error['message'])}</p>"
             if report.error else "")
    # "<" escaped so no value can close the script element.
    data = json.dumps(timeline.to_json(), sort_keys=True).replace("<", "\\u003c")
    alt = (f"Timeline of {report.instances} instances by state over virtual time, and the "
           f"healthy fraction against the gates; {_outcome(report, timeline)}")
    return _PAGE.substitute(
        title=e(_title(report)), status=e(report.status), end=clock(timeline.end_seconds),
        counts=(f"{report.successful} succeeded, {report.failed} failed "
                f"({report.rolled_back} of them rolled back), {report.pending} pending"),
        lowest=f"{timeline.min_healthy_fraction():.0%}", error=error, image=image, alt=e(alt),
        legend=legend, batches=batches, data=data)


def write(report: SimulationReport, path: Path) -> None:
    """Write ``report``'s plot to ``path``: a PNG or an HTML page, by its suffix."""
    suffix = path.suffix.lower()
    if suffix == ".png":
        path.write_bytes(png_bytes(report))
    elif suffix == ".html":
        path.write_text(html_page(report), encoding="utf-8")
    else:
        raise ValueError(f"{path}: the plot must be one of {', '.join(SUFFIXES)}")
