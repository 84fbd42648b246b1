"""CircuitOwners: the newest circuit of a name reports its state; stale circuits do not."""

from __future__ import annotations

import gc

from botocore_resilience._owners import CircuitOwners
from botocore_resilience.breaker import CircuitState, Transition

CLOSED, OPEN, HALF_OPEN = CircuitState.CLOSED, CircuitState.OPEN, CircuitState.HALF_OPEN
NAME = "s3/us-east-1"


class Circuit:
    """A circuit whose state the test sets."""

    def __init__(self, state: CircuitState = CLOSED) -> None:
        self.name = NAME
        self.state = state


def moved(to_state: CircuitState, seq: int, from_state: CircuitState = CLOSED) -> Transition:
    return Transition(NAME, from_state, to_state, seq=seq, consecutive_failures=0, cause="test")


def test_a_newer_circuit_takes_the_name_over() -> None:
    owners = CircuitOwners()
    old, new = Circuit(OPEN), Circuit(CLOSED)
    assert owners.add(NAME, CLOSED, old) is OPEN  # the circuit's own state, read now
    assert owners.add(NAME, OPEN, new) is CLOSED
    assert owners.owner(NAME) is new


def replaced() -> tuple[CircuitOwners, Circuit, Circuit]:
    """Owners where ``new`` took NAME over from ``old`` (a re-install), both alive."""
    owners = CircuitOwners()
    old, new = Circuit(), Circuit()
    owners.add(NAME, CLOSED, old)
    owners.add(NAME, CLOSED, new)
    return owners, old, new


def test_a_stale_circuits_late_transition_reports_the_owners_state() -> None:
    owners, old, new = replaced()
    old.state = OPEN
    assert owners.state_after(moved(OPEN, seq=1)) is CLOSED  # not the old circuit's OPEN
    new.state = HALF_OPEN
    assert owners.state_after(moved(HALF_OPEN, seq=1, from_state=OPEN)) is HALF_OPEN


def test_without_an_owner_the_newest_seq_wins() -> None:
    owners = CircuitOwners()
    owners.add(NAME, CLOSED)
    assert owners.owner(NAME) is None
    assert owners.state_after(moved(HALF_OPEN, seq=2, from_state=OPEN)) is HALF_OPEN
    assert owners.state_after(moved(OPEN, seq=1)) is None  # delivered late: ignored
    owners.add(NAME, CLOSED)  # a new circuit counts its seq from 1 again
    assert owners.state_after(moved(OPEN, seq=1)) is OPEN


def test_adding_without_the_circuit_ends_the_previous_ownership() -> None:
    owners = CircuitOwners()
    owners.add(NAME, CLOSED, Circuit(OPEN))
    assert owners.add(NAME, HALF_OPEN) is HALF_OPEN
    assert owners.owner(NAME) is None


def test_removal_by_a_circuit_that_is_not_the_owner_is_ignored() -> None:
    owners, old, new = replaced()
    assert owners.remove(NAME, old) is False
    assert owners.owner(NAME) is new
    assert owners.remove(NAME, new) is True
    assert owners.owner(NAME) is None
    assert owners.remove(NAME, new) is True  # safe when already gone, or never added
    assert owners.remove("sqs/us-east-1") is True


def test_removal_without_the_circuit_forgets_the_name() -> None:
    owners = CircuitOwners()
    owners.add(NAME, CLOSED, Circuit())
    assert owners.remove(NAME) is True
    assert owners.owner(NAME) is None


def test_a_dead_owner_is_forgotten() -> None:
    owners = CircuitOwners()
    dead = Circuit(OPEN)
    owners.add(NAME, CLOSED, dead)
    del dead
    gc.collect()
    assert owners.owner(NAME) is None
    # No owner to ask: the transitions' seq decides again, counted from the add.
    assert owners.state_after(moved(OPEN, seq=1)) is OPEN
    # A dead owner does not keep any circuit from removing the name.
    assert owners.remove(NAME, Circuit()) is True
