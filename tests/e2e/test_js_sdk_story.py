"""An operator's whole story with the Azure SDK for JavaScript, unmodified, on a live serve.

``tests/clients/js/story.mjs`` (``@azure/arm-compute`` 24.1, ``@azure/arm-network`` 36) signs
in as a service principal (``scaleset sp create``; ``@azure/identity``'s
``ClientSecretCredential`` against the server's authority), creates a scale set behind a
load-balancer probe with automatic OS upgrade on and image ``latest``, scales it, changes
one rolling-upgrade field, publishes a new image version and watches the automatic run to
its end, reads the OS upgrade history, runs a manual upgrade and cancels another, reimages
an instance and deletes the scale set. Its own assertions
(node:assert) fail the step they are in; after every write it prints the GET bodies before
and after, and this test checks that only the fields the write named differ.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.server import Server, running_server
from tests.e2e.story import create_service_principal, from_json, unexpected_changes

SUB = "00000000-0000-0000-0000-0000000000aa"
TIMEOUT = 240  # seconds for the whole story; it takes about 15
WRITES = ["scale", "policy", "automatic run", "automatic off", "manual run", "cancelled run",
          "reimage", "reimage (instance 2)", "power actions", "delete instance 3"]
"""The writes the story records, in order: a write that was not diffed is a failure too."""


def js_dir() -> Path:
    folder = os.environ.get("SCALESET_TEST_JS_DIR")
    if not folder:
        pytest.skip("SCALESET_TEST_JS_DIR is not set: the JavaScript SDK is not installed "
                    "(make clients installs it; make test sets the variable)")
    if shutil.which("node") is None:
        pytest.skip("node is not on PATH: the JavaScript SDK story needs Node.js 18 or later")
    return Path(folder)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    js_dir()  # skip before starting a server for nothing
    with running_server(tmp_path_factory.mktemp("js-story")) as s:
        yield s


def run_story(server: Server, folder: Path) -> tuple[int | None, list[dict[str, Any]], str]:
    """Run story.mjs against ``server``: (exit code or None on timeout, records, stderr)."""
    script = folder / "story.mjs"
    assert script.is_file(), f"{script} is missing: SCALESET_TEST_JS_DIR must be " \
        "tests/clients/js (story.mjs lives beside its node_modules)"
    sp = create_service_principal(server, "js-story")
    env = {**os.environ, "SCALESET_ENDPOINT": server.endpoint, "SCALESET_TOKEN": server.token,
           "SCALESET_SUBSCRIPTION": SUB, "NODE_EXTRA_CA_CERTS": str(server.ca),
           "SCALESET_TENANT": sp.tenant, "SCALESET_APP_ID": sp.app_id,
           "SCALESET_PASSWORD": sp.password}
    try:
        done = subprocess.run(["node", str(script)], cwd=folder, env=env, text=True,
                              capture_output=True, timeout=TIMEOUT)
        code: int | None = done.returncode
        stdout, stderr = done.stdout, done.stderr
    except subprocess.TimeoutExpired as expired:
        code = None
        stdout = _text(expired.stdout)
        stderr = _text(expired.stderr) + f"\n(killed after {TIMEOUT} s)"
    records = [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]
    return code, records, stderr


def _text(output: str | bytes | None) -> str:
    if isinstance(output, bytes):
        return output.decode(errors="replace")
    return output or ""


def test_an_operator_story_with_the_js_sdk(server: Server) -> None:
    code, records, stderr = run_story(server, js_dir())
    steps = [r["step"] for r in records if "step" in r]
    failures = []
    if code != 0:
        last = steps[-1] if steps else "(none started)"
        failures.append(f"story.mjs exited {code} in step {last!r}:\n{stderr.strip()}")
    writes = [r for r in records if "write" in r]
    for record in writes:
        problems = unexpected_changes(record["before"], record["after"],
                                      from_json(record["expect"]))
        if problems:
            failures.append(f"the GET after {record['write']!r} differs from what the write "
                            "asked:\n  " + "\n  ".join(problems))
    if code == 0:
        if [r["write"] for r in writes] != WRITES:
            failures.append(f"writes diffed: {[r['write'] for r in writes]}, expected {WRITES}")
        if not any(r.get("done") for r in records):
            failures.append("story.mjs exited 0 without reaching its end")
    assert not failures, f"steps run: {steps}\n" + "\n\n".join(failures)
