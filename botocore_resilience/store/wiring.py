"""How an installation gets fleet circuits: one store per URL per process, shared.

:func:`shared_state_factory` is what the runtime asks when it builds circuits: ``None``
without ``state_url`` (circuits live in the process), else a factory of
:class:`~botocore_resilience.store.backend.SharedState` backends (the breaker's
``backend=``) on the process's one store for that URL and timeout (one connection pool,
one background thread, however many installations name it).
"""

from __future__ import annotations

import threading
from typing import Optional

from ..breaker import BackendFactory
from ..clock import Clock
from ..config import Settings
from ..errors import ConfigurationError
from ..state import Mirror, StateBackend
from .base import StateStore
from .metrics import StoreSink

__all__ = ["shared_state_factory", "store_for"]


class _Fanout:
    """Tells every installation's metrics that share one store when it goes down or up."""

    def __init__(self, backend: str) -> None:
        self.backend = backend
        self.sinks: list[StoreSink] = []
        self.up = True

    def on_up(self, up: bool) -> None:
        self.up = up
        for sink in list(self.sinks):
            sink.store_up(self.backend, up)

    def on_error(self, kind: str) -> None:
        for sink in list(self.sinks):
            sink.store_error(kind)

    def add(self, sink: StoreSink) -> None:
        if sink not in self.sinks:
            self.sinks.append(sink)
            sink.store_up(self.backend, self.up)


_stores: dict[tuple[str, float], tuple[StateStore, _Fanout]] = {}
_lock = threading.Lock()


def store_for(settings: Settings, metrics: Optional[StoreSink] = None) -> StateStore:
    """The process's store for ``settings.state_url`` and ``state_timeout``.

    Raises:
        ConfigurationError: redis-py is not installed (the ``redis`` extra).
    """
    url = settings.state_url
    if url is None:
        raise ValueError("no state_url")
    key = (url.unredacted(), settings.state_timeout)
    with _lock:
        found = _stores.get(key)
        if found is None:
            from . import open_store

            fanout = _Fanout("redis_cluster" if url.cluster else "redis")
            try:
                store = open_store(
                    url, settings.state_timeout, on_up=fanout.on_up, on_error=fanout.on_error
                )
            except ImportError:
                raise ConfigurationError(
                    variable="BOTOCORE_RESILIENCE_STATE_URL",
                    value=str(url),
                    accepted="a store this installation can reach: install redis-py "
                    "(pip install 'botocore-resilience[redis]')",
                ) from None
            found = _stores[key] = (store, fanout)
        store, fanout = found
        if metrics is not None:
            fanout.add(metrics)
        return store


def shared_state_factory(
    settings: Settings, *, metrics: Optional[StoreSink] = None
) -> Optional[BackendFactory]:
    """A factory of store-backed circuit states for ``settings`` (what
    ``CircuitBreaker(..., backend=)`` takes), or ``None`` without ``state_url``; the
    store reports to ``metrics`` (the runtime chooses which)."""
    if settings.state_url is None:
        return None
    from .backend import SharedState

    store = store_for(settings, metrics)

    def make(name: str, clock: Clock, mirror: Mirror) -> StateBackend:
        return SharedState(name, clock, mirror, store)

    return make
