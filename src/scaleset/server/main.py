"""Assemble and run ``scaleset serve``: store, TLS, tokens, driver, reconcile loop, API."""

from __future__ import annotations

import json
import fcntl
import logging
import os
import resource
import signal
import stat
import sys
from collections.abc import Callable, Mapping
from datetime import timedelta
from pathlib import Path
from typing import IO, Any, TextIO

import uvicorn
from sqlalchemy import select

from scaleset.api.app import create_app
from scaleset.api.context import ApiContext
from scaleset.clock import SystemClock
from scaleset.artifacts import ArtifactStore, SourceRules
from scaleset.drivers.process.driver import ProcessDriver
from scaleset.drivers.simulated import SimulatedDriver, Timings
from scaleset.reconcile.replication import Replicator
from scaleset.reconcile.settings import ShellSettings
from scaleset.reconcile.shell import Reconciler
from scaleset.reconcile.subscriptions import DEFAULT_SUBSCRIPTION as DEFAULT_SUBSCRIPTION
from scaleset.security import secrets, tls, tokens
from scaleset.server.loop import ReconcileLoop
from scaleset.server.instance_dir import instance_dir
from scaleset.server.outcome_log import OutcomeLog
from scaleset.server.settings import ServeSettings
from scaleset.store import tables as t
from scaleset.store.database import open_store
from scaleset.store.repository import ImageVersionRow, Store
from scaleset.telemetry import logs
from scaleset.telemetry.metrics import Metrics

log = logging.getLogger("scaleset.serve")

# Real-time latencies of the simulated driver: well under a second per step.
REALTIME_TIMINGS = Timings(reimage=timedelta(seconds=0.3), boot=timedelta(seconds=0.2),
                           healthy=timedelta(seconds=0.3))


def simulated_unhealthy(properties: Mapping[str, Any]) -> bool:
    """A version published with ``properties.simulation.healthy: false`` never comes up healthy.

    The simulated driver knows images by version only, so such a version is unhealthy
    whichever sku it was published under.
    """
    simulation = properties.get("simulation")
    return isinstance(simulation, dict) and simulation.get("healthy") is False


def _known_bad_images(store: Store) -> set[str]:
    with store.transaction() as tx:
        rows = tx.conn.execute(select(t.image_versions.c.version, t.image_versions.c.properties))
        return {r.version for r in rows if simulated_unhealthy(r.properties)}


GRACEFUL_SHUTDOWN_SECONDS = 3


class _QuietIdleCut(logging.Filter):
    """Drop uvicorn's error line for cutting idle connections at the graceful-shutdown bound,
    and its traceback of a request's unhandled exception.

    "Cancel 0 running task(s)" means no request was cut, only idle keep-alive
    connections: nothing an operator needs to act on. "Exception in ASGI
    application" repeats what the request's own ERROR line already carries with
    its traceback (``api/access.py``).
    """

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not (message.startswith("Cancel 0 running task(s)")
                    or message.startswith("Exception in ASGI application"))


FILE_LIMIT_WANTED = 65_536


