"""A circuit whose state lives in a store shared by a fleet of processes.

:class:`FleetBreaker` has the interface of
:class:`~botocore_resilience.breaker.CircuitBreaker` and keeps, in this process, a
*mirror* of the circuit's fleet state: the store's replies and the changes it
publishes update the mirror, and the mirror answers the questions that must stay
cheap:

* A call on a closed circuit takes the shared closed permit: one attribute read, no
  lock, no store (the healthy hot path stays local).
* A success on a closed circuit with no failures pending anywhere in the fleet (the
  mirror's count is 0) changes nothing and costs nothing.
* A failure, a success while failures are pending, a probe and its outcome are one
  store operation each (atomic, on the store's clock). So is the first use of the
  circuit in this process: it reads the fleet state, and a process that starts during
  an outage rejects its very first call.
* While the circuit is open the mirror rejects locally until the store's open period
  (as the store reported it) has run out; while every probe slot is taken, until the
  first lease ends or a slot is freed (both are published).

On an asyncio event loop (aiobotocore) nothing here waits on the network: every store
operation is handed to the store's own thread. Outcomes reach the store a moment later;
the first use reads the fleet state in the background (the first calls are judged by
this process meanwhile); and a probe slot is reserved in the background, then taken by
the next call of this process (the calls before it are rejected, as the circuit is not
closed).

When the store cannot be used (down, slower than ``state_timeout``, answering errors),
every decision falls to a plain in-process :class:`CircuitBreaker` of the same name and
policy: the process goes on judging calls by what it sees itself, and a fresh one takes
over again the next time the store fails. When the store answers again, the mirror
reads the fleet state afresh (*rejoin*) and decides again.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import random
import secrets
import threading
from asyncio.events import _get_running_loop
from typing import Callable, Optional, Union

from ..breaker import BreakerPolicy, CircuitBreaker, CircuitState, Outcome, Permit, Transition
from ..clock import Clock
from ..window import RateWindow
from .base import FleetState, StateStore, StoreUnavailable

__all__ = ["FleetBreaker", "FleetPermit"]

_MIN_RETRY_AFTER = 0.1  # a rejected call is never told "now"
_FORCED_RETRY_AFTER = 3600.0  # forced open: nobody knows when an operator will close it

_STATES = {
    "closed": CircuitState.CLOSED,
    "open": CircuitState.OPEN,
    "half_open": CircuitState.HALF_OPEN,
    "forced_open": CircuitState.OPEN,
}

_SUCCESS = Outcome.SUCCESS
_FAILURE = Outcome.FAILURE

# Handed out by a metrics-only breaker where an enforcing one would have rejected.
_SHADOW = Permit(generation=-1)


class FleetPermit(Permit):
    """A permit issued on the fleet's state (``generation`` is the store's ``seq``)."""

    # ``done`` (a probe's end was heard) is Permit's own where it has one.
    __slots__ = () if "done" in Permit.__slots__ else ("done",)  # type: ignore[assignment]

    def __init__(self, generation: int, probe_id: int = 0) -> None:
        super().__init__(generation, probe_id)
        self.done = False


def _token_prefix() -> str:
    # Probe tokens name a process only by number: nothing about the host goes to the store.
    return f"{os.getpid()}-{secrets.token_hex(4)}"


class FleetBreaker:
    """One circuit of a fleet: the store decides, a local mirror answers the cheap questions.

    Thread-safe; the lock guards only the mirror and is never held across a store call.
    """

    def __init__(
        self,
        name: str,
        policy: BreakerPolicy,
        clock: Clock,
        observer: Optional[Callable[[Transition], None]],
        store: StateStore,
        *,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self._name = name
        self._policy = policy
        self._clock = clock
        self._observer = observer
        self._store = store
        self._jitter = getattr(policy, "jitter", None) or jitter
        # A failure rate is judged over this process's own calls (each process has its
        # window); what it decides, an opening, is the fleet's.
        rate = getattr(policy, "failure_rate", None)
        self._window = RateWindow(policy.window) if rate is not None else None
        self._lock = threading.Lock()
        self._local = CircuitBreaker(name, policy, clock, observer)
        # The mirror. ``_closed_permit`` is ``None`` until the first use has read the fleet
        # state, so that first call takes the slow path.
        self._loaded = False
        self._state = CircuitState.CLOSED
        self._forced = False
        self._seq = 0
        self._version = -1
        self._changes = 0  # how many times the mirror changed (see _apply)
        self._failures = 0
        self._probes = 0
        self._open_until = 0.0
        self._slots_free_at = 0.0
        self._closed_permit: Optional[Permit] = None
        self._probe_ids = itertools.count(1)
        # Event-loop callers (see the module docstring): a load or a probe reservation under
        # way on the store's thread, and a probe slot reserved for this process's next call.
        self._loading = False
        self._reserving = False
        self._reserved: Optional[Permit] = None
        self._pending = 0  # failures handed to the store's thread, not yet answered
        self._tokens = _token_prefix()
        self._pid = os.getpid()
        store.watch(name, self._on_published, self._on_rejoin)

    # -- what CircuitBreaker offers ------------------------------------------------------

    @property
    def name(self) -> str:
        return self._name

    @property
    def policy(self) -> BreakerPolicy:
        return self._policy

    @property
    def state(self) -> CircuitState:
        """The fleet's state as this process last heard it (its own, while the store is down)."""
        if not self._store.available:
            return self._local.state
        return self._state

    @property
    def consecutive_failures(self) -> int:
        """Consecutive failed calls counted across the fleet."""
        if not self._store.available:
            return self._local.consecutive_failures
        return self._failures

    @property
    def forced(self) -> bool:
        """Whether an operator holds the circuit open (for the whole fleet)."""
        if not self._store.available:
            return bool(getattr(self._local, "forced", False))
        return self._forced

    @property
    def probes_in_flight(self) -> int:
        """Probe slots this process knows to be taken in the fleet (as last heard)."""
        return self._probes

    @property
    def fleet_wide(self) -> bool:
        """Whether decisions are the fleet's now (``False`` while the store is down)."""
        return self._store.available and self._loaded

    def admit(self) -> Union[Permit, float]:
        """A permit for one call, or the seconds after which trying again makes sense."""
        permit = self._closed_permit
        if permit is not None:
            return permit
        admitted = self._admit()
        if not self._policy.enforce and not isinstance(admitted, Permit):
            return _SHADOW
        return admitted

    def _local_admit(self) -> Union[Permit, float]:
        admit = getattr(self._local, "admit", None)
        if admit is not None:
            return admit()  # type: ignore[no-any-return]
        permit = self._local.acquire()
        return permit if permit is not None else max(self._local.retry_after(), _MIN_RETRY_AFTER)

    def acquire(self) -> Optional[Permit]:
        """A permit for one call, or ``None`` if the circuit rejects it now."""
        admitted = self.admit()
        return admitted if isinstance(admitted, Permit) else None

    def _admit(self) -> Union[Permit, float]:
        store = self._store
        if not store.available:
            return self._local_admit()
        on_loop = _get_running_loop() is not None
        if not self._loaded or self._pid != os.getpid():
            if on_loop:
                self._load_in_background()
                return self._local_admit()
            if not self._load():
                return self._local_admit()
            permit = self._closed_permit
            if permit is not None:
                return permit
        now = self._clock.monotonic()
        if self._state is CircuitState.OPEN:
            if self._forced:
                return _FORCED_RETRY_AFTER
            if now < self._open_until:
                return max(self._open_until - now, _MIN_RETRY_AFTER)
        elif self._state is CircuitState.HALF_OPEN and now < self._slots_free_at:
            return max(self._slots_free_at - now, _MIN_RETRY_AFTER)
        if on_loop:
            return self._reserved_probe()
        probe_id = next(self._probe_ids)
        try:
            fleet = store.probe(
                self._name,
                self._policy.half_open_max_calls,
                self._policy.lease,
                self._token(probe_id),
            )
        except StoreUnavailable:
            return self._local_admit()
        self._apply(fleet)
        if fleet.granted:
            return FleetPermit(fleet.seq, probe_id)
        permit = self._closed_permit
        if permit is not None:  # closed by someone else meanwhile
            return permit
        if fleet.state == "forced_open":
            return _FORCED_RETRY_AFTER
        return max(fleet.remaining, fleet.wait, _MIN_RETRY_AFTER)

    def _load_in_background(self) -> None:
        """Read the fleet state on the store's thread (one read under way at a time)."""
        if self._loading:
            return
        self._loading = True

        def load() -> None:
            try:
                self._load()
            finally:
                self._loading = False

        self._store.submit(load)

    def _reserved_probe(self) -> Union[Permit, float]:
        # On an event loop: take the slot reserved in the background, or ask for one.
        with self._lock:
            permit, self._reserved = self._reserved, None
        if permit is not None and permit.generation == self._seq:
            return permit
        if permit is not None:  # reserved in a period that is over: give the slot back
            self._abandon(permit)
        if not self._reserving:
            self._reserving = True
            self._store.submit(self._reserve)
        return _MIN_RETRY_AFTER

    def _reserve(self) -> None:
        try:
            probe_id = next(self._probe_ids)
            try:
                fleet = self._store.probe(
                    self._name,
                    self._policy.half_open_max_calls,
                    self._policy.lease,
                    self._token(probe_id),
                )
            except StoreUnavailable:
                return
            self._apply(fleet)
            if fleet.granted:
                with self._lock:
                    self._reserved = FleetPermit(fleet.seq, probe_id)
        finally:
            self._reserving = False

    def record(self, permit: Optional[Permit], outcome: Outcome, cause: str = "") -> None:
        """Report how the call made under ``permit`` ended. Stale permits change no state."""
        if permit is None:
            return
        if type(permit) is not FleetPermit:
            self._local.record(permit, outcome, cause)  # admitted locally: judged locally
            return
        if not permit.probe_id:
            if self._window is not None:
                self._judge_rate(permit, outcome, cause)
            if outcome is _SUCCESS and self._failures == 0:
                return  # the common case: healthy everywhere, nothing to tell anyone
            if permit.generation != self._seq or outcome not in (_SUCCESS, _FAILURE):
                return
        elif permit.done:
            return
        else:
            permit.done = True
        if _get_running_loop() is not None:
            self._report_in_background(permit, outcome, cause)
            return
        self._report(permit, outcome, cause)

    def _report_in_background(self, permit: Permit, outcome: Outcome, cause: str) -> None:
        # The store hears of it a moment later; meanwhile the mirror counts it as pending,
        # so that the failure that reaches failure_threshold rejects this process's very
        # next call (the store's reply, or its message, then confirms or corrects it).
        transition: Optional[Transition] = None
        counted = outcome is _FAILURE and not permit.probe_id
        if counted:
            with self._lock:
                self._pending += 1
                total = self._failures + self._pending
                if self._state is CircuitState.CLOSED and total >= self._policy.failure_threshold:
                    transition = self._open_provisionally(cause, total)
            if transition is not None and self._observer is not None:
                self._observer(transition)

        def report() -> None:
            self._report(permit, outcome, cause, pending=counted)

        self._store.submit(report)

    def _judge_rate(self, permit: Permit, outcome: Outcome, cause: str) -> None:
        if permit.generation != self._seq or outcome not in (_SUCCESS, _FAILURE):
            return
        window = self._window
        assert window is not None
        calls, failures = window.record(self._clock.monotonic(), outcome is _FAILURE)
        if not self._policy.rate_opens(calls, failures):
            return
        why = (
            f"failure rate {100.0 * failures / calls:.3g}% of {calls} calls in {window.seconds:g} s"
        )
        if outcome is _FAILURE:
            why += f" (last: {cause or 'unknown'})"

        def trip() -> None:
            # An opening with a threshold of one: the same atomic path as any other.
            with contextlib.suppress(StoreUnavailable):
                self._apply(
                    self._store.fail(
                        self._name,
                        permit.generation,
                        1,
                        self._policy.recovery_timeout,
                        self._jitter() * 0.1,
                        why,
                    )
                )

        if _get_running_loop() is not None:
            self._store.submit(trip)
        else:
            trip()

    def _open_provisionally(self, cause: str, failures: int) -> Transition:
        self._state = CircuitState.OPEN
        self._closed_permit = None
        self._open_until = self._clock.monotonic() + self._policy.recovery_timeout
        self._changes += 1
        return Transition(
            self._name, CircuitState.CLOSED, CircuitState.OPEN, self._seq + 1, failures, cause
        )

    def _report(self, permit: Permit, outcome: Outcome, cause: str, pending: bool = False) -> None:
        unavailable = False
        fleet: Optional[FleetState] = None
        try:
            fleet = self._send(permit, outcome, cause)
        except StoreUnavailable:
            unavailable = True
        if pending:
            with self._lock:
                self._pending -= 1
        if unavailable:
            self._judge_locally(outcome, cause)
        elif fleet is not None:
            self._apply(fleet)

    def _send(self, permit: Permit, outcome: Outcome, cause: str) -> Optional[FleetState]:
        policy = self._policy
        store = self._store
        if permit.probe_id:
            if outcome not in (_SUCCESS, _FAILURE):
                store.release_later(self._name, self._token(permit.probe_id))
                return None
            succeeded = self._successes_after(outcome)
            return store.finish(
                self._name,
                permit.generation,
                self._token(permit.probe_id),
                outcome is _FAILURE,
                policy.success_threshold,
                policy.recovery_timeout,
                getattr(policy, "recovery_timeout_max", None) or policy.recovery_timeout,
                self._jitter() * 0.1,
                cause if outcome is _FAILURE else succeeded,
            )
        if outcome is _FAILURE:
            return store.fail(
                self._name,
                permit.generation,
                policy.failure_threshold,
                policy.recovery_timeout,
                self._jitter() * 0.1,
                cause,
            )
        return store.succeed(self._name, permit.generation)

    def _successes_after(self, outcome: Outcome) -> str:
        return f"{self._policy.success_threshold} successful probes"

    def _judge_locally(self, outcome: Outcome, cause: str) -> None:
        # The call was admitted on the fleet's state; its outcome still teaches this
        # process's own breaker, which decides until the store answers again.
        local = self._local.acquire()
        if local is not None:
            self._local.record(local, outcome, cause)

    def set_lease(self, permit: Permit, seconds: float) -> None:
        """Let a probe keep its fleet slot for ``seconds`` (what its call may take at most)."""
        if type(permit) is not FleetPermit:
            setter = getattr(self._local, "set_lease", None)
            if setter is not None:
                setter(permit, seconds)
            return
        if permit.probe_id and not permit.done:
            token = self._token(permit.probe_id)
            if _get_running_loop() is not None:
                self._store.submit(lambda: self._lease(token, seconds))
            else:
                self._lease(token, seconds)

    def _lease(self, token: str, seconds: float) -> None:
        # Store down: the lease taken at admission stands.
        with contextlib.suppress(StoreUnavailable):
            self._store.lease(self._name, token, seconds)

    def probe_guard(self, permit: Permit) -> object:
        """Frees ``permit``'s probe slot (in the fleet) when collected, unless its outcome came."""
        if type(permit) is not FleetPermit:
            return self._local.probe_guard(permit)  # type: ignore[attr-defined]
        return _FleetProbeGuard(self, permit)

    def _abandon(self, permit: Permit) -> None:
        if not permit.done:
            permit.done = True
            self._store.release_later(self._name, self._token(permit.probe_id))

    def retry_after(self) -> float:
        """Seconds until this circuit may let a call through; 0 if it may now."""
        if not self._store.available:
            return self._local.retry_after()
        now = self._clock.monotonic()
        if self._state is CircuitState.OPEN:
            if self._forced:
                return _FORCED_RETRY_AFTER
            return max(0.0, self._open_until - now)
        if self._state is CircuitState.HALF_OPEN:
            return max(0.0, self._slots_free_at - now)
        return 0.0

    def reset(self) -> None:
        """Close the circuit for the whole fleet and forget its failures."""
        self._force("closed", "reset")

    def force_open(self) -> None:
        """Open the circuit for the whole fleet until :meth:`reset`; no probe goes meanwhile."""
        self._force("open", "forced")

    def _force(self, state: str, cause: str) -> None:
        if _get_running_loop() is not None:
            self._store.submit(lambda: self._force_now(state, cause))
            return
        self._force_now(state, cause)

    def _force_now(self, state: str, cause: str) -> None:
        try:
            fleet = self._store.force(self._name, state, cause)
        except StoreUnavailable:
            if state == "closed":
                self._local.reset()
            else:
                forcer = getattr(self._local, "force_open", None)
                if forcer is not None:
                    forcer()
            return
        self._apply(fleet)

    # -- the mirror ------------------------------------------------------------------------

    def _token(self, probe_id: int) -> str:
        if self._pid != os.getpid():  # a forked child must not share its parent's tokens
            self._tokens = _token_prefix()
            self._pid = os.getpid()
        return f"{self._tokens}-{probe_id}"

    def _load(self) -> bool:
        """Read the fleet state (first use, or after the store came back); ``False`` if the
        store did not answer."""
        if self._pid != os.getpid():
            self._token(0)
        mark = self._changes
        try:
            fleet = self._store.load(self._name)
        except StoreUnavailable:
            return False
        self._apply(fleet, unchanged_since=mark)
        return True

    def _on_published(self, fleet: FleetState) -> None:
        # Applied even before the first read has answered: that read may have left the
        # store before this change was made, and its older reply must not win (``_apply``
        # keeps the newer of the two). Dropping the message would leave the mirror closed
        # while the fleet is open or half-open, admitting every call unprobed.
        self._apply(fleet)

    def _on_rejoin(self) -> None:
        # Whatever this process judged alone is forgotten: the fleet's state wins, and a
        # fresh local breaker is ready for the next time the store fails.
        if self._loaded or self._local.state is not CircuitState.CLOSED:
            self._local = CircuitBreaker(self._name, self._policy, self._clock, self._observer)
        # Read again even if this process has not read the fleet state yet: a first read
        # may be on its way, made before the subscription existed, and a change published
        # meanwhile reached nobody here.
        self._load()

    def _apply(self, fleet: FleetState, *, unchanged_since: Optional[int] = None) -> None:
        """Make the mirror ``fleet`` unless it knows something newer. A load whose reply
        is older than the mirror (the store lost its data, or a key expired) still wins
        if nothing else changed the mirror while it was on its way."""
        now = self._clock.monotonic()
        state = _STATES.get(fleet.state, CircuitState.CLOSED)
        transition: Optional[Transition] = None
        with self._lock:
            if fleet.version < self._version and unchanged_since != self._changes:
                return  # an older message overtaken by a newer reply, or the reverse
            before = self._state
            self._changes += 1
            self._version = fleet.version
            self._loaded = True
            self._seq = fleet.seq
            self._failures = fleet.failures
            self._forced = fleet.state == "forced_open"
            self._probes = fleet.probes
            if state is CircuitState.OPEN:
                self._open_until = now + fleet.remaining
            if state is CircuitState.HALF_OPEN:
                self._slots_free_at = now + fleet.wait if fleet.wait > 0 else 0.0
            self._state = state
            if state is CircuitState.CLOSED:
                permit = self._closed_permit
                if permit is None or permit.generation != fleet.seq:
                    self._closed_permit = FleetPermit(fleet.seq)
            else:
                self._closed_permit = None
            if state is not before:
                cause = fleet.cause
                transition = Transition(self._name, before, state, fleet.seq, fleet.failures, cause)
        if transition is not None and self._observer is not None:
            self._observer(transition)

    def _reinit_lock_after_fork(self) -> None:
        """In a forked child only: a fresh lock, and the fleet state read again on first use."""
        self._lock = threading.Lock()
        self._loaded = False
        self._closed_permit = None
        self._local._reinit_lock_after_fork()  # type: ignore[attr-defined]

    def __repr__(self) -> str:
        return f"FleetBreaker(name={self._name!r}, state={self.state.value})"


class _FleetProbeGuard:
    """Frees a fleet probe's slot when collected, if its outcome was never recorded."""

    __slots__ = ("_breaker", "_permit")

    def __init__(self, breaker: FleetBreaker, permit: Permit) -> None:
        self._breaker = breaker
        self._permit = permit

    def __del__(self) -> None:
        if self._permit.done:
            return
        with contextlib.suppress(Exception):  # interpreter shutdown
            self._breaker._abandon(self._permit)
