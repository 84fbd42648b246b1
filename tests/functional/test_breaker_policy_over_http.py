"""The breaker policy for partial outages and slow services, over real HTTP to a local S3.

A share of calls failing (``failure_rate``), a service that answers but slowly
(``slow_call_duration``), probes that keep failing (``recovery_timeout_max``), and an
operator's ``force_open()``. Time moves only on the fake clock: a "slow" call is one held
at the server while the test advances the clock, then let go. Nothing sleeps.
"""

from __future__ import annotations

import threading
from typing import Any, Callable

import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from botocore_resilience import CircuitBreakerOpen, CircuitState, Transition
from botocore_resilience.testing import INTERNAL_ERROR, SLOW_DOWN, FakeClock, LocalS3

Installed = Callable[..., "tuple[Any, Any]"]
CIRCUIT = "s3/us-east-1"
WAIT = 30.0  # generous: a busy 2-core machine
ONE_ATTEMPT = Config(retries={"mode": "standard", "total_max_attempts": 1})


def mixed_calls(s3: LocalS3, client: Any, bucket: str, n: int) -> list[bool]:
    """``n`` HeadBucket calls, every other one answered 500: whether each was rejected."""
    rejected = []
    for index in range(n):
        if index % 2:
            s3.inject(INTERNAL_ERROR, times=1, operation="HeadBucket")
        try:
            client.head_bucket(Bucket=bucket)
            rejected.append(False)
        except CircuitBreakerOpen:
            s3.clear_faults()  # the fault stays unused: nothing was sent
            rejected.append(True)
        except ClientError:
            rejected.append(False)
    return rejected


def test_half_the_calls_failing_never_opens_on_consecutive_failures(
    s3: LocalS3, installed: Installed
) -> None:
    installation, client = installed(ONE_ATTEMPT)
    bucket = s3.create_bucket()

    rejected = mixed_calls(s3, client, bucket, 60)

    assert not any(rejected)
    assert installation.breakers()[CIRCUIT].state is CircuitState.CLOSED
    assert s3.requests.count(operation="HeadBucket") == 60


def test_half_the_calls_failing_opens_with_failure_rate_50(
    s3: LocalS3, installed: Installed
) -> None:
    heard: list[Transition] = []
    installation, client = installed(
        ONE_ATTEMPT, failure_rate=50, minimum_calls=20, on_transition=heard.append
    )
    bucket = s3.create_bucket()

    rejected = mixed_calls(s3, client, bucket, 30)

    # Open once 20 calls were judged, 10 of them failed; every call after that fails fast.
    assert rejected == [False] * 20 + [True] * 10
    assert s3.requests.count(operation="HeadBucket") == 20
    assert installation.breakers()[CIRCUIT].state is CircuitState.OPEN
    (opened,) = heard
    assert (opened.from_state, opened.to_state) == (CircuitState.CLOSED, CircuitState.OPEN)
    assert opened.cause == "failure rate 50% of 20 calls in 60 s (last: 500)"  # HEAD: no body


def slow_call(s3: LocalS3, clock: FakeClock, client: Any, bucket: str, seconds: float) -> Any:
    """One HeadBucket that the server holds while ``seconds`` pass on the clock."""
    hold = s3.hold(times=1, operation="HeadBucket")
    results: list[Any] = []
    caller = threading.Thread(
        target=lambda: results.append(client.head_bucket(Bucket=bucket)), daemon=True
    )
    caller.start()
    assert hold.wait_for_held(1, timeout=WAIT)
    clock.advance(seconds)  # the service's latency, on the clock the plugin reads
    hold.release()
    caller.join(WAIT)
    assert not caller.is_alive()
    (response,) = results  # the caller got its answer
    return response


