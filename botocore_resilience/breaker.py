"""The circuit breaker state machine: no botocore, no metrics, no logging.

One :class:`CircuitBreaker` guards one circuit (e.g. ``s3/us-east-1``)::

    CLOSED --(failure_threshold consecutive failures)--> OPEN
    OPEN --(recovery_timeout elapsed, next call)--> HALF_OPEN
    HALF_OPEN --(success_threshold good probes)--> CLOSED
    HALF_OPEN --(any failed probe)--> OPEN

A caller asks for a :class:`Permit` before the protected call and hands it back
with the :class:`Outcome` afterwards. The lock is held only inside
:meth:`CircuitBreaker.acquire` and :meth:`CircuitBreaker.record`, never across
the call itself, so a slow AWS call never serialises other threads (the
pybreaker trap).

Each state change starts a new *generation*. A permit remembers its
generation, and an outcome from an older generation is ignored: a call that
started while the circuit was closed cannot close (or count against) the
half-open circuit that exists by the time it finishes.

Half-open probes are leased: a probe whose outcome never arrives (the calling
thread was interrupted by a ``BaseException`` that skipped every hook) gives its
slot back once its lease runs out, so no sequence of events wedges a circuit.
"""

from __future__ import annotations

import enum
import itertools
import threading
from dataclasses import dataclass
from typing import Callable, Optional

from .clock import MONOTONIC, Clock

__all__ = [
    "BreakerPolicy",
    "CircuitBreaker",
    "CircuitState",
    "Outcome",
    "Permit",
    "Transition",
]


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
    """The thresholds of one breaker. Validated by ``config``; defaults match the contract."""

    failure_threshold: int = 5
    recovery_timeout: float = 60.0
    success_threshold: int = 2
    half_open_max_calls: int = 1
    enforce: bool = True
    """``False`` is the ``metrics-only`` mode: state is computed, nothing is rejected."""
    probe_lease: Optional[float] = None
    """Seconds a half-open probe may hold its slot; ``None`` means ``recovery_timeout``."""

    @property
    def lease(self) -> float:
        return self.recovery_timeout if self.probe_lease is None else self.probe_lease


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

    __slots__ = ("generation", "probe_id")

    def __init__(self, generation: int, probe_id: int = 0) -> None:
        self.generation = generation
        self.probe_id = probe_id  # 0 for an ordinary call, >0 for a half-open probe

    @property
    def is_probe(self) -> bool:
        return self.probe_id > 0

    def __repr__(self) -> str:
        return f"Permit(generation={self.generation}, probe_id={self.probe_id})"


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
    >>> breaker.acquire() is None, breaker.retry_after()
    (True, 60.0)
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
        self._probes: dict[int, float] = {}  # probe id -> lease deadline
        self._probe_ids = itertools.count(1)

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

    def acquire(self) -> Optional[Permit]:
        """A permit for one call, or ``None`` if the circuit rejects it now."""
        permit = self._closed_permit
        if permit is not None:
            return permit
        transitions: list[Transition] = []
        with self._lock:
            permit = self._acquire_locked(transitions)
        self._notify(transitions)
        if permit is None and not self._policy.enforce:
            return _SHADOW
        return permit

    def _acquire_locked(self, transitions: list[Transition]) -> Optional[Permit]:
        if self._state is CircuitState.CLOSED:
            return self._closed_permit
        now = self._clock.monotonic()
        if self._state is CircuitState.OPEN:
            if now - self._opened_at < self._policy.recovery_timeout:
                return None
            self._move(CircuitState.HALF_OPEN, now, "recovery timeout elapsed", transitions)
        # HALF_OPEN: reclaim the slots of probes whose outcome never came back.
        expired = [pid for pid, deadline in self._probes.items() if deadline <= now]
        for pid in expired:
            del self._probes[pid]
        if len(self._probes) >= self._policy.half_open_max_calls:
            return None
        probe_id = next(self._probe_ids)
        self._probes[probe_id] = now + self._policy.lease
        return Permit(self._generation, probe_id)

    def record(self, permit: Optional[Permit], outcome: Outcome, cause: str = "") -> None:
        """Report how the call made under ``permit`` ended. Stale permits are ignored."""
        if permit is None or permit.generation != self._generation:
            return  # cheap unlocked pre-check; re-checked under the lock
        if outcome is _SUCCESS and permit.probe_id == 0 and self._failures == 0:
            return  # the common case: a success while healthy changes nothing
        transitions: list[Transition] = []
        with self._lock:
            self._record_locked(permit, outcome, cause, transitions)
        self._notify(transitions)

    def _record_locked(
        self, permit: Permit, outcome: Outcome, cause: str, transitions: list[Transition]
    ) -> None:
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
            if self._probes.pop(permit.probe_id, None) is None:
                return  # its lease ran out and the slot went to another probe
            if outcome is Outcome.FAILURE:
                self._failures += 1
                self._move(CircuitState.OPEN, self._clock.monotonic(), cause, transitions)
            elif outcome is Outcome.SUCCESS:
                self._successes += 1
                if self._successes >= self._policy.success_threshold:
                    good = f"{self._successes} successful probes"
                    self._move(CircuitState.CLOSED, self._clock.monotonic(), good, transitions)

    def retry_after(self) -> float:
        """Seconds until this circuit may let a probe through (0 if it may now, or is probing)."""
        if self._state is not CircuitState.OPEN:
            return 0.0
        remaining = self._opened_at + self._policy.recovery_timeout - self._clock.monotonic()
        return max(0.0, remaining)

    def reset(self) -> None:
        """Close the circuit now and forget its failures (an operator's override)."""
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
        self._probes.clear()
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
