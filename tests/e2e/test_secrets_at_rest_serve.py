"""``scaleset serve`` keeps its data directory to itself (0700, files 0600) and its secrets
sealed; ``scaleset secrets rotate`` re-seals them offline and the server still works."""

from __future__ import annotations

import base64
import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tests.e2e.server import running_server

V = "?api-version=2026-04-01"
IMAGES = ("/subscriptions/s/providers/Microsoft.Compute/locations/westus/publishers/Canonical/"
          "artifacttypes/vmimage/offers/UbuntuServer/skus/18.04-LTS/versions")
SET = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachineScaleSets/web"
PASSWORD, PROTECTED = "Zq9!unusual-password", "unusual-protected-value"
SCALESET = Path(sys.executable).with_name("scaleset")


def _body() -> dict[str, Any]:
    return {"location": "westus", "sku": {"capacity": 1}, "properties": {
        "upgradePolicy": {"mode": "Manual"},
        "virtualMachineProfile": {
            "osProfile": {"computerNamePrefix": "web", "adminUsername": "azureuser",
                          "adminPassword": PASSWORD},
            "storageProfile": {"imageReference": {
                "publisher": "Canonical", "offer": "UbuntuServer", "sku": "18.04-LTS",
                "version": "latest"}},
            "extensionProfile": {"extensions": [{"name": "cse", "properties": {
                "publisher": "Microsoft.Azure.Extensions", "type": "CustomScript",
                "typeHandlerVersion": "2.1", "settings": {"commandToExecute": "true"},
                "protectedSettings": {"token": PROTECTED}}}]}}}}


def _modes(data_dir: Path) -> dict[str, int]:
    found = {".": stat.S_IMODE(data_dir.stat().st_mode)}
    for folder, dirs, files in os.walk(data_dir):
        for name in (*dirs, *files):
            path = Path(folder) / name
            if not path.is_symlink():
                found[str(path.relative_to(data_dir))] = stat.S_IMODE(path.lstat().st_mode)
    return found


def _open_to_others(data_dir: Path) -> dict[str, str]:
    return {path: oct(mode) for path, mode in _modes(data_dir).items() if mode & 0o077}


def test_the_data_directory_is_private_and_secrets_are_sealed_then_rotated(
        tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir(mode=0o755)
    os.chmod(data_dir, 0o755)
    (data_dir / "left-by-an-older-version.json").write_text("{}")
    os.chmod(data_dir / "left-by-an-older-version.json", 0o644)
    with running_server(data_dir) as server, server.http() as http:
        assert http.put(f"{IMAGES}/1.0.0{V}", json={"location": "westus"}).status_code < 300
        # The sign-in authority's signing key is made at first use.
        assert http.get("/organizations/discovery/v2.0/keys").status_code == 200
        r = http.put(f"{SET}{V}", json=_body())
        assert r.status_code == 201, r.text
        deadline = time.monotonic() + 30
        while http.get(r.headers["Azure-AsyncOperation"]).json()["status"] != "Succeeded":
            assert time.monotonic() < deadline
            time.sleep(0.2)
        modes = _modes(data_dir)
        for name in ("scaleset.db", "scaleset.db-wal", "secrets.key", "serve.lock",
                     "client.json", "tls/ca.pem", "tls/server.key"):
            assert modes.get(name) == 0o600, (name, modes)
        assert modes["."] == 0o700
        assert _open_to_others(data_dir) == {}
        raw = b"".join((data_dir / f).read_bytes() for f in ("scaleset.db", "scaleset.db-wal")
                       if (data_dir / f).exists())
        assert PASSWORD.encode() not in raw and PROTECTED.encode() not in raw
        assert b"PRIVATE KEY" not in raw  # the authority's signing key is sealed too
        # While serve runs, rotation is refused and changes nothing.
        key_before = (data_dir / "secrets.key").read_text()
        refused = subprocess.run([str(SCALESET), "secrets", "rotate", "--data-dir",
                                  str(data_dir)], capture_output=True, text=True, timeout=60)
        assert refused.returncode == 1 and "ServerRunning" in refused.stderr
        assert (data_dir / "secrets.key").read_text() == key_before
    done = subprocess.run([str(SCALESET), "secrets", "rotate", "--data-dir", str(data_dir)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["scaleSets"] == 1 and report["secrets"] == 3 and report["signingKey"]
    key_after = (data_dir / "secrets.key").read_text()
    assert report["key"] in key_after and key_after != key_before
    old_kids = {line.split(":")[0] for line in key_before.splitlines()[1:]} - {"token-hmac"}
    assert not any(line.split(":")[0] in old_kids for line in key_after.splitlines())
    assert stat.S_IMODE((data_dir / "secrets.key").stat().st_mode) == 0o600
    # The same token still works; the scale set still reads, its secrets still hidden.
    with running_server(data_dir) as server, server.http() as http:
        got = http.get(f"{SET}{V}")
        assert got.status_code == 200, got.text
        assert PASSWORD not in got.text and PROTECTED not in got.text
        patched = http.patch(f"{SET}{V}", json={"tags": {"rotated": "yes"}})
        assert patched.status_code == 200, patched.text
        assert _open_to_others(data_dir) == {}


def test_serve_refuses_to_start_with_a_key_that_does_not_open_its_secrets(
        tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    with running_server(data_dir) as server, server.http() as http:
        assert http.get("/organizations/discovery/v2.0/keys").status_code == 200
    wrong = base64.b64encode(os.urandom(32)).decode()
    env = {**os.environ, "SCALESET_SECRETS_KEY": wrong,
           "SCALESET_CONFIG": str(data_dir / "client-config.json")}
    done = subprocess.run([str(SCALESET), "serve", "--data-dir", str(data_dir), "--port", "0",
                           "--driver", "simulated"], capture_output=True, text=True,
                          timeout=60, env=env)
    assert done.returncode != 0
    assert "cannot start" in done.stderr and "not in the keyring" in done.stderr
