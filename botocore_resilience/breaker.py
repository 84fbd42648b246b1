"""The circuit breaker: the policy that decides when a circuit changes state.

One :class:`CircuitBreaker` guards one circuit (e.g. ``s3/us-east-1``)::

    CLOSED --(failure_threshold consecutive failures, or failure_rate over window)--> OPEN
    OPEN --(open period over, next call)--> HALF_OPEN
    HALF_OPEN --(success_threshold good probes)--> CLOSED
    HALF_OPEN --(any failed probe)--> OPEN (for twice as long, up to recovery_timeout_max)
    any --(force_open())--> OPEN, no probe until reset()

Open periods carry up to :data:`JITTER` of random extra, drawn per opening. The users'
account of the policy: ``docs/explanation/failure-rate-and-slow-calls.md``.

A caller asks for a :class:`Permit` before the protected call (:meth:`CircuitBreaker.admit`)
and hands it back with the :class:`Outcome` afterwards (:meth:`CircuitBreaker.record`). No
lock is held across the call itself, so a slow AWS call never serialises other threads.

Probe slots belong to calls, not to periods: a probe holds its slot for as long as its
call is alive and its outcome counts while the circuit is still in the half-open period
that admitted it. A slot is freed by the outcome, by :meth:`CircuitBreaker.probe_guard`'s
guard when the call ends unheard, or, as a last resort, when its lease runs out
(:meth:`CircuitBreaker.set_lease`; sized from what the call may take, see ``leases``).

Where the state lives: the ``StateBackend`` seam
================================================

The policy (this module: thresholds, open periods, which outcome moves the circuit where)
never touches state directly. It asks a :class:`~.state.StateBackend`, one per circuit,
through a few operations, and reads a *mirror* of the state kept in the breaker's own
attributes. :class:`~.local_state.LocalState` (the default) keeps the state in this
process; a store shared by a fleet implements the same operations against the store.
``CircuitBreaker(..., backend=factory)`` chooses: ``factory(name, clock, mirror)``.

The mirror, and the hot path
    The backend calls ``mirror.mirror(view)`` with a :class:`~.state.View` for every
    change it makes or hears of, in order (under its own lock is fine: it only stores
    fields). The breaker keeps ``state``, ``seq``, pending ``failures``, the open period's
    end and the closed permit from it. A call on a closed circuit takes
    ``view.closed_permit``: one attribute read, no lock, no backend call. A success on a
    closed circuit whose mirror shows no failures pending returns before any backend
    call. Everything else is one backend operation (two when it makes a transition).

Every change names the ``seq`` it applies to
    ``add_failure(seq)``, ``clear_failures(seq)``, ``finish_probe(permit, ...)`` (the
    permit's ``generation`` is its ``seq``) and ``move(seq, to, ...)`` do nothing when
    ``seq`` is no longer current; ``move`` is a compare-and-set, so when several callers
    (threads, or processes of a fleet) decide the same transition, exactly one makes it.
    The policy decides from the view an operation returns (``failures`` after this
    failure, ``successes`` after this probe, ``reopenings``) and never holds a lock
    across an operation, so an operation may be a store round trip.

Operations (each atomic where the state lives)
    ``admit(max_calls, lease)``: the closed permit; or, when the open period is over on
    the backend's clock, the move to half-open; then a probe slot leased for ``lease``
    seconds (a :class:`Permit` with ``probe_id``); else the seconds to wait, > 0 (callers
    are told at least :data:`~.state.MIN_RETRY_AFTER`). Slots are held across periods:
    never more than ``max_calls`` probes in flight, whatever period admitted them.
    ``set_lease(permit, seconds)``; ``release_soon(permit)`` (from a finaliser: must not
    block); ``finish_probe(permit, succeeded)`` frees the slot and counts its success or
    failure in the current period. ``add_failure(seq)`` / ``clear_failures(seq)``:
    consecutive failures while closed (for a store: counted fleet-wide; a success anywhere
    resets them).
    ``move(seq, to, cause, open_for, forced)``: a transition; ``open_for`` is the open
    period the policy chose, measured on the backend's clock (a store's own clock for a
    fleet); ``forced`` holds it open (no probe) until the next move. ``view()``,
    ``wait(max_calls)`` (0 if a call would be let through now), ``probes_in_flight()``,
    ``reinit_after_fork()``.

Transitions reach the observer from the backend
    The backend calls ``mirror.announce(view)`` for every transition (``view.from_state``
    set), *outside* its locks: its own and the ones it hears of from other processes
    (pushed, e.g. by pub/sub). The breaker turns it into a :class:`Transition` for the
    observer (metrics, logs), which may itself call through the circuit.

What a store-backed backend adds (``store.backend.SharedState``, not in this module)
    It reads the fleet's state on first use (one round trip per circuit per process;
    until then it mirrors a view without ``closed_permit``, so the first call asks), pushes
    every change to every process (``mirror`` + ``announce``), leases slots in the
    store with expiry (a dead process frees its slots), converts the store's open period
    to the breaker's clock in ``view.open_until``, and when the store fails (down, slow
    past its timeout, answering errors) serves every operation from a
    :class:`~.local_state.LocalState` of its own until the store answers again. The
    policy does not change, and never learns which backend it talks to.

Policy that does not care where state lives
    Thresholds and open periods are :class:`BreakerPolicy` (``opens_after``,
    ``open_period``). A failure-rate window or slow calls decide in this process, from the
    outcomes it records, and open the circuit with the same ``move``; a growing open period
    reads ``view.reopenings``; an operator's override is ``move(..., forced=True)``.
"""

