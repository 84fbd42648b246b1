"""What the failure-rate window and the slow-call check cost per call.

    python bench/breaker_policy.py            # ~1 minute on 2 cores
    python bench/breaker_policy.py --quick    # a smoke run
    python bench/breaker_policy.py --only whole

Sections:

whole
    One stubbed S3 ``HeadObject`` client (transport stubbed at ``before-send``, nothing
    sent: see ``_common``), its plugin's runtime switched between batches: consecutive
    failures only (the default), ``failure_rate=50``, and ``failure_rate=50`` with
    ``slow_call_duration=10``; an A/A control (a second consecutive-only runtime) gives
    the noise floor. Same client, same handlers, only the runtime they read differs.
    Rounds rotate the order; the figure is this thread's CPU time per call; ratios are
    paired per round and summarised by their median.
record
    The breaker alone: ``acquire()`` + ``record(SUCCESS)`` on a healthy closed circuit,
    consecutive-only against ``failure_rate`` set (the window's clock read and lock).

Benchmarks report; they never assert. Figures: ``docs/performance.md``.
"""

from __future__ import annotations

import argparse
import functools
import time
from typing import Any, Callable

import boto3
from _common import CREDENTIALS, REGION, machine, stubbed_client, summary
from prometheus_client import CollectorRegistry

import botocore_resilience
from botocore_resilience.breaker import BreakerPolicy, CircuitBreaker, Outcome
from botocore_resilience.runtime import build_runtime

print = functools.partial(print, flush=True)  # progress shows as it comes


def _cpu_per_call(call: Callable[[], Any], calls: int) -> float:
    call()
    start = time.thread_time()
    for _ in range(calls):
        call()
    return (time.thread_time() - start) / calls


def whole(rounds: int, calls: int) -> None:
    print(f"\n## Whole call, one client, runtimes switched: {rounds} rounds x {calls} calls")
    session = boto3.Session(region_name=REGION, **CREDENTIALS)
    installation = botocore_resilience.install(session, registry=CollectorRegistry(), environ={})
    client = stubbed_client(session)
    (binding,) = installation._bindings

    def head() -> Any:
        return client.head_object(Bucket="bench", Key="object")

    def runtime(**options: Any) -> Any:
        return build_runtime({}, registry=CollectorRegistry(), **options)

    variants = {
        "consecutive only": runtime(),
        "consecutive only, another runtime (A/A)": runtime(),
        "failure_rate=50": runtime(failure_rate=50),
        "failure_rate=50, slow_call_duration=10": runtime(failure_rate=50, slow_call_duration=10),
    }
    names = list(variants)
    cpu: dict[str, list[float]] = {name: [] for name in names}
    for name in names:  # warm-up, not recorded
        binding.handlers.runtime = variants[name]
        _cpu_per_call(head, max(10, calls // 10))
    for round_ in range(rounds):
        shift = round_ % len(names)
        for name in names[shift:] + names[:shift]:
            binding.handlers.runtime = variants[name]
            cpu[name].append(_cpu_per_call(head, calls))
    base = cpu[names[0]]
    print("cpu time per call (µs):")
    for name in names:
        print(f"  {name:42} {summary([v * 1e6 for v in cpu[name]])}")
    print("ratio to consecutive only (paired per round) and µs added:")
    for name in names[1:]:
        ratios = [b / a for a, b in zip(base, cpu[name])]
        added = [(b - a) * 1e6 for a, b in zip(base, cpu[name])]
        print(f"  {name:42} ratio {summary(ratios)}")
        print(f"  {'':42} added µs {summary(added)}")
    installation.uninstall()


def record(rounds: int, calls: int) -> None:
    print(f"\n## The breaker alone, acquire + record(SUCCESS): {rounds} rounds x {calls} calls")
    breakers = {
        "consecutive only": CircuitBreaker("s3/us-east-1", BreakerPolicy()),
        "failure_rate=50": CircuitBreaker("s3/us-east-1", BreakerPolicy(failure_rate=50)),
    }
    success = Outcome.SUCCESS

    def one(breaker: CircuitBreaker) -> Callable[[], None]:
        def call() -> None:
            breaker.record(breaker.acquire(), success)

        return call

    timings: dict[str, list[float]] = {name: [] for name in breakers}
    for round_ in range(rounds):
        names = list(breakers)
        if round_ % 2:
            names.reverse()
        for name in names:
            timings[name].append(_cpu_per_call(one(breakers[name]), calls))
    for name, values in timings.items():
        print(f"  {name:42} ns {summary([v * 1e9 for v in values])}")
    added = [(b - a) * 1e9 for a, b in zip(timings["consecutive only"], timings["failure_rate=50"])]
    print(f"  {'added by the window, ns':42} {summary(added)}")


SECTIONS = {"whole": whole, "record": record}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds: a smoke run")
    parser.add_argument("--only", default=",".join(SECTIONS), help="comma-separated sections")
    args = parser.parse_args()
    print(machine())
    sizes = {"whole": (40, 400), "record": (20, 100_000)}
    for name in args.only.split(","):
        rounds, calls = sizes[name]
        if args.quick:
            rounds, calls = max(4, rounds // 10), max(50, calls // 10)
        SECTIONS[name](rounds, calls)


if __name__ == "__main__":
    main()
