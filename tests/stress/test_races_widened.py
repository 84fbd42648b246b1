"""Races made wide on purpose: the breaker's critical sections yield, or wait for a signal,
while they hold the lock, so that other threads pile up exactly where a bug would show.

A correct breaker still grants no more than ``half_open_max_calls`` probes, loses no
failure, and opens exactly once.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Optional, Union

import pytest
from botocore.exceptions import ClientError
from prometheus_client import CollectorRegistry

from botocore_resilience import CircuitState
from botocore_resilience.breaker import (
    BreakerPolicy,
    CircuitBreaker,
    Outcome,
    Permit,
    Transition,
    View,
)
from botocore_resilience.call_metrics import InProcessCallMetrics
from botocore_resilience.local_state import LocalState
from botocore_resilience.metrics import Metrics
from botocore_resilience.testing import SLOW_DOWN, FakeClock, LocalS3

from .conftest import WAIT, Installed
from .test_breaker_under_load import Tally, head_bucket, probe_round

pytestmark = [pytest.mark.stress, pytest.mark.timeout(120)]

THREADS = 48


def no_jitter() -> float:
    return 0.0  # exact open periods: each cycle advances the clock by recovery_timeout


def _yield() -> None:
    time.sleep(0)  # gives the GIL away; with a tiny switch interval another thread takes it


class YieldingClock(FakeClock):
    """A fake clock whose every read gives the GIL away (the breaker reads it under its lock)."""

    def monotonic(self) -> float:
        _yield()
        return super().monotonic()


@pytest.fixture
def widened(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The critical sections of the in-process state yield while holding its lock: on entry
    and exit of admission, whenever a view of the state is taken (every change takes one),
    and between "is there a free probe slot?" and taking it (the policy's ``lease`` is read
    there). Between a count and the transition it decides, the policy yields too. The
    interpreter switches threads every microsecond instead of every 5 ms."""
    admit_locked = LocalState._admit_locked
    view = LocalState._view
    add_failure = LocalState.add_failure
    finish_probe = LocalState.finish_probe
    lease = BreakerPolicy.lease

    def slow_admit(self: LocalState, *args: Any) -> Union[Permit, float]:
        _yield()
        admitted = admit_locked(self, *args)
        _yield()
        return admitted

    def slow_view(self: LocalState, *args: Any) -> View:
        _yield()
        return view(self, *args)

    def slow_add_failure(self: LocalState, seq: int) -> Optional[View]:
        counted = add_failure(self, seq)
        _yield()  # another thread may count, or move, before this one decides
        return counted

    def slow_finish_probe(self: LocalState, *args: Any) -> Optional[View]:
        finished = finish_probe(self, *args)
        _yield()
        return finished

    def slow_lease(self: BreakerPolicy) -> float:
        _yield()
        return lease.fget(self)  # type: ignore[attr-defined,no-any-return]

    monkeypatch.setattr(LocalState, "_admit_locked", slow_admit)
    monkeypatch.setattr(LocalState, "_view", slow_view)
    monkeypatch.setattr(LocalState, "add_failure", slow_add_failure)
    monkeypatch.setattr(LocalState, "finish_probe", slow_finish_probe)
    monkeypatch.setattr(BreakerPolicy, "lease", property(slow_lease))
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        yield
    finally:
        sys.setswitchinterval(interval)


def race(threads: int, work: Any) -> list[Any]:
    start = threading.Barrier(threads)

    def run(i: int) -> Any:
        start.wait(WAIT)
        return work(i)

    with ThreadPoolExecutor(threads) as pool:
        return [f.result(timeout=WAIT) for f in [pool.submit(run, i) for i in range(threads)]]


class Transitions:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.seen: list[tuple[CircuitState, CircuitState]] = []

    def __call__(self, transition: Transition) -> None:
        with self._lock:
            self.seen.append((transition.from_state, transition.to_state))


