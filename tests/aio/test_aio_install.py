"""Every way in: ``install()`` on an aiobotocore/aioboto3 session or client, ``install_global()``,
and each one's undo, over real HTTP."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("aiobotocore")

from aiobotocore.session import AioSession
from botocore.config import Config
from botocore.exceptions import ClientError
from prometheus_client import CollectorRegistry

import botocore_resilience
from botocore_resilience.testing import SLOW_DOWN, FakeClock, LocalS3

from .conftest import POOL, new_session

OPERATIONS = "botocore_operations_total"


def counted(registry: CollectorRegistry, bucket: str, result: str = "error") -> float:
    labels = {"service": "s3", "operation": "HeadBucket", "bucket": bucket, "result": result}
    return registry.get_sample_value(OPERATIONS, labels) or 0.0


async def failing_head(client: Any, bucket: str) -> int:
    """One HeadBucket against a sticky SlowDown; returns the attempts botocore made."""
    with pytest.raises(ClientError) as raised:
        await client.head_bucket(Bucket=bucket)
    return int(raised.value.response["ResponseMetadata"]["RetryAttempts"]) + 1


def install(target: Any, registry: CollectorRegistry, **options: Any) -> Any:
    return botocore_resilience.install(
        target, registry=registry, clock=FakeClock(), environ={}, jitter=lambda: 0.0, **options
    )


def test_install_on_an_aiobotocore_client_and_uninstall_it(
    s3: LocalS3, flavour: str, registry: CollectorRegistry
) -> None:
    session = new_session(s3, flavour)
    bucket = s3.create_bucket()
    s3.inject(SLOW_DOWN, times=None)

    async def scenario() -> None:
        async with s3.aio_client(session=session, config=POOL) as client:
            installation = install(client, registry)
            await failing_head(client, bucket)
            assert counted(registry, bucket) == 1
            assert list(installation.breakers()) == ["s3/us-east-1"]
            botocore_resilience.uninstall(client)
            await failing_head(client, bucket)
            assert counted(registry, bucket) == 1  # quiet again

    asyncio.run(scenario())


def test_install_on_a_session_sets_retry_defaults_only_where_the_user_set_none(
    s3: LocalS3, flavour: str, registry: CollectorRegistry
) -> None:
    session = new_session(s3, flavour)
    install(session, registry)
    bucket = s3.create_bucket()
    s3.inject(SLOW_DOWN, times=None)

    async def scenario() -> tuple[int, int]:
        async with s3.aio_client(session=session, config=POOL) as ours:
            default_attempts = await failing_head(ours, bucket)
        mine = POOL.merge(Config(retries={"mode": "standard", "total_max_attempts": 2}))
        async with s3.aio_client(session=session, config=mine) as theirs:
            user_attempts = await failing_head(theirs, bucket)
        return default_attempts, user_attempts

    assert asyncio.run(scenario()) == (4, 2)
    assert counted(registry, bucket) == 2


def test_uninstall_a_session_quiets_its_existing_clients(
    s3: LocalS3, flavour: str, registry: CollectorRegistry
) -> None:
    session = new_session(s3, flavour)
    install(session, registry)
    bucket = s3.create_bucket()
    s3.inject(SLOW_DOWN, times=None)

    async def scenario() -> None:
        async with s3.aio_client(session=session, config=POOL) as client:
            await failing_head(client, bucket)
            botocore_resilience.uninstall(session)
            await failing_head(client, bucket)

    asyncio.run(scenario())
    assert counted(registry, bucket) == 1


@pytest.fixture
def global_registry() -> Iterator[CollectorRegistry]:
    registry = CollectorRegistry()
    yield registry
    botocore_resilience.uninstall_global()


def test_install_global_covers_aio_clients_created_afterwards_and_uninstall_global_undoes_it(
    s3: LocalS3, flavour: str, global_registry: CollectorRegistry
) -> None:
    original = vars(AioSession)["_create_client"]
    bucket = s3.create_bucket()
    s3.inject(SLOW_DOWN, times=None)
    botocore_resilience.install_global(
        registry=global_registry, clock=FakeClock(), environ={}, jitter=lambda: 0.0
    )
    session = new_session(s3, flavour)  # never install()-ed: only the global install applies

    async def scenario() -> None:
        async with s3.aio_client(session=session, config=POOL) as covered:
            assert await failing_head(covered, bucket) == 4  # our default attempts
            assert counted(global_registry, bucket) == 1
            botocore_resilience.uninstall_global()
            assert vars(AioSession)["_create_client"] is original
            await failing_head(covered, bucket)  # created before: goes quiet
            async with s3.aio_client(session=new_session(s3, flavour), config=POOL) as plain:
                await failing_head(plain, bucket)  # created after: plain aiobotocore
            assert counted(global_registry, bucket) == 1

    asyncio.run(scenario())


def test_a_session_install_wins_over_the_global_one(
    s3: LocalS3, flavour: str, registry: CollectorRegistry, global_registry: CollectorRegistry
) -> None:
    botocore_resilience.install_global(registry=global_registry, clock=FakeClock(), environ={})
    session = new_session(s3, flavour)
    install(session, registry, max_attempts=2)
    bucket = s3.create_bucket()
    s3.inject(SLOW_DOWN, times=None)

    async def scenario() -> int:
        async with s3.aio_client(session=session, config=POOL) as client:
            return await failing_head(client, bucket)

    assert asyncio.run(scenario()) == 2
    assert counted(registry, bucket) == 1
    assert counted(global_registry, bucket) == 0


def test_the_zero_code_plugin_covers_aio_clients_where_aiobotocore_calls_botocores_plugins(
    s3: LocalS3, flavour: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from botocore_resilience import CircuitBreakerOpen
    from botocore_resilience import plugin as plugin_module

    if not hasattr(AioSession, "_register_client_plugins"):
        pytest.skip("this botocore has no client plugins (botocore >= 1.39.9)")
    # The bucket first: LocalS3's own client must not be made while the plugin variable is set.
    bucket = s3.create_bucket()
    monkeypatch.setenv("BOTOCORE_EXPERIMENTAL__PLUGINS", "resilience=botocore_resilience.plugin")
    monkeypatch.setenv("BOTOCORE_RESILIENCE_METRICS", "off")  # keep the global registry clean
    monkeypatch.setenv("BOTOCORE_RESILIENCE_FAILURE_THRESHOLD", "1")
    monkeypatch.setenv("BOTOCORE_RESILIENCE_NAME", f"plugin-{flavour}")
    plugin_module._reset_for_tests()
    s3.inject(SLOW_DOWN, times=None)
    one_attempt = POOL.merge(Config(retries={"mode": "standard", "total_max_attempts": 1}))

    async def scenario() -> None:
        async with s3.aio_client(session=new_session(s3, flavour), config=one_attempt) as client:
            with pytest.raises(ClientError):
                await client.head_bucket(Bucket=bucket)
            sent = s3.requests.total
            with pytest.raises(CircuitBreakerOpen) as raised:
                await client.head_bucket(Bucket=bucket)
            assert raised.value.circuit_name == f"plugin-{flavour}/s3/us-east-1"
            assert s3.requests.total == sent

    try:
        asyncio.run(scenario())
    finally:
        plugin_module._reset_for_tests()
