"""azure-cli, unmodified, against a live ``scaleset serve``: the harness the az tests share.

az trusts the server's generated CA through ``REQUESTS_CA_BUNDLE`` and keeps its
configuration in a temporary ``AZURE_CONFIG_DIR``, as a user pointing az at a private
cloud would. ``SCALESET_TEST_AZ`` is the path of ``az`` (``make test`` sets it when
``make clients`` installed azure-cli); without it the tests that use ``AZ_MISSING`` skip.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.server import Server

AZ = os.environ.get("SCALESET_TEST_AZ")
AZ_MISSING = pytest.mark.skipif(
    not AZ, reason="SCALESET_TEST_AZ (the path of az) is not set: run 'make clients', or "
                   "make test, which sets it when azure-cli is installed")
AZ_TIMEOUT = 120
DEFAULT_SUBSCRIPTION = "00000000-0000-0000-0000-000000000000"


def scaleset_cli(server: Server, *args: str) -> subprocess.CompletedProcess[str]:
    """``scaleset`` with the server's URL, token and CA (its own config file, not ~)."""
    exe = str(Path(sys.executable).with_name("scaleset"))
    env = {**os.environ, "SCALESET_CONFIG": str(server.data_dir / "client-config.json")}
    return subprocess.run([exe, *args, "--server", server.endpoint, "--token", server.token,
                           "--ca-file", str(server.ca)],
                          capture_output=True, text=True, timeout=60, env=env)


def create_principal(server: Server, role: str = "contributor") -> dict[str, str]:
    """``scaleset sp create``: the appId, password and tenant az signs in with."""
    done = scaleset_cli(server, "sp", "create", "--role", role, "--name", f"e2e-{role}")
    assert done.returncode == 0, done.stderr
    created: dict[str, str] = json.loads(done.stdout)
    assert set(created) == {"appId", "displayName", "password", "tenant"}
    return created


@dataclass
class Az:
    config_dir: Path
    ca: Path

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        """One az command; its exit code and output, whatever they are."""
        assert AZ is not None
        env = {**os.environ, "AZURE_CONFIG_DIR": str(self.config_dir),
               "REQUESTS_CA_BUNDLE": str(self.ca), "AZURE_CORE_COLLECT_TELEMETRY": "false",
               "AZURE_CORE_NO_COLOR": "true", "AZURE_CORE_ONLY_SHOW_ERRORS": "false"}
        return subprocess.run([AZ, *args], capture_output=True, text=True,
                              timeout=AZ_TIMEOUT, env=env)

    def json(self, *args: str) -> Any:
        """One az command that must succeed; its JSON output (None when it printed none)."""
        done = self.run(*args, "-o", "json")
        assert done.returncode == 0, f"az {' '.join(args)}: {done.stderr}"
        return json.loads(done.stdout) if done.stdout.strip() else None

    def ok(self, *args: str) -> None:
        """One az command that must succeed; its output is not needed."""
        done = self.run(*args, "-o", "none")
        assert done.returncode == 0, f"az {' '.join(args)}: {done.stderr}"


def registered(server: Server, config_dir: Path) -> Az:
    """az with the server registered as cloud ``scaleset`` (endpoint discovery on) and set."""
    az = Az(config_dir, server.ca)
    az.ok("cloud", "register", "-n", "scaleset",
          "--endpoint-resource-manager", server.endpoint + "/")
    az.ok("cloud", "set", "-n", "scaleset")
    return az


def signed_in(server: Server, config_dir: Path, role: str = "contributor") -> Az:
    """az registered and signed in with a new service principal of ``role``."""
    az = registered(server, config_dir)
    sp = create_principal(server, role)
    az.ok("login", "--service-principal", "-u", sp["appId"], "-p", sp["password"],
          "--tenant", sp["tenant"])
    return az
