"""Fixtures for functional tests: one real local S3 per module, a fresh install per test."""

from __future__ import annotations

from typing import Any, Callable

import pytest
from prometheus_client import CollectorRegistry

import botocore_resilience
from botocore_resilience.testing import FakeClock, LocalS3, no_backoff


@pytest.fixture(scope="module")
def s3_server() -> Any:
    with LocalS3() as server:
        yield server


@pytest.fixture
def s3(s3_server: LocalS3) -> Any:
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
def _no_waits() -> Any:
    # botocore's backoff and adaptive mode's token bucket must never make a test wait.
    with no_backoff():
        yield


@pytest.fixture
def installed(
    s3: LocalS3, clock: FakeClock, registry: CollectorRegistry
) -> Callable[..., tuple[Any, Any]]:
    """``installed(config=None, environ={}, **options) -> (installation, client)``: a fresh
    session with the plugin installed, and an S3 client for the local server made from it."""
    made: list[Any] = []

    def make(config: Any = None, environ: Any = None, **options: Any) -> tuple[Any, Any]:
        session = s3.session()
        installation = botocore_resilience.install(
            session,
            registry=registry,
            clock=clock,
            environ=environ if environ is not None else {},
            jitter=lambda: 0.0,
            **options,
        )
        made.append(installation)
        return installation, s3.client(session=session, config=config)

    yield make
    for installation in made:
        installation.uninstall()
