"""pytest fixtures for testing code under faults; pytest loads them when the package is installed.

Every fixture name starts with ``resilience_`` so that it does not shadow a
project's own ``s3`` or ``clock`` fixtures.

``resilience_local_s3``
    A :class:`~botocore_resilience.testing.LocalS3`, running, with no faults,
    no latency and a zeroed request counter. One server is shared by the whole
    session (per xdist worker), started on first use, and reset around every
    test; if a test stops it, the next test gets it running again.
``resilience_s3_bucket``
    The name of a fresh bucket on that server, created for this test.
``resilience_fault_injector``
    A factory: ``resilience_fault_injector(client_or_session, ...)`` returns an
    installed :class:`~botocore_resilience.testing.FaultInjector`, uninstalled
    after the test.
``resilience_no_backoff``
    botocore retries without sleeping during the test; the value is the
    :class:`~botocore_resilience.testing.SkippedBackoff` record.
``resilience_fake_clock``
    A :class:`~botocore_resilience.testing.FakeClock` at 0.
``resilience_aio_session`` / ``resilience_aioboto3_session``
    For async tests: a fresh ``aiobotocore`` ``AioSession`` / ``aioboto3.Session``
    (dummy credentials, ``us-east-1``); the test is skipped when that package is not
    installed. Plain objects, not coroutines, so they work under any async test runner
    (pytest-asyncio, anyio, or ``asyncio.run`` in a plain test); make clients inside the
    test's loop with ``resilience_local_s3.aio_client(session=...)``. ``resilience_no_backoff``
    also takes the waiting out of aiobotocore's retries.

Example::

    def test_get_survives_two_slowdowns(
        resilience_local_s3, resilience_s3_bucket, resilience_no_backoff
    ):
        from botocore_resilience.testing import SLOW_DOWN

        client = resilience_local_s3.client()
        client.put_object(Bucket=resilience_s3_bucket, Key="k", Body=b"v")
        resilience_local_s3.inject(SLOW_DOWN, times=2, operation="GetObject")
        assert client.get_object(Bucket=resilience_s3_bucket, Key="k")["Body"].read() == b"v"
        assert resilience_local_s3.requests.count(operation="GetObject") == 3

Importing this module imports neither moto nor the rest of this package: a
project without the ``testing`` extra can have it loaded by pytest and never
notice.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Callable

import pytest

if TYPE_CHECKING:
    from botocore_resilience.testing import FakeClock, FaultInjector, LocalS3, SkippedBackoff

__all__ = [
    "resilience_aio_session",
    "resilience_aioboto3_session",
    "resilience_fake_clock",
    "resilience_fault_injector",
    "resilience_local_s3",
    "resilience_no_backoff",
    "resilience_s3_bucket",
]


@pytest.fixture(scope="session")
def _resilience_local_s3_server() -> Iterator[LocalS3]:
    from botocore_resilience.testing import LocalS3

    server = LocalS3()
    yield server
    server.stop()


@pytest.fixture
def resilience_local_s3(_resilience_local_s3_server: LocalS3) -> Iterator[LocalS3]:
    """A running :class:`LocalS3` shared by the session, reset before and after each test."""
    server = _resilience_local_s3_server
    server.reset()
    server.start()
    yield server
    server.reset()


@pytest.fixture
def resilience_s3_bucket(resilience_local_s3: LocalS3) -> str:
    """A bucket created for this test on ``resilience_local_s3`` (not counted as a request)."""
    return resilience_local_s3.create_bucket()


@pytest.fixture
def resilience_fault_injector() -> Iterator[Callable[..., FaultInjector]]:
    """Factory of :class:`FaultInjector` objects, all uninstalled after the test."""
    from botocore_resilience.testing import FaultInjector

    made: list[FaultInjector] = []

    def make(*targets: Any) -> FaultInjector:
        injector = FaultInjector(*targets)
        made.append(injector)
        return injector

    yield make
    for injector in made:
        injector.uninstall()


@pytest.fixture
def resilience_no_backoff() -> Iterator[SkippedBackoff]:
    """botocore retries without waiting during the test; yields what was skipped."""
    from botocore_resilience.testing import no_backoff

    with no_backoff() as skipped:
        yield skipped


@pytest.fixture
def resilience_fake_clock() -> FakeClock:
    """A :class:`FakeClock` starting at 0."""
    from botocore_resilience.testing import FakeClock

    return FakeClock()


@pytest.fixture
def resilience_aio_session() -> Any:
    """A new ``aiobotocore.session.AioSession`` (dummy credentials, ``us-east-1``).

    Skips the test when aiobotocore is not installed. Example::

        def test_async_get(resilience_local_s3, resilience_s3_bucket, resilience_aio_session):
            async def main():
                async with resilience_local_s3.aio_client(session=resilience_aio_session) as s3:
                    await s3.head_bucket(Bucket=resilience_s3_bucket)

            asyncio.run(main())
    """
    pytest.importorskip("aiobotocore")
    from botocore_resilience.testing._aio_clients import make_aio_session

    return make_aio_session()


@pytest.fixture
def resilience_aioboto3_session() -> Any:
    """A new ``aioboto3.Session`` (dummy credentials, ``us-east-1``); skips without aioboto3."""
    pytest.importorskip("aioboto3")
    from botocore_resilience.testing._aio_clients import make_aioboto3_session

    return make_aioboto3_session()
