"""The process driver's health sources: probes that watch every instance over its private IP.

``Prober`` runs both kinds of health source the control plane knows, for up to
thousands of instances at once, on one background thread with its own asyncio
event loop; ``probe_client`` does the talking (h11 framing on bare asyncio
transports):

* a load-balancer probe (``scaleset.drivers.base.ProbeSpec``): Http/Https is up
  on a 200 from ``request_path``, Tcp is up when a connection is accepted;
* the Application Health extension (``HealthExtensionSpec``): http/https
  results are rich health states read from the response, tcp is Healthy when a
  connection is accepted.

What the results add up to is decided by the pure state machines in
``probe_state``; this module only does the I/O and the scheduling:

* each watch runs one task per health source, probing every interval, the
  first time as soon as the watch starts;
* each attempt has ``min(interval, timeout_cap)`` seconds; a timeout, a refused
  connection or a TLS failure is a failed probe;
* while a source still says Initializing, it also retries every
  ``min(interval, 0.2)`` seconds, so a freshly booted instance is seen within a
  fraction of a second. Such extra attempts count only when they succeed:
  failures are counted once per interval, so ``number_of_probes`` failures
  still take ``number_of_probes`` intervals. They share a budget (500 a
  second over all watches), so a thousand instances booting at once cannot
  crowd out the regular probes;
* ``on_change(key)`` is called on the prober thread whenever a key's probe or
  extension state changes (the extension's grace period running out
  included), so the driver can wake its reconcile loop.
* ``on_attempt(source, protocol, seconds, ok)`` is called on the prober thread
  after every attempt (``source`` ``loadBalancer`` or ``extension``; the time
  from a free slot to the answer), so the server can count them
  (``scaleset_probe_duration_seconds``, ``scaleset_probe_failures_total``).

Connections: a Tcp probe (either source) connects and closes, by nature. An
Http/Https probe or an http/https extension keeps its HTTP/1.1 connection
between attempts when the instance's server allows it (HTTP/1.1 without
``Connection: close``): at most one connection per watched health source,
closed when the watch ends. Connecting is half a probe's CPU or more: measured
by ``bench/probes.py``, some 0.15 ms a probe on a kept connection, 0.3 ms on a
new one, 1 ms on a new TLS one (the httpx client before: 1.2 ms, plain HTTP).
A dead instance is still seen at once: its kernel closes the kept connection
when the process dies, the next attempt notices and connects anew, and that
refused connect is the failure. A kept connection that ends before any byte of
the answer (the server dropped it as the request went out) is opened again
once within the same attempt; a fresh one never is. An HTTP/1.0 server, or one
that answers ``Connection: close``, gets a new connection per probe as before.
Idle kept connections are bounded over all watches (``max_kept_connections``,
by default well inside the file limit); past it a probe's connection is closed
after its answer. One difference from a connection per probe: a server that
stops accepting but still serves the connections it has is probed Healthy
until it closes them.

At most ``max_concurrent_probes`` attempts (default 64) are in flight at once;
the others wait for a slot, and the wait is not part of their timeout. The
bound is about time more than sockets: all attempts share one loop, so with
too many in flight the loop's own slowness, on a machine busy running the
instances, would show up as instances timing out. One loop is enough for the
probing itself: 2,000 probes a second took some 0.3 of a core on kept
connections and 0.6 on a new connection each (``bench/probes.py``), so there
is no pool of loops. An attempt that hangs holds its slot until its timeout,
so more than ``max_concurrent_probes`` instances hanging at once delays the
others' probes (it never fails them).

Threads: ``watch``/``unwatch`` may be called from any thread; they update the
watch table under a lock and hand the change to the loop with
``call_soon_threadsafe``. The loop reconciles its running tasks with that table
(``_sync``), so calls from several threads cannot leave a stale task behind.
Readers get immutable state objects by plain attribute reads.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine, Hashable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, TypeVar

import httpx

from scaleset.drivers.base import ProbeSpec
from scaleset.drivers.process import probe_client
from scaleset.drivers.process.probe_state import (
    AppHealthState,
    HealthExtensionSpec,
    LbProbeState,
    rich_health,
)
from scaleset.model.instance import HealthState

__all__ = ["HealthExtensionSpec", "Prober"]

log = logging.getLogger(__name__)

FAST_RETRY_SECONDS = 0.2
"""How often a source that still says Initializing is retried between its regular probes."""

BOOT_RETRY_SECONDS = 30.0
"""How long a load-balancer probe also retries fast while its instance has never answered."""

FAST_RETRY_BUDGET_PER_SECOND = 500.0
"""How many of those extra attempts all watches together may make in a second."""

DEFAULT_CONCURRENCY = 64

MIN_INTERVAL_SECONDS = 0.05
"""A floor on any interval, so a zero interval cannot spin the loop."""

MAX_BODY_BYTES = 64 * 1024
"""How much of an extension probe's response is read for ``ApplicationHealthState``."""

