"""OS disks and data disks as directories.

An OS disk is a private copy of its image's tree, made with ``cp --reflink=auto``
so filesystems that can share blocks (btrfs, XFS) copy nothing; elsewhere it
is a plain copy. A version published without an artifact boots the *base
image*: an operating system with nothing installed, whose only process
waits to be stopped (what a bare platform image is until custom data or
an extension installs an application).
"""

from __future__ import annotations

import base64
import binascii
import json
import shutil
import subprocess
import sys
from pathlib import Path

MARKER_DIR = ".scaleset"
CUSTOM_DATA = "customdata"
def _idle() -> list[str]:
    """A process that waits to be stopped: coreutils' sleep (about 1 MB) where there is one."""
    sleep = shutil.which("sleep")
    if sleep is not None and sys.platform.startswith("linux"):
        return [sleep, "infinity"]
    return [sys.executable, "-c", "import signal; signal.sigwait({signal.SIGTERM, signal.SIGINT})"]


BASE_IMAGE_MANIFEST = {
    "osType": "Linux",
    "entrypoint": _idle(),
    "description": "base image: no application installed",
}


class DiskError(RuntimeError):
    """An OS disk could not be built."""


def build_os_disk(target: Path, image_tree: Path | None) -> None:
    """Make ``target`` a fresh copy of ``image_tree`` (the base image when ``None``).

    Built under a temporary name and renamed, so a crash never leaves a
    half-copied disk under the real name.
    """
    staging = target.with_name(target.name + ".building")
    shutil.rmtree(staging, ignore_errors=True)
    shutil.rmtree(target, ignore_errors=True)
    target.parent.mkdir(parents=True, exist_ok=True)
    if image_tree is None:
        staging.mkdir()
        (staging / "image.json").write_text(json.dumps(BASE_IMAGE_MANIFEST, indent=2) + "\n")
    else:
        _copy_tree(image_tree, staging)
    (staging / MARKER_DIR).mkdir(exist_ok=True)
    staging.rename(target)


def _copy_tree(source: Path, target: Path) -> None:
    if shutil.which("cp") is not None:
        result = subprocess.run(["cp", "-a", "--reflink=auto", str(source), str(target)],
                                capture_output=True, text=True, check=False)
        if result.returncode == 0:
            return
        shutil.rmtree(target, ignore_errors=True)
    try:
        shutil.copytree(source, target, symlinks=True)
    except OSError as exc:
        raise DiskError(f"copying image {source} to {target} failed: {exc}") from exc


def custom_data_path(os_disk: Path) -> Path:
    return os_disk / MARKER_DIR / CUSTOM_DATA


def write_custom_data(os_disk: Path, custom_data: str | None) -> bytes:
    """Decode ``osProfile.customData`` into the disk (an empty file when there is none)."""
    raw = b""
    if custom_data:
        try:
            raw = base64.b64decode(custom_data, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise DiskError(f"osProfile.customData is not valid base64: {exc}") from exc
    path = custom_data_path(os_disk)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(raw)
    return raw


def manifest(os_disk: Path) -> dict[str, object]:
    """The disk's ``image.json``."""
    try:
        data = json.loads((os_disk / "image.json").read_text())
    except (OSError, ValueError) as exc:
        raise DiskError(f"the OS disk has no readable image.json: {exc}") from exc
    if not isinstance(data, dict):
        raise DiskError("image.json is not a JSON object")
    return data


def ensure_data_disks(instance_dir: Path, luns: list[int]) -> list[Path]:
    """The data disk directories, in lun order, created when missing (never emptied)."""
    paths = []
    for lun in sorted(luns):
        path = instance_dir / "disks" / f"lun{lun}"
        path.mkdir(parents=True, exist_ok=True)
        paths.append(path)
    return paths


def reset_data_disks(instance_dir: Path, luns: list[int]) -> list[Path]:
    """Empty the data disks (``reimageall``): each lun's directory comes back with nothing in it."""
    for lun in luns:
        shutil.rmtree(instance_dir / "disks" / f"lun{lun}", ignore_errors=True)
    return ensure_data_disks(instance_dir, luns)