@pytest.mark.usefixtures("widened")
@pytest.mark.parametrize("max_calls", [1, 2, 5])
def test_widened_acquire_never_grants_more_probes_than_allowed(max_calls: int) -> None:
    clock = YieldingClock()
    transitions = Transitions()
    policy = BreakerPolicy(failure_threshold=1, half_open_max_calls=max_calls, jitter=no_jitter)
    breaker = CircuitBreaker("s3/us-east-1", policy, clock, transitions)
    breaker.record(breaker.acquire(), Outcome.FAILURE)
    for cycle in range(20):
        assert breaker.state is CircuitState.OPEN
        clock.advance(60)
        permits = [p for p in race(THREADS, lambda _: breaker.acquire()) if p is not None]
        assert len(permits) == max_calls, cycle
        assert len({p.probe_id for p in permits}) == max_calls
        # Nobody else gets in while the probes are out.
        assert race(THREADS, lambda _: breaker.acquire()) == [None] * THREADS
        breaker.record(permits[0], Outcome.FAILURE)  # back to open for the next cycle
        for permit in permits[1:]:  # the other probes end too (stale: their slots free)
            breaker.record(permit, Outcome.SUCCESS)
    # Exactly one open->half_open and one half_open->open per cycle: no double transition.
    assert transitions.seen.count((CircuitState.OPEN, CircuitState.HALF_OPEN)) == 20
    assert transitions.seen.count((CircuitState.HALF_OPEN, CircuitState.OPEN)) == 20


@pytest.mark.usefixtures("widened")
@pytest.mark.parametrize("max_calls", [2, 5])
def test_widened_probes_of_failed_periods_never_exceed_the_limit(max_calls: int) -> None:
    """Probes still out from failed half-open periods hold their slots in the next: the
    probes in flight, across every period, never exceed ``half_open_max_calls``."""
    clock = YieldingClock()
    policy = BreakerPolicy(failure_threshold=1, half_open_max_calls=max_calls, jitter=no_jitter)
    breaker = CircuitBreaker("s3/us-east-1", policy, clock)
    breaker.record(breaker.acquire(), Outcome.FAILURE)
    out: list[Permit] = []  # probes in flight, whatever period admitted them
    for cycle in range(20):
        clock.advance(60)
        granted = [p for p in race(THREADS, lambda _: breaker.acquire()) if p is not None]
        out.extend(granted)
        assert len(out) <= max_calls, cycle
        assert len(out) == max_calls  # every free slot was taken
        # A probe of this period fails (the period ends); on odd cycles the oldest probe
        # still out, from whatever period, finishes late as well.
        out.remove(granted[0])
        breaker.record(granted[0], Outcome.FAILURE)
        if cycle % 2 and out:
            breaker.record(out.pop(0), Outcome.SUCCESS)
        assert breaker.state is CircuitState.OPEN


class WidenedState(LocalState):
    """Reading the failure count yields, so ``self._failures += 1`` is a read, a thread
    switch, and a write: unlocked, increments would be lost."""

    @property  # type: ignore[override]
    def _failures(self) -> int:
        value: int = self.__dict__["_failure_count"]
        _yield()
        return value

    @_failures.setter
    def _failures(self, value: int) -> None:
        self.__dict__["_failure_count"] = value


def widened_breaker(threshold: int, transitions: Transitions) -> CircuitBreaker:
    policy = BreakerPolicy(failure_threshold=threshold, jitter=no_jitter)
    return CircuitBreaker("s3/us-east-1", policy, YieldingClock(), transitions, WidenedState)


@pytest.mark.usefixtures("widened")
def test_widened_record_loses_no_failure() -> None:
    per_thread = 25
    threshold = THREADS * per_thread
    transitions = Transitions()
    breaker = widened_breaker(threshold, transitions)
    permit = breaker.acquire()

    def fail(_: int) -> None:
        for _ in range(per_thread):
            breaker.record(permit, Outcome.FAILURE, "SlowDown")

    # One thread short of the threshold first: every failure must have been counted.
    race(THREADS, lambda i: fail(i) if i else None)
    assert breaker.consecutive_failures == threshold - per_thread
    assert breaker.state is CircuitState.CLOSED
    race(1, fail)
    assert breaker.state is CircuitState.OPEN
    assert transitions.seen == [(CircuitState.CLOSED, CircuitState.OPEN)]


