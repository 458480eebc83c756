"""Watching a rolling upgrade until it ends: ``get-latest --watch``, ``start --wait``, ``cancel``.

As ``kubectl rollout status`` does: the loop reads ``GET …/rollout`` about once a
second, hands each :class:`~scaleset.cli.rollout_view.View` to a display (a Rich
live display on a terminal, else plain lines, one per change, for CI logs) and
returns the last view once the run has a final status. Any run is watched,
automatic or manual: the first run seen is followed to its end (``?runId=``),
even when a newer one starts meanwhile.

A server without ``…/rollout`` (real ARM, an older scaleset) answers 404
``NotFound`` (no such route, unlike ``ResourceNotFound`` for a missing scale
set); then the watch reads ``rollingUpgrades/latest`` (status and counts only).

The loop sleeps through the client's ``sleep`` and measures its timeout with an
injected clock, so tests never wait. A server that cannot be reached for a
while (restarting) is retried for ``patience`` seconds before the watch gives up.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Final, Protocol

import typer
from rich.console import Console
from rich.live import Live

from scaleset.cli import output, rollout_view
from scaleset.cli.client import ArmClient, ArmClientError, ClientError, TransportError
from scaleset.cli.rollout_view import View

POLL_SECONDS: Final = 1.0
PATIENCE_SECONDS: Final = 60.0
"""How long an unreachable server is retried before the watch fails."""
INTERRUPTED: Final = 130
"""The exit code after Ctrl-C (128 + SIGINT), as shells report it."""

Clock = Callable[[], float]
Sleep = Callable[[float], None]
Write = Callable[[str], None]


class Display(Protocol):
    """Where views go: a live display or plain lines."""

    def show(self, view: View) -> None:
        """Draw ``view`` (the latest answer)."""

    def note(self, line: str) -> None:
        """Say something that is not a view (the server is unreachable, ...)."""

    def close(self) -> None:
        """Leave the last view on screen."""


class LineDisplay:
    """Plain lines, one per change (:func:`rollout_view.changes`): no escapes, no cursor."""

    def __init__(self, write: Write) -> None:
        self._write = write
        self._last: View | None = None

    def show(self, view: View) -> None:
        for line in rollout_view.changes(self._last, view):
            self._write(line)
        self._last = view

    def note(self, line: str) -> None:
        self._write(line)

    def close(self) -> None:
        return None


class LiveDisplay:
    """A Rich live display, redrawn on every view; the last one stays on screen."""

    def __init__(self, console: Console) -> None:
        self._console = console
        self._live: Live | None = None

    def show(self, view: View) -> None:
        if self._live is None:
            self._live = Live(rollout_view.renderable(view), console=self._console,
                              auto_refresh=False, transient=False)
            self._live.start()
        self._live.update(rollout_view.renderable(view), refresh=True)

    def note(self, line: str) -> None:
        self._console.print(line, markup=False, highlight=False)

    def close(self) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None


def display_for(console: Console | None = None) -> Display:
    """A live display when ``console`` (default: stderr's) is a terminal, else plain lines.

    The display goes to stderr: stdout keeps the verb's result (the final status as
    JSON, a table, ...), so ``-o json | jq`` works with a watch on screen.
    """
    console = console or Console(stderr=True)
    if console.is_terminal and not console.is_dumb_terminal:
        return LiveDisplay(console)
    return LineDisplay(output.error)


# -- where views come from -------------------------------------------------------------------

Fetch = Callable[[], View]


def _no_route(exc: ArmClientError) -> bool:
    """The server has no such route (404 ``NotFound``, not ``ResourceNotFound``)."""
    return exc.status == 404 and exc.code == "NotFound"


class RolloutSource:
    """``GET …/rollout``: the latest run until one is seen, then that run (``runId``)."""

    def __init__(self, client: ArmClient, path: str, first: View) -> None:
        self._client = client
        self._path = path
        self._first: View | None = first
        """The probe's answer: the first call returns it rather than asking again."""
        self._run_id = first.run_id

    def __call__(self) -> View:
        if self._first is not None:
            first, self._first = self._first, None
            return first
        params = {"runId": self._run_id} if self._run_id else None
        answer = self._client.get(self._path + "/rollout", params=params)
        view = rollout_view.parse(answer if isinstance(answer, dict) else {})
        if self._run_id is None:
            self._run_id = view.run_id
        return view


