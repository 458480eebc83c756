"""The discrete-event loop: passes on a virtual clock that jumps from event to event.

Each round runs one pass per scale set, then moves the clock to the earliest
instant anything can change: a pass's ``wake_at`` (a health deadline, the end
of a pause) or the driver's next event (an operation finishing, an instance
turning healthy). Nothing sleeps, so a thousand-instance rollout with
five-minute health waits takes milliseconds.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from scaleset.clock import VirtualClock
from scaleset.reconcile.shell import PassResult, Reconciler


class Timeline(Protocol):
    def next_event_time(self) -> datetime | None: ...


@dataclass(frozen=True)
class LoopResult:
    rounds: int
    finished_at: datetime
    last: dict[str, PassResult]


class LoopLimitExceeded(RuntimeError):
    """The loop ran past its bound without the stop condition becoming true."""


def run_until(
    reconciler: Reconciler,
    clock: VirtualClock,
    timeline: Timeline,
    scale_set_ids: Sequence[str],
    *,
    done: Callable[[dict[str, PassResult]], bool],
    max_rounds: int = 1_000_000,
    horizon: timedelta = timedelta(days=30),
) -> LoopResult:
    """Run passes until ``done(last results)`` is true, or nothing can change any more.

    Raises ``LoopLimitExceeded`` past ``max_rounds`` or ``horizon`` of virtual
    time, so a bug cannot spin forever.
    """
    start = clock.now()
    last: dict[str, PassResult] = {}
    for rounds in range(1, max_rounds + 1):
        last = {sid: reconciler.reconcile(sid) for sid in scale_set_ids}
        if done(last):
            return LoopResult(rounds, clock.now(), last)
        now = clock.now()
        candidates = [r.wake_at for r in last.values() if r.wake_at is not None]
        driver_next = timeline.next_event_time()
        if driver_next is not None:
            candidates.append(driver_next)
        if not candidates:
            return LoopResult(rounds, now, last)  # quiescent: nothing will ever change
        nxt = max(min(candidates), now)
        if nxt - start > horizon:
            raise LoopLimitExceeded(f"no result within {horizon} of virtual time")
        clock.advance_to(nxt)
    raise LoopLimitExceeded(f"no result within {max_rounds} rounds")


def run_settled(results: dict[str, PassResult]) -> bool:
    """Stop condition: no scale set has an active run."""
    return all(r.active_run_id is None and not r.conflict for r in results.values())
