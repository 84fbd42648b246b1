"""The two state store families, registered only by installations that use a store
(with ``metrics="otel"``, ``otel_metrics.OtelStoreMetrics`` records them instead).

``N_state_store_up{backend}`` (gauge: 1 while the store is in use, 0 while this process
judges alone; ``backend`` is ``redis`` or ``redis_cluster``) and
``N_state_store_errors_total{error}`` (counter; ``error`` is one of
:data:`~botocore_resilience.store.base.ERROR_KINDS`). A process without a store
registers neither, so it exports no sample that could read as "store down".

They are plain prometheus-client metrics, so ``PROMETHEUS_MULTIPROC_DIR`` aggregates
them over worker processes like the others: the gauge with ``livemin``, so that one
worker that fell back shows as 0.
"""

from __future__ import annotations

import threading
import weakref
from typing import Any, Optional, Protocol

from .base import ERROR_KINDS

__all__ = ["StoreMetrics", "StoreSink", "store_metrics_for"]


class StoreSink(Protocol):
    """What a store tells the metrics: :class:`StoreMetrics` (Prometheus), or
    ``otel_metrics.OtelStoreMetrics`` with ``metrics="otel"``."""

    def store_up(self, backend: str, up: bool) -> None: ...

    def store_error(self, kind: str) -> None: ...


class StoreMetrics:
    """The store families of one ``(registry, namespace)``."""

    def __init__(self, registry: Any, namespace: str) -> None:
        from prometheus_client import Counter, Gauge

        self._up = Gauge(
            "state_store_up",
            "1 while the state store is in use, 0 while this process judges circuits alone.",
            ("backend",),
            namespace=namespace,
            registry=None,
            multiprocess_mode="livemin",
        )
        self._errors = Counter(
            "state_store_errors_total",
            "State store operations that failed, by kind (timeout, connection, response, other).",
            ("error",),
            namespace=namespace,
            registry=None,
        )
        registry.register(self._up)
        try:
            registry.register(self._errors)
        except BaseException:
            registry.unregister(self._up)
            raise

    def store_up(self, backend: str, up: bool) -> None:
        self._up.labels(backend).set(1 if up else 0)
        for kind in ERROR_KINDS:  # every series from the start, at 0
            self._errors.labels(kind)

    def store_error(self, kind: str) -> None:
        self._errors.labels(kind if kind in ERROR_KINDS else "other").inc()


_cache: weakref.WeakKeyDictionary[Any, dict[str, StoreMetrics]] = weakref.WeakKeyDictionary()
_lock = threading.Lock()


def store_metrics_for(registry: Any, namespace: str) -> Optional[StoreMetrics]:
    """The store families of ``registry`` (default prometheus-client's), made once; ``None``
    if they cannot be registered (a name clash: logged, the store works without them)."""
    if registry is None:
        from prometheus_client import REGISTRY

        registry = REGISTRY
    with _lock:
        by_namespace = _cache.setdefault(registry, {})
        metrics = by_namespace.get(namespace)
        if metrics is None:
            try:
                metrics = by_namespace[namespace] = StoreMetrics(registry, namespace)
            except Exception:
                import logging

                logging.getLogger("botocore_resilience").warning(
                    "botocore_resilience: state store metrics disabled", exc_info=True
                )
                return None
        return metrics