from __future__ import annotations

import contextlib
import enum
import math
import random
import weakref
from dataclasses import dataclass, field
from typing import Callable, Optional, Union

from .clock import MONOTONIC, Clock, reader_of
from .config import Settings
from .local_state import LocalState
from .state import MIN_RETRY_AFTER, CircuitState, Permit, StateBackend, View
from .window import RateWindow

__all__ = [
    "DEFAULT_PROBE_LEASE",
    "FORCED",
    "JITTER",
    "MIN_RETRY_AFTER",
    "RATE_CAUSE",
    "SLOW_CAUSE",
    "BackendFactory",
    "BreakerPolicy",
    "CircuitBreaker",
    "CircuitState",
    "Outcome",
    "Permit",
    "ProbeGuard",
    "Transition",
    "View",
]

DEFAULT_PROBE_LEASE = 600.0
"""Seconds a probe keeps its slot when nobody observes its end and the caller set no lease
of its own: ten minutes, above what a call with botocore's default timeouts may take."""

JITTER = 0.1
"""The most random extra an open period gets, as a share of it: probes of independent
processes that opened together drift apart instead of arriving in step."""

FORCED = "forced"
"""The cause of an operator's :meth:`CircuitBreaker.force_open`."""

RATE_CAUSE = "failure rate"
"""How the cause of an opening by the failure rate begins."""

SLOW_CAUSE = "slow call"
"""How the cause of a slow call (``slow_call_duration``) begins."""

