"""Circuits at scale: memory per circuit, the ``max_circuits`` bound under threads, and a
lookup whose cost does not grow with the number of circuits.

Cost is asserted as work counted (dictionary lookups, lock acquisitions, ring slots the
eviction sweep visits), never as time: a busy machine cannot fail these. The timings are
``bench/scale.py``'s (and ``docs/performance.md``'s).
"""

from __future__ import annotations

import gc
import threading
import tracemalloc
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable
from urllib.parse import urlsplit

import pytest
from prometheus_client import CollectorRegistry

from botocore_resilience import CircuitBreakerOpen, CircuitState
from botocore_resilience.breaker import BreakerPolicy
from botocore_resilience.circuits import Circuits
from botocore_resilience.testing import FakeClock
from botocore_resilience.testing._stub import StubTransport

from .conftest import WAIT, Installed

pytestmark = [pytest.mark.stress, pytest.mark.timeout(180)]

REGION = "us-east-1"


def circuits_of(n: int, max_circuits: int) -> Circuits:
    circuits = Circuits(
        scope="bucket",
        prefix="",
        policy=BreakerPolicy(),
        clock=FakeClock(),
        max_circuits=max_circuits,
    )
    for i in range(n):
        circuits.breaker_for("s3", REGION, "GetObject", f"bucket-{i:05d}")
    return circuits


def allocated_by(build: Callable[[], Any]) -> int:
    """Bytes still allocated after ``build()``, with its result kept alive."""
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        kept = build()
        gc.collect()
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    del kept
    return after - before


def test_a_circuit_costs_less_than_2_kb_including_its_registry_entry() -> None:
    n = 10_000
    empty = allocated_by(lambda: circuits_of(0, n))
    per_circuit = (allocated_by(lambda: circuits_of(n, n)) - empty) / n
    print(f"memory per circuit: {per_circuit:.0f} B")
    assert per_circuit <= 2048


def test_memory_stays_bounded_over_unbounded_buckets() -> None:
    bounded = allocated_by(lambda: circuits_of(10_000, max_circuits=100))
    unbounded = allocated_by(lambda: circuits_of(10_000, max_circuits=10_000))
    assert bounded <= 100 * 2048 + 64 * 1024
    assert bounded * 20 < unbounded


class CountingDict(dict):  # type: ignore[type-arg]
    """The registry's key -> entry map, counting lookups."""

    gets = 0

    def get(self, key: Any, default: Any = None) -> Any:
        self.gets += 1
        return super().get(key, default)


class CountingRing(list):  # type: ignore[type-arg]
    """The eviction ring, counting the slots read (each sweep step reads one)."""

    reads = 0

    def __getitem__(self, index: Any) -> Any:
        self.reads += 1
        return super().__getitem__(index)


class CountingLock:
    def __init__(self, lock: Any) -> None:
        self._lock = lock
        self.acquired = 0

    def __enter__(self) -> Any:
        self.acquired += 1
        return self._lock.__enter__()

    def __exit__(self, *exc: Any) -> Any:
        return self._lock.__exit__(*exc)


def counted(circuits: Circuits) -> tuple[CountingDict, CountingRing, CountingLock]:
    """Swap the registry's map, ring and lock for counting ones (same contents)."""
    by_key, ring = CountingDict(circuits._by_key), CountingRing(circuits._ring)
    lock = CountingLock(circuits._lock)
    circuits._by_key, circuits._ring, circuits._lock = by_key, ring, lock  # type: ignore[assignment]
    return by_key, ring, lock


@pytest.mark.parametrize("n", [1, 10_000])
def test_a_lookup_is_one_dict_get_and_no_lock_with_1_or_10000_circuits(n: int) -> None:
    circuits = circuits_of(n, n)
    by_key, ring, lock = counted(circuits)
    lookups = 2_000
    for i in range(lookups):
        circuits.breaker_for("s3", REGION, "GetObject", f"bucket-{i % n:05d}")
    assert (by_key.gets, lock.acquired, ring.reads) == (lookups, 0, 0)
    assert len(circuits) == n


@pytest.mark.parametrize("max_circuits", [100, 10_000])
def test_eviction_visits_a_bounded_number_of_slots_per_new_circuit(max_circuits: int) -> None:
    # CLOCK: each sweep step clears a flag that a creation or a hit set, or evicts. So
    # the steps over m new circuits are at most m evictions + (max_circuits + m) flags,
    # whatever the bound: amortised O(1) per new circuit, never a scan per call.
    circuits = circuits_of(max_circuits, max_circuits)
    _by_key, ring, lock = counted(circuits)
    misses = 10_000
    for i in range(misses):
        circuits.breaker_for("s3", REGION, "GetObject", f"new-{i:05d}")
    assert len(circuits) == max_circuits
    assert lock.acquired == misses
    assert ring.reads <= 2 * misses + max_circuits


