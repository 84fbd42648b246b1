"""Which circuit a metrics sink reports each circuit name's state from.

A re-``install()`` with new options makes new circuits under the old names while calls
admitted by the old ones are still running, and those calls may still move the old
circuits' state. The state reported for a name must be the newest circuit's (the one
that judges new calls): a stale circuit's late transition must not overwrite it, and
its eviction must not take the newer circuit's series away. Both sinks (Prometheus and
OpenTelemetry) follow these rules; :class:`CircuitOwners` is where they are written.

>>> from botocore_resilience.breaker import CircuitBreaker
>>> owners = CircuitOwners()
>>> old, new = CircuitBreaker("s3/us-east-1"), CircuitBreaker("s3/us-east-1")
>>> owners.add(old.name, old.state, old).value
'closed'
>>> owners.add(new.name, new.state, new).value
'closed'
>>> owners.owner("s3/us-east-1") is new
True
>>> owners.remove(old.name, old)  # old no longer owns the name: nothing is dropped
False
"""

from __future__ import annotations

import weakref
from typing import Optional, Protocol

from .breaker import CircuitState, Transition

__all__ = ["CircuitOwners", "StatefulCircuit"]


class StatefulCircuit(Protocol):
    """What the metrics read from a circuit (a ``CircuitBreaker`` is one)."""

    @property
    def name(self) -> str: ...

    @property
    def state(self) -> CircuitState: ...


class CircuitOwners:
    """Each circuit name's *owner* (the circuit most recently added under it), and
    which of a name's transitions is the newest where there is no owner.

    Owners are held weakly: a circuit nothing else uses is no longer asked for its
    state, and its name falls back on the ``seq`` rule. Without the circuit object
    (``add(..., circuit=None)``) the newest transition by ``seq`` wins, as one breaker's
    notifications may arrive out of order (it notifies outside its lock).

    Not locked: a sink holds its own lock across a call here *and* the update of the
    state it reports, so that "which state is reported now?" and reporting it are one
    step.
    """

    def __init__(self) -> None:
        self._owners: dict[str, weakref.ref[StatefulCircuit]] = {}
        self._last_seq: dict[str, int] = {}

    def owner(self, name: str) -> Optional[StatefulCircuit]:
        """The live circuit that owns ``name``, or ``None`` (none added, or it is gone)."""
        ref = self._owners.get(name)
        return ref() if ref is not None else None

    def add(
        self, name: str, state: CircuitState, circuit: Optional[StatefulCircuit] = None
    ) -> CircuitState:
        """Record a new circuit under ``name``; returns the state to report now.

        With ``circuit``, it owns the name from now on (whichever circuit owned it
        before) and its own state, read now, is returned; without it, the name has no
        owner and its transitions will count their ``seq`` from 1.
        """
        if circuit is None:
            self._owners.pop(name, None)
        else:
            self._owners[name] = weakref.ref(circuit)
            state = circuit.state
        self._last_seq[name] = 0
        return state

    def state_after(self, transition: Transition) -> Optional[CircuitState]:
        """The state to report after ``transition``, or ``None`` to leave it as it is.

        With a live owner, the owner's state as it is now, whichever circuit made the
        transition (after the last of its notifications, that is its latest state);
        without one, the transition's new state if its ``seq`` is the newest seen.
        """
        name = transition.circuit_name
        owner = self.owner(name)
        if owner is not None:
            return owner.state
        if transition.seq > self._last_seq.get(name, 0):
            self._last_seq[name] = transition.seq
            return transition.to_state
        return None

    def remove(self, name: str, circuit: Optional[StatefulCircuit] = None) -> bool:
        """Forget ``name``; ``False`` (nothing forgotten) if ``circuit`` is not its owner.

        A circuit that lost its name to a newer live one must not take the newer
        one's series with it; the caller drops the name's series only on ``True``.
        Safe if ``name`` was never added.
        """
        owner = self.owner(name)
        if circuit is not None and owner is not None and owner is not circuit:
            return False
        self._owners.pop(name, None)
        self._last_seq.pop(name, None)
        return True