@pytest.mark.usefixtures("widened")
def test_widened_record_opens_exactly_once_when_all_threads_cross_the_threshold() -> None:
    per_thread = 10
    threshold = THREADS * per_thread // 2
    transitions = Transitions()
    breaker = widened_breaker(threshold, transitions)
    permit = breaker.acquire()

    def fail(_: int) -> None:
        for _ in range(per_thread):
            breaker.record(permit, Outcome.FAILURE, "SlowDown")

    race(THREADS, fail)
    assert transitions.seen == [(CircuitState.CLOSED, CircuitState.OPEN)]
    # Failures counted before the opening won its compare-and-set count; later ones are stale.
    assert threshold <= breaker.consecutive_failures < threshold + THREADS


def test_a_probe_holding_the_lock_keeps_every_other_thread_out(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A handshake, not a hope: the first thread to take a probe waits, lock held, until
    every other thread has arrived at ``acquire``; they must all be refused afterwards."""
    clock = FakeClock()
    policy = BreakerPolicy(failure_threshold=1, jitter=no_jitter)
    breaker = CircuitBreaker("s3/us-east-1", policy, clock)
    breaker.record(breaker.acquire(), Outcome.FAILURE)
    clock.advance(60)

    arrived = threading.Semaphore(0)
    others = THREADS - 1
    acquire = CircuitBreaker.acquire
    admit_locked = LocalState._admit_locked
    holder: list[int] = []

    def counting_acquire(self: CircuitBreaker) -> Optional[Permit]:
        arrived.release()
        return acquire(self)

    def holding_admit_locked(self: LocalState, *args: Any) -> Union[Permit, float]:
        admitted = admit_locked(self, *args)
        if isinstance(admitted, Permit) and not holder:
            holder.append(threading.get_ident())
            for _ in range(THREADS):  # everyone, this thread included, has arrived
                assert arrived.acquire(timeout=WAIT)
        return admitted

    monkeypatch.setattr(CircuitBreaker, "acquire", counting_acquire)
    monkeypatch.setattr(LocalState, "_admit_locked", holding_admit_locked)
    results = race(THREADS, lambda _: breaker.acquire())
    assert sum(p is not None for p in results) == 1
    assert results.count(None) == others


def test_widened_metrics_lose_no_count(monkeypatch: pytest.MonkeyPatch) -> None:
    """Threads racing to create the same label children still count every call once."""
    registry = CollectorRegistry()
    metrics = Metrics(registry, "botocore")
    first_call = InProcessCallMetrics._first_call  # where a new label set's series are made

    def slow_first_call(self: InProcessCallMetrics, *args: str) -> Any:
        time.sleep(0)
        series = first_call(self, *args)
        time.sleep(0)
        return series

    monkeypatch.setattr(InProcessCallMetrics, "_first_call", slow_first_call)
    per_thread = 50

    def count(i: int) -> None:
        for n in range(per_thread):
            bucket = f"b{n % 5}"
            metrics.call_finished("s3", "GetObject", bucket, ("success", "error")[n % 2], 0.01)

    race(THREADS, count)
    total = sum(
        s.value
        for family in registry.collect()
        for s in family.samples
        if s.name == "botocore_operations_total"
    )
    assert total == THREADS * per_thread
    observed = sum(
        s.value
        for family in registry.collect()
        for s in family.samples
        if s.name == "botocore_operation_duration_seconds_count"
    )
    assert observed == THREADS * per_thread


@pytest.mark.usefixtures("widened")
@pytest.mark.parametrize("max_calls", [1, 3])
def test_widened_half_open_race_through_a_shared_client(
    s3: LocalS3, installed: Installed, clock: FakeClock, max_calls: int
) -> None:
    installation, client = installed(half_open_max_calls=max_calls, success_threshold=10)
    bucket = s3.create_bucket()
    s3.inject(SLOW_DOWN, times=None)
    for _ in range(5):
        with pytest.raises(ClientError):
            client.head_bucket(Bucket=bucket)
    s3.clear_faults()
    clock.advance(60)
    s3.requests.reset()

    tally = Tally()
    for _round in range(3):
        results = probe_round(client, 32, max_calls, lambda: head_bucket(client, bucket, tally))
        assert results.count("success") == max_calls
    assert s3.requests.total == 3 * max_calls
    assert installation.breakers()["s3/us-east-1"].state is CircuitState.HALF_OPEN