def test_with_every_circuit_open_new_buckets_cost_one_sweep_not_one_each() -> None:
    from botocore_resilience.breaker import Outcome

    max_circuits = 1_000
    circuits = circuits_of(max_circuits, max_circuits)
    for breaker in circuits.breakers().values():  # all open: nothing can be evicted
        for _ in range(5):
            breaker.record(breaker.acquire(), Outcome.FAILURE)
    _by_key, ring, _lock = counted(circuits)
    for i in range(10_000):  # the fake clock stands still: within the re-sweep pause
        breaker = circuits.breaker_for("s3", REGION, "GetObject", f"new-{i:05d}")
        assert breaker.name == f"s3/{REGION}"  # the service circuit
    assert ring.reads <= 2 * max_circuits  # one fruitless sweep (two rounds), then none


# -- through the handlers, with many threads ------------------------------------------------


def _status(request: Any) -> int:
    bucket = urlsplit(request.url).path.split("/")[1]
    return 503 if bucket.startswith("sick") else 200


answer = StubTransport(_status)
"""The transport, stubbed: buckets named ``sick-*`` answer 503, the rest 200."""


def gauge_names(registry: CollectorRegistry) -> set[str]:
    return {
        s.labels["circuit_name"]
        for family in registry.collect()
        for s in family.samples
        if s.name == "botocore_circuit_breaker_state"
    }


def open_sick_buckets(client: Any, names: list[str]) -> None:
    for name in names:
        for _ in range(5):
            with pytest.raises(Exception, match="503"):
                client.head_bucket(Bucket=name)


def test_32_threads_over_thousands_of_buckets_stay_within_max_circuits(
    installed: Installed, registry: CollectorRegistry
) -> None:
    max_circuits = 50
    installation, client = installed(scope="bucket", max_circuits=max_circuits)
    client.meta.events.register_first("before-send.s3", answer)
    sick = [f"sick-{i}" for i in range(5)]
    open_sick_buckets(client, sick)
    opened = {name: installation.breakers()[f"s3/{REGION}/{name}"] for name in sick}
    assert all(b.state is CircuitState.OPEN for b in opened.values())

    threads, per_thread = 32, 60
    start = threading.Barrier(threads)
    high_water = [0]

    def churn(t: int) -> int:
        start.wait(WAIT)
        rejected = 0
        for i in range(per_thread):
            client.head_bucket(Bucket=f"healthy-{t}-{i}")
            try:
                client.head_bucket(Bucket=sick[i % len(sick)])
            except CircuitBreakerOpen:
                rejected += 1
            high_water[0] = max(high_water[0], len(installation.circuits))
        return rejected

    with ThreadPoolExecutor(threads) as pool:
        futures = [pool.submit(churn, t) for t in range(threads)]
        rejected = [future.result(timeout=WAIT * 4) for future in futures]

    # Open circuits were never dropped: the same breakers, still open, still rejecting.
    assert sum(rejected) == threads * per_thread
    for name, breaker in opened.items():
        assert installation.breakers()[f"s3/{REGION}/{name}"] is breaker
        assert breaker.state is CircuitState.OPEN
    # The registry never grew past the bound, and no series outlived its circuit.
    assert high_water[0] <= max_circuits
    assert len(installation.breakers()) <= max_circuits
    assert gauge_names(registry) == set(installation.breakers())


def test_with_every_slot_open_new_buckets_use_the_service_circuit(
    installed: Installed, registry: CollectorRegistry, clock: FakeClock
) -> None:
    installation, client = installed(scope="bucket", max_circuits=5)
    client.meta.events.register_first("before-send.s3", answer)
    sick = [f"sick-{i}" for i in range(5)]
    open_sick_buckets(client, sick)

    threads = 32
    start = threading.Barrier(threads)

    def new_buckets(t: int) -> None:
        start.wait(WAIT)
        for i in range(20):
            client.head_bucket(Bucket=f"new-{t}-{i}")  # not rejected: its own service circuit
            clock.advance(0.01)  # lets the registry look for room again now and then

    with ThreadPoolExecutor(threads) as pool:
        for future in [pool.submit(new_buckets, t) for t in range(threads)]:
            future.result(timeout=WAIT)

    names = set(installation.breakers())
    assert names == {f"s3/{REGION}/{name}" for name in sick} | {f"s3/{REGION}"}
    assert gauge_names(registry) == names
