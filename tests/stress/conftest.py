"""Fixtures for load tests: a real local S3, a fake clock, no backoff, and shared clients.

Every test here is bounded in time (``pytest.mark.timeout``): a deadlock fails the test
instead of hanging the run. No test sleeps to move a state machine; threads are lined up
with barriers and events, and time moves only on the fake clock.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Callable

import pytest
from botocore.config import Config
from prometheus_client import CollectorRegistry

import botocore_resilience
from botocore_resilience.testing import FakeClock, LocalS3, no_backoff

WAIT = 30.0  # seconds any cross-thread wait may take before the test calls it a deadlock

# Enough pooled connections for every thread: botocore's default of 10 would make the
# other threads open and throw away connections, which is noise, not load.
POOL = Config(max_pool_connections=80)


@pytest.fixture(scope="module")
def s3_server() -> Iterator[LocalS3]:
    with LocalS3() as server:
        yield server


@pytest.fixture
def s3(s3_server: LocalS3) -> Iterator[LocalS3]:
    """The module's local S3, reset (no faults, no latency, request counter at 0), running."""
    if not s3_server.running:
        s3_server.start()
    s3_server.reset()
    yield s3_server
    s3_server.reset()
    if not s3_server.running:
        s3_server.start()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture(autouse=True)
def _no_waits() -> Iterator[None]:
    # botocore's backoff and adaptive mode's token bucket must never make a test wait.
    with no_backoff():
        yield


Installed = Callable[..., "tuple[Any, Any]"]


@pytest.fixture
def installed(s3: LocalS3, clock: FakeClock, registry: CollectorRegistry) -> Iterator[Installed]:
    """``installed(**options) -> (installation, client)``: a fresh session with the plugin
    installed (fake clock, fresh registry), and one S3 client from it for all threads."""
    made: list[Any] = []

    def make(config: Any = None, **options: Any) -> tuple[Any, Any]:
        session = s3.session()
        installation = botocore_resilience.install(
            session,
            registry=registry,
            clock=clock,
            environ={},
            jitter=lambda: 0.0,
            **options,
        )
        made.append(installation)
        merged = POOL.merge(config) if config is not None else POOL
        return installation, s3.client(session=session, config=merged)

    yield make
    for installation in made:
        installation.uninstall()
