"""OS disks and data disks as directories.

An OS disk is a private copy of its image's tree, made with ``cp --reflink=auto``
so filesystems that can share blocks (btrfs, XFS) copy nothing; elsewhere it
is a plain copy. A version published without an artifact boots the *base
image*: an operating system with nothing installed, whose only process
waits to be stopped (what a bare platform image is until custom data or
an extension installs an application).

Disks are the instance's own: 0700 directories, and when the control plane
is root they belong to the instance's user (``processes.RunAs``); the
directories above them (``os/``, ``disks/``) are the control plane's, 0711
then (reachable, not listable) so an instance reaches its own disks only.
"""

from __future__ import annotations

import base64
import binascii
import json
import shutil
import os
import subprocess
import sys
from pathlib import Path

from scaleset.drivers.process.processes import RunAs

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


def private_dir(path: Path, run_as: RunAs | None) -> None:
    """A directory of the control plane's that instances pass through: 0711 when they run
    as users of their own (they reach what they know the name of, list nothing), else 0700."""
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, 0o711 if run_as is not None else 0o700)


def give(path: Path, run_as: RunAs | None) -> None:
    """Make ``path`` (recursively) the instance's own, 0700 at the top.

    Only walks the tree when its top is not the instance's yet (a new copy, or an
    instance adopted from before instances had users), so a boot stays cheap.
    """
    if run_as is not None and path.lstat().st_uid != run_as.uid:
        for folder, dirs, files in os.walk(path):
            for name in (*dirs, *files):
                os.lchown(os.path.join(folder, name), run_as.uid, run_as.gid)
        os.lchown(path, run_as.uid, run_as.gid)
    os.chmod(path, 0o700)


def build_os_disk(target: Path, image_tree: Path | None, run_as: RunAs | None = None) -> None:
    """Make ``target`` a fresh copy of ``image_tree`` (the base image when ``None``).

    Built under a temporary name and renamed, so a crash never leaves a
    half-copied disk under the real name. The copy shares no inode with the image
    store (no hardlinks), so the instance owns all of it.
    """
    staging = target.with_name(target.name + ".building")
    shutil.rmtree(staging, ignore_errors=True)
    shutil.rmtree(target, ignore_errors=True)
    private_dir(target.parent, run_as)
    if image_tree is None:
        staging.mkdir()
        (staging / "image.json").write_text(json.dumps(BASE_IMAGE_MANIFEST, indent=2) + "\n")
    else:
        _copy_tree(image_tree, staging)
    (staging / MARKER_DIR).mkdir(exist_ok=True)
    give(staging, run_as)
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


def write_custom_data(os_disk: Path, custom_data: str | None, run_as: RunAs | None = None
                      ) -> bytes:
    """Decode ``osProfile.customData`` into the disk (an empty file when there is none).

    The file is the instance's (0600), like Azure's ``/var/lib/waagent/CustomData``.
    """
    raw = b""
    if custom_data:
        try:
            raw = base64.b64decode(custom_data, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise DiskError(f"osProfile.customData is not valid base64: {exc}") from exc
    path = custom_data_path(os_disk)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(raw)
    if run_as is not None:
        os.chown(path, run_as.uid, run_as.gid)
        os.chown(path.parent, run_as.uid, run_as.gid)
    return raw


def script_argv(script: Path) -> list[str]:
    """How to run a ``#!`` script that is not executable (it stays 0600): its interpreter
    and the one optional argument, as the kernel reads the line."""
    with open(script, "rb") as f:
        line = f.readline(4096)[2:].decode(errors="replace").strip()
    interpreter, _, argument = line.partition(" ")
    argument = argument.strip()
    return [interpreter, *([argument] if argument else []), str(script)]


def manifest(os_disk: Path) -> dict[str, object]:
    """The disk's ``image.json``."""
    try:
        data = json.loads((os_disk / "image.json").read_text())
    except (OSError, ValueError) as exc:
        raise DiskError(f"the OS disk has no readable image.json: {exc}") from exc
    if not isinstance(data, dict):
        raise DiskError("image.json is not a JSON object")
    return data


def ensure_data_disks(instance_dir: Path, luns: list[int], run_as: RunAs | None = None
                      ) -> list[Path]:
    """The data disk directories, in lun order, created when missing (never emptied)."""
    paths = []
    if luns:
        private_dir(instance_dir / "disks", run_as)
    for lun in sorted(luns):
        path = instance_dir / "disks" / f"lun{lun}"
        path.mkdir(exist_ok=True)
        give(path, run_as)
        paths.append(path)
    return paths


def reset_data_disks(instance_dir: Path, luns: list[int], run_as: RunAs | None = None
                     ) -> list[Path]:
    """Empty the data disks (``reimageall``): each lun's directory comes back with nothing in it."""
    for lun in luns:
        shutil.rmtree(instance_dir / "disks" / f"lun{lun}", ignore_errors=True)
    return ensure_data_disks(instance_dir, luns, run_as)