STOP_JOIN_SECONDS = 10.0

LB_SOURCE = "loadBalancer"
EXTENSION_SOURCE = "extension"

T = TypeVar("T")
AttemptObserver = Callable[[str, str, float, bool], None]
"""(source, protocol, seconds, ok) of one attempt."""


DEFAULT_KEPT_CONNECTIONS = 10_000
"""The most idle HTTP connections kept between probes by default, if the file limit allows."""


def _file_limit() -> int | None:
    try:
        import resource
    except ImportError:  # not on Unix
        return None
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return None if soft == resource.RLIM_INFINITY else int(soft)


def _default_concurrency() -> int:
    # Every in-flight probe holds a socket: stay well inside the process's file limit too.
    soft = _file_limit()
    if soft is None:
        return DEFAULT_CONCURRENCY
    return max(16, min(DEFAULT_CONCURRENCY, soft // 4))


def _default_kept(concurrency: int) -> int:
    # Idle connections hold a file each: at most half the file limit, less the sockets of
    # the attempts in flight, so that the rest of the process (databases, instances' pipes)
    # never runs out. Past it probes connect anew, which costs CPU, not correctness.
    soft = _file_limit()
    if soft is None:
        return DEFAULT_KEPT_CONNECTIONS
    return max(0, min(DEFAULT_KEPT_CONNECTIONS, soft // 2 - concurrency))


class _Budget:
    """A token bucket: ``take`` says whether one more extra attempt fits (loop thread only)."""

    def __init__(self, per_second: float) -> None:
        self._rate = per_second
        self._capacity = per_second * FAST_RETRY_SECONDS
        self._tokens = self._capacity
        self._at = time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self._tokens = min(self._capacity, self._tokens + (now - self._at) * self._rate)
        self._at = now
        if self._tokens < 1:
            return False
        self._tokens -= 1
        return True


@dataclass(eq=False)
class _Watch:
    """One key's watch. ``lb``/``app`` are replaced whole by the loop thread, read by any."""

    key: Hashable
    address: str
    probe: ProbeSpec | None
    extension: HealthExtensionSpec | None
    lb: LbProbeState | None
    app: AppHealthState | None
    notified_lb: HealthState | None = None
    notified_app: HealthState | None = None
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    """Only touched on the loop thread."""


@dataclass(eq=False)
class _Engine:
    """What one run of the loop thread owns; built by ``start``, torn down by the loop."""

    loop: asyncio.AbstractEventLoop
    ssl_context: ssl.SSLContext
    kept: probe_client.KeptBudget
    slots: asyncio.Semaphore
    stopping: asyncio.Event
    fast_budget: _Budget
    running: dict[Hashable, _Watch] = field(default_factory=dict)
    tasks: set[asyncio.Task[None]] = field(default_factory=set)


class Prober:
    """Watches instances' health over the network on one background thread.

    ``start()`` before probing begins (watches registered earlier wait for it);
    ``stop()`` cancels every probe and forgets every watch. Also a context
    manager that starts and stops it.
    """

    def __init__(self, on_change: Callable[[Hashable], None] | None = None, *,
                 timeout_cap: float = 5.0, max_concurrent_probes: int | None = None,
                 max_kept_connections: int | None = None,
                 on_attempt: AttemptObserver | None = None) -> None:
        """``on_change(key)`` runs on the prober thread after a key's state changed.

        ``timeout_cap`` bounds every attempt's timeout; ``max_concurrent_probes``
        bounds the attempts in flight at once (default 64, or a quarter of the
        file limit if that is lower). Waiting for a free slot does not count
        against a probe's timeout. ``max_kept_connections`` bounds the idle
        HTTP connections kept between probes over all watches (default: half
        the file limit less ``max_concurrent_probes``, at most 10,000; 0 means
        a new connection for every probe).
        """
        if timeout_cap <= 0:
            raise ValueError(f"timeout_cap must be positive, not {timeout_cap}")
        self._on_change = on_change
        self._on_attempt = on_attempt
        self._timeout_cap = timeout_cap
        self._concurrency = max_concurrent_probes or _default_concurrency()
        self._max_kept = (_default_kept(self._concurrency) if max_kept_connections is None
                          else max_kept_connections)
        self._lock = threading.Lock()
        self._watches: dict[Hashable, _Watch] = {}
        self._engine: _Engine | None = None
        self._thread: threading.Thread | None = None

    def __enter__(self) -> Prober:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> None:
        """Start the prober thread and its event loop (a no-op when running)."""
        with self._lock:
            if self._thread is not None:
                return
            loop = asyncio.new_event_loop()
            # Probes go straight to the instance (never through a proxy), follow no redirect
            # (only a 200 counts, as for a load balancer) and check no certificate.
            engine = _Engine(loop=loop, ssl_context=probe_client.http_ssl_context(),
                             kept=probe_client.KeptBudget(self._max_kept),
                             slots=asyncio.Semaphore(self._concurrency),
                             stopping=asyncio.Event(),
                             fast_budget=_Budget(FAST_RETRY_BUDGET_PER_SECOND))
            thread = threading.Thread(target=self._run, args=(engine,),
                                      name="scaleset-prober", daemon=True)
            self._engine, self._thread = engine, thread
            thread.start()
            for key in self._watches:
                loop.call_soon_threadsafe(self._sync, engine, key)

    def stop(self) -> None:
        """Cancel every probe, close kept connections, join the thread (bounded); forget watches."""
        with self._lock:
            engine, thread = self._engine, self._thread
            self._engine = self._thread = None
            self._watches.clear()
        if engine is None or thread is None:
            return
        try:
            engine.loop.call_soon_threadsafe(engine.stopping.set)
        except RuntimeError:  # the loop already ended (it failed); nothing to signal
            pass
        if thread is threading.current_thread():
            return  # stop() from on_change: the loop winds down once the callback returns
        thread.join(STOP_JOIN_SECONDS)
        if thread.is_alive():
            log.warning("the prober thread did not stop within %.0f s", STOP_JOIN_SECONDS)

    # -- watches -------------------------------------------------------------------------------

    def watch(self, key: Hashable, address: str, *, probe: ProbeSpec | None,
              extension: HealthExtensionSpec | None) -> None:
        """(Re)start watching ``key`` at ``address``; its states start again at Initializing.

        Replaces an earlier watch of the same key. With neither ``probe`` nor
        ``extension`` this is ``unwatch(key)``. Thread-safe. Does not call
        ``on_change``: the caller knows what it changed.
        """
        if probe is None and extension is None:
            self.unwatch(key)
            return
        now = time.monotonic()
        w = _Watch(
            key=key, address=address, probe=probe, extension=extension,
            lb=LbProbeState(probe.number_of_probes) if probe is not None else None,
            app=(AppHealthState.started(now=now, number_of_probes=extension.number_of_probes,
                                        grace_period_seconds=extension.grace_seconds)
                 if extension is not None else None),
        )
        w.notified_lb = w.lb.health if w.lb is not None else None
        w.notified_app = w.app.current(now) if w.app is not None else None
        with self._lock:
            self._watches[key] = w
            self._schedule_sync(key)

    def unwatch(self, key: Hashable) -> None:
        """Stop watching ``key`` (a no-op if it is not watched). Thread-safe."""
        with self._lock:
            if self._watches.pop(key, None) is not None:
                self._schedule_sync(key)

    def probe_health(self, key: Hashable) -> HealthState | None:
        """The load-balancer probe's state for ``key``; ``None`` if no probe watches it."""
        w = self._watches.get(key)
        state = w.lb if w is not None else None
        return state.health if state is not None else None

    def extension_health(self, key: Hashable) -> HealthState | None:
        """The health extension's state for ``key`` now; ``None`` if no extension watches it."""
        w = self._watches.get(key)
        state = w.app if w is not None else None
        return state.current(time.monotonic()) if state is not None else None

    def _schedule_sync(self, key: Hashable) -> None:
        # Called with the lock held, so stop() cannot retire the engine in between.
        engine = self._engine
        if engine is None:
            return  # not running: start() launches every recorded watch
        try:
            engine.loop.call_soon_threadsafe(self._sync, engine, key)
        except RuntimeError:  # the loop already ended (it failed)
            log.warning("the prober's loop is gone; %r is not probed", key)

    # -- the loop thread -----------------------------------------------------------------------

    def _run(self, engine: _Engine) -> None:
        loop = engine.loop
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._serve(engine))
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.run_until_complete(loop.shutdown_default_executor())  # name lookups' threads
        finally:
            asyncio.set_event_loop(None)
            loop.close()

    async def _serve(self, engine: _Engine) -> None:
        try:
            await engine.stopping.wait()
        finally:
            tasks = list(engine.tasks)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)  # each closes its connection
            engine.running.clear()

    def _sync(self, engine: _Engine, key: Hashable) -> None:
        """Make the loop's tasks for ``key`` match the watch table (runs on the loop)."""
        with self._lock:
            desired = self._watches.get(key) if self._engine is engine else None
        running = engine.running.pop(key, None)
        if running is desired:
            if running is not None:
                engine.running[key] = running
            return
        if running is not None:
            for task in running.tasks:
                task.cancel()
        if desired is None or engine.stopping.is_set():
            return
        if desired.probe is not None:
            self._launch(engine, desired, self._watch_probe(engine, desired, desired.probe))
        if desired.extension is not None:
            self._launch(engine, desired,
                         self._watch_extension(engine, desired, desired.extension))
        engine.running[key] = desired

    def _launch(self, engine: _Engine, w: _Watch, coro: Coroutine[Any, Any, None]) -> None:
        task = engine.loop.create_task(coro)
        w.tasks.append(task)
        engine.tasks.add(task)
        task.add_done_callback(engine.tasks.discard)

    async def _watch_probe(self, engine: _Engine, w: _Watch, spec: ProbeSpec) -> None:
        interval = max(spec.interval_seconds, MIN_INTERVAL_SECONDS)
        protocol = spec.protocol.lower()
        endpoint = (None if spec.protocol == "Tcp" else
                    _Endpoint(engine, protocol, w.address, spec.port, spec.request_path or "/"))

        async def attempt(timeout: float) -> bool:
            if endpoint is None:
                return await self._tcp(engine, w.address, spec.port, timeout, LB_SOURCE)
            return await self._http_status_ok(engine, endpoint, timeout, protocol)

        booting_until = time.monotonic() + BOOT_RETRY_SECONDS
        answered = False

        def initializing() -> bool:
            # Also retry fast while an instance has not answered once since the watch began
            # (for up to BOOT_RETRY_SECONDS): a boot slower than number_of_probes intervals
            # turns it Unhealthy, and it would then be seen Healthy only at the next
            # interval. Extra attempts count only when they succeed: no verdict changes.
            if w.lb is None:
                return False
            return w.lb.health is HealthState.INITIALIZING or (
                not answered and time.monotonic() < booting_until)

        def record(up: bool) -> None:
            nonlocal answered
            answered = answered or up
            if w.lb is not None:
                w.lb = w.lb.record(up)

        try:
            await self._cadence(engine, w, interval, attempt, record, initializing,
                                wake_by=None)
        finally:
            if endpoint is not None:
                endpoint.close()

    async def _watch_extension(self, engine: _Engine, w: _Watch,
                               spec: HealthExtensionSpec) -> None:
        interval = max(spec.interval_seconds, MIN_INTERVAL_SECONDS)
        endpoint = (None if spec.protocol == "tcp" else
                    _Endpoint(engine, spec.protocol, w.address, spec.port,
                              spec.request_path or "/"))

        async def attempt(timeout: float) -> bool:
            result = await self._extension_result(engine, w.address, endpoint, spec, timeout)
            return result is HealthState.HEALTHY

        def initializing() -> bool:
            return (w.app is not None
                    and w.app.current(time.monotonic()) is HealthState.INITIALIZING)

        def record(healthy: bool) -> None:
            if w.app is not None:
                result = HealthState.HEALTHY if healthy else HealthState.UNHEALTHY
                w.app = w.app.record(result, time.monotonic())

        grace_ends_at = w.app.grace_ends_at if w.app is not None else None
        try:
            await self._cadence(engine, w, interval, attempt, record, initializing,
                                wake_by=grace_ends_at)
        finally:
            if endpoint is not None:
                endpoint.close()

    async def _cadence(self, engine: _Engine, w: _Watch, interval: float,
                       attempt: Callable[[float], Awaitable[bool]],
                       record: Callable[[bool], None], initializing: Callable[[], bool],
                       *, wake_by: float | None) -> None:
        """Probe every ``interval`` from now, and faster in between while Initializing.

        ``attempt(timeout)`` says whether one probe succeeded; ``record(ok)``
        feeds a result to the state machine: every regular result, and only the
        successes of the extra attempts. ``wake_by`` is a moment to look again
        even without a probe due (the end of a grace period).
        """
        timeout = min(interval, self._timeout_cap)
        fast = min(interval, FAST_RETRY_SECONDS)
        # The first attempt goes out at once, but as an extra one (it counts only if it
        # succeeds): a process started a moment ago has not bound its port yet, and that
        # refusal must not be the first of number_of_probes failures. With one probe it
        # made a booting instance Unhealthy, which ends the fast retries, so it was seen
        # Healthy only a whole interval later. Failures count from one interval on.
        next_due = time.monotonic() + interval
        while True:
            now = time.monotonic()
            if now >= next_due:
                # After a stall (a busy loop), probe again one interval later, not in a burst.
                next_due = next_due + interval if next_due + interval > now else now + interval
                record(await attempt(timeout))
            elif next_due - now >= fast and initializing() and engine.fast_budget.take():
                # An extra attempt must not hold up the regular one.
                if await attempt(min(timeout, next_due - now)):
                    record(True)
            self._publish(w)  # after a result, or because the grace period ran out
            now = time.monotonic()
            wake = next_due
            if initializing():
                wake = min(wake, now + fast)
                if wake_by is not None and now < wake_by:
                    wake = min(wake, wake_by)
            await asyncio.sleep(max(0.0, wake - now))

    def _publish(self, w: _Watch) -> None:
        """Call ``on_change`` if ``w`` is still the key's watch and one of its states moved."""
        lb = w.lb.health if w.lb is not None else None
        app = w.app.current(time.monotonic()) if w.app is not None else None
        if lb == w.notified_lb and app == w.notified_app:
            return
        w.notified_lb, w.notified_app = lb, app
        if self._on_change is None or self._watches.get(w.key) is not w:
            return
        try:
            self._on_change(w.key)
        except Exception:  # a failing callback must not stop the probing
            log.exception("on_change(%r) failed", w.key)

    # -- single attempts -----------------------------------------------------------------------

    def _observed(self, source: str, protocol: str, ok: Callable[[T], bool]
                  ) -> Callable[[float, T], None] | None:
        """What ``_bounded`` calls with an attempt's time and result, if anyone listens."""
        observe = self._on_attempt
        if observe is None:
            return None

        def done(seconds: float, result: T) -> None:
            try:
                observe(source, protocol, seconds, ok(result))
            except Exception:  # counting must never fail a probe
                log.exception("on_attempt failed")
        return done

    async def _tcp(self, engine: _Engine, address: str, port: int, timeout: float,
                   source: str) -> bool:
        async def connect() -> bool:
            await probe_client.tcp_connect(address, port)
            return True

        return await _bounded(engine, connect, timeout, failed=False,
                              done=self._observed(source, "tcp", bool))

    async def _http_status_ok(self, engine: _Engine, endpoint: _Endpoint, timeout: float,
                              protocol: str) -> bool:
        async def get() -> bool:
            # The body is not waited for: the status is the whole answer.
            response = await endpoint.channel().get(read_body=False)
            return response.status == 200

        return await _bounded(engine, get, timeout, failed=False,
                              done=self._observed(LB_SOURCE, protocol, bool))

    async def _extension_result(self, engine: _Engine, address: str, endpoint: _Endpoint | None,
                                spec: HealthExtensionSpec, timeout: float) -> HealthState:
        if endpoint is None:
            ok = await self._tcp(engine, address, spec.port, timeout, EXTENSION_SOURCE)
            return HealthState.HEALTHY if ok else HealthState.UNHEALTHY

        async def get() -> HealthState:
            response = await endpoint.channel().get(read_body=True, max_body=MAX_BODY_BYTES)
            return rich_health(response.status, response.body)

        return await _bounded(
            engine, get, timeout, failed=HealthState.UNHEALTHY,
            done=self._observed(EXTENSION_SOURCE, spec.protocol,
                                lambda health: health is HealthState.HEALTHY))


async def _bounded(engine: _Engine, attempt: Callable[[], Awaitable[T]], timeout: float, *,
                   failed: T, done: Callable[[float, T], None] | None = None) -> T:
    """Run one attempt within ``timeout`` (once a slot is free); any failure is ``failed``.

    ``done(seconds, result)`` hears how it went, timed from the free slot."""
    async with engine.slots:
        began = time.monotonic()
        result = failed
        try:
            async with asyncio.timeout(timeout):
                result = await attempt()
        except (probe_client.ProbeFailed, httpx.InvalidURL, OSError, TimeoutError):
            pass  # refused, reset, TLS failure, timeout, no such address, bad answer: failed
        except Exception:  # a bug here must fail the probe, not end the watch
            log.exception("a probe attempt failed unexpectedly")
        if done is not None:
            done(time.monotonic() - began, result)
        return result


class _Endpoint:
    """One health source's HTTP endpoint: its channel, made at the first attempt.

    The URL is parsed by httpx, as it was when httpx sent the probes, so a path
    is percent-encoded the same way and the Host header spelt the same; a URL
    that cannot be made fails every attempt (``httpx.InvalidURL``).
    """

    def __init__(self, engine: _Engine, scheme: str, address: str, port: int,
                 path: str) -> None:
        self._engine = engine
        self._scheme, self._address, self._port, self._path = scheme, address, port, path
        self._channel: probe_client.HttpChannel | None = None

    def channel(self) -> probe_client.HttpChannel:
        """The channel, made on first use (raises ``httpx.InvalidURL`` for a bad URL)."""
        if self._channel is None:
            url = httpx.URL(_url(self._scheme, self._address, self._port, self._path))
            self._channel = probe_client.HttpChannel(
                self._address, self._port, target=url.raw_path, host=url.netloc,
                ssl_context=self._engine.ssl_context if self._scheme == "https" else None,
                budget=self._engine.kept)
        return self._channel

    def close(self) -> None:
        """Close the kept connection, if any."""
        if self._channel is not None:
            self._channel.close()


def _url(scheme: str, address: str, port: int, path: str) -> str:
    host = f"[{address}]" if ":" in address else address
    return f"{scheme}://{host}:{port}{path if path.startswith('/') else '/' + path}"
