"""What waits in ``inputs-<disk>.json`` until its disk is provisioned is sealed at rest."""

from __future__ import annotations

from pathlib import Path

import pytest

from scaleset.drivers.process import records
from scaleset.security import secrets

CUSTOM_DATA = "I2Nsb3VkLWNvbmZpZwpzZWNyZXQ6IGh1bnRlcjI="
PROTECTED = {"commandToExecute": "echo s3cr3t-in-protected-settings"}


def _inputs() -> records.Inputs:
    return records.Inputs(custom_data=CUSTOM_DATA, protected_settings={"run": PROTECTED})


def test_inputs_are_sealed_on_disk_and_open_with_the_key(tmp_path: Path) -> None:
    keyring = secrets.generate_keyring()
    records.save_inputs(tmp_path, "web_0_OsDisk_a", _inputs(), keyring)
    raw = records.inputs_file(tmp_path, "web_0_OsDisk_a").read_text()
    assert CUSTOM_DATA not in raw and "s3cr3t" not in raw
    assert (records.inputs_file(tmp_path, "web_0_OsDisk_a").stat().st_mode & 0o777) == 0o600
    assert records.load_inputs(tmp_path, "web_0_OsDisk_a", keyring) == _inputs()


def test_sealed_inputs_do_not_open_without_the_key_or_on_another_disk(tmp_path: Path) -> None:
    keyring = secrets.generate_keyring()
    records.save_inputs(tmp_path, "disk-a", _inputs(), keyring)
    with pytest.raises(ValueError, match="sealed and no key"):
        records.load_inputs(tmp_path, "disk-a")
    with pytest.raises(secrets.SecretsError):
        records.load_inputs(tmp_path, "disk-a", secrets.generate_keyring())
    moved = records.inputs_file(tmp_path, "disk-a").read_text()
    records.inputs_file(tmp_path, "disk-b").write_text(moved)
    with pytest.raises(secrets.SecretsError, match="integrity"):
        records.load_inputs(tmp_path, "disk-b", keyring)


def test_inputs_written_in_clear_before_sealing_still_read(tmp_path: Path) -> None:
    records.save_inputs(tmp_path, "disk-a", _inputs())
    assert records.load_inputs(tmp_path, "disk-a", secrets.generate_keyring()) == _inputs()
