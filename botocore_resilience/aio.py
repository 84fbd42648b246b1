"""aiobotocore and aioboto3: what makes them targets like any botocore session or client.

aiobotocore builds on botocore's own classes: ``AioSession`` subclasses
``botocore.session.Session``, ``aioboto3.Session`` subclasses ``boto3.session.Session``,
and an aiobotocore client keeps botocore's ``client.meta.events``. Its event emitter
(``AioHierarchicalEmitter``) awaits a handler only if the handler returns an awaitable,
and calls every other handler inline, as botocore does. So the plugin's handlers,
which are plain functions, run unchanged on the event loop: ``install()`` accepts these
targets through the same checks as the sync ones, and an aiobotocore call goes through
the same sequence of events (``before-call`` ... ``needs-retry`` ... ``after-call``), with
one request ``context`` per logical call, as a botocore call.

What it takes for that to be safe on an event loop is that no handler ever waits:
they read and write a few fields under a short lock, update counters and log, and
never do network I/O, sleep, or wait on a thread. Waiting between retries is
aiobotocore's own: the delay a ``needs-retry`` handler returns (ours included, for the
retries botocore's conditions leave out) is awaited with ``asyncio.sleep`` by
aiobotocore's endpoint, and adaptive mode's rate limiter is aiobotocore's async token
bucket.

The one thing aiobotocore does differently is client creation: ``AioSession.create_client``
returns an async context manager around the coroutine ``AioSession._create_client``,
which does not go through ``botocore.session.Session.create_client``. This module gives
``install_global()`` a wrapper for that coroutine (:func:`client_creation_wrapper`).

Supported: aiobotocore 2.6.0 (the first on botocore 1.31, the oldest botocore this
project supports) to 3.x, and the aioboto3 releases built on those (aioboto3 >= 11.3).
The names used here (``AioSession._create_client`` and its arguments) are the same
throughout that range.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any, Callable, Optional

from .logs import log_internal_error

__all__ = ["client_creation_wrapper", "session_class"]

Wrapper = Callable[[Any, Any, Any, Any], Any]
"""A ``wrapt`` wrapper: ``(wrapped, instance, args, kwargs) -> result``."""


def session_class() -> Optional[type]:
    """``aiobotocore.session.AioSession``, or ``None`` when aiobotocore is not installed."""
    try:
        from aiobotocore.session import AioSession
    except ImportError:
        return None
    return AioSession  # type: ignore[no-any-return]


def client_creation_wrapper(
    prepare: Callable[[Any], bool], cover: Callable[[Any], Any], where: str
) -> Wrapper:
    """A ``wrapt`` wrapper for ``AioSession._create_client`` that covers each new client.

    ``prepare(session)`` runs before the client is created (synchronously: it must not
    wait) and says whether to cover it at all; ``cover(client)`` registers the handlers
    on the client once the coroutine has made it. Failures in either are logged under
    ``where`` and never stop the client from being created.
    """

    def wrapper(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
        if instance is None:
            return wrapped(*args, **kwargs)
        try:
            covered = prepare(instance)
        except Exception:
            log_internal_error(where)
            covered = False
        creating = wrapped(*args, **kwargs)
        return _covering(creating, cover, where) if covered else creating

    return wrapper


async def _covering(creating: Awaitable[Any], cover: Callable[[Any], Any], where: str) -> Any:
    client = await creating
    try:
        cover(client)
    except Exception:
        log_internal_error(where)
    return client
