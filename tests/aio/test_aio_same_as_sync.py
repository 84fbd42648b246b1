"""An async client yields exactly the metrics and log lines a sync boto3 client does.

One script of calls and faults runs twice against the same local S3 and bucket: with a
boto3 client, and with an aiobotocore (or aioboto3) client, each installed with its own
registry and fake clock. Every sample (but the ``_created`` timestamps) and every log
line of the ``botocore_resilience`` logger must be the same. The fake clocks do not move
during a call, so even the duration histograms agree.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from functools import partial
from typing import Any, Callable, Optional

import pytest

pytest.importorskip("aiobotocore")

from botocore.exceptions import ClientError
from prometheus_client import CollectorRegistry

import botocore_resilience
from botocore_resilience import CircuitBreakerOpen
from botocore_resilience.testing import (
    ACCESS_DENIED,
    CLIENT_TIMEOUT,
    INTERNAL_ERROR,
    SLOW_DOWN,
    FakeClock,
    HTTPFault,
    LocalS3,
)

from .conftest import POOL, new_session

# (fault to inject or None, times, clock advance before the call, operation, params)
Step = tuple[Optional[HTTPFault], Optional[int], float, str, dict[str, Any]]


def script(bucket: str) -> list[Step]:
    head = {"Bucket": bucket}
    steps: list[Step] = [
        (None, None, 0, "put_object", {"Bucket": bucket, "Key": "a/b.txt", "Body": b"v"}),
        (SLOW_DOWN, 2, 0, "head_object", {"Bucket": bucket, "Key": "a/b.txt"}),
        (INTERNAL_ERROR, 1, 0, "list_objects_v2", head),
        (CLIENT_TIMEOUT, 1, 0, "head_bucket", head),
        (ACCESS_DENIED, 1, 0, "list_objects_v2", head),
        (None, None, 0, "head_object", {"Bucket": bucket, "Key": "missing"}),
    ]
    steps += [(SLOW_DOWN, 4, 0, "list_objects_v2", head)] * 5  # every attempt fails: opens
    steps += [(None, None, 10, "head_bucket", head)]  # rejected
    steps += [(None, None, 60, "head_bucket", head), (None, None, 0, "list_objects_v2", head)]
    return steps


def outcome(call: Callable[[], Any]) -> str:
    try:
        call()
    except ClientError as error:
        return f"ClientError {error.response['ResponseMetadata'].get('HTTPStatusCode')}"
    except CircuitBreakerOpen:
        return "CircuitBreakerOpen"
    return "ok"


async def async_outcome(call: Callable[[], Awaitable[Any]]) -> str:
    try:
        await call()
    except ClientError as error:
        return f"ClientError {error.response['ResponseMetadata'].get('HTTPStatusCode')}"
    except CircuitBreakerOpen:
        return "CircuitBreakerOpen"
    return "ok"


def samples(registry: CollectorRegistry) -> dict[tuple[Any, ...], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in registry.collect()
        for sample in family.samples
        if not sample.name.endswith("_created")
    }


def install(session: Any, registry: CollectorRegistry, clock: FakeClock) -> Any:
    return botocore_resilience.install(
        session, registry=registry, clock=clock, environ={}, jitter=lambda: 0.0
    )


def test_metrics_and_logs_are_identical_to_a_sync_clients(
    s3: LocalS3, flavour: str, caplog: pytest.LogCaptureFixture
) -> None:
    bucket = s3.create_bucket()
    steps = script(bucket)
    caplog.set_level(logging.INFO, logger="botocore_resilience")

    def run_step(step: Step, clock: FakeClock) -> None:
        fault, times, advance, _operation, _params = step
        s3.clear_faults()
        if fault is not None:
            s3.inject(fault, times=times)
        clock.advance(advance)

    sync_registry, sync_clock = CollectorRegistry(), FakeClock()
    sync_session = s3.session()
    sync_installation = install(sync_session, sync_registry, sync_clock)
    client = s3.client(session=sync_session, config=POOL)
    sync_outcomes = []
    for step in steps:
        run_step(step, sync_clock)
        sync_outcomes.append(outcome(partial(getattr(client, step[3]), **step[4])))
    sync_installation.uninstall()
    sync_logs = [(r.levelname, r.getMessage()) for r in caplog.records]
    caplog.clear()

    async_registry, async_clock = CollectorRegistry(), FakeClock()
    session = new_session(s3, flavour)
    async_installation = install(session, async_registry, async_clock)

    async def run() -> list[str]:
        found = []
        async with s3.aio_client(session=session, config=POOL) as aio:
            for step in steps:
                run_step(step, async_clock)
                found.append(await async_outcome(partial(getattr(aio, step[3]), **step[4])))
        return found

    async_outcomes = asyncio.run(run())
    async_installation.uninstall()
    async_logs = [(r.levelname, r.getMessage()) for r in caplog.records]

    assert async_outcomes == sync_outcomes
    assert "CircuitBreakerOpen" in sync_outcomes
    assert samples(async_registry) == samples(sync_registry)
    assert async_logs == sync_logs
    assert any("OPEN" in message for _level, message in sync_logs)
    assert sum(level == "INFO" for level, _message in sync_logs) >= 5  # retries, closing
    retries = {k: v for k, v in samples(sync_registry).items() if "retry_attempts" in k[0]}
    assert sum(retries.values()) >= 5
