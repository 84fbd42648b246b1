"""The aiobotocore half of :func:`~botocore_resilience.testing.no_backoff`.

aiobotocore re-implements botocore's two waits as coroutines, so patching botocore's
``time.sleep`` and ``TokenBucket.acquire`` does not reach them:

1. ``aiobotocore.endpoint``: after a retryable attempt the endpoint awaits
   ``asyncio.sleep(delay)`` (inline in ``AioEndpoint._needs_retry`` up to aiobotocore
   2.x, in ``AioEndpoint._sleep`` from 3.x; ``AnyioEndpoint._sleep`` awaits
   ``anyio.sleep`` for the httpx backend).
2. ``aiobotocore.retries.bucket.AsyncTokenBucket.acquire``: adaptive mode's rate
   limiter, which awaits an ``asyncio.Condition`` until a token is available.

While :func:`patch` is in force, the name ``asyncio`` in ``aiobotocore.endpoint`` is a
stand-in whose ``sleep`` records the delay and yields to the loop once
(``asyncio.sleep(0)``: other tasks still interleave as they would), the anyio
endpoint's ``_sleep`` does the same, and ``AsyncTokenBucket.acquire`` asks for a token
without waiting and grants the attempt anyway when there is none. The retry
decisions, attempts and quota accounting are untouched.

Nothing here imports aiobotocore unless it is installed.
"""

from __future__ import annotations

import asyncio
from typing import Any, Callable

__all__ = ["patch", "unpatch"]

Record = Callable[[float], None]
"""Called with every delay skipped; ``record_token_wait()`` for every token wait skipped."""

_originals: dict[str, Any] = {}


class _SleeplessAsyncio:
    """Stands in for ``asyncio`` inside ``aiobotocore.endpoint``: ``sleep`` only records."""

    def __init__(self, real: Any, record: Record) -> None:
        self._real = real
        self._record = record

    async def sleep(self, delay: float, result: Any = None) -> Any:
        self._record(delay)
        return await self._real.sleep(0, result)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


def patch(record_delay: Record, record_token_wait: Callable[[], None]) -> None:
    """Take the waiting out of aiobotocore's retries (no-op without aiobotocore)."""
    try:
        import aiobotocore.endpoint
        from aiobotocore.retries.bucket import AsyncTokenBucket
    except ImportError:
        return
    from botocore.exceptions import CapacityNotAvailableError

    original_acquire = AsyncTokenBucket.acquire

    async def acquire_without_waiting(bucket: Any, amount: int = 1, block: bool = True) -> bool:
        try:
            return bool(await original_acquire(bucket, amount, block=False))
        except CapacityNotAvailableError:
            if not block:
                raise  # a non-blocking caller asked to be told
            record_token_wait()
            return True

    async def anyio_sleep(endpoint: Any, delay: float) -> None:
        record_delay(delay)
        await asyncio.sleep(0)

    _originals["asyncio"] = aiobotocore.endpoint.asyncio
    _originals["acquire"] = original_acquire
    _originals["acquire_patch"] = acquire_without_waiting
    aiobotocore.endpoint.asyncio = _SleeplessAsyncio(  # type: ignore[assignment]
        _originals["asyncio"], record_delay
    )
    AsyncTokenBucket.acquire = acquire_without_waiting  # type: ignore[method-assign]
    anyio_endpoint = getattr(aiobotocore.endpoint, "AnyioEndpoint", None)  # aiobotocore >= 3
    if anyio_endpoint is not None and "_sleep" in vars(anyio_endpoint):
        _originals["anyio_sleep"] = vars(anyio_endpoint)["_sleep"]
        _originals["anyio_sleep_patch"] = anyio_sleep
        anyio_endpoint._sleep = anyio_sleep


def unpatch() -> None:
    """Undo :func:`patch`, leaving in place whatever someone else patched over it."""
    if not _originals:
        return
    import aiobotocore.endpoint
    from aiobotocore.retries.bucket import AsyncTokenBucket

    if isinstance(aiobotocore.endpoint.asyncio, _SleeplessAsyncio):
        aiobotocore.endpoint.asyncio = _originals["asyncio"]
    if AsyncTokenBucket.acquire is _originals["acquire_patch"]:
        AsyncTokenBucket.acquire = _originals["acquire"]  # type: ignore[method-assign]
    anyio_endpoint = getattr(aiobotocore.endpoint, "AnyioEndpoint", None)
    patched = _originals.get("anyio_sleep_patch")
    if (
        anyio_endpoint is not None
        and patched is not None
        and vars(anyio_endpoint)["_sleep"] is patched
    ):
        anyio_endpoint._sleep = _originals["anyio_sleep"]
    _originals.clear()
