"""The testing kit with aiobotocore: ``no_backoff`` takes out aiobotocore's own waits (its
``asyncio.sleep`` between attempts and its async token bucket); the async fixtures."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

pytest.importorskip("aiobotocore")

import aiobotocore.endpoint
from aiobotocore.retries.bucket import AsyncTokenBucket
from botocore.config import Config
from botocore.exceptions import CapacityNotAvailableError, ClientError

from botocore_resilience.testing import SLOW_DOWN, LocalS3, no_backoff

REAL_ASYNCIO = aiobotocore.endpoint.asyncio
REAL_ACQUIRE = AsyncTokenBucket.acquire
STANDARD_4 = Config(retries={"mode": "standard", "total_max_attempts": 4})


@pytest.fixture
def skipped_waits() -> None:
    # This module checks no_backoff itself: no block of it may be open around these tests.
    return None


class FrozenClock:
    def current_time(self) -> float:
        return 100.0


def test_aiobotocores_sleep_between_attempts_is_recorded_not_awaited(
    s3: LocalS3, resilience_aio_session: Any
) -> None:
    bucket = s3.create_bucket()
    s3.inject(SLOW_DOWN, times=None)
    slept: list[float] = []

    async def scenario() -> None:
        # Any real wait fails the test: the endpoint's asyncio.sleep must be the stand-in.
        async def forbidden_sleep(delay: float, result: Any = None) -> Any:
            slept.append(delay)
            return result

        real_sleep = REAL_ASYNCIO.sleep
        REAL_ASYNCIO.sleep = forbidden_sleep
        try:
            async with s3.aio_client(session=resilience_aio_session, config=STANDARD_4) as c:
                with pytest.raises(ClientError):
                    await c.head_bucket(Bucket=bucket)
        finally:
            REAL_ASYNCIO.sleep = real_sleep

    with no_backoff() as skipped:
        asyncio.run(scenario())
    assert len(skipped.delays) == 3  # one per retry, as botocore's standard mode asked
    assert all(delay > 0 for delay in skipped.delays)
    assert [delay for delay in slept if delay > 0] == []  # only the stand-in's sleep(0)
    assert s3.requests.total == 4


def test_async_token_bucket_grants_without_waiting_and_records_it() -> None:
    async def scenario() -> None:
        bucket = AsyncTokenBucket(max_rate=0.5, clock=FrozenClock())
        assert await bucket.acquire() is True
        assert await bucket.acquire(2) is True
        with pytest.raises(CapacityNotAvailableError):  # a non-blocking caller is told
            await bucket.acquire(block=False)

    with no_backoff() as skipped:
        asyncio.run(scenario())
    assert skipped.token_waits == 2


def test_it_patches_aiobotocore_and_puts_everything_back() -> None:
    with no_backoff():
        assert aiobotocore.endpoint.asyncio is not REAL_ASYNCIO
        assert aiobotocore.endpoint.asyncio.Event is REAL_ASYNCIO.Event  # the rest is real
        assert AsyncTokenBucket.acquire is not REAL_ACQUIRE
    assert aiobotocore.endpoint.asyncio is REAL_ASYNCIO
    assert AsyncTokenBucket.acquire is REAL_ACQUIRE


def test_a_later_patch_by_someone_else_is_left_alone() -> None:
    theirs = object()
    with no_backoff():
        aiobotocore.endpoint.asyncio = theirs
    try:
        assert aiobotocore.endpoint.asyncio is theirs
        assert AsyncTokenBucket.acquire is REAL_ACQUIRE
    finally:
        aiobotocore.endpoint.asyncio = REAL_ASYNCIO


def test_async_fixtures_make_sessions_for_the_local_s3(
    resilience_local_s3: LocalS3,
    resilience_s3_bucket: str,
    resilience_no_backoff: Any,
    resilience_aio_session: Any,
) -> None:
    sessions = [resilience_aio_session]
    try:
        import aioboto3  # noqa: F401
    except ImportError:
        pass
    else:
        sessions.append(resilience_local_s3.aioboto3_session())

    async def scenario() -> list[int]:
        found = []
        for session in sessions:
            async with resilience_local_s3.aio_client(session=session) as client:
                resilience_local_s3.inject(SLOW_DOWN, times=1)
                response = await client.head_bucket(Bucket=resilience_s3_bucket)
                found.append(response["ResponseMetadata"]["RetryAttempts"])
        return found

    assert asyncio.run(scenario()) == [1] * len(sessions)
    assert len(resilience_no_backoff.delays) == len(sessions)


def test_the_aioboto3_fixture(resilience_aioboto3_session: Any) -> None:
    import aioboto3

    assert isinstance(resilience_aioboto3_session, aioboto3.Session)
    assert resilience_aioboto3_session.region_name == "us-east-1"