_CLOSED, _OPEN, _HALF_OPEN = CircuitState.CLOSED, CircuitState.OPEN, CircuitState.HALF_OPEN


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
    failure_rate: Optional[float] = Settings.failure_rate
    """Percent (0 < p <= 100) of the calls judged in the last ``window`` seconds that, once
    they fail, open a closed circuit, if at least ``minimum_calls`` were judged; ``None``:
    consecutive failures only."""
    window: float = Settings.window
    minimum_calls: int = Settings.minimum_calls
    recovery_timeout_max: Optional[float] = Settings.recovery_timeout_max
    """The longest open period; each failed probe doubles the next one up to it. ``None``:
    ``recovery_timeout`` (no growth)."""
    jitter: Optional[Callable[[], float]] = field(default=None, compare=False, repr=False)
    """The random source in ``[0, 1)`` of the open periods' extra; ``None``:
    :func:`random.random`."""

    @property
    def lease(self) -> float:
        return DEFAULT_PROBE_LEASE if self.probe_lease is None else self.probe_lease

    @property
    def max_open_period(self) -> float:
        """The longest an open period lasts before its jitter."""
        limit = self.recovery_timeout_max
        return self.recovery_timeout if limit is None else max(limit, self.recovery_timeout)

    def opens_after(self, failures: int) -> bool:
        """Whether ``failures`` consecutive failed calls open a closed circuit."""
        return failures >= self.failure_threshold

    def rate_opens(self, calls: int, failures: int) -> bool:
        """Whether ``failures`` of ``calls`` judged in the window open a closed circuit.

        >>> policy = BreakerPolicy(failure_rate=50, minimum_calls=4)
        >>> policy.rate_opens(3, 3), policy.rate_opens(4, 2), policy.rate_opens(4, 1)
        (False, True, False)
        """
        rate = self.failure_rate
        # Compared as failures * 100 >= rate * calls: exact at the boundary (50% of 4 is 2),
        # where a quotient of floats could land a hair below it.
        return rate is not None and calls >= self.minimum_calls and failures * 100 >= rate * calls

    def open_period(self, reopenings: int) -> float:
        """Seconds a circuit stays open, before jitter, after ``reopenings`` failed half-open
        periods in a row: ``recovery_timeout`` doubled for each, up to ``recovery_timeout_max``.

        >>> policy = BreakerPolicy(recovery_timeout=10, recovery_timeout_max=60)
        >>> [policy.open_period(n) for n in range(5)]
        [10.0, 20.0, 40.0, 60.0, 60.0]
        """
        limit = self.max_open_period
        if reopenings <= 0:
            return float(self.recovery_timeout)
        if reopenings >= 64:  # 2**64 periods: far past any cap, and no float overflow
            return float(limit)
        return float(min(self.recovery_timeout * 2**reopenings, limit))

    def draw_open_period(self, reopenings: int) -> float:
        """:meth:`open_period` plus its random extra, drawn afresh: up to :data:`JITTER` of it."""
        period = self.open_period(reopenings)
        draw = (self.jitter or random.random)()
        return period * (1.0 + JITTER * min(max(draw, 0.0), 1.0))


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
    """Why, in words; never contains secrets. For an opening: the last error (``503
    SlowDown``), ``slow call (...)`` when the last failure was a slow call, ``failure rate
    ...`` when the rate opened it, or ``forced`` (:meth:`CircuitBreaker.force_open`)."""
    open_for: float = 0.0
    """For a transition to open: seconds it stays open, jitter included (``inf`` when
    forced: until an operator closes it); 0 otherwise."""


# Enum members read as module globals on the hot path: on Python 3.11, ``Outcome.SUCCESS``
# costs about 0.1 µs more than a global lookup.
_SUCCESS = Outcome.SUCCESS
_FAILURE = Outcome.FAILURE

# Handed out by a metrics-only breaker where an enforcing one would have rejected: the
# call goes ahead, but its outcome is ignored, exactly as a rejected call would be.
_SHADOW = Permit(generation=-1)

Observer = Callable[[Transition], None]
BackendFactory = Callable[[str, Clock, "_Mirror"], StateBackend]


