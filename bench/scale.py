"""Circuits at scale: lookup cost from 1 to 10,000 circuits, and memory per circuit.

    python bench/scale.py            # ~1 minute on 2 cores
    python bench/scale.py --quick

lookup
    ``Circuits.breaker_for`` for one bucket that is in the registry, with 1, 10, 100,
    1,000 and 10,000 circuits in it (``scope="bucket"``), in interleaved rounds; then
    the same while cycling through *every* circuit (a workload that really touches
    10,000 buckets, so CPU caches play a part too).
eviction
    The cost of a call for a bucket that has no circuit yet when the registry is full:
    an idle circuit is evicted (the CLOCK sweep), or, with every circuit open, the call
    falls back to the service circuit.
memory
    ``tracemalloc`` around the creation of 10,000 bucket circuits through
    ``Circuits.breaker_for`` (breaker, name, key, registry entry, ring slot), without
    and with the Prometheus state-gauge series each circuit gets; then through the
    handlers (a stubbed transport, 1,000 calls to distinct buckets), where each new
    bucket also gets its ``operations_total`` and ``operation_duration_seconds`` series.

Benchmarks report; they never assert.
"""

from __future__ import annotations

import argparse
import gc
import time
import tracemalloc
from typing import Any, Callable

import boto3
from _common import CREDENTIALS, REGION, machine, stubbed_client, summary
from prometheus_client import CollectorRegistry

import botocore_resilience
from botocore_resilience.breaker import BreakerPolicy
from botocore_resilience.circuits import Circuits
from botocore_resilience.metrics import Metrics
from botocore_resilience.testing import FakeClock

SIZES = (1, 10, 100, 1_000, 10_000)


def circuits_with(n: int, **kwargs: Any) -> Circuits:
    circuits = Circuits(
        scope="bucket",
        prefix="",
        policy=BreakerPolicy(),
        clock=FakeClock(),
        max_circuits=max(n, 1),
        **kwargs,
    )
    for i in range(n):
        circuits.breaker_for("s3", "us-east-1", "GetObject", f"bucket-{i:05d}")
    return circuits


def lookup_cost(circuits: Circuits, buckets: list[str], lookups: int) -> float:
    """Seconds of CPU per ``breaker_for`` hit, cycling through ``buckets``."""
    breaker_for = circuits.breaker_for
    rounds = max(1, lookups // len(buckets))
    start = time.thread_time()
    for _ in range(rounds):
        for bucket in buckets:
            breaker_for("s3", "us-east-1", "GetObject", bucket)
    return (time.thread_time() - start) / (rounds * len(buckets))


def lookup(rounds: int, lookups: int) -> None:
    print(f"\n## Lookup (a hit), {rounds} interleaved rounds x {lookups} lookups, CPU time")
    registries = {n: circuits_with(n) for n in SIZES}
    for title, keys_of in (
        ("one bucket, registry of n circuits", lambda n: ["bucket-00000"]),
        ("cycling through all n circuits", lambda n: [f"bucket-{i:05d}" for i in range(n)]),
    ):
        times: dict[int, list[float]] = {n: [] for n in SIZES}
        keys = {n: keys_of(n) for n in SIZES}
        for round_ in range(rounds):
            order = SIZES if round_ % 2 == 0 else SIZES[::-1]
            for n in order:
                times[n].append(lookup_cost(registries[n], keys[n], lookups))
        print(f"{title}: ns per lookup")
        for n in SIZES:
            print(f"  n={n:>6}  {summary([t * 1e9 for t in times[n]])}")
        base = 1 if title.startswith("one") else 10  # n=1 cycles a 1-item loop: not comparable
        ratios = [big / small for small, big in zip(times[base], times[10_000])]
        print(f"  n=10000 / n={base} (paired per round): {summary(ratios)}")


def eviction(rounds: int, misses: int) -> None:
    print(f"\n## At the bound (max_circuits=1000), {rounds} rounds x {misses} new buckets")
    from botocore_resilience.breaker import Outcome

    full = circuits_with(1000)
    stuck = circuits_with(1000)
    for breaker in stuck.breakers().values():  # every circuit open: nothing can be evicted
        for _ in range(5):
            breaker.record(breaker.acquire(), Outcome.FAILURE)
    stuck.breaker_for("s3", "us-east-1", "GetObject", "")  # the service circuit exists
    evicting, falling_back = [], []
    for round_ in range(rounds):
        names = [f"new-{round_}-{i}" for i in range(misses)]
        evicting.append(lookup_cost(full, names, misses))
        falling_back.append(lookup_cost(stuck, names, misses))
    print(f"  µs CPU, an idle circuit evicted:    {summary([t * 1e6 for t in evicting])}")
    print(f"  µs CPU, all open, service circuit:  {summary([t * 1e6 for t in falling_back])}")
    print(f"  circuits afterwards: {len(full)} and {len(stuck)} (bound 1000, + 1 service circuit)")


def traced(build: Callable[[], Any]) -> tuple[int, Any]:
    """Bytes still allocated after ``build()`` (its result kept alive), and the result."""
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    result = build()
    gc.collect()
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    return after - before, result


def memory(n: int, through_handlers: int) -> None:
    print(f"\n## Memory per circuit (tracemalloc), scope=bucket, {n} circuits")
    empty, _ = traced(lambda: circuits_with(0))
    size, circuits = traced(lambda: circuits_with(n))
    print(f"  Circuits.breaker_for, no metrics:      {(size - empty) / n:7.0f} B per circuit")
    assert len(circuits) == n

    def with_gauges() -> Any:
        metrics = Metrics(CollectorRegistry(), "bench")
        return metrics, circuits_with(
            n, on_created=lambda b: metrics.circuit_added(b.name, b.state)
        )

    base, _ = traced(lambda: Metrics(CollectorRegistry(), "bench"))
    size, _kept = traced(with_gauges)
    per_circuit = (size - base - empty) / n
    print(f"  Circuits.breaker_for + state gauge:    {per_circuit:7.0f} B per circuit")

    for label, options in (
        ("bare botocore", None),
        ("metrics off", {"metrics": False}),
        ("metrics on", {}),
    ):
        session = boto3.Session(region_name=REGION, **CREDENTIALS)
        if options is not None:
            botocore_resilience.install(
                session,
                registry=CollectorRegistry(),
                environ={},
                scope="bucket",
                max_circuits=through_handlers * 2,
                **options,
            )
        client = stubbed_client(session)
        for i in range(50):  # warm: botocore's caches, the service circuit, first series
            client.head_object(Bucket=f"warm-{i}", Key="object")

        def calls(client: Any = client) -> None:
            for i in range(through_handlers):
                client.head_object(Bucket=f"bucket-{i:05d}", Key="object")

        size, _ = traced(calls)
        print(
            f"  calls to new buckets, {label:13} {size / through_handlers:7.0f} B per new bucket"
            f" ({through_handlers} calls)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds (a smoke run)")
    parser.add_argument("--only", default="lookup,eviction,memory", help="comma-separated sections")
    args = parser.parse_args()
    sections = set(args.only.split(","))
    print(machine())
    if "lookup" in sections:
        lookup(rounds=4 if args.quick else 15, lookups=20_000 if args.quick else 100_000)
    if "eviction" in sections:
        eviction(rounds=3 if args.quick else 10, misses=1_000)
    if "memory" in sections:
        memory(n=10_000, through_handlers=200 if args.quick else 1_000)


if __name__ == "__main__":
    main()
