"""The process driver: instances as supervised OS processes on this machine.

Operations run on a thread pool; a monitor thread restarts crashed processes
with back-off; a prober (``probes.py``) watches health. Everything an
instance is — its disks, address, process id, provisioning results and the
outcome of recent operations — is in its ``state.json`` (``records.py``), so
a control plane that restarts on the same data directory adopts running
processes, restarts stopped ones, and answers for operations it ran before.

Power verbs (``PowerOperation``) change what the instance should be doing:
powered off or deallocated, it is not restarted by the supervisor nor booted by
adoption; deallocated, its address is released and a new one is taken when it
starts; a redeploy always takes a new address (another "host"). Starting boots
the OS disk it has, so custom data and extensions do not run again.

Isolation: when the control plane runs as root, every instance runs as a user
of its own (uid = gid = ``UID_BASE`` + a slot per data directory + n, no
``/etc/passwd`` entry, no supplementary groups), kept in its ``state.json``
across restarts. Its OS disks and data disks are its own (0700); everything
else of the instance's directory (``state.json``, ``inputs-*.json``,
``console.log``) is the control plane's (0600), in directories the instance
may pass through but not list (0711). The instance tree stays where it was
(``<data-dir>/instances``): the directories above it get search permission
(``o+x``, never read) so an instance reaches its disks by name and lists
nothing; the database and the image store are 0600/0700 and out of reach.
Not root, the driver says once at start what isolation it cannot give.
"""

from __future__ import annotations

import hashlib
import logging
import os
import secrets
import stat
import shutil
import threading
import time
from collections.abc import Callable, Hashable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

from scaleset.artifacts import ArtifactStore, SourceRules
from scaleset.drivers.base import (
    DriverInstance,
    DriverSnapshot,
    ExtensionSpec,
    InstanceSpec,
    Operation,
    PowerOperation,
    ProbeSpec,
    ReleaseOperation,
    RollbackOperation,
    UpgradeOperation,
)
from scaleset.drivers.process import (
    addresses,
    capacity,
    disks,
    extensions,
    processes,
    provision,
    records,
)
from scaleset.drivers.process import instance
from scaleset.drivers.process.instance import BACKOFF_FIRST, BACKOFF_MAX, LiveInstance
from scaleset.drivers.process.probes import HealthExtensionSpec, Prober
from scaleset.drivers.process.records import DiskState, InstanceState, OpState
from scaleset.health import aggregate
from scaleset.model.instance import (
    ExtensionStatus,
    HealthState,
    PowerAction,
    PowerState,
    ProvisioningState,
)
from scaleset.telemetry.metrics import Metrics
from scaleset.upgrade.observations import OperationObservation, OperationState

log = logging.getLogger("scaleset.driver.process")

MONITOR_PERIOD = 0.05
STABLE_AFTER = 60.0  # seconds of running after which the back-off starts again from the first
STOPPING = "interrupted: the control plane is stopping"
STEP_STOP_GRACE = 10.0
"""Seconds a graceful stop waits for a provisioning step under way (provision.py)."""
INHERITED = frozenset({"PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "TZ", "TMPDIR",
                       "TERM"})
INHERITED_PREFIXES = ("LC_", "PYENV_")  # locale; pyenv's shims find their interpreter
UID_BASE = 2_000_000
UID_SLOT = 16_384  # users per data directory (more than the server's instance limit)
NOT_ISOLATED = ("serve is not root (uid {uid}): instances run as this same user, so they are "
                "not isolated from each other's disks, from the data directory or from the "
                "database; run serve as root to give every instance a user of its own")
_SEVERITY = {HealthState.UNHEALTHY: 3, HealthState.INITIALIZING: 2, HealthState.UNKNOWN: 1,
             HealthState.HEALTHY: 0}


