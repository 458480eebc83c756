"""The README's quickstart, run as written: command by command against a fresh server.

The block is the ``sh`` fence right after ``<!-- quickstart -->`` in README.md.
``scaleset serve`` runs as the README's "Run the control plane" says (the
default process driver, real instances), on a free port and a temporary data
directory; it writes the client config the commands then read. Every command
must exit 0, and the quickstart ends with the automatic run Completed.
A transcript goes to ``quickstart-transcript.txt`` in the test's directory
and to stdout (``pytest -s`` shows it).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.e2e.server import running_server

ROOT = Path(__file__).resolve().parents[2]
MARKER = "<!-- quickstart -->"


def quickstart_commands(readme: str) -> list[str]:
    """The commands of the quickstart block, continuation lines joined, comments dropped."""
    after = readme.split(MARKER, 1)
    assert len(after) == 2, f"README.md has no {MARKER} block"
    fence = re.match(r"\s*```sh\n(.*?)\n```", after[1], re.S)
    assert fence is not None, f"no ```sh block right after {MARKER}"
    joined = fence.group(1).replace("\\\n", " ")
    commands = []
    for line in joined.splitlines():
        words = shlex.split(line, comments=True)
        if words:
            commands.append(shlex.join(words))
    return commands


def test_the_quickstart_block_is_found_and_holds_only_scaleset_commands() -> None:
    commands = quickstart_commands((ROOT / "README.md").read_text())
    assert commands, "the quickstart is empty"
    assert all(shlex.split(c)[0] == "scaleset" for c in commands), commands
    assert not any("..." in c for c in commands), "a command that cannot be run as written"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the process driver is Linux")
def test_the_readme_quickstart_runs_as_written_and_ends_completed(tmp_path: Path) -> None:
    commands = quickstart_commands((ROOT / "README.md").read_text())
    scaleset = Path(sys.executable).with_name("scaleset")
    transcript: list[str] = []
    with running_server(tmp_path, driver="process", bootstrap_token=None,
                        health_timeout="60") as server:
        env = {**os.environ, "SCALESET_CONFIG": str(tmp_path / "client-config.json"),
               "COLUMNS": "100", "NO_COLOR": "1"}
        for name in ("SCALESET_SERVER", "SCALESET_ENDPOINT", "SCALESET_TOKEN",
                     "SCALESET_CA_FILE", "SCALESET_PROFILE"):
            env.pop(name, None)  # only what serve wrote to the client config
        for command in commands:
            words = shlex.split(command)
            started = time.monotonic()
            done = subprocess.run([str(scaleset), *words[1:]], cwd=ROOT, env=env,
                                  capture_output=True, text=True, timeout=300)
            took = time.monotonic() - started
            transcript.append(f"$ {command}    # exit {done.returncode}, {took:.1f} s")
            transcript.extend(line for line in (done.stdout + done.stderr).splitlines()
                              if line.strip())
            assert done.returncode == 0, "\n".join(transcript)
        with server.http() as http:
            vmss = ("/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg/"
                    "providers/Microsoft.Compute/virtualMachineScaleSets/web")
            history = http.get(f"{vmss}/osUpgradeHistory",
                               params={"api-version": "2026-04-01"}).json()["value"]
    text = "\n".join(transcript)
    (tmp_path / "quickstart-transcript.txt").write_text(text + "\n")
    print(text)
    newest = history[0]["properties"]
    assert newest["runningStatus"]["code"] == "Completed", json.dumps(history, indent=1)
    assert newest["startedBy"] == "Platform"
    assert newest["targetImageReference"]["version"] == "1.1.0"
    assert newest["progress"]["failedInstanceCount"] == 0
