"""The contract's behaviour with aiobotocore and aioboto3 clients, over real HTTP, point by point.

Each test runs once per flavour (an ``AioSession`` and an ``aioboto3.Session`` with the
plugin installed on it). Time moves only on the fake clock and the waits between
attempts are skipped (``no_backoff``), so nothing here sleeps.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

pytest.importorskip("aiobotocore")

from botocore.exceptions import ClientError, EndpointConnectionError
from prometheus_client import CollectorRegistry

from botocore_resilience import CircuitBreakerOpen, CircuitState
from botocore_resilience.testing import (
    ACCESS_DENIED,
    CLIENT_TIMEOUT,
    SLOW_DOWN,
    FakeClock,
    LocalS3,
    SkippedBackoff,
)

from .conftest import POOL, AioInstalled

CIRCUIT = "s3/us-east-1"
OPERATIONS = "botocore_operations_total"
RETRIES = "botocore_retry_attempts_total"


async def fail_calls(client: Any, bucket: str, n: int) -> None:
    for _ in range(n):
        with pytest.raises(ClientError):
            await client.head_bucket(Bucket=bucket)


async def open_circuit(s3: LocalS3, client: Any, bucket: str, threshold: int = 5) -> None:
    s3.inject(SLOW_DOWN, times=None)
    await fail_calls(client, bucket, threshold)
    s3.clear_faults()


def retry_samples(registry: CollectorRegistry) -> dict[str, float]:
    return {
        sample.labels["attempt"]: sample.value
        for family in registry.collect()
        for sample in family.samples
        if sample.name == RETRIES
    }


def test_judged_once_per_logical_call_after_aiobotocores_retries(
    s3: LocalS3, aio_installed: AioInstalled
) -> None:
    installation, session = aio_installed()
    bucket = s3.create_bucket()

    async def scenario() -> None:
        async with s3.aio_client(session=session, config=POOL) as client:
            s3.inject(SLOW_DOWN, times=None)
            await fail_calls(client, bucket, 4)
            breaker = installation.breakers()[CIRCUIT]
            # 16 failed attempts so far: per-attempt counting would have opened it.
            assert s3.requests.total == 16
            assert breaker.state is CircuitState.CLOSED
            assert breaker.consecutive_failures == 4
            await fail_calls(client, bucket, 1)
            assert breaker.state is CircuitState.OPEN

    asyncio.run(scenario())


def test_open_circuit_rejects_before_sending(
    s3: LocalS3, aio_installed: AioInstalled, clock: FakeClock, registry: CollectorRegistry
) -> None:
    _installation, session = aio_installed()
    bucket = s3.create_bucket()

    async def scenario() -> None:
        async with s3.aio_client(session=session, config=POOL) as client:
            await open_circuit(s3, client, bucket)
            sent = s3.requests.total
            clock.advance(15)
            with pytest.raises(CircuitBreakerOpen) as raised:
                await client.head_bucket(Bucket=bucket)
            assert s3.requests.total == sent
            error = raised.value
            assert (error.circuit_name, error.operation) == (CIRCUIT, "HeadBucket")
            assert 45.0 <= error.retry_after <= 45.0 * 1.1 + 1e-9  # jitter adds at most 10%

    asyncio.run(scenario())
    labels = {"service": "s3", "operation": "HeadBucket", "bucket": bucket}
    assert registry.get_sample_value(OPERATIONS, {**labels, "result": "circuit_open"}) == 1
    assert registry.get_sample_value(OPERATIONS, {**labels, "result": "error"}) == 5


def test_retry_counts_equal_retry_attempts(
    s3: LocalS3, aio_installed: AioInstalled, registry: CollectorRegistry
) -> None:
    _installation, session = aio_installed()
    bucket = s3.create_bucket()
    seen: list[int] = []

    async def scenario() -> None:
        async with s3.aio_client(session=session, config=POOL) as client:
            await client.put_object(Bucket=bucket, Key="k", Body=b"v")
            for times in (0, 1, 2, 3):
                if times:
                    s3.inject(SLOW_DOWN, times=times, operation="GetObject")
                response = await client.get_object(Bucket=bucket, Key="k")
                async with response["Body"] as body:
                    assert await body.read() == b"v"
                seen.append(response["ResponseMetadata"]["RetryAttempts"])

    asyncio.run(scenario())
    assert seen == [0, 1, 2, 3]
    assert retry_samples(registry) == {"1": 3, "2": 2, "3": 1}
    assert sum(retry_samples(registry).values()) == sum(seen)
    assert s3.requests.count(operation="GetObject") == 4 + sum(seen)


def test_bare_408_is_retried_with_aiobotocores_own_async_wait(
    s3: LocalS3, aio_installed: AioInstalled, skipped_waits: SkippedBackoff
) -> None:
    # A 408 with no error code is one botocore's conditions leave out; the plugin's
    # needs-retry handler returns a delay and aiobotocore awaits it (the recorded delay
    # comes from the stand-in for aiobotocore's asyncio.sleep, not botocore's time.sleep).
    _installation, session = aio_installed()
    bucket = s3.create_bucket()

    async def scenario() -> dict[str, Any]:
        async with s3.aio_client(session=session, config=POOL) as client:
            s3.inject(CLIENT_TIMEOUT, times=1)
            return dict((await client.head_bucket(Bucket=bucket))["ResponseMetadata"])

    metadata = asyncio.run(scenario())
    assert metadata["RetryAttempts"] == 1
    assert s3.requests.total == 2
    assert len(skipped_waits.delays) == 1


def test_4xx_is_never_retried_and_proves_health(s3: LocalS3, aio_installed: AioInstalled) -> None:
    installation, session = aio_installed()
    bucket = s3.create_bucket()

    async def scenario() -> None:
        async with s3.aio_client(session=session, config=POOL) as client:
            s3.inject(SLOW_DOWN, times=None)
            await fail_calls(client, bucket, 4)
            s3.clear_faults()
            s3.requests.reset()
            s3.inject(ACCESS_DENIED, times=None)
            with pytest.raises(ClientError) as raised:
                await client.head_bucket(Bucket=bucket)
            assert raised.value.response["ResponseMetadata"]["RetryAttempts"] == 0

    asyncio.run(scenario())
    assert s3.requests.total == 1
    assert installation.breakers()[CIRCUIT].consecutive_failures == 0


@pytest.mark.parametrize("max_calls", [1, 3])
def test_half_open_admits_exactly_max_calls_of_32_concurrent_tasks(
    s3: LocalS3, aio_installed: AioInstalled, clock: FakeClock, max_calls: int
) -> None:
    _installation, session = aio_installed(half_open_max_calls=max_calls)
    bucket = s3.create_bucket()
    tasks = 32

    async def scenario() -> list[str]:
        async with s3.aio_client(session=session, config=POOL) as client:
            await open_circuit(s3, client, bucket)
            clock.advance(60)
            s3.requests.reset()
            everyone_else_rejected = asyncio.Event()
            rejected = 0

            async def hold_probes(**kwargs: Any) -> None:
                # Admitted probes wait at the transport (aiobotocore awaits an async
                # handler) until every other task has been turned away.
                await everyone_else_rejected.wait()

            client.meta.events.register("before-send.s3", hold_probes)

            async def call() -> str:
                nonlocal rejected
                try:
                    await client.head_bucket(Bucket=bucket)
                    return "sent"
                except CircuitBreakerOpen:
                    rejected += 1
                    if rejected == tasks - max_calls:
                        everyone_else_rejected.set()
                    return "rejected"

            return list(await asyncio.wait_for(asyncio.gather(*(call() for _ in range(tasks))), 60))

    results = asyncio.run(scenario())
    assert results.count("sent") == max_calls
    assert results.count("rejected") == tasks - max_calls
    assert s3.requests.total == max_calls


def test_a_cancelled_probe_frees_its_slot_once_the_task_is_gone(
    s3: LocalS3, aio_installed: AioInstalled, clock: FakeClock
) -> None:
    # asyncio.CancelledError is a BaseException: aiobotocore emits no after-call-error
    # for it, so the plugin never hears how the probe ended. Its slot must come back when
    # the call's request context is gone with the task, not after a lease runs out (the
    # fake clock does not move here).
    installation, session = aio_installed()
    bucket = s3.create_bucket()

    async def scenario() -> None:
        async with s3.aio_client(session=session, config=POOL) as client:
            await open_circuit(s3, client, bucket)
            clock.advance(60)
            breaker = installation.breakers()[CIRCUIT]
            at_transport = asyncio.Event()

            async def hang(**kwargs: Any) -> None:
                at_transport.set()
                await asyncio.Event().wait()  # until cancelled

            client.meta.events.register("before-send.s3", hang)
            probe = asyncio.ensure_future(client.head_bucket(Bucket=bucket))
            await asyncio.wait_for(at_transport.wait(), 30)
            with pytest.raises(CircuitBreakerOpen):
                await client.head_bucket(Bucket=bucket)  # the one slot is taken
            probe.cancel()
            with pytest.raises(asyncio.CancelledError):
                await probe
            client.meta.events.unregister("before-send.s3", hang)
            del probe
            # The loop still holds the finished task until the callback that woke this
            # task returns: yield to it once. Nothing else is needed for the slot to come back.
            await asyncio.sleep(0)
            assert breaker.state is CircuitState.HALF_OPEN
            await client.head_bucket(Bucket=bucket)  # admitted: the slot is free again
            await client.head_bucket(Bucket=bucket)
            assert breaker.state is CircuitState.CLOSED

    asyncio.run(scenario())


def test_connection_refused_counts_once_per_call_and_restart_recovers(
    s3: LocalS3, aio_installed: AioInstalled, clock: FakeClock, registry: CollectorRegistry
) -> None:
    # aiobotocore turns aiohttp's connection errors into botocore's own
    # (EndpointConnectionError): judged as failures, once per call after its retries.
    installation, session = aio_installed()
    bucket = s3.create_bucket()

    async def scenario() -> None:
        async with s3.aio_client(session=session, config=POOL) as client:
            s3.stop()
            for calls in range(1, 6):
                with pytest.raises(EndpointConnectionError):
                    await client.head_bucket(Bucket=bucket)
                breaker = installation.breakers()[CIRCUIT]
                if calls < 5:  # 4 attempts each: per-attempt counting would have opened it
                    assert (breaker.state, breaker.consecutive_failures) == (
                        CircuitState.CLOSED,
                        calls,
                    )
            assert breaker.state is CircuitState.OPEN
            with pytest.raises(CircuitBreakerOpen):
                await client.head_bucket(Bucket=bucket)
            s3.start()  # same port
            clock.advance(60)
            await client.head_bucket(Bucket=bucket)
            await client.head_bucket(Bucket=bucket)
            assert breaker.state is CircuitState.CLOSED

    asyncio.run(scenario())
    labels = {"service": "s3", "operation": "HeadBucket", "bucket": bucket}
    assert registry.get_sample_value(OPERATIONS, {**labels, "result": "error"}) == 5
    assert sum(retry_samples(registry).values()) == 5 * 3  # 4 attempts per call
