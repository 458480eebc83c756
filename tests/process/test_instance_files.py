"""What the process driver keeps on disk: private modes, no secret in state.json, old records.

Runs with or without root: not root (simulated here when the tests run as root), the
driver says at start what isolation it cannot give and still keeps every file private.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import pytest

from scaleset.artifacts import ArtifactStore
from scaleset.drivers.process import records
from scaleset.drivers.process.driver import NOT_ISOLATED, ProcessDriver
from scaleset.store.database import make_engine, migrate
from scaleset.store.repository import Store
from tests.process.fleet import Fleet, wait_for


def test_not_root_says_what_it_cannot_isolate_and_keeps_files_private(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
        ) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    engine = make_engine(f"sqlite:///{tmp_path}/scaleset.db")
    migrate(engine)
    store = Store(engine)
    with caplog.at_level(logging.WARNING, logger="scaleset.driver.process"):
        fleet = Fleet(tmp_path / "data", store)
    try:
        said = [r.getMessage() for r in caplog.records if "not root" in r.getMessage()]
        assert said == [NOT_ISOLATED.format(uid=1000)]
        fleet.publish("1.0.0")
        fleet.create_scale_set("web", capacity=1, probe=False, mode="Manual", automatic=False,
                               custom_data="#!/bin/sh\ntrue\n")
        wait_for(lambda: fleet.pid("web", "0"), timeout=20, what="the instance running")
        directory = fleet.driver.instance_directory(fleet.scale_set_id("web"), "0")
        assert directory is not None
        wait_for(lambda: records.load(directory / "state.json").os_disk.provisioned,
                 timeout=20, what="the OS disk provisioned")
        state = records.load(directory / "state.json")
        assert state.uid is None  # no user of its own without root
        modes = {p: p.stat().st_mode & 0o777 for p in (
            directory, directory / "state.json", directory / "console.log",
            directory / "disks" / "lun0", fleet.os_disk_path("web", "0"),
            fleet.os_disk_path("web", "0") / ".scaleset" / "customdata")}
        expected = {0o700, 0o600}
        assert all(mode in expected for mode in modes.values()), modes
    finally:
        fleet.close()
        store.close()


def test_an_older_state_json_loses_its_secrets_and_keeps_them_for_provisioning(
        tmp_path: Path) -> None:
    """An instance adopted from before this layout: secrets move out of state.json."""
    folder = tmp_path / "web-1234567890" / "0"
    folder.mkdir(parents=True)
    disk = {"disk_id": "d1", "image_version": "1.0.0", "generation": 1, "digest": None,
            "extensions": [{"name": "run", "publisher": "Microsoft.Azure.Extensions",
                            "type": "CustomScript", "type_handler_version": "2.1",
                            "settings": {"x": 1},
                            "protected_settings": {"commandToExecute": "echo hunter2"}}],
            "custom_data": "I2Jhc2gK", "health_source": True, "extension_statuses": [],
            "provisioned": False}
    old = {"scale_set_id": "/subscriptions/s/resourceGroups/rg/providers/x/web",
           "instance_id": "0", "private_ip": "127.9.0.1", "os_disk": disk, "previous": None,
           "data_disks": [[0, "data0"]], "running": True, "deallocated": False,
           "failed": False, "pid": None, "pid_started": None, "incarnation": "abc",
           "ops": {}}
    path = folder / "state.json"
    path.write_text(json.dumps(old))
    state = records.load(path)
    text = path.read_text()
    assert "hunter2" not in text and "I2Jhc2gK" not in text
    assert path.stat().st_mode & 0o777 == 0o600
    assert state.os_disk.extension_specs()[0].settings == {"x": 1}
    inputs = records.load_inputs(folder, "d1")
    assert inputs.custom_data == "I2Jhc2gK"
    assert inputs.protected_settings == {"run": {"commandToExecute": "echo hunter2"}}
    assert records.inputs_file(folder, "d1").stat().st_mode & 0o777 == 0o600


def test_an_instance_of_the_older_layout_is_adopted_and_provisioned(tmp_path: Path) -> None:
    """0755/0644 from an older version, secrets in state.json, no user: adopted, tidied, run."""
    root = tmp_path / "instances"
    folder = root / "web-1234567890" / "0"
    folder.mkdir(parents=True, mode=0o755)
    os.chmod(folder, 0o755)
    disk = {"disk_id": "d1", "image_version": None, "generation": 1, "digest": None,
            "extensions": [{"name": "run", "publisher": "Microsoft.Azure.Extensions",
                            "type": "CustomScript", "type_handler_version": "2.1",
                            "settings": {}, "protected_settings": {
                                "commandToExecute": "id -u > ran-as.txt"}}],
            "custom_data": None, "health_source": False, "extension_statuses": [],
            "provisioned": False}
    old: dict[str, Any] = {
           "scale_set_id": "/subscriptions/s/resourceGroups/rg/providers/x/web",
           "instance_id": "0", "private_ip": "127.250.0.7", "os_disk": disk, "previous": None,
           "data_disks": [], "running": True, "deallocated": False, "failed": False,
           "pid": None, "pid_started": None, "incarnation": "old1", "ops": {}}
    (folder / "state.json").write_text(json.dumps(old))
    (folder / "console.log").write_text("from before\n")
    os.chmod(folder / "console.log", 0o644)
    driver = ProcessDriver(root, ArtifactStore(tmp_path / "images"), stop_grace=1.0)
    try:
        state_file = folder / "state.json"
        wait_for(lambda: records.load(state_file).os_disk.provisioned, timeout=20,
                 what="the adopted disk provisioned")
        state = records.load(state_file)
        assert [s.state for s in state.os_disk.statuses()] == ["Succeeded"]
        assert "commandToExecute" not in state_file.read_text()
        assert not list(folder.glob("inputs-*.json"))
        ran_as = int((folder / "os" / "d1" / "ran-as.txt").read_text())
        if os.geteuid() == 0:
            assert state.uid is not None and ran_as == state.uid != 0
            assert folder.stat().st_mode & 0o777 == 0o711
        else:
            assert folder.stat().st_mode & 0o777 == 0o700
        assert (folder / "console.log").stat().st_mode & 0o777 == 0o600
        assert state_file.stat().st_mode & 0o777 == 0o600
    finally:
        driver.close()
