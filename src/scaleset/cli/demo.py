"""``scaleset demo``: a real fleet on this machine, upgraded and rolled back, in about a minute.

It starts ``scaleset serve`` (process driver) on a temporary data directory and
then acts as a user would, over HTTPS with a bearer token: a load balancer with
a health probe, a 10-instance scale set with automatic OS upgrades from the
webapp image, a file on every data disk, version 1.1.0 rolled out batch by
batch, the broken 1.2.0 rolled back, the OS upgrade history, the data disks
checked, and everything stopped.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table

from scaleset.cli.client import ArmClient
from scaleset.drivers.process import records

SUBSCRIPTION = "00000000-0000-0000-0000-000000000000"
GROUP = f"/subscriptions/{SUBSCRIPTION}/resourceGroups/demo"
LB = GROUP + "/providers/Microsoft.Network/loadBalancers/demo-lb"
VMSS = GROUP + "/providers/Microsoft.Compute/virtualMachineScaleSets/web"
VERSIONS = (f"/subscriptions/{SUBSCRIPTION}/providers/Microsoft.Compute/locations/westus/"
            "publishers/Contoso/artifacttypes/vmimage/offers/WebApp/skus/demo/versions")
NETWORK_API = {"api-version": "2024-05-01"}
APP_PORT = 8080
DATA_FILE = "demo.txt"
HEALTH_TIMEOUT = "10"  # seconds an upgraded instance has to become healthy

console = Console(highlight=False)


class DemoFailed(Exception):
    """Something the demo promised did not happen."""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextmanager
def _control_plane(data_dir: Path, images: Path
                   ) -> Iterator[tuple[ArmClient, subprocess.Popen[bytes]]]:
    """``scaleset serve`` in a child process; stopped (SIGTERM) on the way out.

    ``images``: the examples the story publishes from, the only server path it may read.
    """
    port, token = _free_port(), "sst_demo_" + secrets.token_urlsafe(24)
    env = {**os.environ, "SCALESET_BOOTSTRAP_TOKEN": token,
           "SCALESET_CONFIG": str(data_dir / "client-config.json")}
    log = open(data_dir / "serve.log", "wb")
    server = subprocess.Popen(
        [sys.executable, "-m", "scaleset", "serve", "--port", str(port), "--data-dir",
         str(data_dir), "--driver", "process", "--health-timeout", HEALTH_TIMEOUT,
         # The demo's own image is not one of Azure's: allow it automatic OS upgrade.
         "--auto-upgrade-image", "Contoso:WebApp:demo",
         "--image-source-root", str(images.resolve())],
        stdout=log, stderr=subprocess.STDOUT, env=env)
    ca = data_dir / "tls" / "ca.pem"
    endpoint = f"https://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while not ca.exists() or not _answers(endpoint, ca):
            if server.poll() is not None or time.monotonic() > deadline:
                raise DemoFailed("scaleset serve did not start:\n"
                                 + (data_dir / "serve.log").read_text())
            time.sleep(0.1)
        with ArmClient(endpoint=endpoint, token=token, subscription=SUBSCRIPTION,
                       ca_file=str(ca), default_poll_interval=0.2) as client:
            yield client, server
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()


def _answers(endpoint: str, ca: Path) -> bool:
    try:
        return httpx.get(f"{endpoint}/healthz", verify=str(ca), timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def _instances(client: ArmClient) -> list[dict[str, Any]]:
    return list(client.paged(VMSS + "/virtualMachines", params={"$expand": "instanceView"}))


def _summary(item: dict[str, Any]) -> tuple[str, str, str, str]:
    props = item["properties"]
    view = props.get("instanceView") or {}
    health = ((view.get("vmHealth") or {}).get("status") or {}).get("code", "")
    return (item["instanceId"], view.get("privateIPAddress") or "-",
            props["storageProfile"]["imageReference"].get("exactVersion") or "-",
            health.removeprefix("HealthState/"))


def _app(address: str, path: str, *, method: str = "GET", body: bytes | None = None
         ) -> httpx.Response:
    return httpx.request(method, f"http://{address}:{APP_PORT}{path}", content=body,
                         timeout=3, trust_env=False)


def _show_fleet(client: ArmClient, title: str) -> list[dict[str, Any]]:
    items = _instances(client)
    table = Table(title=title, title_justify="left")
    for column in ("instance", "private IP", "image", "health", "page"):
        table.add_column(column)
    for item in items:
        iid, address, version, health = _summary(item)
        try:
            page = _app(address, "/").text.strip().splitlines()[0][:40]
        except (httpx.HTTPError, IndexError):
            page = "(no answer)"
        table.add_row(iid, address, version, health, page)
    console.print(table)
    return items


def _wait(what: str, check: Any, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise DemoFailed(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.2)


def _follow_run(client: ArmClient, version: str, total: int, previous_run: str | None
                ) -> dict[str, Any]:
    """Show the run to ``version`` batch by batch until it ends; its final status."""
    seen: dict[str, tuple[str, str, str, str]] = {
        i["instanceId"]: _summary(i) for i in _instances(client)}
    batch_members: set[str] = set()
    batch = 0
    with Progress(TextColumn("  {task.description:<24}"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("{task.fields[note]}"), console=console) as progress:
        task = progress.add_task(f"instances on {version}", total=total, note="")
        deadline = time.monotonic() + 120
        while True:
            latest = client.get(VMSS + "/rollingUpgrades/latest")
            props = latest["properties"]
            run_id = props.get("runningStatus", {}).get("startTime")
            code = props["runningStatus"]["code"]
            in_flight = set()
            for item in _instances(client):
                now = _summary(item)
                iid = now[0]
                before = seen.get(iid)
                # In flight: being replaced, or on the target but not yet judged healthy.
                if item["properties"].get("provisioningState") == "Updating" or (
                        now[2] == version and now[3] != "healthy") or (
                        before is not None and before[2] != now[2]):
                    in_flight.add(iid)
                if before is not None and before[2] != now[2]:
                    verb = "rolled back to" if before[2] == version else "now runs"
                    progress.console.print(f"    instance {iid}: {verb} {now[2]}")
                if before is not None and before[2:] != now[2:] and now[3] in (
                        "healthy", "unhealthy"):
                    progress.console.print(f"    instance {iid} on {now[2]}: {now[3]}")
                seen[iid] = now
            fresh = in_flight - batch_members
            if fresh and not batch_members:
                batch += 1
                progress.console.print(f"  batch {batch}: instances "
                                       f"{', '.join(sorted(fresh, key=int))}")
            elif fresh:
                progress.console.print(f"  batch {batch} also: {', '.join(sorted(fresh))}")
            batch_members = batch_members | fresh if in_flight else set()
            done = sum(1 for s in seen.values() if s[2] == version and s[3] == "healthy")
            p = props.get("progress") or {}
            progress.update(task, completed=done, note=(
                f"{p.get('successfulInstanceCount', 0)} ok, {p.get('failedInstanceCount', 0)} "
                f"failed, {p.get('inProgressInstanceCount', 0)} in progress  [{code}]"))
            if run_id != previous_run and code in ("Completed", "Faulted", "Cancelled"):
                return dict(latest)
            if time.monotonic() > deadline:
                raise DemoFailed(f"the rolling upgrade to {version} did not end within 120 s")
            time.sleep(0.2)


def _latest_start(client: ArmClient) -> str | None:
    try:
        latest = client.get(VMSS + "/rollingUpgrades/latest")
    except Exception:  # no run yet answers 404
        return None
    return str(latest["properties"]["runningStatus"].get("startTime"))


def run_demo(images: Path, instances: int, *, keep_data: bool = False) -> None:
    """The whole story; raises ``DemoFailed`` if any promise is broken."""
    started = time.monotonic()
    data_dir = Path(tempfile.mkdtemp(prefix="scaleset-demo-"))
    try:
        with _control_plane(data_dir, images) as (client, server):
            console.print(f"[bold]scaleset demo[/] control plane at {client.endpoint} "
                          f"(data: {data_dir})")
            _story(client, images, instances)
        _check_nothing_left(server, data_dir)
    finally:
        if keep_data:
            console.print(f"Data directory kept: {data_dir}")
        else:
            shutil.rmtree(data_dir, ignore_errors=True)
    console.print(f"[bold green]Demo finished in {time.monotonic() - started:.0f} s[/]; "
                  "every instance stopped with the control plane.")


def _story(client: ArmClient, images: Path, instances: int) -> None:
    console.print("1. Load balancer [bold]demo-lb[/] with an HTTP probe on :8080/health")
    client.send("PUT", LB, params=NETWORK_API, json={
        "location": "westus", "sku": {"name": "Standard"}, "properties": {
            "probes": [{"name": "http", "properties": {
                "protocol": "Http", "port": APP_PORT, "requestPath": "/health",
                "intervalInSeconds": 1, "numberOfProbes": 1}}]}})
    console.print("2. Publish image Contoso:WebApp:demo:[bold]1.0.0[/]")
    _publish(client, images, "1.0.0")
    console.print(f"3. Scale set [bold]web[/]: {instances} instances, automatic OS upgrades, "
                  "rolling batches of 20% one second apart, one data disk each")
    response = client.send("PUT", VMSS, json=_scale_set(instances))
    client.wait(response)
    _wait("every instance healthy", lambda: all(
        _summary(i)[3] == "healthy" for i in _instances(client))
        and len(_instances(client)) == instances)
    items = _show_fleet(client, "The fleet on 1.0.0")

    console.print(f"4. Write {DATA_FILE} to every instance's data disk (through the app)")
    written = {}
    for item in items:
        iid, address, _, _ = _summary(item)
        text = f"written to instance {iid} before any upgrade\n".encode()
        reply = _app(address, f"/data/{DATA_FILE}", method="PUT", body=text)
        if reply.status_code >= 300:
            raise DemoFailed(f"instance {iid} refused the write: {reply.status_code}")
        written[iid] = (address, text)

    console.print("5. Publish [bold]1.1.0[/]: the platform rolls it out")
    before = _latest_start(client)
    _publish(client, images, "1.1.0")
    result = _follow_run(client, "1.1.0", instances, before)
    _expect(result, "Completed")
    _show_fleet(client, "The fleet on 1.1.0")

    console.print("6. Publish [bold]1.2.0[/] (its health endpoint is broken)")
    before = _latest_start(client)
    _publish(client, images, "1.2.0")
    result = _follow_run(client, "1.2.0", instances, before)
    _expect(result, "Faulted")
    error = result["properties"].get("error") or {}
    console.print(f"  run Faulted: {error.get('code')}: {error.get('message')}")
    _wait("rolled-back instances healthy on 1.1.0", lambda: all(
        _summary(i)[2] == "1.1.0" and _summary(i)[3] == "healthy" for i in _instances(client)))
    _show_fleet(client, "After the rollback: every instance back on 1.1.0")

    console.print("7. OS upgrade history")
    history = client.get(VMSS + "/osUpgradeHistory")
    table = Table(title_justify="left")
    for column in ("started", "by", "to version", "result", "ok", "failed"):
        table.add_column(column)
    for entry in history.get("value", []):
        props = entry["properties"]
        status, progress = props["runningStatus"], props.get("progress") or {}
        table.add_row(status.get("startTime", "")[:19], props.get("startedBy", ""),
                      (props.get("targetImageReference") or {}).get("version", ""),
                      status["code"], str(progress.get("successfulInstanceCount", 0)),
                      str(progress.get("failedInstanceCount", 0)))
    console.print(table)

    console.print(f"8. Data disks: read {DATA_FILE} back from every instance")
    for iid, (address, text) in written.items():
        got = _app(address, f"/data/{DATA_FILE}")
        if got.status_code != 200 or got.content != text:
            raise DemoFailed(f"instance {iid}'s data disk lost {DATA_FILE}: "
                             f"{got.status_code} {got.content[:80]!r}")
    console.print(f"  all {len(written)} files intact after one upgrade and one rollback")
    console.print("9. Stop the control plane (it stops every instance)")


def _publish(client: ArmClient, images: Path, version: str) -> None:
    source = (images / version).resolve()
    if not (source / "image.json").exists():
        raise DemoFailed(f"{source} holds no image.json; run from the repository root or "
                         "pass --images")
    client.put(f"{VERSIONS}/{version}", {"location": "westus",
                                          "properties": {"source": {"path": str(source)}}})


def _scale_set(capacity: int) -> dict[str, Any]:
    return {
        "location": "westus",
        "sku": {"name": "Standard_D2s_v3", "tier": "Standard", "capacity": capacity},
        "properties": {
            "upgradePolicy": {
                "mode": "Rolling",
                "automaticOSUpgradePolicy": {"enableAutomaticOSUpgrade": True},
                "rollingUpgradePolicy": {"maxBatchInstancePercent": 20,
                                         "maxUnhealthyInstancePercent": 20,
                                         "maxUnhealthyUpgradedInstancePercent": 20,
                                         # A pause people can see between batches.
                                         "pauseTimeBetweenBatches": "PT1S"}},
            "virtualMachineProfile": {
                "osProfile": {"computerNamePrefix": "web", "adminUsername": "azureuser"},
                "storageProfile": {
                    "imageReference": {"publisher": "Contoso", "offer": "WebApp",
                                       "sku": "demo", "version": "latest"},
                    "dataDisks": [{"lun": 0, "createOption": "Empty", "diskSizeGB": 1}]},
                "networkProfile": {"healthProbe": {"id": LB + "/probes/http"}},
            },
        },
    }


def _expect(result: dict[str, Any], code: str) -> None:
    got = result["properties"]["runningStatus"]["code"]
    if got != code:
        raise DemoFailed(f"the run ended {got}, expected {code}: "
                         f"{result['properties'].get('error')}")


def _check_nothing_left(server: subprocess.Popen[bytes], data_dir: Path) -> None:
    if server.returncode is None:
        raise DemoFailed("the control plane did not stop")
    needle = b"SCALESET_INSTANCE_KEY="
    left = []
    instances = data_dir / "instances"
    # Whole keys, with the incarnation: another control plane on this machine may have
    # instances of a scale set with the same id.
    keys = set()
    for state in instances.glob(f"*/*/{records.STATE_FILE}"):
        try:
            incarnation = json.loads(state.read_text())["incarnation"]
        except (OSError, ValueError, KeyError):
            continue
        keys.add(f"{state.parent.parent.name}/{state.parent.name}/{incarnation}".encode())
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            env = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if any(v.startswith(needle) and v[len(needle):] in keys for v in env):
            left.append(entry.name)
    if left:
        raise DemoFailed(f"instance processes left behind: {', '.join(left)}")


def demo(
    images: Annotated[Path, typer.Option(
        help="The webapp image versions (1.0.0, 1.1.0, 1.2.0).")]
    = Path("examples/images/webapp"),
    instances: Annotated[int, typer.Option(min=2, max=50)] = 10,
    keep_data: Annotated[bool, typer.Option(
        "--keep-data", help="Keep the temporary data directory (logs, disks) afterwards.")]
    = False,
) -> None:
    """Run real instances through an upgrade and a rollback, then stop everything."""
    try:
        run_demo(images, instances, keep_data=keep_data)
    except DemoFailed as exc:
        console.print(f"[bold red]Demo failed:[/] {exc}")
        raise typer.Exit(1) from exc
