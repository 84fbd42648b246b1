"""Suite-wide pytest settings and the fixtures the functional and stress suites share.

The versions under test go in the report header; no test reaches outside the machine. The
S3 fixtures below give each test module one real local S3 (moto over HTTP on 127.0.0.1) and
each test a fresh install of the plugin on a fake clock and a fresh metrics registry.
"""

from __future__ import annotations

import os
import platform
from collections.abc import Iterator
from importlib import metadata
from typing import Any, Callable

import pytest
from botocore.config import Config
from prometheus_client import CollectorRegistry

import botocore_resilience
from botocore_resilience.testing import FakeClock, LocalS3

# A client with no credentials must fail fast with NoCredentialsError, not probe the EC2 instance
# metadata service (169.254.169.254) with timeouts: tox sets this too, this covers a bare `pytest`.
os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")

_REPORTED = (
    "boto3",
    "botocore",
    "s3transfer",
    "urllib3",
    "moto",
    "prometheus-client",
    "wrapt",
    "pytest",
    "opentelemetry-sdk",
    "awscli",
    "aiobotocore",
    "aioboto3",
)


def _version(distribution: str) -> str:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "not installed"


def pytest_report_header(config: pytest.Config) -> list[str]:
    """Name the dependency versions, so a failure in any tox env says what it ran against."""
    import botocore_resilience

    origin = os.path.dirname(botocore_resilience.__file__)
    return [
        f"botocore-resilience {botocore_resilience.__version__} from {origin}",
        f"python {platform.python_version()}: "
        + ", ".join(f"{name} {_version(name)}" for name in _REPORTED),
    ]


# -- shared fixtures ------------------------------------------------------------------------------

Installed = Callable[..., "tuple[Any, Any]"]

# Enough pooled connections for every thread of a load test: botocore's default of 10 would
# make the other threads open and throw away connections, which is noise, not load.
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


@pytest.fixture
def installed(s3: LocalS3, clock: FakeClock, registry: CollectorRegistry) -> Iterator[Installed]:
    """``installed(config=None, environ={}, **options) -> (installation, client)``: a fresh
    session with the plugin installed (fake clock, fresh registry, no jitter in gap-fill
    backoff), and an S3 client for the local server made from it, safe to share by threads."""
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
        merged = POOL.merge(config) if config is not None else POOL
        return installation, s3.client(session=session, config=merged)

    yield make
    for installation in made:
        installation.uninstall()
