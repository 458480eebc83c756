"""``scaleset simulate --plot`` as a user runs it: the installed console script writes a PNG or
a self-contained HTML page, and what they show is what ``--json`` reports."""

from __future__ import annotations

import base64
import io
import json
import re
import struct
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib import image as mpimg

from tests.e2e.test_cli_simulate import EXAMPLES, scaleset

BAD_IMAGE = EXAMPLES / "bad-image-50.json"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
ROLLED_BACK_COLOUR = (0xCC, 0x79, 0xA7)  # sim.plot.COLOURS["rolledBack"]
HEALTHY_COLOUR = (0x00, 0x9E, 0x73)


def plotted(tmp_path: Path, name: str, *args: str | Path) -> tuple[dict[str, Any], Path]:
    """Run ``simulate ... --plot tmp_path/name --json``: the summary and the plot's path."""
    out = tmp_path / name
    done = scaleset("simulate", *args, "--plot", out, "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert f"Plot written to {out}" in done.stderr
    summary: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return summary, out


def png_size(data: bytes) -> tuple[int, int]:
    """Width and height from the IHDR chunk, which must come first."""
    assert data[:8] == PNG_SIGNATURE
    length, kind = struct.unpack(">I4s", data[8:16])
    assert (length, kind) == (13, b"IHDR")
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def has_colour(path_or_bytes: Path | bytes, rgb: tuple[int, int, int]) -> bool:
    """Whether more than a hundred pixels of the PNG are ``rgb``."""
    source = path_or_bytes if isinstance(path_or_bytes, Path) else io.BytesIO(path_or_bytes)
    pixels = np.asarray(mpimg.imread(source, format="png"))[..., :3]
    target = np.array(rgb) / 255
    return bool((np.abs(pixels - target) < 2 / 255).all(axis=-1).sum() > 100)


def page_data(page: str) -> dict[str, Any]:
    found = re.search(r'<script type="application/json" id="timeline-data">(.*?)</script>',
                      page, re.S)
    assert found, "the page carries the plotted series"
    data: dict[str, Any] = json.loads(found.group(1))
    return data


def test_the_bad_image_example_draws_a_png_showing_its_rollbacks(tmp_path: Path) -> None:
    summary, out = plotted(tmp_path, "out.png", BAD_IMAGE)

    data = out.read_bytes()
    width, height = png_size(data)
    assert 800 <= width <= 3000 and 500 <= height <= 3000, (width, height)
    assert mpimg.imread(out).shape[:2] == (height, width)  # it decodes, whole
    assert summary["rolledBackInstanceCount"] > 0
    assert has_colour(out, ROLLED_BACK_COLOUR)  # the rollbacks are there to see
    assert has_colour(out, HEALTHY_COLOUR)


def test_plotting_does_not_change_the_simulation(tmp_path: Path) -> None:
    done = scaleset("simulate", BAD_IMAGE, "--json")
    assert done.returncode == 0, done.stderr

    summary, _ = plotted(tmp_path, "out.png", BAD_IMAGE)

    assert summary == json.loads(done.stdout.strip().splitlines()[-1])


def test_a_good_image_run_draws_no_rollback(tmp_path: Path) -> None:
    summary, out = plotted(tmp_path, "good.png", "--good-image")

    assert summary["status"] == "Completed"
    png_size(out.read_bytes())
    assert has_colour(out, HEALTHY_COLOUR)
    assert not has_colour(out, ROLLED_BACK_COLOUR)


def test_the_html_page_is_self_contained_and_embeds_the_image(tmp_path: Path) -> None:
    summary, out = plotted(tmp_path, "good.html", "--good-image")

    page = out.read_text(encoding="utf-8")
    assert "http://" not in page and "https://" not in page
    sources = re.findall(r'\b(?:src|href)="([^"]*)"', page)
    assert sources and all(s.startswith("data:image/png;base64,") for s in sources)
    image = base64.b64decode(sources[0].removeprefix("data:image/png;base64,"))
    assert png_size(image)[0] >= 800
    assert has_colour(image, HEALTHY_COLOUR)
    assert "<link" not in page and "@import" not in page
    assert summary["status"] in page


def test_the_html_series_match_what_the_simulation_reports(tmp_path: Path) -> None:
    summary, out = plotted(tmp_path, "good.html", "--good-image")

    data = page_data(out.read_text(encoding="utf-8"))
    final = Counter(data["finalStates"].values())
    assert final == {"healthy": summary["successfulInstanceCount"]} == {"healthy": 10}
    assert data["endSeconds"] == summary["makespanSeconds"]
    # A good image: only the batch being upgraded is ever unhealthy.
    largest = max(len(b["instances"]) for b in summary["batches"])
    assert data["minHealthyFraction"] == 1 - largest / summary["instances"]
    assert data["samples"][-1]["healthyFraction"] == 1.0
    assert data["samples"][-1]["upgradedHealthyFraction"] == 1.0


def test_the_bad_image_series_show_the_gate_that_faulted_the_run(tmp_path: Path) -> None:
    summary, out = plotted(tmp_path, "bad.html", BAD_IMAGE)

    page = out.read_text(encoding="utf-8")
    data = page_data(page)
    final = Counter(data["finalStates"].values())
    assert final["healthy"] == summary["successfulInstanceCount"]
    assert final["rolledBack"] == summary["rolledBackInstanceCount"]
    assert final["pending"] == summary["pendingInstanceCount"]
    assert final["failed"] + final["rollingBack"] + final["rolledBack"] == summary[
        "failedInstanceCount"]
    assert sum(final.values()) == summary["instances"] == 50
    # The run faulted on "N of M upgraded instances ... unhealthy": the plotted series ends there.
    assert summary["error"]["code"] == (
        "MaxUnhealthyUpgradedInstancePercentExceededInRollingUpgrade")
    counted = re.match(r"(\d+) of (\d+) upgraded", summary["error"]["message"])
    assert counted, summary["error"]["message"]
    unhealthy, upgraded = int(counted.group(1)), int(counted.group(2))
    assert data["samples"][-1]["upgradedHealthyFraction"] == 1 - unhealthy / upgraded
    assert data["samples"][-1]["upgradedHealthyFraction"] < 1 - data[
        "maxUnhealthyUpgradedInstancePercent"] / 100
    assert data["maxUnhealthyInstancePercent"] == 20
    assert summary["error"]["code"] in page


def test_another_suffix_is_a_usage_error_naming_plot(tmp_path: Path) -> None:
    done = scaleset("simulate", "--plot", tmp_path / "out.svg", cwd=tmp_path)

    assert done.returncode == 2
    assert "--plot" in done.stderr
    assert ".png" in done.stderr and ".html" in done.stderr
    assert "Status:" not in done.stdout  # refused before simulating
    assert not (tmp_path / "out.svg").exists()


def test_an_unwritable_plot_path_fails_with_the_reason(tmp_path: Path) -> None:
    done = scaleset("simulate", "--plot", tmp_path / "missing" / "out.png", cwd=tmp_path)

    assert done.returncode == 1
    assert "cannot write" in done.stderr
