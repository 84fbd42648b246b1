"""Fleet-wide circuit state: where circuits live when processes share them.

Without ``state_url`` every circuit lives in its process (the default). With it,
the circuits of every process that names the same store and the same ``name`` share
one state per circuit, kept in Redis (or anything speaking its protocol) by
:class:`~botocore_resilience.store.redis_store.RedisStateStore`. Nothing here imports
``redis`` until a store is opened.
"""

from __future__ import annotations

from typing import Callable

from .base import ERROR_KINDS, FleetState, StateStore, StoreUnavailable, StoreWatcher
from .url import InvalidStateUrl, StateUrl, parse_state_url, redact_url

__all__ = [
    "ERROR_KINDS",
    "FleetState",
    "InvalidStateUrl",
    "StateStore",
    "StateUrl",
    "StoreUnavailable",
    "StoreWatcher",
    "open_store",
    "parse_state_url",
    "redact_url",
]


def open_store(
    url: StateUrl,
    timeout: float,
    *,
    on_up: Callable[[bool], None] = lambda up: None,
    on_error: Callable[[str], None] = lambda kind: None,
) -> StateStore:
    """The store ``url`` names. Makes no connection yet: the first operation does.

    Raises ``ImportError`` with the extra to install when redis-py is missing.
    """
    try:
        import redis  # noqa: F401
    except ImportError:
        raise ImportError(
            "state_url needs redis-py: pip install 'botocore-resilience[redis]'"
        ) from None
    from .redis_store import RedisStateStore

    return RedisStateStore(url, timeout, on_up=on_up, on_error=on_error)