class CircuitBreaker:
    """One circuit's policy, over a :class:`~.state.StateBackend`. Thread-safe.

    >>> from botocore_resilience.testing import FakeClock
    >>> clock = FakeClock()
    >>> breaker = CircuitBreaker("s3/us-east-1", BreakerPolicy(failure_threshold=2), clock)
    >>> for _ in range(2):
    ...     breaker.record(breaker.acquire(), Outcome.FAILURE)
    >>> breaker.state
    <CircuitState.OPEN: 'open'>
    >>> 60.0 <= breaker.admit() <= 66.0  # rejected: seconds until a probe may go (+ jitter)
    True
    >>> clock.advance(66)
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
        backend: Optional[BackendFactory] = None,
    ) -> None:
        self._name = name
        self._policy = policy
        self._observer = observer
        # The mirror of the backend's state, written only by _Mirror.mirror and read without
        # a lock (each a single attribute read). _closed_permit is non-None exactly while
        # calls may go without asking the backend.
        self._state = _CLOSED
        self._generation = 0
        self._failures = 0
        self._closed_permit: Optional[Permit] = None
        self._forced = False
        self._clock = clock
        self._window: Optional[RateWindow] = None
        if policy.failure_rate is not None:
            # Chosen once, here: without a failure rate, record() stays the method that
            # returns on a healthy success before counting anything.
            self._window = RateWindow(policy.window)
            self._now = reader_of(clock)  # time.monotonic itself for the default clock
            self.record = self._record_in_window  # type: ignore[method-assign]
        self._backend: StateBackend = (backend or LocalState)(name, clock, _Mirror(self))

    @property
    def name(self) -> str:
        return self._name

    @property
    def policy(self) -> BreakerPolicy:
        return self._policy

    @property
    def backend(self) -> StateBackend:
        """Where this circuit's state lives."""
        return self._backend

    @property
    def state(self) -> CircuitState:
        """The current state. Reading it changes nothing: an open circuit turns half-open
        when the first call arrives after its open period, not by itself."""
        return self._state

    @property
    def consecutive_failures(self) -> int:
        return self._failures

    @property
    def forced(self) -> bool:
        """Whether an operator holds the circuit open (:meth:`force_open`) until :meth:`reset`."""
        return self._forced

    @property
    def window(self) -> Optional[RateWindow]:
        """The failure-rate window (``None`` without ``failure_rate``)."""
        return self._window

    @property
    def probes_in_flight(self) -> int:
        """Probe slots taken now (by probes of this or an earlier half-open period)."""
        return self._backend.probes_in_flight()

    # -- admission -------------------------------------------------------------------------

    def admit(self) -> Union[Permit, float]:
        """A permit for one call, or, if the circuit rejects it now, the seconds after
        which trying again makes sense (always > 0: see :meth:`retry_after`)."""
        permit = self._closed_permit
        if permit is not None:
            return permit
        policy = self._policy
        admitted = self._backend.admit(policy.half_open_max_calls, policy.lease)
        if isinstance(admitted, Permit):
            return admitted
        if not policy.enforce:
            return _SHADOW
        if admitted == math.inf:  # forced open: see retry_after()
            return policy.max_open_period
        return max(admitted, MIN_RETRY_AFTER)

    def acquire(self) -> Optional[Permit]:
        """A permit for one call, or ``None`` if the circuit rejects it now."""
        admitted = self.admit()
        return admitted if isinstance(admitted, Permit) else None

    # -- probes ------------------------------------------------------------------------------

    def set_lease(self, permit: Permit, seconds: float) -> None:
        """Let ``permit``'s probe keep its slot for ``seconds`` from when it was admitted, if
        nobody hears of its end: what its call may take at most (timeouts x attempts +
        backoff). No-op for ordinary permits and for probes already finished."""
        if permit.probe_id and not permit.done:
            self._backend.set_lease(permit, seconds)

    def probe_guard(self, permit: Permit) -> ProbeGuard:
        """An object that frees ``permit``'s probe slot when it is garbage-collected, unless
        the outcome was recorded first. Keep it exactly as long as the call is alive."""
        return ProbeGuard(self, permit)

    def _abandon(self, permit: Permit) -> None:
        if not permit.done:
            permit.done = True
            self._backend.release_soon(permit)

    # -- outcomes ----------------------------------------------------------------------------

    def record(self, permit: Optional[Permit], outcome: Outcome, cause: str = "") -> None:
        """Report how the call made under ``permit`` ended. Stale permits change no state
        (a stale probe still frees its slot)."""
        if permit is None:
            return
        if permit.probe_id:
            self._record_probe(permit, outcome, cause)
            return
        if permit.generation != self._generation:
            return  # a call admitted before the last transition: it says nothing now
        if outcome is _SUCCESS:
            if self._failures:  # the common case, healthy, stops at this attribute read
                self._backend.clear_failures(permit.generation)
        elif outcome is _FAILURE:
            view = self._backend.add_failure(permit.generation)
            if view is not None and self._policy.opens_after(view.failures):
                open_for = self._policy.draw_open_period(view.reopenings)
                self._backend.move(view.seq, _OPEN, cause, open_for)

    def _record_in_window(
        self, permit: Optional[Permit], outcome: Outcome, cause: str = ""
    ) -> None:
        """:meth:`record` with a failure rate: every judged call on the closed circuit is
        counted in the window (one short lock), and either trigger may open it."""
        if permit is None:
            return
        if permit.probe_id:
            self._record_probe(permit, outcome, cause)
            return
        if permit.generation != self._generation:
            return
        if outcome is _SUCCESS:
            failed = False
        elif outcome is _FAILURE:
            failed = True
        else:
            return
        window = self._window
        assert window is not None  # this method is chosen only with a window
        calls, failures = window.record(self._now(), failed)
        policy = self._policy
        backend = self._backend
        seq, reopenings = permit.generation, 0
        if failed:
            view = backend.add_failure(seq)
            if view is None:
                return  # the circuit moved on meanwhile
            seq, reopenings = view.seq, view.reopenings
            if policy.opens_after(view.failures):
                backend.move(seq, _OPEN, cause, policy.draw_open_period(reopenings))
                return
        elif self._failures:
            backend.clear_failures(seq)
        if policy.rate_opens(calls, failures):
            why = (
                f"{RATE_CAUSE} {100.0 * failures / calls:.3g}% of {calls} calls "
                f"in {window.seconds:g} s"
            )
            if failed:
                why += f" (last: {cause or 'unknown'})"
            backend.move(seq, _OPEN, why, policy.draw_open_period(reopenings))

    def _record_probe(self, permit: Permit, outcome: Outcome, cause: str) -> None:
        if permit.done:
            return  # its end was heard already
        permit.done = True
        succeeded = True if outcome is _SUCCESS else False if outcome is _FAILURE else None
        view = self._backend.finish_probe(permit, succeeded)
        if view is None:
            return  # its half-open period is over: the slot is free, nothing else changes
        policy = self._policy
        if outcome is _FAILURE:
            open_for = policy.draw_open_period(view.reopenings + 1)
            self._backend.move(view.seq, _OPEN, cause, open_for)
        elif outcome is _SUCCESS and view.successes >= policy.success_threshold:
            self._backend.move(view.seq, _CLOSED, f"{view.successes} successful probes")

    # -- reading and overriding --------------------------------------------------------------

    def retry_after(self) -> float:
        """Seconds until this circuit may let a call through; 0 if it may now.

        * closed: 0;
        * open: the time left of the open period (at most the period itself);
        * half-open with a probe slot free: 0;
        * half-open with every slot taken: an estimate, as long as the longest-running
          probe has been in flight (at least :data:`MIN_RETRY_AFTER`, never past the end of
          the first probe lease; with a store, the time until that lease ends). A failed
          probe reopens the circuit for a whole period.

        * forced open (:meth:`force_open`): the longest open period
          (:attr:`BreakerPolicy.max_open_period`, before jitter): nobody knows when an
          operator will close it, and a caller that sleeps on this value must not sleep
          forever.

        A rejection carries the value computed when it was decided (:meth:`admit`), so it
        is never 0, even if the circuit has moved on by the time the caller reads it.
        """
        if self._state is _CLOSED:
            return 0.0
        wait = self._backend.wait(self._policy.half_open_max_calls)
        return self._policy.max_open_period if wait == math.inf else wait

    def reset(self) -> None:
        """Close the circuit now and forget its failures (an operator's override).

        Probes still in flight keep their slots: they are still reaching the service.
        Ends a :meth:`force_open`."""
        backend = self._backend
        if self._window is not None:
            self._window.clear()
        while True:  # a compare-and-set: another change may come first, then try again
            view = backend.view()
            if view.state is _CLOSED:
                backend.clear_failures(view.seq)
                return
            if backend.move(view.seq, _CLOSED, "reset") is not None:
                return

    def force_open(self) -> None:
        """Open the circuit now and hold it open (an operator's override): every call is
        rejected and no probe goes until :meth:`reset`.

        The state reads ``OPEN`` (the state gauge shows 2, as for any open circuit), and
        the transition to open is reported with cause :data:`FORCED` (``"forced"``) and
        ``open_for`` infinite; :attr:`forced` tells it from an opening by failures.
        Rejections carry ``retry_after`` = the longest open period (see :meth:`retry_after`).
        """
        backend = self._backend
        while True:  # a compare-and-set, as in reset()
            view = backend.view()
            if view.state is _OPEN and view.forced:
                return
            if backend.move(view.seq, _OPEN, FORCED, 0.0, forced=True) is not None:
                return

    def _reinit_lock_after_fork(self) -> None:
        """In a forked child only: fresh locks (a thread of the parent may have held one)."""
        self._backend.reinit_after_fork()

    def __repr__(self) -> str:
        return f"CircuitBreaker(name={self._name!r}, state={self._state.value})"


