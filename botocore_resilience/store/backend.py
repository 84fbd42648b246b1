"""A circuit's state kept in a store shared by a fleet: the :class:`~..state.StateBackend`
that ``state_url`` selects.

:class:`SharedState` implements the seam of ``botocore_resilience.breaker`` (its module
docstring is the contract) on a :class:`~.base.StateStore`. The breaker's policy is the
same as for a circuit kept in the process; only where the state lives changes:

* Every operation is one atomic store operation on the store's clock (``script.lua``):
  counting, leasing probe slots, and a transition made only if the caller's ``seq`` is
  still current. Its reply, and every change any process makes (pushed by pub/sub), is
  mirrored into the breaker; transitions heard from anywhere are announced to it.
* The breaker's mirror answers the cheap questions without a round trip: a call on a
  closed circuit takes the closed permit, a success with no failures pending anywhere
  stops there, and while the circuit is open (as the store last said) or every probe
  slot is taken, calls are rejected here until the store's period or lease runs out.
* The first use of a circuit in this process reads the fleet's state (one round trip):
  a process that starts during an outage rejects its very first call.
* When the store cannot be used (down, slower than ``state_timeout``, answering errors),
  every operation is served by a :class:`~..local_state.LocalState` of this object's own,
  fresh each time the store fails: the process judges calls by what it sees itself. When
  the store answers again, the fleet's state is read afresh (*rejoin*) and wins.
* On a running asyncio event loop nothing here waits on the network: store operations
  are handed to the store's own thread, and the policy is answered from the mirror (a
  failure counts as pending, a transition shows at once); the store's reply confirms or
  corrects it a moment later. The first use reads the fleet state in the background
  (calls are judged by this process meanwhile), and a probe slot is reserved in the
  background, then taken by this process's next call.

No lock is held across a store round trip; the lock guards the mirror's fields only.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import os
import secrets
import threading
import weakref
from asyncio.events import _get_running_loop
from typing import Optional, Union

from ..clock import Clock
from ..local_state import LocalState
from ..state import MIN_RETRY_AFTER, CircuitState, Mirror, Permit, View, call_lease, may_wait
from .base import FleetState, StateStore, StoreUnavailable

__all__ = ["STORE_DOWN_CAUSE", "SharedState"]

STORE_DOWN_CAUSE = "state store unavailable: judged by this process alone"
"""The cause of the transition a process makes when the store fails while the fleet's
circuit is not closed: from then on, a fresh local state (closed) judges its calls."""

_CLOSED, _OPEN, _HALF_OPEN = CircuitState.CLOSED, CircuitState.OPEN, CircuitState.HALF_OPEN

_STATES = {
    "closed": _CLOSED,
    "open": _OPEN,
    "half_open": _HALF_OPEN,
    "forced_open": _OPEN,
}


class _StorePermit(Permit):
    """A permit issued on the fleet's state: ``generation`` is the store's ``seq``, and a
    probe's slot is leased in the store (permits of the local fallback are plain ones)."""

    __slots__ = ()


def _token_prefix() -> str:
    # Probe tokens name a process only by number: nothing about the host goes to the store.
    return f"{os.getpid()}-{secrets.token_hex(4)}"


def _must_not_wait() -> bool:
    """On an asyncio event loop, or in a call that has waited on the store once already
    (``state.may_wait``): store operations go to the store's thread."""
    return _get_running_loop() is not None or not may_wait()


class _LocalMirror:
    """Passes on what a fallback :class:`LocalState` reports, while it is the one serving."""

    __slots__ = ("_backend", "local")

    def __init__(self, backend: SharedState) -> None:
        self._backend = weakref.ref(backend)  # backend -> local -> this: no cycle
        self.local: Optional[LocalState] = None

    def _serving(self) -> Optional[SharedState]:
        backend = self._backend()
        if backend is None or self.local is None or backend._local is not self.local:
            return None
        return backend

    def mirror(self, view: View) -> None:
        backend = self._serving()
        if backend is not None:
            backend._shown = view.state
            backend._sink.mirror(view)

    def announce(self, view: View) -> None:
        backend = self._serving()
        if backend is not None:
            backend._sink.announce(view)

    def probe_counted(self, view: View) -> None:  # a local state decides as it counts
        return None


