"""Extension handlers, keyed by publisher and type, run on an instance after boot.

Built in:

* ``Microsoft.Azure.Extensions/CustomScript`` (and Windows'
  ``Microsoft.Compute/CustomScriptExtension``): download ``fileUris``
  (``file://`` or HTTP) into the OS disk, then run ``commandToExecute`` (or
  the base64 ``script``) with ``/bin/sh`` in the OS disk. A URI whose
  shared-access-signature expiry (``se=``) has passed is refused the way a
  storage account refuses it, so stale credentials fail the extension.
* ``Microsoft.ManagedServices/ApplicationHealthLinux`` and
  ``ApplicationHealthWindows``: validate the settings; the driver's prober
  then watches the application through them.
* ``Microsoft.Azure.ServiceFabric/ServiceFabricNode`` (and
  ``ServiceFabricLinuxNode``): join the node to its cluster: check the
  settings (``clusterEndpoint``, ``nodeTypeRef``, ``durabilityLevel``) and
  record the node's membership in the OS disk. The node then reports healthy
  while its instance runs; the reconciler reads the cluster's health from
  these reports.

Settings and protected settings are merged, protected ones winning, as the
guest agent does.
"""

from __future__ import annotations

import base64
import binascii
import json
import shutil
import subprocess
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, IO

from scaleset.artifacts import fetch
from scaleset.artifacts.errors import ArtifactError
from scaleset.artifacts.sources import SourceRules
from scaleset.drivers.base import ExtensionSpec
from scaleset.drivers.process.probes import HealthExtensionSpec
from scaleset.model.extensions import HANDLERS, ExtensionKind, kind_of
from scaleset.model.instance import ExtensionStatus

DEFAULT_BUDGET = 90 * 60.0  # seconds: Azure's extensions time budget


@dataclass(frozen=True)
class Context:
    """What a handler may use: the instance's OS disk, environment, console and clock."""

    os_disk: Path
    env: Mapping[str, str]
    console: IO[bytes]
    spawn_group: Callable[[int], None]
    """Called with the process group of every command started, so stopping the
    instance can kill what the command leaves behind."""
    budget: float = DEFAULT_BUDGET
    now: Callable[[], datetime] = lambda: datetime.now(UTC)
    sources: SourceRules = field(default_factory=SourceRules)
    """What ``fileUris`` may reach (the server's roots and address rule); by default
    no server path and no private address."""
    run: Callable[[list[str], Path, Path], int] | None = None
    """Runs a command once per OS disk (``provision.Steps``): argv, stdout and stderr
    files; the exit status. ``None``: a plain run."""
    own: Callable[[Path], None] = lambda _path: None
    """Gives a file the control plane wrote on the OS disk to the instance's user."""


class Interrupted(Exception):
    """The control plane is stopping: provisioning ends here, to go on at the next start."""


class ExtensionFailed(Exception):
    """The handler failed; the message is what the instance view shows."""


def merged_settings(spec: ExtensionSpec) -> dict[str, Any]:
    return {**dict(spec.settings), **dict(spec.protected_settings)}


def _kind(spec: ExtensionSpec) -> ExtensionKind:
    return kind_of(spec.publisher, spec.type)


def health_spec(spec: ExtensionSpec) -> HealthExtensionSpec | None:
    """The Application Health extension's probe, ``None`` for any other extension."""
    if _kind(spec) is not ExtensionKind.APPLICATION_HEALTH:
        return None
    return HealthExtensionSpec.from_settings(merged_settings(spec))


def run(spec: ExtensionSpec, ctx: Context) -> ExtensionStatus:
    """Provision one extension; never raises for the extension's own failures."""
    try:
        kind = _kind(spec)
        if kind is ExtensionKind.CUSTOM_SCRIPT:
            message = _custom_script(spec, ctx)
        elif kind is ExtensionKind.APPLICATION_HEALTH:
            health_spec(spec)
            message = "Application health probe configured"
        elif kind is ExtensionKind.SERVICE_FABRIC:
            message = _service_fabric_node(spec, ctx)
        else:
            known = sorted(f"{p}/{t}" for p, t in HANDLERS)
            raise ExtensionFailed(
                f"no handler for extension type '{spec.publisher}.{spec.type}' on this control "
                f"plane; built-in handlers: {', '.join(known)}")
    except (ExtensionFailed, ValueError) as exc:
        _console(ctx, f"extension '{spec.name}' failed: {exc}")
        return ExtensionStatus(spec.name, f"{spec.publisher}.{spec.type}", "Failed", str(exc),
                               spec.type_handler_version)
    _console(ctx, f"extension '{spec.name}' succeeded")
    return ExtensionStatus(spec.name, f"{spec.publisher}.{spec.type}", "Succeeded", message,
                           spec.type_handler_version)


def _console(ctx: Context, line: str) -> None:
    ctx.console.write(f"[scaleset] {line}\n".encode())
    ctx.console.flush()


# -- Service Fabric --------------------------------------------------------------
def _service_fabric_node(spec: ExtensionSpec, ctx: Context) -> str:
    settings = merged_settings(spec)
    missing = [k for k in ("clusterEndpoint", "nodeTypeRef", "durabilityLevel")
               if not isinstance(settings.get(k), str) or not settings[k]]
    if missing:
        raise ExtensionFailed(f"Service Fabric settings lack {', '.join(missing)}; set them "
                              "to the cluster's endpoint, the node type's name and its "
                              "durability level")
    node = {k: settings[k] for k in ("clusterEndpoint", "nodeTypeRef", "durabilityLevel")}
    state = ctx.os_disk / ".scaleset"
    state.mkdir(exist_ok=True)
    (state / "servicefabric-node.json").write_text(json.dumps(node, indent=2) + "\n")
    return (f"node of type '{node['nodeTypeRef']}' joined cluster {node['clusterEndpoint']} "
            f"(durability {node['durabilityLevel']})")


