"""What a circuit's state is, and the seam where it lives (``StateBackend``).

The breaker's policy (``breaker``) decides *when* a circuit changes state; a
:class:`StateBackend` keeps the state and changes it, atomically, where it lives: in this
process (:class:`~.local_state.LocalState`, the default) or in a store shared by a fleet
(:class:`~.store.backend.SharedState`).
The contract both sides keep is written out in ``breaker``'s module docstring.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, NamedTuple, Optional, Protocol, Union

from .leases import probe_lease

__all__ = [
    "MIN_RETRY_AFTER",
    "CircuitState",
    "Mirror",
    "Permit",
    "StateBackend",
    "View",
    "begin_call",
    "call_lease",
    "end_call",
    "may_wait",
    "one_wait",
    "waited",
]

MIN_RETRY_AFTER = 0.1
"""The least wait a rejection carries: a rejected call is never told "now"."""


# -- one wait per call ---------------------------------------------------------------------
#
# A backend that keeps the state elsewhere (a store) waits on the network for some of its
# operations, each bounded by ``state_timeout``. One AWS call may need several (its
# circuit's first read, a probe slot, the failure, the opening): so that no call waits on
# the store for more than ``state_timeout`` in all, a call may make one such round trip,
# and the backend hands every further operation of that call to its own thread (as on an
# asyncio event loop). The handlers mark where a call begins and ends; outside a call
# (the breaker used directly, the operator CLI) every operation may wait.


class _Call:
    __slots__ = ("client_config", "waited")

    def __init__(self, client_config: Any = None) -> None:
        self.waited = False
        self.client_config = client_config


_call: ContextVar[Optional[_Call]] = ContextVar("botocore_resilience_call", default=None)


def begin_call(client_config: Any = None) -> None:
    """A call begins in this context: it has not waited on a backend yet. ``client_config``
    (its botocore ``Config``) sizes the lease of a probe slot taken for it."""
    _call.set(_Call(client_config))


def call_lease(default: float) -> float:
    """The lease for a probe slot taken now: sized from the client of the call under way
    (``leases.probe_lease``), so that a store holds it for no longer even if the process
    dies before it could say more; ``default`` outside a call."""
    scope = _call.get()
    if scope is None or scope.client_config is None:
        return default
    return probe_lease(scope.client_config)


def end_call() -> None:
    """The call of this context is over."""
    _call.set(None)


@contextmanager
def one_wait() -> Iterator[None]:
    """A scope of its own for what runs inside (a streaming body's late verdict, judged
    in the caller's ``read()``): one round trip at most, then the enclosing scope again."""
    token = _call.set(_Call())
    try:
        yield
    finally:
        _call.reset(token)


def may_wait() -> bool:
    """Whether an operation here may wait on the network: outside a call, or in a call
    that has not waited yet."""
    scope = _call.get()
    return scope is None or not scope.waited


def waited() -> None:
    """The call of this context (if any) has made its one round trip."""
    scope = _call.get()
    if scope is not None:
        scope.waited = True


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


class Permit:
    """Leave to make one call; hand it back to ``CircuitBreaker.record``.

    ``generation`` is the ``seq`` of the state that admitted the call; ``probe_id`` is 0 for
    an ordinary call and names the probe slot of a half-open probe.
    """

    __slots__ = ("done", "generation", "probe_id")

    def __init__(self, generation: int, probe_id: int = 0) -> None:
        self.generation = generation
        self.probe_id = probe_id
        self.done = False  # a probe's end was heard (set once, by the breaker)

    @property
    def is_probe(self) -> bool:
        return self.probe_id > 0

    def __repr__(self) -> str:
        return f"Permit(generation={self.generation}, probe_id={self.probe_id})"


class View(NamedTuple):
    """One circuit's state at one moment, as a backend reports it (immutable)."""

    state: CircuitState
    seq: int
    """Grows with every transition; every change names the ``seq`` it applies to."""
    failures: int
    """Consecutive failed calls counted while closed (fleet-wide, for a shared store)."""
    successes: int
    """Successful probes counted in this half-open period."""
    reopenings: int
    """Half-open periods that failed in a row since the circuit was last closed."""
    open_until: float
    """When the open period ends, on the *breaker's* clock (a store converts from its own)."""
    forced: bool
    """Held open by an operator: no probe goes until the circuit is closed."""
    closed_permit: Optional[Permit]
    """The permit every call shares while closed (``None`` otherwise)."""
    from_state: Optional[CircuitState] = None
    """Set when this view is the result of a transition: the state it left."""
    cause: str = ""
    """Why the transition happened, in words (never secrets)."""


class Mirror(Protocol):
    """What a backend tells the breaker it serves (the breaker implements it)."""

    def mirror(self, view: View) -> None:
        """Every change, in order. May be called under the backend's lock: only stores."""
        ...

    def announce(self, view: View) -> None:
        """A transition (``view.from_state`` set), called outside every lock."""
        ...

    def probe_counted(self, view: View) -> None:
        """A successful probe counted after the breaker decided on it (a store's reply to an
        outcome it was handed in the background), outside every lock: the breaker closes
        the circuit if the probes now suffice."""
        ...


class StateBackend(Protocol):
    """Where one circuit's state lives. See ``breaker``'s module docstring for the contract."""

    def view(self) -> View: ...

    def wait(self, max_calls: int) -> float:
        """Seconds until :meth:`admit` may grant a call; 0 if it may now."""
        ...

    def probes_in_flight(self) -> int: ...

    def admit(self, max_calls: int, lease: float) -> Union[Permit, float]:
        """The closed permit; or, if the open period is over, a move to half-open; then a
        probe slot leased for ``lease`` seconds; else the seconds to wait (>= 0)."""
        ...

    def set_lease(self, permit: Permit, seconds: float) -> None: ...

    def release_soon(self, permit: Permit) -> None:
        """Free a probe's slot without blocking: safe from a finaliser in any thread."""
        ...

    def finish_probe(self, permit: Permit, succeeded: Optional[bool]) -> Optional[View]:
        """Free the probe's slot; if its period is current, count its success (``True``) or
        failure (``False``; ``None``: not counted). ``None`` if the probe's period is over."""
        ...

    def add_failure(self, seq: int) -> Optional[View]:
        """One more consecutive failure while closed, if ``seq`` is current."""
        ...

    def clear_failures(self, seq: int) -> None:
        """A success while closed: the consecutive count starts again, if ``seq`` is current."""
        ...

    def move(
        self, seq: int, to: CircuitState, cause: str, open_for: float = 0.0, forced: bool = False
    ) -> Optional[View]:
        """The transition to ``to``, if ``seq`` is still current (compare-and-set); the new
        view, or ``None`` if another change came first. ``open_for``: the open period."""
        ...

    def reinit_after_fork(self) -> None: ...
