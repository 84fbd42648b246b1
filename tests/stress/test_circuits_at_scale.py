"""Circuits at scale: memory per circuit, the ``max_circuits`` bound under threads, and a
lookup that costs the same with 1 or 10,000 circuits.

The only timing assertion is a ratio (10,000 circuits vs 1), best of several medians, with
a loose margin: the benchmark (``bench/scale.py``) reports the real figures.
"""

from __future__ import annotations

import gc
import statistics
import threading
import time
import tracemalloc
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable
from urllib.parse import urlsplit

import pytest
from botocore.awsrequest import AWSResponse
from prometheus_client import CollectorRegistry

from botocore_resilience import CircuitBreakerOpen, CircuitState
from botocore_resilience.breaker import BreakerPolicy
from botocore_resilience.circuits import Circuits
from botocore_resilience.testing import FakeClock

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


def test_lookup_cost_is_flat_from_1_to_10000_circuits() -> None:
    small, large = circuits_of(1, 1), circuits_of(10_000, 10_000)

    def median_lookup(circuits: Circuits) -> float:
        breaker_for = circuits.breaker_for
        samples = []
        for _ in range(5):
            start = time.perf_counter()
            for _ in range(2_000):
                breaker_for("s3", REGION, "GetObject", "bucket-00000")
            samples.append(time.perf_counter() - start)
        return statistics.median(samples)

    best_small = best_large = float("inf")
    for _ in range(7):  # interleaved; the best median of each is the least disturbed
        best_small = min(best_small, median_lookup(small))
        best_large = min(best_large, median_lookup(large))
    assert best_large / best_small <= 1.3


# -- through the handlers, with many threads ------------------------------------------------


class _EmptyBody:
    def stream(self, **kwargs: Any) -> Any:
        return iter((b"",))


def answer(request: Any = None, **kwargs: Any) -> AWSResponse:
    """The transport, stubbed: buckets named ``sick-*`` answer 503, the rest 200."""
    bucket = urlsplit(request.url).path.split("/")[1]
    status = 503 if bucket.startswith("sick") else 200
    return AWSResponse(request.url, status, {}, _EmptyBody())


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
