"""The circuit breaker state machine: no botocore, no metrics, no logging.

One :class:`CircuitBreaker` guards one circuit (e.g. ``s3/us-east-1``)::

    CLOSED --(failure_threshold consecutive failures)--> OPEN
    OPEN --(recovery_timeout elapsed, next call)--> HALF_OPEN
    HALF_OPEN --(success_threshold good probes)--> CLOSED
    HALF_OPEN --(any failed probe)--> OPEN

A caller asks for a :class:`Permit` before the protected call (:meth:`CircuitBreaker.admit`)
and hands it back with the :class:`Outcome` afterwards (:meth:`CircuitBreaker.record`).
The lock is held only inside those methods, never across the call itself, so a slow AWS
call never serialises other threads (the pybreaker trap).

Each state change starts a new *generation*. A permit remembers its generation, and an
outcome from an older generation is ignored: a call that started while the circuit was
closed cannot close (or count against) the half-open circuit that exists by the time it
finishes, and a probe of one half-open period cannot decide a later one.

Probe slots belong to calls, not to periods. A half-open probe holds its slot for as long
as its call is alive, whatever the clock says, and its outcome counts as long as the
circuit is still in the half-open period that admitted it. A slot is freed when

* the outcome is recorded (:meth:`CircuitBreaker.record`, any outcome), or
* the call ends without one: the caller ties the slot to the call's lifetime with
  :meth:`CircuitBreaker.probe_guard` (the handlers keep the guard in botocore's request
  context, which lives exactly as long as the call), or
* as a last resort, the probe's *lease* runs out: for a call whose end nobody observes
  (a thread hung without a timeout, a traceback kept forever). The lease is sized from
  what the call may legitimately take (:meth:`CircuitBreaker.set_lease`; the handlers
  use the client's timeouts and attempts), never from ``recovery_timeout``.

Slots survive transitions: probes still running from a failed half-open period count
against the next period's ``half_open_max_calls``, so no more than that many probes
ever reach the service at once.
"""

from __future__ import annotations

import contextlib
import enum
import itertools
import threading
from collections import deque
from dataclasses import dataclass
from typing import Callable, Optional, Union

from .clock import MONOTONIC, Clock
from .config import Settings

__all__ = [
    "DEFAULT_PROBE_LEASE",
    "MIN_RETRY_AFTER",
    "BreakerPolicy",
    "CircuitBreaker",
    "CircuitState",
    "Outcome",
    "Permit",
    "ProbeGuard",
    "Transition",
]

DEFAULT_PROBE_LEASE = 600.0
"""Seconds a probe keeps its slot when nobody observes its end and the caller set no lease
of its own: ten minutes, above what a call with botocore's default timeouts may take."""

MIN_RETRY_AFTER = 0.1
"""The least ``retry_after`` a rejection carries: a rejected call is never told "now"."""


class CircuitState(enum.Enum):
    """The three states of a circuit; ``value`` is the label used in metrics.

    >>> CircuitState.HALF_OPEN.value, CircuitState.HALF_OPEN.gauge_value
    ('half_open', 1)
    """

    CLOSED = "closed"
    HALF_OPEN = "half_open"
    OPEN = "open"

    @property
    def gauge_value(self) -> int:
        """The number exported by the state gauge: 0 closed, 1 half-open, 2 open."""
        return _GAUGE_VALUES[self]


_GAUGE_VALUES = {CircuitState.CLOSED: 0, CircuitState.HALF_OPEN: 1, CircuitState.OPEN: 2}


class Outcome(enum.Enum):
    """How a finished call is judged (see ``classification``)."""

    SUCCESS = "success"
    """The service answered: 2xx/3xx, or a client error such as ``NoSuchKey``."""
    FAILURE = "failure"
    """The service did not answer usefully: connection errors, 5xx, throttling."""
    NOT_COUNTED = "not_counted"
    """Nothing was learnt about the service (e.g. the call failed before sending)."""