class ProcessDriver:
    """Real instances: OS disks from image artifacts, processes, probes.

    ``on_change(scale_set_id)`` is called (from driver threads) whenever something
    the shell would want to see of that scale set has changed: an operation ended,
    a process started or died, a probe changed its verdict.
    """

    def __init__(self, root: Path, artifacts: ArtifactStore, *,
                 on_change: Callable[[str], None] | None = None, workers: int = 32,
                 stop_grace: float = processes.STOP_GRACE,
                 step_stop_grace: float = STEP_STOP_GRACE,
                 claims: addresses.Claims | None = None,
                 sources: SourceRules | None = None,
                 sealer: records.Sealer | None = None,
                 metrics: Metrics | None = None) -> None:
        self.root = root
        self.sealer = sealer  # seals what waits in inputs-<disk>.json (custom data, secrets)
        self.sources = sources or SourceRules()  # what extensions' fileUris may reach
        self.root.mkdir(parents=True, exist_ok=True)
        self.isolated = os.geteuid() == 0
        self._uid_base = UID_BASE + UID_SLOT * int.from_bytes(
            hashlib.sha1(str(root.resolve()).encode()).digest()[:2], "big")
        if self.isolated:
            _searchable(self.root)
            artifacts.root.mkdir(parents=True, exist_ok=True)
            os.chmod(artifacts.root, 0o700)  # images are read by the control plane only
        else:
            log.warning(NOT_ISOLATED.format(uid=os.geteuid()))
        disks.private_dir(self.root, self._run_as_any())
        self.artifacts = artifacts
        self.stop_grace = stop_grace
        self.step_stop_grace = step_stop_grace  # a provisioning step's time to end at a stop
        self._on_change = on_change or (lambda _sid: None)
        self._block = addresses.block_for(root)
        self._claims = claims or addresses.default_claims()
        self._lock = threading.RLock()
        self._live: dict[tuple[str, str], LiveInstance] = {}
        self._missing_ops: dict[str, dict[str, OperationObservation]] = {}
        self._probes: dict[str, ProbeSpec | None] = {}
        self._prober = Prober(on_change=self._probe_changed,
                              on_attempt=metrics.probe_attempt if metrics else None)
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="scaleset-instance")
        self._stopping = threading.Event()
        self._prober.start()
        self._adopt()
        self._monitor = threading.Thread(target=self._watch_processes,
                                         name="scaleset-supervisor", daemon=True)
        self._monitor.start()

    # -- the Driver protocol ---------------------------------------------------
    def create_instance(self, spec: InstanceSpec) -> None:
        key = (spec.scale_set_id, spec.instance_id)
        with self._lock:
            if key in self._live:
                return
            directory = self.root / records.scale_set_key(spec.scale_set_id) / spec.instance_id
            disks.private_dir(directory.parent, self._run_as_any())
            disks.private_dir(directory, self._run_as_any())
            records.save_inputs(directory, spec.os_disk_id,
                                records.inputs_of(spec.extensions, spec.custom_data),
                                self.sealer)
            ip = addresses.allocate(self._block,
                                    (x.state.private_ip for x in self._live.values()),
                                    lambda address: self._claims.claim(address, directory))
            state = InstanceState(
                scale_set_id=spec.scale_set_id, instance_id=spec.instance_id, private_ip=ip,
                os_disk=_disk_state(spec.os_disk_id, spec.image_version, spec.generation,
                                    spec.image_digest, spec.extensions, spec.health_source),
                data_disks=[(d.lun, d.disk_id) for d in spec.data_disks],
                uid=self._new_uid() if self.isolated else None,
                incarnation=secrets.token_hex(6))
            live = LiveInstance(state, directory, busy="create")
            live.save()
            self._live[key] = live
        self._pool.submit(self._guarded, live, "create", self._create, live)

    def delete_instance(self, scale_set_id: str, instance_id: str) -> None:
        with self._lock:
            live = self._live.pop((scale_set_id, instance_id), None)
        if live is None:
            return
        # Out of the way at once (a new instance may take the same id and directory);
        # stopping and removing can wait for an operation in progress to let go.
        graveyard = live.directory.with_name(f".deleted-{live.directory.name}-"
                                             f"{live.state.incarnation}")
        try:
            live.directory.rename(graveyard)
        except OSError:
            graveyard = live.directory
        live.directory = graveyard
        self._pool.submit(self._remove, live)

    def _remove(self, live: LiveInstance) -> None:
        with live.lock:
            live.state.running = False
            self._stop(live)
            shutil.rmtree(live.directory, ignore_errors=True)
            if live.state.private_ip:
                self._claims.release(live.state.private_ip, self._home(live))

    def submit(self, operation: Operation) -> None:
        live = self._live.get((operation.scale_set_id, operation.instance_id))
        if isinstance(operation, ReleaseOperation):
            if live is not None and live.state.previous is not None:
                self._pool.submit(self._guarded, live, None, self._release, live)
            return
        if live is None:
            ops = self._missing_ops.setdefault(operation.scale_set_id, {})
            ops.setdefault(operation.op_id, OperationObservation(
                operation.op_id, OperationState.FAILED, _now(), "instance does not exist"))
            return
        # Not written to disk yet: until the operation swaps a disk in it changes nothing
        # that lasts, and a restart forgets it (the shell then asks again). That keeps
        # submitting a batch free of one fsync per instance.
        if not live.record(operation.op_id, OpState(OperationState.RUNNING.value),
                           only_if_new=True, persist=False):
            return  # the same id is the same operation: never run it twice
        if isinstance(operation, UpgradeOperation):
            self._pool.submit(self._guarded, live, operation.op_id, self._upgrade, live,
                              operation)
        elif isinstance(operation, RollbackOperation):
            self._pool.submit(self._guarded, live, operation.op_id, self._rollback, live,
                              operation)
        elif isinstance(operation, PowerOperation):
            self._pool.submit(self._guarded, live, operation.op_id, self._power, live,
                              operation)

    def observe(self, scale_set_id: str, now: datetime) -> DriverSnapshot:
        with self._lock:
            mine = [x for (sid, _), x in self._live.items() if sid == scale_set_id]
        instances: dict[str, DriverInstance] = {}
        ops: dict[str, OperationObservation] = dict(self._missing_ops.get(scale_set_id, {}))
        for live in mine:
            instances[live.state.instance_id] = self._seen(live)
            with live.save_lock:
                logged = list(live.state.ops.items())
            for op_id, op in logged:
                ops[op_id] = OperationObservation(
                    op_id, OperationState(op.state),
                    datetime.fromisoformat(op.finished_at) if op.finished_at else None,
                    op.message)
        return DriverSnapshot(instances, ops)

    def configure_probe(self, scale_set_id: str, probe: ProbeSpec | None) -> None:
        with self._lock:
            if scale_set_id in self._probes and self._probes[scale_set_id] == probe:
                return
            self._probes[scale_set_id] = probe
            mine = [x for (sid, _), x in self._live.items() if sid == scale_set_id]
        for live in mine:
            if live.busy is None and live.process_alive():
                self._watch(live)

    def scale_set_ids(self) -> frozenset[str]:
        with self._lock:
            return frozenset(sid for sid, _ in self._live)

    def console_log(self, scale_set_id: str, instance_id: str) -> bytes | None:
        live = self._live.get((scale_set_id, instance_id))
        return live.console_tail() if live is not None else None

    # -- life cycle of the driver ----------------------------------------------
    def next_event_time(self) -> datetime | None:
        """Nothing is scheduled on a clock: changes arrive through ``on_change``."""
        return None

    def close(self) -> None:
        """Stop every instance (they restart when a driver opens this directory again).

        Closing a closed driver does nothing.
        """
        if self._stopping.is_set():
            return
        self._stopping.set()
        self._monitor.join(5)
        with self._lock:
            everything = list(self._live.values())
        # A provisioning step under way may finish (nothing new starts once stopping is
        # set): killed, it would have to run again on its disk at the next start.
        deadline = time.monotonic() + self.step_stop_grace
        while any(live.stepping for live in everything) and time.monotonic() < deadline:
            time.sleep(0.05)
        # Kill first, without waiting for the instances' locks: an operation in progress
        # (a long CustomScript, say) ends as soon as its command is gone, and starts
        # nothing new once stopping is set.
        for live in everything:
            processes.stop_all(live.key, sorted(live.groups), grace=self.stop_grace)
        list(self._pool.map(self._stop_for_shutdown, everything))
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._prober.stop()

    def instance_room(self, additional: int) -> str | None:
        """``None`` if this machine can hold ``additional`` more instances, else why not."""
        with self._lock:
            running = len(self._live)
        return capacity.room(capacity.read_snapshot(), additional, running)

    def private_ip(self, scale_set_id: str, instance_id: str) -> str | None:
        live = self._live.get((scale_set_id, instance_id))
        return live.state.private_ip if live else None

    def instance_directory(self, scale_set_id: str, instance_id: str) -> Path | None:
        """Where the instance's disks and console log live (for tests and tools)."""
        live = self._live.get((scale_set_id, instance_id))
        return live.directory if live else None

    def pid(self, scale_set_id: str, instance_id: str) -> int | None:
        """The instance's main process id while it runs, else ``None`` (for tests and tools)."""
        live = self._live.get((scale_set_id, instance_id))
        if live is None or not live.process_alive():
            return None
        return live.state.pid

    # -- operations ------------------------------------------------------------
    def _guarded(self, live: LiveInstance, busy: str | None, work: Callable[..., object],
                 *args: object) -> None:
        """Run ``work`` holding the instance; record an unexpected failure instead of losing it."""
        with live.lock:
            live.queued = False
            if busy is not None:
                live.busy = busy
            try:
                work(*args)
            except Exception as exc:  # the operation fails, the driver goes on
                log.exception("instance %s: %s failed", live.key, busy or work.__name__)
                if busy not in (None, "create"):
                    self._finish(live, busy, OperationState.FAILED, f"internal error: {exc}")
            finally:
                live.busy = None
                if self._live.get((live.state.scale_set_id, live.state.instance_id)) is live:
                    live.save()
        self._on_change(live.state.scale_set_id)

    def _create(self, live: LiveInstance) -> None:
        disks.ensure_data_disks(live.directory, [lun for lun, _ in live.state.data_disks],
                                self._run_as(live))
        try:
            self._build(live, live.state.os_disk)
        except (disks.DiskError, LookupError) as exc:
            live.state.failed, live.state.running = True, False
            live.note(f"provisioning failed: {exc}")
            return
        self._boot(live)

    def _upgrade(self, live: LiveInstance, op: UpgradeOperation) -> None:
        self._stop(live)
        new = _disk_state(op.os_disk_id, op.image_version, op.generation, op.image_digest,
                          op.extensions, op.health_source)
        records.save_inputs(live.directory, new.disk_id,
                            records.inputs_of(op.extensions, op.custom_data), self.sealer)
        try:
            self._build(live, new)
        except (disks.DiskError, LookupError) as exc:
            live.state.failed, live.state.running = True, False
            live.note(f"OS disk replacement failed: {exc}")
            self._finish(live, op.op_id, OperationState.FAILED,
                         f"building OS disk {op.os_disk_id} failed: {exc}")
            return
        if op.reset_data_disks:  # reimageall: the data disks come back empty
            disks.reset_data_disks(live.directory, [lun for lun, _ in live.state.data_disks],
                                   self._run_as(live))
            live.note("data disks reimaged (emptied)")
        older = live.state.previous
        live.state.previous, live.state.os_disk = live.state.os_disk, new
        # A new OS disk boots: an instance that was powered off runs again afterwards.
        live.state.failed, live.state.running, live.state.deallocated = False, True, False
        live.record(op.op_id, OpState(OperationState.RUNNING.value, disk_id=new.disk_id))
        if older is not None:
            shutil.rmtree(live.disk_path(older), ignore_errors=True)
        self._complete(live, op.op_id)

    def _power(self, live: LiveInstance, op: PowerOperation) -> None:
        """A user's power verb; asking for the state the instance is in changes nothing."""
        state, action = live.state, op.action
        up = state.running and not state.failed
        if (action is PowerAction.START and up) or (
                action is PowerAction.POWER_OFF and not state.running) or (
                action is PowerAction.DEALLOCATE and state.deallocated):
            self._finish(live, op.op_id, OperationState.SUCCEEDED, None)
            return
        if action in (PowerAction.POWER_OFF, PowerAction.DEALLOCATE) or (
                up and action in (PowerAction.RESTART, PowerAction.REDEPLOY)):
            self._power_down(live, op)
        if action in (PowerAction.POWER_OFF, PowerAction.DEALLOCATE):
            self._finish(live, op.op_id, OperationState.SUCCEEDED, None)
            return
        if self._power_up(live, new_host=action is PowerAction.REDEPLOY) == STOPPING:
            return  # interrupted by a shutdown: the shell asks again under the same id
        self._finish(live, op.op_id, OperationState.SUCCEEDED, None)

    def _power_down(self, live: LiveInstance, op: PowerOperation) -> None:
        state = live.state
        deallocate = op.action is PowerAction.DEALLOCATE
        live.power_phase = PowerState.DEALLOCATING if deallocate else PowerState.STOPPING
        self._on_change(live.state.scale_set_id)
        self._stop(live, grace=0.0 if op.skip_shutdown else None)
        state.running = False
        if deallocate:
            # What the instance held on its "host" goes back: its address. Disks stay.
            if state.private_ip:
                self._claims.release(state.private_ip, self._home(live))
            state.private_ip, state.deallocated = "", True
        live.save()
        live.note("deallocated (address released; disks kept)" if deallocate else
                  "powered off" + (" without shutdown" if op.skip_shutdown else ""))
        live.power_phase = None

    def _power_up(self, live: LiveInstance, *, new_host: bool) -> str | None:
        """Boot the instance's own OS disk again; a new address when ``new_host``."""
        state = live.state
        live.power_phase = PowerState.STARTING
        self._on_change(live.state.scale_set_id)
        try:
            if new_host:
                old = state.private_ip
                state.private_ip = ""
                self._ensure_address(live, avoid=old)
                if old:
                    self._claims.release(old, self._home(live))
                live.note(f"redeployed: new host, address {state.private_ip}")
            state.running, state.failed, state.deallocated = True, False, False
            live.save()
            return self._boot(live)
        finally:
            live.power_phase = None

    def _ensure_address(self, live: LiveInstance, avoid: str = "") -> None:
        """Give an instance without an address (deallocated, redeployed) a fresh one."""
        if live.state.private_ip:
            return
        with self._lock:
            taken = [x.state.private_ip for x in self._live.values()] + [avoid]
            live.state.private_ip = addresses.allocate(
                self._block, taken, lambda address: self._claims.claim(address,
                                                                      self._home(live)))

    def _complete(self, live: LiveInstance, op_id: str) -> None:
        """Boot the disk an operation swapped in and record how that went.

        Interrupted by a shutdown, the operation stays Running: the next driver on
        this directory resumes it (``_adopt``) instead of failing it.
        """
        failure = self._boot(live)
        if failure == STOPPING:
            return
        self._finish(live, op_id, OperationState.FAILED if failure else
                     OperationState.SUCCEEDED, failure)

    def _rollback(self, live: LiveInstance, op: RollbackOperation) -> None:
        self._stop(live)
        state = live.state
        if state.previous is not None:
            failed_disk = state.os_disk
            state.os_disk, state.previous = state.previous, None
            live.record(op.op_id, OpState(OperationState.RUNNING.value,
                                          disk_id=state.os_disk.disk_id))
            shutil.rmtree(live.disk_path(failed_disk), ignore_errors=True)
        # With no kept disk (the replacement failed before the swap) restoring is booting
        # the disk the instance still has.
        if not live.disk_path(state.os_disk).exists():
            self._finish(live, op.op_id, OperationState.FAILED,
                         f"OS disk {state.os_disk.disk_id} to restore is missing")
            state.failed, state.running = True, False
            return
        state.failed, state.running, state.deallocated = False, True, False
        live.record(op.op_id, OpState(OperationState.RUNNING.value,
                                      disk_id=state.os_disk.disk_id))
        live.note(f"rolled back to OS disk {state.os_disk.disk_id} "
                            f"(image {state.os_disk.image_version})")
        self._complete(live, op.op_id)

    def _release(self, live: LiveInstance) -> None:
        previous = live.state.previous
        if previous is not None:
            shutil.rmtree(live.disk_path(previous), ignore_errors=True)
            live.state.previous = None

    def _finish(self, live: LiveInstance, op_id: str, state: OperationState, message: str | None
                ) -> None:
        live.record(op_id, OpState(state.value, _now().isoformat(), message))

    # -- disks and boots ---------------------------------------------------------
    def _build(self, live: LiveInstance, disk: DiskState) -> None:
        tree = self.artifacts.get(disk.digest).path if disk.digest else None
        disks.build_os_disk(live.disk_path(disk), tree, self._run_as(live))
        live.note(f"OS disk {disk.disk_id} built from image "
                            f"{disk.image_version or '(none)'} " + (
                                disk.digest or "(published without files: the base image)"))

    def _env(self, live: LiveInstance) -> dict[str, str]:
        # Like a VM, an instance does not see the control plane's environment (its
        # tokens, database URL, cloud credentials): only what finds programs and locale.
        env = {k: v for k, v in os.environ.items()
               if k in INHERITED or k.startswith(INHERITED_PREFIXES)}
        data = disks.ensure_data_disks(live.directory, [lun for lun, _ in live.state.data_disks],
                                       self._run_as(live))
        os_disk = live.disk_path(live.state.os_disk)
        if self._run_as(live) is not None:  # the server's HOME is not the instance's
            env["HOME"] = str(os_disk)
        env.update({
            "SCALESET_PRIVATE_IP": live.state.private_ip,
            "SCALESET_INSTANCE_ID": live.state.instance_id,
            "SCALESET_DATA_DISKS": os.pathsep.join(str(p) for p in data),
            "SCALESET_CUSTOM_DATA": str(disks.custom_data_path(os_disk)),
            processes.KEY_VARIABLE: live.key,
            "PYTHONUNBUFFERED": "1",
        })
        return env

    def _boot(self, live: LiveInstance) -> str | None:
        """Start the instance's OS disk; on a new disk, run custom data and extensions.

        Returns why provisioning failed, or ``None``.
        """
        disk = live.state.os_disk
        path = live.disk_path(disk)
        if not path.exists():  # lost in a crash between steps: rebuild it from the image
            self._build(live, disk)
        self._ensure_address(live)  # a deallocated instance booted by a reimage or start
        run_as = self._run_as(live)
        disks.give(path, run_as)  # an instance adopted from before instances had users
        env = self._env(live)
        first_boot = not disk.provisioned
        inputs = records.load_inputs(live.directory, disk.disk_id, self.sealer) \
            if first_boot else None
        if first_boot:
            # What a killed control plane left running goes, but its provisioning steps
            # finish (they must not run twice): provision() waits for them.
            processes.stop_all(live.key, sorted(live.groups), grace=self.stop_grace,
                               spare_steps=True)
            live.groups.clear()
        custom_data = disks.write_custom_data(path, inputs.custom_data, run_as) \
            if inputs is not None else b""
        failure = self._spawn(live, env)
        if failure is not None:
            return failure
        if not first_boot:
            self._watch(live)
            failed = [x for x in disk.statuses() if x.state == "Failed"]
            return _extension_failure(failed[0]) if failed else None
        statuses = provision.provision(live, custom_data, env, self._stopping, run_as, inputs,
                                         sources=self.sources)
        if statuses is None:
            return STOPPING
        records.drop_inputs(live.directory, disk.disk_id)  # provisioned: never needed again
        self._watch(live)
        failed = [s for s in statuses if s.state == "Failed"]
        return _extension_failure(failed[0]) if failed else None

    def _spawn(self, live: LiveInstance, env: dict[str, str] | None = None) -> str | None:
        """Start the entrypoint; why it could not start (then a retry is scheduled)."""
        if self._stopping.is_set():
            return STOPPING
        path = live.disk_path(live.state.os_disk)
        with live.console_file() as console:
            console.write(f"[scaleset] booting OS disk {live.state.os_disk.disk_id} (image "
                          f"{live.state.os_disk.image_version or 'base'}) at "
                          f"{live.state.private_ip}\n".encode())
            console.flush()
            try:
                argv = disks.manifest(path).get("entrypoint")
                if not isinstance(argv, list) or not argv:
                    raise disks.DiskError("image.json has no entrypoint")
                live.popen = processes.spawn([str(a) for a in argv], cwd=path,
                                             env=env or self._env(live), log=console,
                                             run_as=self._run_as(live))
            except (OSError, disks.DiskError) as exc:
                # Like a process that dies at once: retried with back-off, unhealthy meanwhile.
                why = f"the entrypoint could not be started: {exc}"
                console.write(f"[scaleset] {why}; retrying in {live.backoff:.1f} s\n".encode())
                live.popen = None
                live.restart_at = time.monotonic() + live.backoff
                live.backoff = min(BACKOFF_MAX, live.backoff * 2)
                return why
        live.groups.add(live.popen.pid)
        live.state.pid = live.popen.pid
        live.state.pid_started = processes.start_time(live.popen.pid)
        live.started_at = time.monotonic()
        live.restart_at = None
        live.save()
        return None

    def _stop(self, live: LiveInstance, grace: float | None = None) -> None:
        """Stop the instance's processes (SIGTERM, ``grace`` seconds, SIGKILL)."""
        self._prober.unwatch(self._probe_key(live))
        groups = set(live.groups)
        if live.state.pid is not None and processes.alive(live.state.pid,
                                                         live.state.pid_started):
            groups.add(live.state.pid)
        processes.stop_all(live.key, sorted(groups),
                           grace=self.stop_grace if grace is None else grace)
        if live.popen is not None:
            live.popen.wait()
        live.popen, live.state.pid, live.state.pid_started = None, None, None
        live.groups.clear()
        live.restart_at = None

    def _stop_for_shutdown(self, live: LiveInstance) -> None:
        with live.lock:
            self._stop(live)
            live.save()

    def _watch(self, live: LiveInstance) -> None:
        extension = _health_extension(live.state.os_disk)
        probe = self._probes.get(live.state.scale_set_id)
        if live.state.os_disk.health_source and (probe is not None or extension is not None):
            self._prober.watch(self._probe_key(live), live.state.private_ip, probe=probe,
                               extension=extension)
        else:
            self._prober.unwatch(self._probe_key(live))

    def _home(self, live: LiveInstance) -> Path:
        """The instance's own directory (it moves aside when the instance is deleted)."""
        return self.root / records.scale_set_key(live.state.scale_set_id) / \
            live.state.instance_id

    def _tidy_modes(self, directory: Path) -> None:
        """Modes of the layout an older version left (0755 directories, 0644 files)."""
        shared = self._run_as_any()
        for folder in (directory.parent, directory, directory / "os", directory / "disks"):
            if folder.is_dir():
                disks.private_dir(folder, shared)
        for name in (instance.CONSOLE, records.STATE_FILE):
            if (directory / name).exists():
                os.chmod(directory / name, 0o600)

    def _run_as(self, live: LiveInstance) -> processes.RunAs | None:
        """The instance's own user, when this control plane can give it one."""
        uid = live.state.uid
        return processes.RunAs(uid, uid) if self.isolated and uid is not None else None

    def _run_as_any(self) -> processes.RunAs | None:
        """Some instance user when isolating (for the modes of shared directories)."""
        return processes.RunAs(self._uid_base, self._uid_base) if self.isolated else None

    def _new_uid(self, also_taken: frozenset[int] = frozenset()) -> int:
        """The lowest user of this data directory's slot that no instance has."""
        with self._lock:
            taken = {x.state.uid for x in self._live.values()} | also_taken
        for uid in range(self._uid_base, self._uid_base + UID_SLOT):
            if uid not in taken:
                return uid
        raise addresses.AddressPoolExhausted(
            f"all {UID_SLOT} instance users of this data directory are taken")

    def _probe_changed(self, key: Hashable) -> None:
        if isinstance(key, tuple):  # (scale set, instance): see _probe_key
            self._on_change(str(key[0]))

    @staticmethod
    def _probe_key(live: LiveInstance) -> tuple[str, str]:
        return (live.state.scale_set_id, live.state.instance_id)

    # -- what the shell sees -----------------------------------------------------
    def _seen(self, live: LiveInstance) -> DriverInstance:
        state = live.state
        disk = state.os_disk
        busy = live.busy
        if live.power_phase is not None:
            power = live.power_phase
        elif busy is not None:
            power = PowerState.STARTING
        elif state.deallocated:
            power = PowerState.DEALLOCATED
        elif state.failed or not state.running:
            power = PowerState.STOPPED
        else:
            power = PowerState.RUNNING if live.process_alive() else PowerState.STOPPED
        statuses = disk.statuses()
        provisioning = (ProvisioningState.CREATING if busy == "create"
                        else ProvisioningState.UPDATING if busy is not None
                        else ProvisioningState.FAILED
                        if state.failed or any(s.state == "Failed" for s in statuses)
                        else ProvisioningState.SUCCEEDED)
        health = aggregate.instance_health(
            power, [s.state for s in statuses] if disk.provisioned else ["Creating"],
            self._application_health(live))
        return DriverInstance(
            instance_id=state.instance_id, image_version=disk.image_version,
            generation=disk.generation, os_disk_id=disk.disk_id,
            previous_os_disk_id=state.previous.disk_id if state.previous else None,
            power_state=power, provisioning_state=provisioning, health=health,
            data_disk_ids=tuple(d for _, d in state.data_disks),
            private_ip=state.private_ip or None, extensions=statuses)

    def _application_health(self, live: LiveInstance) -> HealthState | None:
        disk = live.state.os_disk
        if not disk.health_source:
            return None
        key = self._probe_key(live)
        signals = []
        if self._probes.get(live.state.scale_set_id) is not None:
            signals.append(self._prober.probe_health(key) or HealthState.INITIALIZING)
        if _health_extension(disk) is not None:
            signals.append(self._prober.extension_health(key) or HealthState.INITIALIZING)
        if not signals:
            return None
        return max(signals, key=_SEVERITY.__getitem__)

    # -- supervision ---------------------------------------------------------------
    def _watch_processes(self) -> None:
        while not self._stopping.wait(MONITOR_PERIOD):
            with self._lock:
                everything = list(self._live.values())
            for live in everything:
                if live.busy is not None or live.queued or \
                        not live.lock.acquire(blocking=False):
                    continue
                try:
                    self._supervise(live)
                except Exception:
                    log.exception("supervising %s failed", live.key)
                finally:
                    live.lock.release()

    def _supervise(self, live: LiveInstance) -> None:
        state = live.state
        if not state.running or state.failed or self._stopping.is_set():
            return
        now = time.monotonic()
        if live.restart_at is None:
            if live.process_alive():
                if now - live.started_at > STABLE_AFTER:
                    live.backoff = BACKOFF_FIRST
                return
            code = live.popen.poll() if live.popen is not None else None
            live.note(f"process exited (status {code}); restarting in "
                                f"{live.backoff:.1f} s")
            self._prober.unwatch(self._probe_key(live))
            processes.stop_all(live.key, sorted(live.groups), grace=self.stop_grace,
                               spare_steps=not state.os_disk.provisioned)
            live.popen, state.pid, state.pid_started = None, None, None
            live.groups.clear()
            live.restart_at = now + live.backoff
            live.backoff = min(BACKOFF_MAX, live.backoff * 2)
            live.save()
            self._on_change(live.state.scale_set_id)
        elif now >= live.restart_at:
            if not state.os_disk.provisioned:
                self._pool.submit(self._guarded, live, None, self._boot, live)
                live.restart_at = None
                return
            if self._spawn(live) is None:
                self._watch(live)
            self._on_change(live.state.scale_set_id)

    # -- adoption ------------------------------------------------------------------
    def _adopt(self) -> None:
        """Take over the instances a previous control plane left in this directory."""
        found = sorted(self.root.glob(f"*/*/{records.STATE_FILE}"))
        kept: set[int] = set()
        for state_file in found:  # users already given (read again below)
            try:
                uid = records.load(state_file).uid
            except (OSError, ValueError, TypeError, KeyError):
                continue
            if uid is not None:
                kept.add(uid)
        for state_file in found:
            try:
                state = records.load(state_file)
            except (OSError, ValueError, TypeError, KeyError) as exc:
                log.error("cannot read %s (%s): instance left alone", state_file, exc)
                continue
            live = LiveInstance(state, state_file.parent)
            if self.isolated and state.uid is None:  # from before instances had users
                state.uid = self._new_uid(frozenset(kept))
                kept.add(state.uid)
            wanted = {records.inputs_file(state_file.parent, d.disk_id).name
                      for d in (state.os_disk, state.previous) if d is not None}
            for stale in state_file.parent.glob("inputs-*.json"):
                if stale.name not in wanted:
                    stale.unlink(missing_ok=True)  # an OS disk built but never swapped in
            self._tidy_modes(state_file.parent)
            if state_file.parent.name.startswith(".deleted-"):  # deleted before a crash
                processes.stop_all(live.key, (), grace=self.stop_grace)
                shutil.rmtree(state_file.parent, ignore_errors=True)
                continue
            resume = None
            for op_id, op in list(state.ops.items()):
                if op.state != OperationState.RUNNING.value:
                    continue
                if op.disk_id is not None and op.disk_id == state.os_disk.disk_id:
                    resume = op_id  # its disk is in place: boot it and finish the operation
                else:
                    # It changed nothing that lasts: forget it, and the shell asks again.
                    del state.ops[op_id]
            self._live[(state.scale_set_id, state.instance_id)] = live
            if state.private_ip and not self._claims.claim(state.private_ip, live.directory):
                log.warning("instance %s keeps %s, which another control plane claims",
                            live.key, state.private_ip)
            unprovisioned = not state.os_disk.provisioned
            if resume is not None:
                processes.stop_all(live.key, (), grace=self.stop_grace,
                                   spare_steps=unprovisioned)
                state.pid = state.pid_started = None
                live.save()
                live.note(f"resuming operation {resume} after a control-plane "
                                    "restart")
                live.queued = True  # the supervisor leaves it to the operation
                self._pool.submit(self._guarded, live, resume, self._complete, live, resume)
                continue
            # A disk still provisioning boots again (its steps resume), even if its
            # entrypoint still runs: adopting that would leave provisioning undone.
            if state.running and not state.failed and state.pid is not None and \
                    not unprovisioned and processes.alive(state.pid, state.pid_started):
                live.groups.add(state.pid)
                live.started_at = time.monotonic()
                self._watch(live)
                live.note("adopted by a new control plane")
                live.save()
                continue
            # Anything of it that survived without its main process goes (but for the
            # provisioning steps of a disk not yet provisioned: they finish): it boots anew.
            processes.stop_all(live.key, (), grace=self.stop_grace, spare_steps=unprovisioned)
            state.pid = state.pid_started = None
            live.save()
            if state.running and not state.failed:
                # Queued: the supervisor must not see a dead process and restart (or kill
                # the provisioning steps of) an instance whose boot is already on its way.
                live.queued = True
                self._pool.submit(self._guarded, live, None, self._boot, live)


