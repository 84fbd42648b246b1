"""aiobotocore and aioboto3 over real HTTP against the local S3 (fixtures in ``tests/conftest.py``).

Every test module here skips itself when aiobotocore is not installed; the ``aio`` tox envs
install it (extra ``aio``). Tests are plain functions that drive their coroutine with
``asyncio.run``: no async test plugin is needed, and each test gets a fresh event loop.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Callable

import pytest
from botocore.config import Config
from prometheus_client import CollectorRegistry

import botocore_resilience
from botocore_resilience.testing import FakeClock, LocalS3, SkippedBackoff, no_backoff

FLAVOURS = ("aiobotocore", "aioboto3")

# Enough pooled connections for 32 concurrent tasks on one client.
POOL = Config(max_pool_connections=64)

AioInstalled = Callable[..., "tuple[Any, Any]"]


@pytest.fixture(autouse=True)
def skipped_waits() -> Iterator[SkippedBackoff]:
    # aiobotocore's asyncio.sleep between attempts and its async token bucket must never
    # make a test wait (no_backoff covers them as well as botocore's).
    with no_backoff() as skipped:
        yield skipped


@pytest.fixture(params=FLAVOURS)
def flavour(request: pytest.FixtureRequest) -> str:
    """Each test runs once with an ``AioSession`` and once with an ``aioboto3.Session``."""
    pytest.importorskip(request.param)
    return str(request.param)


def new_session(s3: LocalS3, flavour: str) -> Any:
    return s3.aio_session() if flavour == "aiobotocore" else s3.aioboto3_session()


@pytest.fixture
def aio_installed(
    s3: LocalS3, flavour: str, clock: FakeClock, registry: CollectorRegistry
) -> Iterator[AioInstalled]:
    """``aio_installed(**options) -> (installation, session)``: a fresh async session of this
    test's flavour with the plugin installed on it (fake clock, fresh registry, no jitter).
    Make clients inside the test's loop: ``async with s3.aio_client(session=session)``."""
    made: list[Any] = []

    def make(environ: Any = None, **options: Any) -> tuple[Any, Any]:
        session = new_session(s3, flavour)
        installation = botocore_resilience.install(
            session,
            registry=registry,
            clock=clock,
            environ=environ if environ is not None else {},
            jitter=lambda: 0.0,
            **options,
        )
        made.append(installation)
        return installation, session

    yield make
    for installation in made:
        installation.uninstall()