@dataclass(frozen=True)
class BreakerPolicy:
    """The thresholds of one breaker. Validated by ``config``, whose :class:`Settings` holds
    the defaults (written once, there)."""

    failure_threshold: int = Settings.failure_threshold
    recovery_timeout: float = Settings.recovery_timeout
    success_threshold: int = Settings.success_threshold
    half_open_max_calls: int = Settings.half_open_max_calls
    enforce: bool = True
    """``False`` is the ``metrics-only`` mode: state is computed, nothing is rejected."""
    probe_lease: Optional[float] = None
    """Seconds a probe whose end nobody observes keeps its slot, unless the caller sets a
    lease for its call (:meth:`CircuitBreaker.set_lease`); ``None`` means
    :data:`DEFAULT_PROBE_LEASE`."""

    @property
    def lease(self) -> float:
        return DEFAULT_PROBE_LEASE if self.probe_lease is None else self.probe_lease


@dataclass(frozen=True)
class Transition:
    """One state change, as reported to the breaker's observer."""

    circuit_name: str
    from_state: CircuitState
    to_state: CircuitState
    seq: int
    """Increases with every transition of this circuit: observers called outside the lock
    may see transitions out of order and use ``seq`` to keep the newest."""
    consecutive_failures: int
    cause: str
    """Why, in words (the last error for an opening); never contains secrets."""


class Permit:
    """Leave to make one call; hand it back to :meth:`CircuitBreaker.record`."""

    __slots__ = ("done", "generation", "probe_id")

    def __init__(self, generation: int, probe_id: int = 0) -> None:
        self.generation = generation
        self.probe_id = probe_id  # 0 for an ordinary call, >0 for a half-open probe
        self.done = False  # a probe's end was heard (set under the breaker's lock)

    @property
    def is_probe(self) -> bool:
        return self.probe_id > 0

    def __repr__(self) -> str:
        return f"Permit(generation={self.generation}, probe_id={self.probe_id})"


class _Slot:
    """A probe in flight: when it started and when its lease runs out."""

    __slots__ = ("deadline", "started")

    def __init__(self, started: float, deadline: float) -> None:
        self.started = started
        self.deadline = deadline


# Enum members read as module globals on the hot path: on Python 3.11, ``Outcome.SUCCESS``
# costs about 0.1 µs more than a global lookup.
_SUCCESS = Outcome.SUCCESS

# Handed out by a metrics-only breaker where an enforcing one would have rejected: the
# call goes ahead, but its outcome is ignored, exactly as a rejected call would be.
_SHADOW = Permit(generation=-1)

Observer = Callable[[Transition], None]