class _Mirror:
    """The breaker's side of the seam, handed to its backend (see the module docstring)."""

    # A weak reference: breaker -> backend -> mirror -> breaker would be a cycle, and an
    # evicted circuit would then wait for the cycle collector (long enough, at 10,000s of
    # buckets, to grow the circuit registry's tables far past max_circuits).
    __slots__ = ("_breaker",)

    def __init__(self, breaker: CircuitBreaker) -> None:
        self._breaker = weakref.ref(breaker)

    def mirror(self, view: View) -> None:
        breaker = self._breaker()
        if breaker is None:
            return  # the circuit is gone; its backend outlived it (e.g. held by a store)
        breaker._generation = view.seq
        breaker._failures = view.failures
        breaker._state = view.state
        breaker._forced = view.forced
        if view.state is _CLOSED and view.from_state is not None and breaker._window is not None:
            # Closed again: the rate is judged afresh, not from the outage's calls.
            breaker._window.clear()
        breaker._closed_permit = view.closed_permit  # last: it opens the lock-free path

    def probe_counted(self, view: View) -> None:
        breaker = self._breaker()
        # Moved on already (this process's policy decided, e.g. a close shown before the
        # store made it): nothing left to decide.
        if breaker is None or view.state is not _HALF_OPEN or breaker._generation != view.seq:
            return
        if view.successes >= breaker._policy.success_threshold:
            breaker._backend.move(view.seq, _CLOSED, f"{view.successes} successful probes")

    def announce(self, view: View) -> None:
        # Outside every lock: an observer may log, and a log handler may itself make an AWS
        # call through this very circuit.
        breaker = self._breaker()
        if breaker is None:
            return
        if breaker._observer is not None and view.from_state is not None:
            open_for = 0.0
            if view.state is _OPEN:
                open_for = (
                    math.inf
                    if view.forced
                    else max(0.0, view.open_until - breaker._clock.monotonic())
                )
            breaker._observer(
                Transition(
                    breaker._name,
                    view.from_state,
                    view.state,
                    view.seq,
                    view.failures,
                    view.cause,
                    open_for,
                )
            )


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