# -- CustomScript --------------------------------------------------------------
def _custom_script(spec: ExtensionSpec, ctx: Context) -> str:
    settings = merged_settings(spec)
    uris = settings.get("fileUris") or []
    if not isinstance(uris, list) or not all(isinstance(u, str) for u in uris):
        raise ExtensionFailed("settings.fileUris must be a list of URI strings")
    for uri in uris:
        _download(uri, ctx)
    command = settings.get("commandToExecute")
    script = settings.get("script")
    if command and script:
        raise ExtensionFailed("give either commandToExecute or script, not both")
    if script:
        try:
            text = base64.b64decode(str(script), validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ExtensionFailed(f"settings.script is not valid base64: {exc}") from exc
        target = ctx.os_disk / ".scaleset" / f"script-{spec.name}.sh"
        target.write_bytes(text)
        ctx.own(target)
        argv = ["/bin/sh", str(target)]
    elif command:
        argv = ["/bin/sh", "-c", str(command)]
    else:
        raise ExtensionFailed("settings.commandToExecute (or script) is required; "
                              "set it to the command to run on each instance")
    return _execute(argv, ctx)


def _expired(uri: str, now: datetime) -> str | None:
    """The ``se=`` expiry of a shared-access-signature URI if it has passed."""
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(uri).query)
    for value in query.get("se", []):
        try:
            expiry = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return value  # a storage account refuses a signature it cannot read
        if expiry.tzinfo is None:
            expiry = expiry.replace(tzinfo=UTC)
        if expiry <= now:
            return value
    return None


def _download(uri: str, ctx: Context) -> None:
    # Under the server's SourceRules (artifacts.fetch): a file:// path only under the
    # operator's roots, an http(s) URL only to an address they allow. Failures say
    # "refused" or "failed", never the remote's status or body: this message is in
    # the instance view, which readers see.
    shown = fetch.shown(uri)
    parts = urllib.parse.urlsplit(uri)
    expired = _expired(uri, ctx.now())
    if expired is not None:
        raise ExtensionFailed(
            f"Failed to download '{shown}': AuthenticationFailed: the shared access signature "
            f"expired (se={expired}). Renew the SAS token in the extension's fileUris and "
            "update the scale set model.")
    name = Path(urllib.parse.unquote(parts.path)).name
    if not name:
        raise ExtensionFailed(f"'{shown}' names no file")
    target = ctx.os_disk / name
    try:
        if parts.scheme == "file":
            source = ctx.sources.check_path(Path(urllib.parse.unquote(parts.path)),
                                            what="fileUris")
            try:
                shutil.copyfile(source, target)
            except OSError as exc:
                raise ExtensionFailed(f"Failed to download '{shown}': the file could not "
                                      "be read") from exc
        elif parts.scheme in ("http", "https"):
            with open(target, "wb") as out:
                fetch.download(uri, out, ctx.sources, what="fileUris")
        else:
            raise ExtensionFailed(f"fileUris scheme '{parts.scheme}' is not supported "
                                  f"('{shown}'); use file://, http:// or https://")
    except ArtifactError as exc:
        target.unlink(missing_ok=True)  # nothing partial is left for the command to run
        raise ExtensionFailed(str(exc)) from exc
    _console(ctx, f"downloaded {shown}")


def _execute(argv: list[str], ctx: Context) -> str:
    # Output goes to files, not pipes: a daemon the command starts in the background
    # keeps a pipe open forever, and the extension is done when the command is.
    logs = ctx.os_disk / ".scaleset"
    logs.mkdir(exist_ok=True)
    out_path, err_path = logs / "extension.stdout", logs / "extension.stderr"
    if ctx.run is not None:
        return _outcome(ctx.run(argv, out_path, err_path), out_path, err_path, ctx)
    with open(out_path, "wb") as out_file, open(err_path, "wb") as err_file:
        process = subprocess.Popen(argv, cwd=ctx.os_disk, env=dict(ctx.env),
                                   stdin=subprocess.DEVNULL, stdout=out_file, stderr=err_file,
                                   start_new_session=True)
    ctx.spawn_group(process.pid)
    try:
        process.wait(timeout=ctx.budget)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        raise ExtensionFailed(f"the command did not finish within {ctx.budget:.0f} s "
                              "(extensionsTimeBudget)") from None
    return _outcome(process.returncode, out_path, err_path, ctx)


def _outcome(code: int, out_path: Path, err_path: Path, ctx: Context) -> str:
    try:
        stdout, stderr = out_path.read_bytes(), err_path.read_bytes()
    except FileNotFoundError:
        stdout = stderr = b""
    for chunk in (stdout, stderr):
        if chunk:
            ctx.console.write(chunk)
    ctx.console.flush()
    # The output stays on the console (boot diagnostics, contributors only): in the
    # instance view, which readers see, it would carry whatever the command fetched.
    if code != 0:
        raise ExtensionFailed(f"Enable failed: the command exited with status {code}; "
                              "its output is in the instance's boot diagnostics")
    return "Enable succeeded; the command's output is in the instance's boot diagnostics"
