"""The circuit breaker over real HTTP against a local S3 with injected faults.

Time moves only on the fake clock; botocore's backoff and adaptive mode's token
bucket are switched off (conftest), so nothing here waits.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError

from botocore_resilience import CircuitBreakerOpen, CircuitState
from botocore_resilience.testing import ACCESS_DENIED, SLOW_DOWN, FakeClock, LocalS3

Installed = Callable[..., "tuple[Any, Any]"]
CIRCUIT = "s3/us-east-1"


def fail_calls(client: Any, bucket: str, n: int) -> None:
    for _ in range(n):
        with pytest.raises(ClientError):
            client.head_bucket(Bucket=bucket)


def open_circuit(s3: LocalS3, client: Any, bucket: str, threshold: int = 5) -> None:
    s3.inject(SLOW_DOWN, times=None)
    fail_calls(client, bucket, threshold)
    s3.clear_faults()


def test_opens_after_threshold_failed_calls_not_attempts(s3: LocalS3, installed: Installed) -> None:
    installation, client = installed()
    bucket = s3.create_bucket()
    s3.inject(SLOW_DOWN, times=None)

    fail_calls(client, bucket, 4)
    breaker = installation.breakers()[CIRCUIT]
    # 16 failed attempts so far: per-attempt counting would have opened it long ago.
    assert s3.requests.total == 16
    assert breaker.state is CircuitState.CLOSED
    assert breaker.consecutive_failures == 4

    fail_calls(client, bucket, 1)
    assert breaker.state is CircuitState.OPEN


def test_open_circuit_rejects_before_sending(
    s3: LocalS3, installed: Installed, clock: FakeClock
) -> None:
    _installation, client = installed()
    bucket = s3.create_bucket()
    open_circuit(s3, client, bucket)
    sent = s3.requests.total

    clock.advance(15)
    with pytest.raises(CircuitBreakerOpen) as raised:
        client.head_bucket(Bucket=bucket)
    assert s3.requests.total == sent
    error = raised.value
    assert (error.circuit_name, error.service, error.operation) == (CIRCUIT, "s3", "HeadBucket")
    assert error.retry_after == pytest.approx(45.0)
    # Other operations on the same service share the circuit (service scope).
    with pytest.raises(CircuitBreakerOpen):
        client.list_objects_v2(Bucket=bucket)
    assert s3.requests.total == sent


def test_probe_recovers_and_closes_after_success_threshold(
    s3: LocalS3, installed: Installed, clock: FakeClock
) -> None:
    installation, client = installed()
    bucket = s3.create_bucket()
    open_circuit(s3, client, bucket)
    breaker = installation.breakers()[CIRCUIT]

    clock.advance(60)
    client.head_bucket(Bucket=bucket)
    assert breaker.state is CircuitState.HALF_OPEN
    client.head_bucket(Bucket=bucket)
    assert breaker.state is CircuitState.CLOSED


def test_failed_probe_reopens(s3: LocalS3, installed: Installed, clock: FakeClock) -> None:
    installation, client = installed()
    bucket = s3.create_bucket()
    open_circuit(s3, client, bucket)
    breaker = installation.breakers()[CIRCUIT]

    clock.advance(60)
    s3.inject(SLOW_DOWN, times=None)
    with pytest.raises(ClientError):
        client.head_bucket(Bucket=bucket)
    assert breaker.state is CircuitState.OPEN
    assert breaker.retry_after() == pytest.approx(60.0)


def test_a_client_error_proves_health(s3: LocalS3, installed: Installed, clock: FakeClock) -> None:
    installation, client = installed()
    bucket = s3.create_bucket()
    s3.inject(SLOW_DOWN, times=None)
    fail_calls(client, bucket, 4)
    s3.clear_faults()
    s3.inject(ACCESS_DENIED, times=1)
    with pytest.raises(ClientError):
        client.head_bucket(Bucket=bucket)  # 403: the service answered
    breaker = installation.breakers()[CIRCUIT]
    assert breaker.consecutive_failures == 0

    open_circuit(s3, client, bucket)
    clock.advance(60)
    for _ in range(2):  # two 404 probes close it: NoSuchKey is an answer
        with pytest.raises(ClientError, match=r"NoSuchKey|404"):
            client.get_object(Bucket=bucket, Key="missing")
    assert breaker.state is CircuitState.CLOSED


@pytest.mark.parametrize("max_calls", [1, 3])
def test_half_open_admits_exactly_max_calls_while_32_threads_race(
    s3: LocalS3, installed: Installed, clock: FakeClock, max_calls: int
) -> None:
    _installation, client = installed(half_open_max_calls=max_calls)
    bucket = s3.create_bucket()
    open_circuit(s3, client, bucket)
    clock.advance(60)
    s3.requests.reset()

    threads = 32
    start = threading.Barrier(threads)
    rejected = threading.Semaphore(0)
    everyone_else_rejected = threading.Event()

    def hold_probes(**kwargs: Any) -> None:
        # Admitted probes wait at the transport until every other thread has been turned
        # away, so all 32 really are racing while the probes are in flight.
        everyone_else_rejected.wait(timeout=30)

    client.meta.events.register("before-send.s3", hold_probes)

    def call(_: int) -> str:
        start.wait(timeout=30)
        try:
            client.head_bucket(Bucket=bucket)
            return "sent"
        except CircuitBreakerOpen:
            rejected.release()
            return "rejected"

    with ThreadPoolExecutor(threads) as pool:
        futures = [pool.submit(call, i) for i in range(threads)]
        for _ in range(threads - max_calls):
            assert rejected.acquire(timeout=30)
        everyone_else_rejected.set()
        results = [f.result(timeout=30) for f in futures]

    assert results.count("sent") == max_calls
    assert results.count("rejected") == threads - max_calls
    assert s3.requests.total == max_calls


def test_metrics_only_never_rejects(s3: LocalS3, installed: Installed) -> None:
    installation, client = installed(breaker="metrics-only")
    bucket = s3.create_bucket()
    open_circuit(s3, client, bucket)
    assert installation.breakers()[CIRCUIT].state is CircuitState.OPEN
    sent = s3.requests.total
    client.head_bucket(Bucket=bucket)  # would be rejected with breaker=on
    assert s3.requests.total == sent + 1


def test_breaker_off_has_no_circuits(s3: LocalS3, installed: Installed) -> None:
    installation, client = installed(breaker="off")
    bucket = s3.create_bucket()
    open_circuit(s3, client, bucket)
    client.head_bucket(Bucket=bucket)
    assert installation.breakers() == {}


def test_bucket_scope_isolates_buckets(s3: LocalS3, installed: Installed) -> None:
    installation, client = installed(scope="bucket")
    sick, healthy = s3.create_bucket(), s3.create_bucket()
    s3.inject(SLOW_DOWN, times=None, bucket=sick)
    fail_calls(client, sick, 5)

    with pytest.raises(CircuitBreakerOpen) as raised:
        client.head_bucket(Bucket=sick)
    assert raised.value.circuit_name == f"s3/us-east-1/{sick}"
    client.head_bucket(Bucket=healthy)
    client.put_object(Bucket=healthy, Key="k", Body=b"v")
    states = {name: b.state for name, b in installation.breakers().items()}
    assert states[f"s3/us-east-1/{sick}"] is CircuitState.OPEN
    assert states[f"s3/us-east-1/{healthy}"] is CircuitState.CLOSED
    # A call that names no bucket uses the service circuit.
    client.list_buckets()
    assert CIRCUIT in installation.breakers()


def test_operation_scope_and_name_prefix(s3: LocalS3, installed: Installed) -> None:
    _installation, client = installed(scope="operation", name="storage")
    bucket = s3.create_bucket()
    s3.inject(SLOW_DOWN, times=None, operation="HeadBucket")
    fail_calls(client, bucket, 5)
    with pytest.raises(CircuitBreakerOpen) as raised:
        client.head_bucket(Bucket=bucket)
    assert raised.value.circuit_name == "storage/s3/us-east-1/HeadBucket"
    client.list_objects_v2(Bucket=bucket)  # another operation, another circuit


def test_connection_refused_opens_and_restart_recovers(
    s3: LocalS3, installed: Installed, clock: FakeClock
) -> None:
    installation, client = installed()
    bucket = s3.create_bucket()
    s3.stop()
    for _ in range(5):
        with pytest.raises(EndpointConnectionError):
            client.head_bucket(Bucket=bucket)
    breaker = installation.breakers()[CIRCUIT]
    assert breaker.state is CircuitState.OPEN
    with pytest.raises(CircuitBreakerOpen):
        client.head_bucket(Bucket=bucket)

    s3.start()  # same port
    clock.advance(60)
    client.head_bucket(Bucket=bucket)
    client.head_bucket(Bucket=bucket)
    assert breaker.state is CircuitState.CLOSED


def test_errors_before_sending_are_not_counted(
    s3: LocalS3, installed: Installed, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    installation, client = installed()
    bucket = s3.create_bucket()
    open_circuit(s3, client, bucket)
    clock.advance(60)
    breaker = installation.breakers()[CIRCUIT]

    # A probe that fails before anything is sent (no credentials) frees its slot and
    # counts neither way.
    from botocore.exceptions import NoCredentialsError

    def no_credentials(**kwargs: Any) -> None:
        raise NoCredentialsError()

    client.meta.events.register_first("before-sign.s3", no_credentials)
    sent = s3.requests.total
    with pytest.raises(NoCredentialsError):
        client.head_bucket(Bucket=bucket)
    assert s3.requests.total == sent
    assert breaker.state is CircuitState.HALF_OPEN
    client.meta.events.unregister("before-sign.s3", no_credentials)
    client.head_bucket(Bucket=bucket)  # the slot is free again
    assert breaker.state is CircuitState.HALF_OPEN


def test_sessions_with_the_same_settings_share_circuits(s3: LocalS3, installed: Installed) -> None:
    first, client_a = installed()
    second, client_b = installed()
    bucket = s3.create_bucket()
    s3.inject(SLOW_DOWN, times=None)
    fail_calls(client_a, bucket, 3)
    fail_calls(client_b, bucket, 2)
    with pytest.raises(CircuitBreakerOpen):
        client_a.head_bucket(Bucket=bucket)
    assert first.breakers()[CIRCUIT] is second.breakers()[CIRCUIT]