class CircuitBreaker:
    """One circuit's state machine. Thread-safe; the lock guards only this object's fields.

    >>> from botocore_resilience.testing import FakeClock
    >>> clock = FakeClock()
    >>> breaker = CircuitBreaker("s3/us-east-1", BreakerPolicy(failure_threshold=2), clock)
    >>> for _ in range(2):
    ...     breaker.record(breaker.acquire(), Outcome.FAILURE)
    >>> breaker.state
    <CircuitState.OPEN: 'open'>
    >>> breaker.admit()  # rejected: seconds until a probe may go
    60.0
    >>> clock.advance(60)
    >>> probe = breaker.acquire()
    >>> breaker.state, probe.is_probe
    (<CircuitState.HALF_OPEN: 'half_open'>, True)
    """

    def __init__(
        self,
        name: str,
        policy: BreakerPolicy = BreakerPolicy(),
        clock: Clock = MONOTONIC,
        observer: Optional[Observer] = None,
    ) -> None:
        self._name = name
        self._policy = policy
        self._clock = clock
        self._observer = observer
        self._lock = threading.Lock()
        self._state = CircuitState.CLOSED
        self._generation = 0
        # Non-None exactly while CLOSED: the permit every closed-state call shares, read
        # without the lock on the hot path (a single attribute read is atomic).
        self._closed_permit: Optional[Permit] = Permit(0)
        self._failures = 0
        self._successes = 0
        self._opened_at = 0.0
        self._probes: dict[int, _Slot] = {}  # probe id -> its slot, across generations
        self._probe_ids = itertools.count(1)
        # Probes whose calls ended unheard, queued by ProbeGuard (a finaliser may run in any
        # thread, even one inside this lock) and freed by the next locked operation.
        self._abandoned: deque[Permit] = deque()

    @property
    def name(self) -> str:
        return self._name

    @property
    def policy(self) -> BreakerPolicy:
        return self._policy

    @property
    def state(self) -> CircuitState:
        """The current state. Reading it changes nothing: an open circuit turns half-open
        when the first call arrives after ``recovery_timeout``, not by itself."""
        return self._state

    @property
    def consecutive_failures(self) -> int:
        return self._failures

    @property
    def probes_in_flight(self) -> int:
        """Probe slots taken now (by probes of this or an earlier half-open period)."""
        with self._lock:
            self._free_abandoned()
            return len(self._probes)

    # -- admission -------------------------------------------------------------------------

    def admit(self) -> Union[Permit, float]:
        """A permit for one call, or, if the circuit rejects it now, the seconds after
        which trying again makes sense (always > 0: see :meth:`retry_after`)."""
        permit = self._closed_permit
        if permit is not None:
            return permit
        transitions: list[Transition] = []
        with self._lock:
            admitted = self._admit_locked(transitions)
        self._notify(transitions)
        if not self._policy.enforce and not isinstance(admitted, Permit):
            return _SHADOW
        return admitted

    def acquire(self) -> Optional[Permit]:
        """A permit for one call, or ``None`` if the circuit rejects it now."""
        admitted = self.admit()
        return admitted if isinstance(admitted, Permit) else None

    def _admit_locked(self, transitions: list[Transition]) -> Union[Permit, float]:
        if self._state is CircuitState.CLOSED:
            permit = self._closed_permit
            assert permit is not None
            return permit
        now = self._clock.monotonic()
        if self._state is CircuitState.OPEN:
            if now < self._opened_at:  # an injected clock went back: wait no longer than a period
                self._opened_at = now
            remaining = self._opened_at + self._policy.recovery_timeout - now
            if remaining > 0:
                return max(remaining, MIN_RETRY_AFTER)
            self._move(CircuitState.HALF_OPEN, now, "recovery timeout elapsed", transitions)
        self._free_abandoned()
        self._free_expired(now)
        if len(self._probes) >= self._policy.half_open_max_calls:
            return self._slot_wait(now)
        probe_id = next(self._probe_ids)
        self._probes[probe_id] = _Slot(now, now + self._policy.lease)
        return Permit(self._generation, probe_id)

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
        """Let ``permit``'s probe keep its slot for ``seconds`` from when it was admitted, if
        nobody hears of its end: what its call may take at most (timeouts x attempts +
        backoff). No-op for ordinary permits and for probes already finished."""
        if not permit.probe_id:
            return
        with self._lock:
            slot = self._probes.get(permit.probe_id)
            if slot is not None:
                slot.deadline = slot.started + max(seconds, 0.0)

    def probe_guard(self, permit: Permit) -> ProbeGuard:
        """An object that frees ``permit``'s probe slot when it is garbage-collected, unless
        the outcome was recorded first. Keep it exactly as long as the call is alive."""
        return ProbeGuard(self, permit)

    def _abandon(self, permit: Permit) -> None:
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
                permit = abandoned.popleft()
            except IndexError:  # another thread drained it
                return
            if not permit.done:
                permit.done = True
                self._probes.pop(permit.probe_id, None)

    # -- outcomes ----------------------------------------------------------------------------

    def record(self, permit: Optional[Permit], outcome: Outcome, cause: str = "") -> None:
        """Report how the call made under ``permit`` ended. Stale permits change no state
        (a stale probe still frees its slot)."""
        if permit is None:
            return
        if not permit.probe_id:
            if permit.generation != self._generation:
                return  # cheap unlocked pre-check; re-checked under the lock
            if outcome is _SUCCESS and self._failures == 0:
                return  # the common case: a success while healthy changes nothing
        transitions: list[Transition] = []
        with self._lock:
            self._record_locked(permit, outcome, cause, transitions)
        self._notify(transitions)

    def _record_locked(
        self, permit: Permit, outcome: Outcome, cause: str, transitions: list[Transition]
    ) -> None:
        if permit.probe_id:
            if permit.done:
                return  # its outcome was heard already
            permit.done = True
            # Freed whatever the generation; gone already if its lease ran out, but the
            # call did end, so its outcome still counts in the period that admitted it.
            self._probes.pop(permit.probe_id, None)
        self._free_abandoned()
        if permit.generation != self._generation:
            return
        if self._state is CircuitState.CLOSED:
            if outcome is Outcome.FAILURE:
                self._failures += 1
                if self._failures >= self._policy.failure_threshold:
                    self._move(CircuitState.OPEN, self._clock.monotonic(), cause, transitions)
            elif outcome is Outcome.SUCCESS:
                self._failures = 0
            return
        if self._state is CircuitState.HALF_OPEN:
            if outcome is Outcome.FAILURE:
                self._failures += 1
                self._move(CircuitState.OPEN, self._clock.monotonic(), cause, transitions)
            elif outcome is Outcome.SUCCESS:
                self._successes += 1
                if self._successes >= self._policy.success_threshold:
                    good = f"{self._successes} successful probes"
                    self._move(CircuitState.CLOSED, self._clock.monotonic(), good, transitions)

    # -- reading -----------------------------------------------------------------------------

    def retry_after(self) -> float:
        """Seconds until this circuit may let a call through; 0 if it may now.

        * closed: 0;
        * open: the time left of the open period (at most ``recovery_timeout``);
        * half-open with a probe slot free: 0;
        * half-open with every slot taken: an estimate, as long as the longest-running
          probe has been in flight (at least :data:`MIN_RETRY_AFTER`, at most until its
          lease runs out). A failed probe reopens the circuit for a whole period.

        A rejection carries the value computed when it was decided (:meth:`admit`), so it
        is never 0, even if the circuit has moved on by the time the caller reads it.
        """
        state = self._state
        if state is CircuitState.CLOSED:
            return 0.0
        now = self._clock.monotonic()
        if state is CircuitState.OPEN:
            remaining = self._opened_at + self._policy.recovery_timeout - now
            return min(max(0.0, remaining), self._policy.recovery_timeout)
        with self._lock:
            self._free_abandoned()
            self._free_expired(now)
            if len(self._probes) < self._policy.half_open_max_calls:
                return 0.0
            return self._slot_wait(now)

    def reset(self) -> None:
        """Close the circuit now and forget its failures (an operator's override).

        Probes still in flight keep their slots: they are still reaching the service."""
        transitions: list[Transition] = []
        with self._lock:
            self._failures = 0
            if self._state is not CircuitState.CLOSED:
                self._move(CircuitState.CLOSED, self._clock.monotonic(), "reset", transitions)
        self._notify(transitions)

    def _move(
        self, to: CircuitState, now: float, cause: str, transitions: list[Transition]
    ) -> None:
        from_state = self._state
        self._generation += 1
        self._state = to
        self._successes = 0
        if to is CircuitState.OPEN:
            self._opened_at = now
        if to is CircuitState.CLOSED:
            self._failures = 0
            self._closed_permit = Permit(self._generation)
        else:
            self._closed_permit = None
        # Built last, so that it reports the failure count the new state starts with.
        transitions.append(
            Transition(self._name, from_state, to, self._generation, self._failures, cause)
        )

    def _notify(self, transitions: list[Transition]) -> None:
        # Outside the lock: an observer may log, and a log handler may itself make an AWS
        # call through this very circuit.
        if self._observer is not None:
            for transition in transitions:
                self._observer(transition)

    def __repr__(self) -> str:
        return f"CircuitBreaker(name={self._name!r}, state={self._state.value})"

    def _reinit_lock_after_fork(self) -> None:
        """In a forked child only: a fresh lock (a thread of the parent may have held it)."""
        self._lock = threading.Lock()


class ProbeGuard:
    """Frees a probe's slot when the guard is collected, if the probe's end was not heard.

    Made by :meth:`CircuitBreaker.probe_guard`. The handlers keep it in botocore's request
    context, so it dies with the call, however the call ends: an exception raised by
    another handler, a body that fails to read while botocore computes its checksum,
    ``KeyboardInterrupt`` in the transport, or handlers uninstalled mid-call. In CPython
    that is the moment the last reference to the call goes (a traceback kept alive keeps
    the call alive too); a reference cycle defers it to the next garbage collection.
    """

    __slots__ = ("_breaker", "_permit")

    def __init__(self, breaker: CircuitBreaker, permit: Permit) -> None:
        self._breaker = breaker
        self._permit = permit

    def __del__(self) -> None:
        if not self._permit.done:
            with contextlib.suppress(Exception):  # e.g. at interpreter shutdown
                self._breaker._abandon(self._permit)