class LatestSource:
    """``GET …/rollingUpgrades/latest`` for servers without ``/rollout`` (a 404 other than
    ``ResourceNotFound``: no run yet)."""

    def __init__(self, client: ArmClient, path: str) -> None:
        self._client = client
        self._path = path
        self._name = path.rsplit("/", 1)[-1]

    def __call__(self) -> View:
        try:
            answer = self._client.get(self._path + "/rollingUpgrades/latest")
        except ArmClientError as exc:
            if exc.status == 404 and exc.code != "ResourceNotFound":  # the set has no run
                return rollout_view.from_latest(None, self._name)
            raise
        return rollout_view.from_latest(answer if isinstance(answer, dict) else None,
                                        self._name)


def rollout_source(client: ArmClient, path: str) -> RolloutSource | None:
    """The ``…/rollout`` source of the scale set at ``path``, its first view read; None
    when the server has no such route."""
    try:
        answer = client.get(path + "/rollout")
    except ArmClientError as exc:
        if _no_route(exc):
            return None
        raise
    return RolloutSource(client, path, rollout_view.parse(
        answer if isinstance(answer, dict) else {}))


def source_for(client: ArmClient, path: str) -> Fetch:
    """``…/rollout`` where the server has it, else ``rollingUpgrades/latest``."""
    return rollout_source(client, path) or LatestSource(client, path)


# -- the loop --------------------------------------------------------------------------------

def watch(fetch: Fetch, display: Display, *, sleep: Sleep, clock: Clock = time.monotonic,
          timeout: float | None = None, interval: float = POLL_SECONDS,
          patience: float = PATIENCE_SECONDS) -> View:
    """Show the run ``fetch`` reads until it has a final status; return its last view.

    While the scale set has no run, wait for one. Raises ``ClientError`` (code
    ``WaitTimeout``) when the run has not ended within ``timeout`` seconds (None:
    no limit), and re-raises a ``TransportError`` that lasted ``patience`` seconds.
    """
    deadline = None if timeout is None else clock() + timeout
    unreachable_since: float | None = None
    last: View | None = None
    try:
        while True:
            try:
                view = fetch()
            except TransportError as exc:
                now = clock()
                if unreachable_since is None:
                    unreachable_since = now
                    display.note(f"cannot reach the server ({exc.message}); retrying")
                if now - unreachable_since >= patience:
                    raise
            else:
                if unreachable_since is not None:
                    display.note("the server answers again")
                unreachable_since = None
                display.show(view)
                last = view
                if view.ended:
                    return view
            if deadline is not None and clock() >= deadline:
                seen = rollout_view.summary(last) if last else "nothing"
                raise ClientError("WaitTimeout", f"the rolling upgrade did not end within "
                                                 f"{timeout:g} s (last seen: {seen})")
            sleep(interval)
    finally:
        display.close()


def follow(client: ArmClient, fetch: Fetch, *, timeout: float | None,
           display: Display | None = None, clock: Clock | None = None) -> View:
    """:func:`watch` for a verb, sleeping through the client: Ctrl-C stops watching
    (exit 130), not the run."""
    try:
        return watch(fetch, display or display_for(), sleep=client.sleep,
                     clock=clock or time.monotonic, timeout=timeout)
    except KeyboardInterrupt:
        output.error("stopped watching; the rolling upgrade goes on")
        raise typer.Exit(INTERRUPTED) from None


def conclude(view: View) -> None:
    """Exit 1 with the run's error unless it Completed (``start --wait``, ``--watch``)."""
    if rollout_view.exit_code(view) == 0:
        return
    if view.error:
        output.error(f"error ({view.error[0]}): {view.error[1]}")
    else:
        output.error(f"error (RollingUpgrade{view.status}): the rolling upgrade ended "
                     f"{view.status}")
    raise typer.Exit(1)


def concluded_cancel(view: View) -> str:
    """What ``cancel`` says once the run stopped: Cancelled, or how it ended instead."""
    if view.status == "Cancelled":
        return f"the rolling upgrade was cancelled: {view.counts.line()}"
    error = f"; error ({view.error[0]}): {view.error[1]}" if view.error else ""
    return (f"the rolling upgrade ended {view.status} before the cancel took effect: "
            f"{view.counts.line()}{error}")