def test_a_slow_healthy_service_opens_with_slow_call_duration(
    s3: LocalS3, installed: Installed, clock: FakeClock, registry: Any
) -> None:
    heard: list[Transition] = []
    installation, client = installed(
        ONE_ATTEMPT, failure_threshold=3, slow_call_duration=5, on_transition=heard.append
    )
    bucket = s3.create_bucket()

    for _ in range(3):
        response = slow_call(s3, clock, client, bucket, 20.0)
        assert response["ResponseMetadata"]["HTTPStatusCode"] == 200

    breaker = installation.breakers()[CIRCUIT]
    assert breaker.state is CircuitState.OPEN
    (opened,) = heard
    assert opened.cause == "slow call: 20 s > slow_call_duration 5 s"
    with pytest.raises(CircuitBreakerOpen):
        client.head_bucket(Bucket=bucket)
    assert s3.requests.count(operation="HeadBucket") == 3
    # What the callers saw: three successes (and a rejection); the durations tell "slow".
    labels = {"service": "s3", "operation": "HeadBucket", "bucket": bucket}
    assert (
        registry.get_sample_value("botocore_operations_total", {**labels, "result": "success"})
        == 3.0
    )
    assert registry.get_sample_value("botocore_operation_duration_seconds_sum", labels) == 60.0


def test_fast_answers_from_the_same_service_do_not_open(
    s3: LocalS3, installed: Installed, clock: FakeClock
) -> None:
    installation, client = installed(ONE_ATTEMPT, failure_threshold=3, slow_call_duration=5)
    bucket = s3.create_bucket()
    for _ in range(3):
        slow_call(s3, clock, client, bucket, 4.0)
    assert installation.breakers()[CIRCUIT].state is CircuitState.CLOSED


def test_failed_probes_lengthen_the_open_period_up_to_the_cap(
    s3: LocalS3, installed: Installed, clock: FakeClock
) -> None:
    installation, client = installed(
        ONE_ATTEMPT, failure_threshold=1, recovery_timeout=10, recovery_timeout_max=50
    )
    bucket = s3.create_bucket()
    s3.inject(SLOW_DOWN, times=None)  # down, and staying down
    with pytest.raises(ClientError):
        client.head_bucket(Bucket=bucket)

    waits = []
    for _ in range(5):
        with pytest.raises(CircuitBreakerOpen) as rejected:
            client.head_bucket(Bucket=bucket)
        waits.append(rejected.value.retry_after)
        clock.advance(rejected.value.retry_after)
        with pytest.raises(ClientError):
            client.head_bucket(Bucket=bucket)  # the probe, which fails
    assert waits == [10.0, 20.0, 40.0, 50.0, 50.0]
    assert s3.requests.count(operation="HeadBucket") == 6  # the first call and five probes

    s3.clear_faults()
    clock.advance(50)
    client.head_bucket(Bucket=bucket)
    client.head_bucket(Bucket=bucket)  # two good probes close it
    breaker = installation.breakers()[CIRCUIT]
    assert breaker.state is CircuitState.CLOSED
    s3.inject(SLOW_DOWN, times=1)
    with pytest.raises(ClientError):
        client.head_bucket(Bucket=bucket)
    assert breaker.retry_after() == 10.0  # closing started the periods over


def test_force_open_rejects_without_sending_until_reset(
    s3: LocalS3, installed: Installed, clock: FakeClock
) -> None:
    installation, client = installed(ONE_ATTEMPT)
    bucket = s3.create_bucket()
    client.head_bucket(Bucket=bucket)
    breaker = installation.breakers()[CIRCUIT]

    breaker.force_open()
    clock.advance(3600)
    for _ in range(3):
        with pytest.raises(CircuitBreakerOpen):
            client.head_bucket(Bucket=bucket)
    assert s3.requests.count(operation="HeadBucket") == 1  # no probe ever went
    assert breaker.state is CircuitState.OPEN

    breaker.reset()
    client.head_bucket(Bucket=bucket)
    assert s3.requests.count(operation="HeadBucket") == 2
