"""32-64 threads sharing one client through a whole outage, over real HTTP to a local S3.

closed -> open -> half-open -> closed, with faults answered by the server, and at every
step: what reached the server, what the threads saw, what the metrics counted and what
the breaker says must agree exactly.
"""

from __future__ import annotations

import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

import pytest
from botocore.exceptions import ClientError
from prometheus_client import CollectorRegistry

from botocore_resilience import CircuitBreakerOpen, CircuitState
from botocore_resilience.testing import SLOW_DOWN, FakeClock, LocalS3

from .conftest import WAIT, Installed

pytestmark = [pytest.mark.stress, pytest.mark.timeout(180)]

CIRCUIT = "s3/us-east-1"


class Tally:
    """What the threads saw: calls by result, and attempts that reached the server."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.results: Counter[str] = Counter()
        self.attempts = 0  # requests the server must have seen
        self.retries = 0  # retries made on calls that ended with a response

    def add(self, result: str, attempts: int = 0) -> None:
        with self._lock:
            self.results[result] += 1
            self.attempts += attempts
            self.retries += max(0, attempts - 1)


def head_bucket(client: Any, bucket: str, tally: Tally) -> str:
    try:
        response = client.head_bucket(Bucket=bucket)
    except ClientError as error:
        tally.add("error", error.response["ResponseMetadata"]["RetryAttempts"] + 1)
        return "error"
    except CircuitBreakerOpen:
        tally.add("circuit_open")
        return "circuit_open"
    tally.add("success", response["ResponseMetadata"]["RetryAttempts"] + 1)
    return "success"


def together(threads: int, work: Callable[[], Any]) -> list[Any]:
    """Run ``work`` once in each of ``threads`` threads, all released at once."""
    start = threading.Barrier(threads)

    def run(_: int) -> Any:
        start.wait(WAIT)
        return work()

    with ThreadPoolExecutor(threads) as pool:
        futures = [pool.submit(run, i) for i in range(threads)]
        return [future.result(timeout=WAIT) for future in futures]


def probe_round(client: Any, threads: int, admitted: int, work: Callable[[], str]) -> list[str]:
    """All threads race a half-open circuit. Admitted probes wait at the transport until
    every other thread has been rejected, so exactly ``admitted`` can be in flight."""
    rejected = threading.Semaphore(0)
    everyone_else_rejected = threading.Event()

    def hold(**kwargs: Any) -> None:
        assert everyone_else_rejected.wait(WAIT)

    def call() -> str:
        result = work()
        if result == "circuit_open":
            rejected.release()
        return result

    client.meta.events.register("before-send.s3", hold)
    try:
        with ThreadPoolExecutor(threads) as pool:
            start = threading.Barrier(threads)

            def run(_: int) -> str:
                start.wait(WAIT)
                return call()

            futures = [pool.submit(run, i) for i in range(threads)]
            for _ in range(threads - admitted):
                assert rejected.acquire(timeout=WAIT), "a thread neither probed nor was rejected"
            everyone_else_rejected.set()
            return [future.result(timeout=WAIT) for future in futures]
    finally:
        client.meta.events.unregister("before-send.s3", hold)


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float:
    return registry.get_sample_value(name, labels) or 0.0


def total(registry: CollectorRegistry, name: str) -> float:
    return sum(s.value for family in registry.collect() for s in family.samples if s.name == name)


@pytest.mark.parametrize(("threads", "max_calls"), [(32, 1), (64, 3)])
def test_a_whole_outage_with_threads_sharing_one_client(
    s3: LocalS3,
    installed: Installed,
    clock: FakeClock,
    registry: CollectorRegistry,
    threads: int,
    max_calls: int,
) -> None:
    installation, client = installed(half_open_max_calls=max_calls)
    bucket = s3.create_bucket()
    tally = Tally()

    def one() -> str:
        return head_bucket(client, bucket, tally)

    def two() -> list[str]:
        return [one(), one()]

    # Closed: everything goes through.
    assert together(threads, two) == [["success", "success"]] * threads
    breaker = installation.breakers()[CIRCUIT]
    assert breaker.state is CircuitState.CLOSED

    # The server fails: the fifth failed call opens the circuit. A thread's second call
    # starts after its first was judged, and at most four judgements precede the opening,
    # so at least threads - 4 second calls are turned away unsent.
    s3.inject(SLOW_DOWN, times=None)
    seen = Counter(result for pair in together(threads, two) for result in pair)
    assert breaker.state is CircuitState.OPEN
    assert seen["success"] == 0
    assert seen["error"] >= 5
    assert seen["circuit_open"] >= threads - 4
    assert s3.requests.total == tally.attempts

    # Still open before recovery_timeout: every call is rejected, nothing is sent.
    clock.advance(59)
    sent = s3.requests.total
    assert together(threads, one) == ["circuit_open"] * threads
    assert s3.requests.total == sent

    # Half-open: rounds of probes until success_threshold (2) good probes close it.
    s3.clear_faults()
    clock.advance(1)
    rounds = 0
    while breaker.state is not CircuitState.CLOSED:
        rounds += 1
        assert rounds <= 2
        sent = s3.requests.total
        results = probe_round(client, threads, max_calls, one)
        assert results.count("success") == max_calls
        assert results.count("circuit_open") == threads - max_calls
        assert s3.requests.total - sent == max_calls  # counted where it matters: the server
    assert rounds == (2 if max_calls == 1 else 1)

    # Closed again.
    assert together(threads, two) == [["success", "success"]] * threads

    # At rest, the metrics tell the same story as the threads and the server.
    made = sum(tally.results.values())
    assert total(registry, "botocore_operations_total") == made
    for result in ("success", "error", "circuit_open"):
        assert (
            sample(
                registry,
                "botocore_operations_total",
                service="s3",
                operation="HeadBucket",
                bucket=bucket,
                result=result,
            )
            == tally.results[result]
        ), result
    sent_calls = tally.results["success"] + tally.results["error"]
    assert total(registry, "botocore_operation_duration_seconds_count") == sent_calls
    assert total(registry, "botocore_retry_attempts_total") == tally.retries
    assert s3.requests.total == tally.attempts
    gauge = sample(registry, "botocore_circuit_breaker_state", circuit_name=CIRCUIT)
    assert gauge == breaker.state.gauge_value == 0
    cycle = (("closed", "open"), ("open", "half_open"), ("half_open", "closed"))
    for from_state, to_state in cycle:
        assert (
            sample(
                registry,
                "botocore_circuit_breaker_transitions_total",
                circuit_name=CIRCUIT,
                from_state=from_state,
                to_state=to_state,
            )
            == 1
        ), (from_state, to_state)
