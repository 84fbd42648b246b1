"""A circuit's state kept in this process: the default :class:`~.state.StateBackend`.

Every operation takes this object's lock for a few field updates, and tells the breaker
what changed (``mirror`` under the lock, so that changes reach it in order; ``announce``
after the lock is released, so that observers may log, or call through the circuit).
Time is the breaker's clock. The contract is in ``breaker``'s module docstring.
"""

from __future__ import annotations

import itertools
import threading
from typing import Optional, Union

from .clock import Clock
from .state import MIN_RETRY_AFTER, CircuitState, Mirror, Permit, View

__all__ = ["LocalState"]

_CLOSED, _OPEN, _HALF_OPEN = CircuitState.CLOSED, CircuitState.OPEN, CircuitState.HALF_OPEN


class _Slot:
    """A probe in flight: when it started and when its lease runs out."""

    __slots__ = ("deadline", "started")

    def __init__(self, started: float, deadline: float) -> None:
        self.started = started
        self.deadline = deadline


class LocalState:
    """One circuit's state, in memory. Thread-safe; the lock is held only for field updates.

    >>> from botocore_resilience.breaker import CircuitBreaker
    >>> from botocore_resilience.testing import FakeClock
    >>> breaker = CircuitBreaker("s3/us-east-1", clock=FakeClock())  # LocalState by default
    >>> type(breaker.backend).__name__
    'LocalState'
    """

    __slots__ = (
        "_abandoned",
        "_clock",
        "_closed_permit",
        "_failures",
        "_forced",
        "_lock",
        "_name",
        "_open_for",
        "_opened_at",
        "_probe_ids",
        "_probes",
        "_reopenings",
        "_seq",
        "_sink",
        "_state",
        "_successes",
    )

    def __init__(self, name: str, clock: Clock, mirror: Mirror) -> None:
        self._name = name
        self._clock = clock
        self._sink = mirror
        self._lock = threading.Lock()
        self._state = _CLOSED
        self._seq = 0
        self._failures = 0
        self._successes = 0
        self._reopenings = 0
        self._forced = False
        self._opened_at = 0.0
        self._open_for = 0.0
        self._closed_permit = Permit(0)
        self._probes: dict[int, _Slot] = {}  # probe id -> its slot, across generations
        self._probe_ids = itertools.count(1)
        # Probes whose calls ended unheard, queued by a finaliser (which may run in any
        # thread, even one inside this lock) and freed by the next locked operation.
        # A list, not a deque: list.append and list.pop are as atomic under the GIL, and an
        # empty deque costs ~600 bytes, a third of a circuit's budget (10,000s of circuits).
        self._abandoned: list[Permit] = []
        mirror.mirror(self._view())

    # -- reading ------------------------------------------------------------------------

    def view(self) -> View:
        with self._lock:
            return self._view()

    def wait(self, max_calls: int) -> float:
        with self._lock:
            state = self._state
            if state is _CLOSED:
                return 0.0
            now = self._clock.monotonic()
            if state is _OPEN:
                if self._forced:
                    return float("inf")
                return min(max(0.0, self._open_until() - now), self._open_for)
            self._free_abandoned()
            self._free_expired(now)
            if len(self._probes) < max_calls:
                return 0.0
            return self._slot_wait(now)

    def probes_in_flight(self) -> int:
        with self._lock:
            self._free_abandoned()
            return len(self._probes)

    # -- admission ------------------------------------------------------------------------

    def admit(self, max_calls: int, lease: float) -> Union[Permit, float]:
        announced: list[View] = []
        with self._lock:
            admitted = self._admit_locked(max_calls, lease, announced)
        self._announce(announced)
        return admitted

    def _admit_locked(
        self, max_calls: int, lease: float, announced: list[View]
    ) -> Union[Permit, float]:
        if self._state is _CLOSED:
            return self._closed_permit
        now = self._clock.monotonic()
        if self._state is _OPEN:
            if self._forced:
                return float("inf")
            if now < self._opened_at:  # the clock went back: wait no longer than a period
                self._opened_at = now
            remaining = self._open_until() - now
            if remaining > 0:
                return remaining
            self._move(_HALF_OPEN, "recovery timeout elapsed", 0.0, False, now, announced)
        self._free_abandoned()
        self._free_expired(now)
        if len(self._probes) >= max_calls:
            return self._slot_wait(now)
        probe_id = next(self._probe_ids)
        self._probes[probe_id] = _Slot(now, now + lease)
        return Permit(self._seq, probe_id)

    def _open_until(self) -> float:
        return self._opened_at + self._open_for

    def _free_expired(self, now: float) -> None:
        """Reclaim the slots of probes whose lease ran out (the last resort)."""
        expired = []
        for probe_id, slot in self._probes.items():
            if now < slot.started:  # the clock went back: the lease restarts, never stretches
                slot.deadline = now + (slot.deadline - slot.started)
                slot.started = now
            elif slot.deadline <= now:
                expired.append(probe_id)
        for probe_id in expired:
            del self._probes[probe_id]

    def _slot_wait(self, now: float) -> float:
        # Every slot is taken: nobody knows when a probe will end. The longest-running one
        # has been in flight for ``age``; waiting that long again doubles the wait of a
        # caller that keeps honouring it, and never passes the moment its lease frees it.
        age = max(now - slot.started for slot in self._probes.values())
        lease_left = min(slot.deadline for slot in self._probes.values()) - now
        return max(MIN_RETRY_AFTER, min(age, lease_left))

    # -- probes ------------------------------------------------------------------------------

    def set_lease(self, permit: Permit, seconds: float) -> None:
        with self._lock:
            slot = self._probes.get(permit.probe_id)
            if slot is not None:
                slot.deadline = slot.started + max(seconds, 0.0)

    def release_soon(self, permit: Permit) -> None:
        # Called from finalisers: never block on the lock (this thread may hold it already).
        self._abandoned.append(permit)
        if self._lock.acquire(blocking=False):
            try:
                self._free_abandoned()
            finally:
                self._lock.release()

    def _free_abandoned(self) -> None:
        abandoned = self._abandoned
        while abandoned:
            try:
                permit = abandoned.pop()
            except IndexError:  # another thread drained it
                return
            self._probes.pop(permit.probe_id, None)

    def finish_probe(self, permit: Permit, succeeded: Optional[bool]) -> Optional[View]:
        with self._lock:
            self._probes.pop(permit.probe_id, None)
            self._free_abandoned()
            if permit.generation != self._seq or self._state is not _HALF_OPEN:
                return None
            if succeeded:
                self._successes += 1
            elif succeeded is not None:
                self._failures += 1  # a failed probe is one more failed call in a row
            view = self._view()
            self._sink.mirror(view)
            return view

    # -- counting and moving ----------------------------------------------------------------

    def add_failure(self, seq: int) -> Optional[View]:
        with self._lock:
            if seq != self._seq or self._state is not _CLOSED:
                return None
            self._failures += 1
            view = self._view()
            self._sink.mirror(view)
            return view

    def clear_failures(self, seq: int) -> None:
        with self._lock:
            if seq == self._seq and self._failures:
                self._failures = 0
                self._sink.mirror(self._view())

    def move(
        self, seq: int, to: CircuitState, cause: str, open_for: float = 0.0, forced: bool = False
    ) -> Optional[View]:
        announced: list[View] = []
        with self._lock:
            if seq == self._seq:
                now = self._clock.monotonic()
                self._move(to, cause, open_for, forced, now, announced)
        self._announce(announced)
        return announced[-1] if announced else None

    def _move(
        self,
        to: CircuitState,
        cause: str,
        open_for: float,
        forced: bool,
        now: float,
        announced: list[View],
    ) -> None:
        from_state = self._state
        self._seq += 1
        self._state = to
        self._successes = 0
        self._forced = forced
        if to is _OPEN:
            self._opened_at = now
            self._open_for = open_for
            if from_state is _HALF_OPEN:
                self._reopenings += 1
        elif to is _CLOSED:
            self._failures = 0
            self._reopenings = 0
            self._closed_permit = Permit(self._seq)
        view = self._view(from_state, cause)
        self._sink.mirror(view)
        announced.append(view)

    def _view(self, from_state: Optional[CircuitState] = None, cause: str = "") -> View:
        return View(
            state=self._state,
            seq=self._seq,
            failures=self._failures,
            successes=self._successes,
            reopenings=self._reopenings,
            open_until=self._open_until(),
            forced=self._forced,
            closed_permit=self._closed_permit if self._state is _CLOSED else None,
            from_state=from_state,
            cause=cause,
        )

    def _announce(self, views: list[View]) -> None:
        for view in views:
            self._sink.announce(view)

    def reinit_after_fork(self) -> None:
        """In a forked child only: a fresh lock (a thread of the parent may have held it)."""
        self._lock = threading.Lock()
