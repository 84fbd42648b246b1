"""Nothing the plugin does blocks the event loop: checked by instrumentation, not by timing.

A profile hook on the loop's thread records every call that can block the thread
(sleep, socket I/O, select, waiting on a thread) made while plugin code is on the
stack (``_blocking.BlockingCallWatch``). A mixed workload over real HTTP goes through
every handler and every breaker path; the watch must see the handlers run and find
nothing. A control shows that the watch does catch a blocking call when there is one.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("aiobotocore")

from botocore.exceptions import ClientError

from botocore_resilience import CircuitBreakerOpen
from botocore_resilience.testing import (
    CLIENT_TIMEOUT,
    SLOW_DOWN,
    THROTTLING,
    FakeClock,
    LocalS3,
    SkippedBackoff,
)

from ._blocking import BlockingCallWatch
from .conftest import POOL, AioInstalled


async def workload(
    s3: LocalS3, session: Any, clock: FakeClock, bucket: str, recover: bool = True
) -> None:
    """Successes, retries (botocore's and the plugin's), adaptive throttling, an opening,
    rejections, half-open probes and a closing: every handler and breaker path.
    (``recover=False`` stops at the rejection: a store times open periods on its own clock.)"""
    async with s3.aio_client(session=session, config=POOL) as client:
        await client.put_object(Bucket=bucket, Key="k", Body=b"v")
        s3.inject(SLOW_DOWN, times=2)
        await client.head_bucket(Bucket=bucket)
        s3.inject(THROTTLING, times=2)  # switches adaptive mode's rate limiter on
        await client.list_objects_v2(Bucket=bucket)  # (a HEAD error has no code to read)
        s3.inject(CLIENT_TIMEOUT, times=1)  # a retry the plugin adds
        await client.head_bucket(Bucket=bucket)
        s3.inject(SLOW_DOWN, times=None)
        for _ in range(5):
            with pytest.raises(ClientError):
                await client.head_bucket(Bucket=bucket)
        s3.clear_faults()
        with pytest.raises(CircuitBreakerOpen):
            await client.head_bucket(Bucket=bucket)
        if not recover:
            return
        clock.advance(120)
        await asyncio.gather(
            *(client.head_bucket(Bucket=bucket) for _ in range(8)), return_exceptions=True
        )
        for _ in range(2):
            await client.head_bucket(Bucket=bucket)


def test_no_handler_blocks_the_event_loop(
    s3: LocalS3, aio_installed: AioInstalled, clock: FakeClock, skipped_waits: SkippedBackoff
) -> None:
    _installation, session = aio_installed()
    bucket = s3.create_bucket()
    with BlockingCallWatch() as watch:
        asyncio.run(workload(s3, session, clock, bucket))
    assert watch.handler_calls > 50
    assert skipped_waits.token_waits + len(skipped_waits.delays) > 0  # the waits were there
    assert watch.blocking == []


def test_the_watch_catches_a_blocking_call(
    s3: LocalS3, aio_installed: AioInstalled, clock: FakeClock
) -> None:
    # The control: a logging handler that sleeps runs inside the plugin's retry logging,
    # on the loop. (The application's logging handlers do run there; see the how-to.)
    class Sleepy(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            time.sleep(0)

    _installation, session = aio_installed()
    bucket = s3.create_bucket()
    logger = logging.getLogger("botocore_resilience")
    handler, level = Sleepy(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        with BlockingCallWatch() as watch:
            asyncio.run(workload(s3, session, clock, bucket))
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    assert watch.blocking
    assert all(entry.startswith("time.sleep from ") for entry in watch.blocking)


# -- with a state store -----------------------------------------------------------------------


@pytest.fixture
def redis_url(tmp_path: Any) -> Iterator[str]:
    pytest.importorskip("redis")
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    sys.path.insert(0, os.path.dirname(os.path.dirname(__file__)))
    try:
        from fleet.redis_servers import RedisServer
    finally:
        sys.path.pop(0)
    server = RedisServer(str(tmp_path)).start()
    yield server.url
    server.stop()


def test_with_a_state_store_no_store_io_runs_on_the_event_loop(
    s3: LocalS3,
    aio_installed: AioInstalled,
    clock: FakeClock,
    redis_url: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    import redis

    # A generous state_timeout: the store must really answer (a store that timed out is
    # "down" and then skipped without any I/O, which would prove nothing).
    _installation, session = aio_installed(state_url=redis_url, state_timeout=5)
    bucket = s3.create_bucket()
    with BlockingCallWatch() as watch:
        asyncio.run(workload(s3, session, clock, bucket, recover=False))
    # On a loop the store hears of the calls from its own thread, a moment later.
    store, deadline = redis.Redis.from_url(redis_url), time.monotonic() + 30
    while not store.keys("*") and time.monotonic() < deadline:
        time.sleep(0.01)
    assert store.keys("*"), "nothing reached the store: the circuits stayed in the process"
    # The opening the policy decided on the loop (shown there at once) is the fleet's too.
    while time.monotonic() < deadline and b"open" not in {
        store.hget(key, "st") for key in store.keys("botocore_resilience:{*}")
    }:
        time.sleep(0.01)
    assert b"open" in {store.hget(key, "st") for key in store.keys("botocore_resilience:{*}")}
    assert not [r for r in caplog.records if "unavailable" in r.getMessage()]
    assert watch.handler_calls > 30
    assert watch.blocking == []