def _raise_file_limit() -> None:
    """Lift the soft open-file limit towards the hard one: every probed instance may keep a
    connection (``drivers/process/probes.py`` sizes its kept connections from this limit),
    and a typical soft limit of 1,024 would make most of them reconnect at every probe."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = FILE_LIMIT_WANTED if hard == resource.RLIM_INFINITY else min(hard,
                                                                          FILE_LIMIT_WANTED)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
        except (ValueError, OSError):
            log.warning("could not raise the open-file limit from %d to %d", soft, wanted)


def _exit_on_signal(signum: int, _frame: object) -> None:
    raise SystemExit(0)


class Doorbell:
    """Lets the driver wake the reconcile loop, which is built after the driver."""

    def __init__(self) -> None:
        self.target: Callable[[str | None], None] | None = None

    def ring(self, scale_set_id: str | None = None) -> None:
        """Something changed for this scale set (None: for any of them)."""
        if self.target is not None:
            self.target(scale_set_id)


Ready = Callable[[str, Path | None, str | None], None]


def serve(settings: ServeSettings, *, out: TextIO = sys.stdout, on_ready: Ready | None = None
          ) -> None:
    """Run until interrupted. Prints where it listens, the CA file, and a first token once.

    ``on_ready(endpoint, ca_file, first_token)`` lets the CLI write the client config.
    Logs go to stderr in ``settings.log_format`` (``telemetry/logs.py``).
    """
    logs.configure(fmt=settings.log_format, level=settings.log_level,
                   secrets=[s for s in (settings.bootstrap_token, settings.metrics_token) if s])
    metrics = Metrics()
    _raise_file_limit()
    private_data_dir(settings.data_dir)
    lock = _lock_data_dir(settings.data_dir)
    try:
        keyring = secrets.load_keyring(settings.data_dir)
    except secrets.SecretsError as exc:
        raise SystemExit(f"cannot start: {exc}") from None
    store = open_store(settings.url, cipher=keyring)
    try:
        secrets.check_opens(store)
    except secrets.SecretsError as exc:
        store.close()
        raise SystemExit(f"cannot start: {exc}") from None
    clock = SystemClock()
    certfile = keyfile = None
    if not settings.insecure_http:
        if settings.tls_cert and settings.tls_key:
            certfile, keyfile = str(settings.tls_cert), str(settings.tls_key)
        else:
            files = tls.ensure_tls(settings.data_dir, hosts=tuple(dict.fromkeys(
                (settings.host, "127.0.0.1", "localhost", "::1"))))
            certfile, keyfile = str(files.cert), str(files.key)
            for public in (files.ca, files.cert):  # public, but nobody else's business here
                _tighten(public)
            print(f"CA certificate: {files.ca.resolve()}", file=out)
    issued = tokens.ensure_bootstrap_token(store, env_value=settings.bootstrap_token,
                                           now=clock.now())
    if issued is not None and settings.bootstrap_token is None:
        print(f"First contributor token (shown once; store it): {issued.token}", file=out)
    elif issued is not None:  # the operator chose it: never echo a secret they already have
        print(f"First contributor token: from SCALESET_BOOTSTRAP_TOKEN (id {issued.token_id})",
              file=out)

    # uvicorn re-raises the signal that stopped it once it has shut down; with
    # Python's default SIGTERM disposition that kills the process before the
    # clean-up below, leaving every instance running. Turn it into an exit.
    signal.signal(signal.SIGTERM, _exit_on_signal)
    artifacts = ArtifactStore(settings.data_dir / "images", data_dir=settings.data_dir)
    wake = Doorbell()
    driver: SimulatedDriver | ProcessDriver
    if settings.driver == "simulated":
        simulated = SimulatedDriver(start=clock.now(), timings=REALTIME_TIMINGS,
                                    bad_images=frozenset(_known_bad_images(store)))

        def published(row: ImageVersionRow) -> None:
            if simulated_unhealthy(row.properties):
                simulated.bad_images.add(row.version)
        driver = simulated
    elif settings.driver == "process":
        driver = ProcessDriver(instance_dir(settings.data_dir, settings.instance_dir),
                               artifacts, on_change=wake.ring, sources=_source_rules(settings),
                               sealer=keyring, metrics=metrics)

        def published(row: ImageVersionRow) -> None:
            """The process driver reads artifacts when it needs them."""
    else:
        store.close()
        raise SystemExit(f"unknown driver '{settings.driver}'; available: process, simulated")
    try:
        _run(settings, store, clock, driver, wake, published, artifacts, certfile, keyfile,
             issued, on_ready, out, metrics)
    finally:
        if isinstance(driver, ProcessDriver):
            driver.close()  # every instance stops with the control plane
        store.close()
        lock.close()


def _run(settings: ServeSettings, store: Store, clock: SystemClock,
         driver: SimulatedDriver | ProcessDriver, wake: Doorbell,
         published: Callable[[ImageVersionRow], None], artifacts: ArtifactStore,
         certfile: str | None, keyfile: str | None, issued: tokens.IssuedToken | None,
         on_ready: Ready | None, out: TextIO, metrics: Metrics) -> None:
    reconciler = Reconciler(store=store, driver=driver, clock=clock, watching_since=clock.now(),
                            settings=ShellSettings(
                                health_timeout=settings.health_timeout,
                                rollout_timing=settings.rollout_timing,
                                auto_upgrade_images=settings.auto_upgrade_images,
                                limits=settings.limits, sources=settings.sources))
    # Real copies into per-region stores with real instances; a simulated delay otherwise.
    replicator = Replicator(store=store, clock=clock,
                            artifacts=artifacts if isinstance(driver, ProcessDriver) else None,
                            delay=settings.replication_delay, notify=wake.ring)
    outcome_log = OutcomeLog(store=store, metrics=metrics)  # from the newest event on
    loop = ReconcileLoop(reconciler=reconciler, store=store, clock=clock,
                         driver_next_event=driver.next_event_time,
                         driver_changes=driver.changes if isinstance(driver, SimulatedDriver)
                         else None, resync=settings.resync,
                         replicate=replicator.replicate_pending, metrics=metrics,
                         after_round=outcome_log.catch_up)
    wake.target = loop.notify

    context = ApiContext(store=store, clock=clock, settings=reconciler.settings,
                         notify=loop.notify, on_image_published=published,
                         artifacts=artifacts, console_log=driver.console_log,
                         metrics=metrics, metrics_token=settings.metrics_token)
    if isinstance(driver, ProcessDriver):  # the simulated fleet fills no machine
        context.instance_room = driver.instance_room
    app = create_app(context)
    # A bounded graceful shutdown: an idle TLS keep-alive connection (the Azure SDK's)
    # otherwise holds the shutdown for asyncio's 30 s TLS close timeout, and whoever
    # stopped us may give up and SIGKILL before the instances are stopped.
    # log_config None: uvicorn installs no handlers of its own; its lines reach the one
    # logs.configure installed. Its access log names query strings: api/access.py logs.
    config = uvicorn.Config(app, host=settings.host, port=settings.port, log_level="warning",
                            log_config=None,
                            ssl_certfile=certfile, ssl_keyfile=keyfile, access_log=False,
                            timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS)
    # Bound before anything announces the endpoint: `--port 0` gets a free port, named in
    # client.json and the start-up line; a port in use fails before either is written.
    sock = config.bind_socket()
    port = sock.getsockname()[1]
    host = "127.0.0.1" if settings.host in ("0.0.0.0", "::", "") else settings.host
    endpoint = f"{settings.scheme}://{f'[{host}]' if ':' in host else host}:{port}"
    ca_file = (settings.data_dir / "tls" / "ca.pem").resolve() \
        if certfile is not None and not settings.tls_cert else None
    client = {"endpoint": endpoint, "subscription": DEFAULT_SUBSCRIPTION}
    if ca_file is not None:
        client["caFile"] = str(ca_file)
    (settings.data_dir / "client.json").write_text(json.dumps(client, indent=2) + "\n")
    if on_ready is not None:
        on_ready(endpoint, ca_file, issued.token
                 if issued is not None and settings.bootstrap_token is None else None)
    print(f"scaleset listening on {endpoint} (driver: {settings.driver}, database: "
          f"{store.engine.url.render_as_string(hide_password=True)})", file=out, flush=True)

    server = uvicorn.Server(config)
    logging.getLogger("uvicorn.error").addFilter(_QuietIdleCut())
    loop.start()
    try:
        server.run(sockets=[sock])
    finally:
        loop.stop()
        loop.catch_up()  # what the last round committed is logged too
        replicator.close()  # a copy cut short resumes at the next start


PRIVATE_DIR = 0o700
_INSTANCES = "instances"  # the process driver's trees: it sets their modes itself


def private_data_dir(data_dir: Path) -> None:
    """Make the data directory the server's alone: 0700, what is in it 0600 (0700 if executable).

    The umask makes everything this process creates from now on private (the
    database, SQLite's -wal/-shm, TLS files, keys, images); the walk tightens
    what an older version left readable. Instances' trees are the driver's.
    """
    os.umask(0o077)
    data_dir.mkdir(mode=PRIVATE_DIR, parents=True, exist_ok=True)
    os.chmod(data_dir, PRIVATE_DIR)
    for folder, dirs, files in os.walk(data_dir):
        if Path(folder) == data_dir and _INSTANCES in dirs:
            dirs.remove(_INSTANCES)
        for name in (*dirs, *files):
            _tighten(Path(folder) / name)


def _tighten(path: Path) -> None:
    """Take group and other bits away (the owner's stay: an image's executables still run)."""
    info = path.lstat()
    if stat.S_ISLNK(info.st_mode):
        return  # chmod would follow the link out of the data directory
    if stat.S_IMODE(info.st_mode) & 0o077:
        try:
            os.chmod(path, stat.S_IMODE(info.st_mode) & ~0o077)
        except PermissionError:  # another user's file: say so, do not refuse to start
            log.warning("cannot make %s private (owned by uid %d); fix its mode by hand",
                        path, info.st_uid)


def _lock_data_dir(data_dir: Path) -> IO[str]:
    """Hold ``<data-dir>/serve.lock`` for the life of the process: one control plane per
    data directory, or two would drive (and adopt) the same instances."""
    handle = open(data_dir / "serve.lock", "a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.seek(0)
        holder = handle.read().strip() or "unknown"
        handle.close()
        raise SystemExit(f"another scaleset serve (pid {holder}) is using the data directory "
                         f"{data_dir}; stop it first or pass another --data-dir") from None
    handle.seek(0)
    handle.truncate()
    handle.write(str(os.getpid()))
    handle.flush()
    return handle


def _source_rules(settings: ServeSettings) -> SourceRules:
    """What extensions' fileUris may reach: the operator's roots and address rule, never
    the data directory (the API builds the same rules for image sources)."""
    instances = (settings.data_dir / "instances").resolve()
    return SourceRules(roots=settings.sources.roots, protected=(settings.data_dir, instances),
                       allow_private=settings.sources.allow_private,
                       max_bytes=settings.limits.max_image_archive_bytes)