class SharedState:
    """One circuit's state in a store shared by a fleet. Thread-safe; never holds its lock
    across a store round trip.

    Args:
        name: the circuit.
        clock: the breaker's clock (the store's open periods are converted to it).
        mirror: the breaker's side of the seam.
        store: the process's store (one per ``state_url``, shared by every circuit).
    """

    def __init__(self, name: str, clock: Clock, mirror: Mirror, store: StateStore) -> None:
        self._name = name
        self._clock = clock
        self._sink = mirror
        self._store = store
        self._lock = threading.Lock()
        # Serving while the store cannot be used (or, on an event loop, until the first
        # read has answered); None while the store serves.
        self._local: Optional[LocalState] = None
        self._loaded = False  # the store serves: its state was read (or heard) and mirrored
        self._shown = _CLOSED  # the state the breaker was last told, from either source
        # The fleet's state as last heard.
        self._state = _CLOSED
        self._seq = 0
        self._version = -1
        self._changes = 0  # how many times the fleet mirror changed, here or by the store
        self._failures = 0
        self._pending = 0  # failures handed to the store's thread, not yet answered
        self._successes = 0
        self._reopenings = 0
        self._forced = False
        self._probes = 0
        self._open_until = 0.0
        self._slots_free_at = 0.0
        self._closed_permit: Optional[Permit] = None
        self._provisional: Optional[int] = None  # seq of a move shown before the store made it
        # Event-loop callers: a read or a probe reservation under way on the store's
        # thread, and a probe slot reserved for this process's next call.
        self._loading = False
        self._reserving = False
        self._reserved: Optional[Permit] = None
        self._probe_ids = itertools.count(1)
        self._tokens = _token_prefix()
        self._pid = os.getpid()
        # Until the first read, the breaker mirrors a view without a closed permit: its
        # first call asks admit(), which reads the fleet's state.
        mirror.mirror(self._fleet_view())
        store.watch(name, self._on_published, self._on_rejoin)

    @property
    def fleet_wide(self) -> bool:
        """Whether the store serves now (``False`` while this process judges alone)."""
        return self._loaded and self._local is None and self._store.available

    # -- reading ----------------------------------------------------------------------------

    def view(self) -> View:
        local = self._serving_local()
        if local is not None:
            return local.view()
        with self._lock:
            return self._fleet_view()

    def wait(self, max_calls: int) -> float:
        local = self._serving_local()
        if local is not None:
            return local.wait(max_calls)
        now = self._clock.monotonic()
        with self._lock:
            state = self._state
            if state is _CLOSED:
                return 0.0
            if state is _OPEN:
                return math.inf if self._forced else max(0.0, self._open_until - now)
            if self._probes < max_calls:
                return 0.0
            return max(MIN_RETRY_AFTER, self._slots_free_at - now)

    def probes_in_flight(self) -> int:
        local = self._serving_local()
        return local.probes_in_flight() if local is not None else self._probes

    # -- admission ----------------------------------------------------------------------------

    def admit(self, max_calls: int, lease: float) -> Union[Permit, float]:
        in_background = _must_not_wait()
        if in_background and not self._loaded and self._store.available:
            self._load_in_background()  # this process judges alone until it answers
        local = self._serving_local()
        if local is not None:
            return local.admit(max_calls, lease)
        now = self._clock.monotonic()
        with self._lock:
            state, permit = self._state, self._closed_permit
            forced, open_until, free_at = self._forced, self._open_until, self._slots_free_at
        # What the store said last answers here, without a round trip, until it runs out.
        if state is _CLOSED and permit is not None:
            return permit
        if state is _OPEN:
            if forced:
                return math.inf
            if now < open_until:
                return open_until - now
        elif state is _HALF_OPEN and now < free_at:
            return free_at - now
        # The call's own lease from the start: its later set_lease may go to the store's
        # thread, and a process killed before that must not hold the slot for longer.
        lease = call_lease(lease)
        if _must_not_wait():  # again: the first read above may have been this call's wait
            return self._reserved_probe(max_calls, lease)
        probe_id = next(self._probe_ids)
        try:
            fleet = self._store.admit(self._name, max_calls, lease, self._token(probe_id))
        except StoreUnavailable:
            return self._fall_back().admit(max_calls, lease)
        self._apply(fleet)
        return self._admitted(fleet, probe_id)

    def _admitted(self, fleet: FleetState, probe_id: int) -> Union[Permit, float]:
        if fleet.granted:
            return _StorePermit(fleet.seq, probe_id)
        if fleet.state == "closed":
            return self._closed_permit_of(fleet.seq)
        if fleet.state == "forced_open":
            return math.inf
        return max(fleet.remaining, fleet.wait, 0.0)

    def _reserved_probe(self, max_calls: int, lease: float) -> Union[Permit, float]:
        # On an event loop: take the slot reserved in the background, or ask for one.
        with self._lock:
            permit, self._reserved = self._reserved, None
            seq = self._seq
        if permit is not None and permit.generation == seq:
            return permit
        if permit is not None:  # reserved in a period that is over: give the slot back
            self._store.release_later(self._name, self._token(permit.probe_id))
        if not self._reserving:
            self._reserving = True
            self._store.submit(lambda: self._reserve(max_calls, lease))
        return MIN_RETRY_AFTER

    def _reserve(self, max_calls: int, lease: float) -> None:
        try:
            probe_id = next(self._probe_ids)
            try:
                fleet = self._store.admit(self._name, max_calls, lease, self._token(probe_id))
            except StoreUnavailable:
                self._fall_back()
                return
            self._apply(fleet)
            if fleet.granted:
                with self._lock:
                    self._reserved = _StorePermit(fleet.seq, probe_id)
        finally:
            self._reserving = False

    # -- probes -------------------------------------------------------------------------------

    def set_lease(self, permit: Permit, seconds: float) -> None:
        if type(permit) is not _StorePermit:
            local = self._local
            if local is not None:
                local.set_lease(permit, seconds)
            return
        token = self._token(permit.probe_id)

        def lease() -> None:
            # Store down: the lease taken at admission stands.
            with contextlib.suppress(StoreUnavailable):
                self._store.lease(self._name, token, seconds)

        if _must_not_wait():
            self._store.submit(lease)
        else:
            lease()

    def release_soon(self, permit: Permit) -> None:
        # From finalisers, in any thread: never waits (the store frees it from its thread).
        if type(permit) is _StorePermit:
            self._store.release_later(self._name, self._token(permit.probe_id))
            return
        local = self._local
        if local is not None:
            local.release_soon(permit)

    def finish_probe(self, permit: Permit, succeeded: Optional[bool]) -> Optional[View]:
        if type(permit) is not _StorePermit:
            local = self._local
            return local.finish_probe(permit, succeeded) if local is not None else None
        token = self._token(permit.probe_id)
        if _must_not_wait():
            return self._finish_in_background(permit, token, succeeded)
        try:
            fleet = self._store.finish_probe(self._name, permit.generation, token, succeeded)
        except StoreUnavailable:
            self._fall_back()  # its slot's lease frees it in the store
            return None
        self._apply(fleet)
        return self._view_of(fleet) if fleet.applied else None

    def _finish_in_background(
        self, permit: Permit, token: str, succeeded: Optional[bool]
    ) -> Optional[View]:
        # The policy decides from the mirror and this outcome; the store counts it a moment
        # later (and a move the policy makes is queued behind it, on the same thread).
        view: Optional[View] = None
        with self._lock:
            if self._state is _HALF_OPEN and self._seq == permit.generation:
                view = self._fleet_view()
                if succeeded:
                    view = view._replace(successes=view.successes + 1)
                elif succeeded is not None:
                    view = view._replace(failures=view.failures + 1)

        def finish() -> None:
            try:
                fleet = self._store.finish_probe(self._name, permit.generation, token, succeeded)
            except StoreUnavailable:
                self._fall_back()
                return
            self._apply(fleet)
            if succeeded and fleet.applied:
                # The mirror the policy decided from may not have held every probe counted
                # before this one (another process's, heard late): the store's count decides.
                self._sink.probe_counted(self._view_of(fleet))

        self._store.submit(finish)
        return view

    # -- counting and moving ---------------------------------------------------------------

    def add_failure(self, seq: int) -> Optional[View]:
        local = self._serving_local()
        if local is not None:
            if seq == self._seq and seq != local.view().seq:
                # A call admitted on the fleet's state, ending while this process judges
                # alone: its failure teaches the local state all the same.
                return self._count_locally()
            return local.add_failure(seq)
        if _must_not_wait():
            return self._count_in_background(seq)
        try:
            fleet = self._store.add_failure(self._name, seq)
        except StoreUnavailable:
            return self._count_locally()
        self._apply(fleet)
        return self._view_of(fleet) if fleet.applied else None

    def _count_locally(self) -> Optional[View]:
        # The call was admitted on the fleet's state; its failure still teaches the state
        # this process falls back on.
        local = self._fall_back()
        return local.add_failure(local.view().seq)

    def _count_in_background(self, seq: int) -> Optional[View]:
        # Counted as pending at once, so that the failure that reaches failure_threshold
        # opens the circuit for this process's very next call.
        with self._lock:
            if seq != self._seq or self._state is not _CLOSED:
                return None
            self._pending += 1
            self._changes += 1
            view = self._fleet_view()
            self._sink.mirror(view)

        def count() -> None:
            try:
                fleet = self._store.add_failure(self._name, seq)
            except StoreUnavailable:
                with self._lock:
                    self._pending -= 1
                self._count_locally()
                return
            self._apply(fleet, answered=1)

        self._store.submit(count)
        return view

    def clear_failures(self, seq: int) -> None:
        local = self._serving_local()
        if local is not None:
            local.clear_failures(seq)
            return

        def clear() -> None:
            try:
                fleet = self._store.clear_failures(self._name, seq)
            except StoreUnavailable:
                self._fall_back()  # a success: a fresh local state has nothing to clear
                return
            self._apply(fleet)

        if _must_not_wait():
            self._store.submit(clear)
        else:
            clear()

    def move(
        self, seq: int, to: CircuitState, cause: str, open_for: float = 0.0, forced: bool = False
    ) -> Optional[View]:
        local = self._serving_local()
        if local is not None:
            return local.move(seq, to, cause, open_for, forced)
        if _must_not_wait():
            return self._move_provisionally(seq, to, cause, open_for, forced)
        try:
            fleet = self._store.move(self._name, seq, to.value, cause, open_for, forced)
        except StoreUnavailable:
            # This process goes on alone, from a fresh state: the caller asks it again.
            self._fall_back()
            return None
        self._apply(fleet)
        return self._view_of(fleet) if fleet.applied else None

    def _move_provisionally(
        self, seq: int, to: CircuitState, cause: str, open_for: float, forced: bool
    ) -> Optional[View]:
        # Shown (and announced) at once, made in the store from its thread; until its reply,
        # replies about the older seq do not undo it.
        now = self._clock.monotonic()
        with self._lock:
            if seq != self._seq:
                return None
            from_state = self._state
            self._changes += 1  # a read under way now must not undo it (see _apply)
            self._seq = self._provisional = seq + 1
            self._state = to
            self._forced = forced
            self._successes = 0
            if to is _OPEN:
                self._open_until = now + open_for
                if from_state is _HALF_OPEN:
                    self._reopenings += 1
            elif to is _CLOSED:
                self._failures = self._pending = self._reopenings = 0
            self._closed_permit = _StorePermit(seq + 1) if to is _CLOSED else None
            view = self._fleet_view()._replace(from_state=from_state, cause=cause)
            self._shown = to
            self._sink.mirror(view)

        def move() -> None:
            try:
                fleet = self._store.move(self._name, seq, to.value, cause, open_for, forced)
            except StoreUnavailable:
                self._fall_back()
                return
            self._apply(fleet, settles=True)

        self._store.submit(move)
        self._sink.announce(view)
        return view

    # -- the store serving, or not -----------------------------------------------------------

    def _serving_local(self) -> Optional[LocalState]:
        """The local state serving now, or ``None`` while the store does. Reads the fleet's
        state first where it was not read yet (first use, or the store came back): now if
        the caller may wait for it, else on the store's thread (on an event loop, or in a
        call that has waited once already)."""
        if self._loaded:
            if self._store.available:
                return None
            return self._fall_back()  # the store's thread found it down
        if self._store.available:
            if not _must_not_wait():
                if self._load():
                    return None
            else:
                self._load_in_background()
        local = self._local
        return local if local is not None else self._fall_back()

    def _fall_back(self) -> LocalState:
        """The local state that serves until the store answers again: a fresh one each
        time the store fails (this process then judges calls alone, from scratch).

        A circuit the fleet held open or half-open is closed for this process from now
        on: that is announced like any transition, so that the state gauge, the logs and
        ``on_transition`` say what the breaker now does instead of the fleet's last word.
        """
        announced: Optional[View] = None
        with self._lock:
            local = self._local
            if local is not None and not self._loaded:
                return local
            adapter = _LocalMirror(self)
            local = LocalState(self._name, self._clock, adapter)
            adapter.local = local
            self._local = local
            self._loaded = False
            self._pending = 0
            self._provisional = None
            view = local.view()
            before, self._shown = self._shown, view.state
            if view.state is not before:
                view = announced = view._replace(from_state=before, cause=STORE_DOWN_CAUSE)
            self._sink.mirror(view)
        if announced is not None:
            self._sink.announce(announced)
        return local

    def _load(self) -> bool:
        """Read the fleet's state (first use, or the store came back); ``False`` if the
        store did not answer (the local state serves)."""
        mark = self._changes
        try:
            fleet = self._store.load(self._name)
        except StoreUnavailable:
            self._fall_back()
            return False
        self._apply(fleet, unchanged_since=mark)
        return True

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

    def _on_published(self, fleet: FleetState) -> None:
        # Applied even before the first read has answered: that read may have left the
        # store before this change was made, and its older reply must not win (``_apply``
        # keeps the newer of the two).
        self._apply(fleet)

    def _on_rejoin(self) -> None:
        # The store answers again (or the subscription was re-made): the fleet's state wins
        # over whatever this process judged alone. Read even before this process's first
        # read: one may be on its way, made before the subscription existed, and a change
        # published meanwhile reached nobody here.
        self._load()

    def _apply(
        self,
        fleet: FleetState,
        *,
        unchanged_since: Optional[int] = None,
        answered: int = 0,
        settles: bool = False,
    ) -> None:
        """Mirror ``fleet`` unless something newer was mirrored already; the store serves
        from now on. A read whose reply is older than the mirror (the store lost its data,
        or a key expired) still wins if nothing else changed the mirror meanwhile."""
        if not self._store.available:
            return  # a reply that raced the outage: the local state serves now
        now = self._clock.monotonic()
        state = _STATES.get(fleet.state, _CLOSED)
        announced: Optional[View] = None
        with self._lock:
            self._pending = max(0, self._pending - answered)
            if settles:
                self._provisional = None
            if unchanged_since is None or unchanged_since != self._changes:
                if fleet.version < self._version:
                    return  # an older message overtaken by a newer reply, or the reverse
                provisional = self._provisional
                if provisional is not None and fleet.seq < provisional:
                    return  # older than the move shown meanwhile, which the store will make
            if self._provisional is not None and fleet.seq >= self._provisional:
                self._provisional = None
            self._changes += 1
            self._version = fleet.version
            from_local = self._local is not None
            self._local = None
            self._loaded = True
            self._state = state
            self._seq = fleet.seq
            self._failures = fleet.failures
            self._successes = fleet.successes
            self._reopenings = fleet.reopenings
            # Forcing an open circuit changes no state but is a transition all the same
            # (open -> open, cause "forced"), as for a circuit kept in the process.
            newly_forced = fleet.state == "forced_open" and not self._forced
            self._forced = fleet.state == "forced_open"
            self._probes = fleet.probes
            if state is _OPEN:
                self._open_until = now + fleet.remaining
            self._slots_free_at = now + fleet.wait if fleet.wait > 0 else 0.0
            self._closed_permit = self._closed_permit_of(fleet.seq) if state is _CLOSED else None
            view = self._fleet_view()
            before, self._shown = self._shown, state
            if state is not before or newly_forced:
                cause = "the fleet's state, read again" if from_local else fleet.cause
                view = announced = view._replace(from_state=before, cause=cause)
            self._sink.mirror(view)
        if announced is not None:
            self._sink.announce(announced)

    def _closed_permit_of(self, seq: int) -> Permit:
        permit = self._closed_permit
        if permit is None or permit.generation != seq:
            permit = _StorePermit(seq)
        return permit

    def _fleet_view(self) -> View:
        """The fleet's state as this process knows it (lock held)."""
        state = self._state
        return View(
            state=state,
            seq=self._seq,
            failures=self._failures + self._pending,
            successes=self._successes,
            reopenings=self._reopenings,
            open_until=self._open_until,
            forced=self._forced,
            # None until the first read (see __init__), and whenever it is not closed.
            closed_permit=self._closed_permit if state is _CLOSED and self._loaded else None,
        )

    def _view_of(self, fleet: FleetState) -> View:
        """What one store operation answered, for the policy to decide from."""
        state = _STATES.get(fleet.state, _CLOSED)
        return View(
            state=state,
            seq=fleet.seq,
            failures=fleet.failures,
            successes=fleet.successes,
            reopenings=fleet.reopenings,
            open_until=self._clock.monotonic() + fleet.remaining,
            forced=fleet.state == "forced_open",
            closed_permit=self._closed_permit_of(fleet.seq) if state is _CLOSED else None,
            from_state=_STATES.get(fleet.from_state) if fleet.from_state else None,
            cause=fleet.cause,
        )

    def _token(self, probe_id: int) -> str:
        if self._pid != os.getpid():  # a forked child must not share its parent's tokens
            self._tokens = _token_prefix()
            self._pid = os.getpid()
        return f"{self._tokens}-{probe_id}"

    def reinit_after_fork(self) -> None:
        """In a forked child only: a fresh lock, and the fleet's state read again on first
        use (the parent's local fallback and background work stay with the parent)."""
        self._lock = threading.Lock()
        self._token(0)
        self._local = None
        self._loaded = False
        self._pending = 0
        self._provisional = None
        self._loading = self._reserving = False
        self._reserved = None
        self._sink.mirror(self._fleet_view())  # no closed permit: the first call asks

    def __repr__(self) -> str:
        where = "fleet" if self.fleet_wide else "local"
        return f"SharedState(name={self._name!r}, state={self._shown.value}, serving={where})"
