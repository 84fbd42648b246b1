"""Circuits: names per scope, one breaker per name, and the bound on how many there are."""

from __future__ import annotations

import pytest

from botocore_resilience.breaker import BreakerPolicy, CircuitBreaker, CircuitState, Outcome
from botocore_resilience.circuits import Circuits
from botocore_resilience.testing import FakeClock

POLICY = BreakerPolicy(failure_threshold=2, recovery_timeout=60.0)


class Events:
    def __init__(self) -> None:
        self.created: list[str] = []
        self.removed: list[str] = []
        self.transitions: list[str] = []


def make(
    scope: str = "bucket", max_circuits: int = 3, prefix: str = ""
) -> tuple[Circuits, Events, FakeClock]:
    events = Events()
    clock = FakeClock()
    circuits = Circuits(
        scope=scope,
        prefix=prefix,
        policy=POLICY,
        clock=clock,
        observer=lambda t: events.transitions.append(f"{t.circuit_name}:{t.to_state.value}"),
        on_created=lambda b: events.created.append(b.name),
        on_removed=lambda b: events.removed.append(b.name),
        max_circuits=max_circuits,
    )
    return circuits, events, clock


def bucket(circuits: Circuits, name: str) -> CircuitBreaker:
    return circuits.breaker_for("s3", "us-east-1", "GetObject", name)


def fail(breaker: CircuitBreaker, times: int = 1) -> None:
    for _ in range(times):
        breaker.record(breaker.acquire(), Outcome.FAILURE, "test")


@pytest.mark.parametrize(
    ("scope", "region", "bucket_name", "expected"),
    [
        ("service", "us-east-1", "b", "s3/us-east-1"),
        ("operation", "us-east-1", "b", "s3/us-east-1/GetObject"),
        ("bucket", "us-east-1", "b", "s3/us-east-1/b"),
        ("bucket", "us-east-1", "", "s3/us-east-1"),
        ("service", None, "", "s3/global"),
    ],
)
def test_names_per_scope(scope: str, region: str, bucket_name: str, expected: str) -> None:
    circuits, _events, _clock = make(scope=scope)
    assert circuits.breaker_for("s3", region, "GetObject", bucket_name).name == expected


def test_prefix_and_one_breaker_per_name() -> None:
    circuits, events, _clock = make(prefix="storage")
    assert bucket(circuits, "a") is bucket(circuits, "a")
    assert bucket(circuits, "a").name == "storage/s3/us-east-1/a"
    assert events.created == ["storage/s3/us-east-1/a"]


def test_never_more_than_max_circuits_and_evicted_series_are_removed() -> None:
    circuits, events, _clock = make(max_circuits=3)
    for name in "abcdef":
        bucket(circuits, name)
        assert len(circuits) <= 3
    assert len(circuits) == 3
    assert sorted(events.removed) == ["s3/us-east-1/a", "s3/us-east-1/b", "s3/us-east-1/c"]
    assert set(circuits.breakers()) == {f"s3/us-east-1/{n}" for n in "def"}


def test_recently_used_circuits_are_kept() -> None:
    circuits, _events, _clock = make(max_circuits=3)
    for name in "abc":
        bucket(circuits, name)
    bucket(circuits, "d")  # a full round clears every flag, then evicts "a"
    bucket(circuits, "b")  # "b" is used again: the next sweep passes over it
    bucket(circuits, "e")
    assert set(circuits.breakers()) == {f"s3/us-east-1/{n}" for n in "bde"}


def test_open_and_failing_circuits_are_never_evicted() -> None:
    circuits, events, _clock = make(max_circuits=3)
    fail(bucket(circuits, "open"), 2)
    fail(bucket(circuits, "failing"), 1)
    bucket(circuits, "healthy")
    for name in ("x", "y", "z"):
        bucket(circuits, name)
    names = set(circuits.breakers())
    assert {"s3/us-east-1/open", "s3/us-east-1/failing"} <= names
    assert len(names) == 3
    assert "s3/us-east-1/open" not in events.removed
    assert bucket(circuits, "open").state is CircuitState.OPEN


def test_nothing_evictable_falls_back_to_the_service_circuit() -> None:
    circuits, events, clock = make(max_circuits=2)
    fail(bucket(circuits, "a"), 2)
    fail(bucket(circuits, "b"), 2)
    fallback = bucket(circuits, "new")
    assert fallback.name == "s3/us-east-1"
    assert "s3/us-east-1/new" not in circuits.breakers()
    assert events.removed == []
    # The open circuits keep rejecting on their own.
    assert bucket(circuits, "a").acquire() is None

    # Once one closes again, the next sweep (not before a second has passed) finds room.
    bucket(circuits, "a").reset()
    assert bucket(circuits, "new2").name == "s3/us-east-1"
    clock.advance(1.0)
    assert bucket(circuits, "new2").name == "s3/us-east-1/new2"
    assert events.removed == ["s3/us-east-1/a"]


def test_service_circuits_are_never_evicted_and_always_created() -> None:
    circuits, _events, _clock = make(max_circuits=1)
    service = circuits.breaker_for("s3", "us-east-1", "ListBuckets", "")
    bucket(circuits, "a")
    other = circuits.breaker_for("sqs", "us-east-1", "SendMessage", "")
    assert circuits.breaker_for("s3", "us-east-1", "ListBuckets", "") is service
    assert other.name == "sqs/us-east-1"


def test_an_evicted_breaker_reports_nothing() -> None:
    circuits, events, _clock = make(max_circuits=1)
    evicted = bucket(circuits, "a")
    permit = evicted.acquire()  # a call in flight while "a" is evicted
    bucket(circuits, "b")
    assert events.removed == ["s3/us-east-1/a"]
    fail(evicted, 2)
    evicted.record(permit, Outcome.FAILURE)
    assert evicted.state is CircuitState.OPEN
    assert events.transitions == []
    # Used again, "a" is a new closed circuit.
    assert bucket(circuits, "a") is not evicted
    assert bucket(circuits, "a").state is CircuitState.CLOSED


def test_max_circuits_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_circuits"):
        make(max_circuits=0)
