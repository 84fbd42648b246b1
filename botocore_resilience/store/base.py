"""What a state store is, independent of the protocol behind it.

A store keeps one :class:`FleetState` per circuit and changes it only through the
operations of :class:`StateStore`, each one atomic in the store and timed on the
store's clock. Every change is also broadcast to every process that listens, as the
same :class:`FleetState` the caller got back.

The operations are policy-free: they count, lease probe slots and make the transition a
caller asks for if its ``seq`` is still current. When to open or close is the breaker's
policy, in each process (``botocore_resilience.breaker``), which reaches the store through
:class:`~botocore_resilience.store.backend.SharedState`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Callable, Optional, Protocol

__all__ = [
    "ERROR_KINDS",
    "FleetState",
    "StateStore",
    "StoreUnavailable",
    "StoreWatcher",
]

ERROR_KINDS = ("timeout", "connection", "response", "other")
"""The values of the ``error`` label of ``N_state_store_errors_total``."""


class StoreUnavailable(Exception):
    """The store cannot be used now: the caller judges the call locally instead."""


@dataclass(frozen=True)
class FleetState:
    """One circuit's state as the store holds it, at one moment.

    ``state`` is ``closed``, ``open``, ``half_open`` or ``forced_open``; ``seq`` grows
    with every transition (permits carry it, so outcomes of an older generation are
    ignored in the store too); ``version`` grows with every change of any field, so a
    process keeps the newest of the messages and replies it sees, whatever their order.
    """

    circuit: str
    state: str
    seq: int
    version: int
    failures: int
    successes: int = 0
    reopenings: int = 0
    """Half-open periods that failed in a row since the circuit last closed."""
    remaining: float = 0.0
    """Seconds until a probe may go (``open`` only)."""
    probes: int = 0
    """Probes holding a live lease."""
    from_state: Optional[str] = None
    """The state before, when the operation that produced this made a transition."""
    granted: bool = False
    """An ``admit`` operation got a probe slot."""
    wait: float = 0.0
    """An ``admit`` operation found every slot taken: seconds until the first lease expires."""
    applied: bool = False
    """The operation did what it asked: its ``seq`` was current (a ``move``, a count), or
    the probe's outcome counted (``finish_probe``)."""
    cause: str = ""

    @classmethod
    def from_json(cls, text: str | bytes) -> FleetState:
        data = json.loads(text)
        from_state = data.get("from")
        return cls(
            circuit=str(data["n"]),
            state=str(data["st"]),
            seq=int(data["seq"]),
            version=int(data["ver"]),
            failures=int(data["fails"]),
            successes=int(data.get("succ", 0)),
            reopenings=int(data.get("reop", 0)),
            remaining=float(data.get("rem", 0)) / 1000.0,
            probes=int(data.get("probes", 0)),
            from_state=str(from_state) if from_state else None,
            granted=bool(data.get("g", 0)),
            wait=float(data.get("wait", 0)) / 1000.0,
            applied=bool(data.get("ok", 0)),
            cause=str(data.get("cause", "")),
        )


StoreWatcher = Callable[[FleetState], None]
"""Called (on the store's background thread) with every change published by any process."""


class StateStore(Protocol):
    """The operations a fleet circuit needs. Each raises :class:`StoreUnavailable` when the
    store is down, slow past its timeout, or answers with an error; none waits longer
    than the store's timeout, and none waits at all while the store is known to be down."""

    @property
    def available(self) -> bool:
        """Whether operations are attempted now (``False`` while reconnecting)."""
        ...

    def load(self, circuit: str) -> FleetState: ...

    def add_failure(self, circuit: str, seq: int) -> FleetState:
        """One more consecutive failure while closed, if ``seq`` is current (never a move)."""
        ...

    def clear_failures(self, circuit: str, seq: int) -> FleetState:
        """The consecutive count starts again, if ``seq`` is current."""
        ...

    def move(
        self, circuit: str, seq: int, to: str, cause: str, open_for: float, forced: bool
    ) -> FleetState:
        """The transition to ``to`` (``closed``, ``open``, ``half_open``) if ``seq`` is still
        current (compare-and-set; ``applied`` says whether it was); ``open_for``: seconds."""
        ...

    def admit(self, circuit: str, max_calls: int, lease: float, token: str) -> FleetState:
        """Closed: nothing to do. Open and its period over (store's clock): half-open. Then
        a probe slot leased to ``token`` for ``lease`` seconds if one is free (``granted``),
        else ``wait``: seconds until the first lease ends."""
        ...

    def finish_probe(
        self, circuit: str, seq: int, token: str, succeeded: Optional[bool]
    ) -> FleetState:
        """Free ``token``'s slot; count its success or failure (``None``: neither) if its
        half-open period ``seq`` is current and it still held its slot (``applied``)."""
        ...

    def lease(self, circuit: str, token: str, seconds: float) -> FleetState:
        """Let the probe ``token`` keep its slot for ``seconds`` from now."""
        ...

    def release_later(self, circuit: str, token: str) -> None:
        """Free the probe slot ``token`` soon, without waiting (safe from a finaliser)."""
        ...

    def submit(self, task: Callable[[], None]) -> None:
        """Run ``task`` soon on the store's own thread, without waiting."""
        ...

    def force(self, circuit: str, state: str, cause: str) -> FleetState: ...

    def watch(self, circuit: str, watcher: StoreWatcher, on_rejoin: Callable[[], None]) -> None:
        """Send ``circuit``'s published changes to ``watcher``; call ``on_rejoin`` whenever
        the store answers again after being down (or the subscription was re-made)."""
        ...

    def circuits(self) -> list[FleetState]:
        """Every circuit the store holds (for operators; scans the whole key space)."""
        ...

    def close(self) -> None: ...
