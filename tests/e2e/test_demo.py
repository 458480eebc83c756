"""``scaleset demo`` (what ``make demo`` runs): real instances, an upgrade, a rollback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_demo_tells_its_story_and_leaves_nothing_running() -> None:
    scaleset = Path(sys.executable).with_name("scaleset")
    result = subprocess.run([str(scaleset), "demo", "--instances", "4"], cwd=ROOT,
                            capture_output=True, text=True, timeout=120)
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    assert "batch 1: instances" in out and "batch 4: instances" in out  # 25% of 4 per batch
    assert "Completed" in out and "Faulted" in out
    assert "rolled back to 1.1.0" in out
    assert "all 4 files intact" in out
    # The demo itself checks /proc for instance processes after the control plane stopped.
    assert "every instance stopped with the control plane" in out