def _now() -> datetime:
    return datetime.now(UTC)


def _disk_state(disk_id: str, image_version: str | None, generation: int, digest: str | None,
                specs: tuple[ExtensionSpec, ...], health_source: bool) -> DiskState:
    return DiskState(disk_id=disk_id, image_version=image_version, generation=generation,
                     digest=digest, extensions=[records.extension_dict(e) for e in specs],
                     health_source=health_source)


def _searchable(path: Path) -> None:
    """Give every directory above ``path`` search permission for others (``o+x``, not read),
    so an instance's user reaches its own disks by name (and lists nothing on the way)."""
    changed = []
    for folder in [path, *path.resolve().parents]:
        mode = folder.stat().st_mode
        if not mode & stat.S_IXOTH:
            os.chmod(folder, stat.S_IMODE(mode) | stat.S_IXOTH)
            changed.append(str(folder))
    if changed:
        log.warning("instances run as users of their own: gave search permission (o+x, "
                    "not read) to %s so they reach their disks", ", ".join(changed))


def _extension_failure(status: ExtensionStatus) -> str:
    return (f"VM has reported a failure when processing extension '{status.name}'. "
            f"Error message: {status.message}")


def _health_extension(disk: DiskState) -> HealthExtensionSpec | None:
    for spec in disk.extension_specs():
        try:
            found = extensions.health_spec(spec)
        except ValueError:
            return None  # its provisioning failed and says why
        if found is not None:
            return found
    return None
