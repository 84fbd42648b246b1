"""Serving ``/metrics`` over HTTP: one server per process, however many installs ask for it.

``install()`` calls :func:`start_metrics_server` when ``metrics_port`` is set.
The first call starts prometheus-client's ``start_http_server`` (a daemon thread);
later calls change nothing. A port that is already taken, typically by a
sibling gunicorn worker that got there first, logs a WARNING on the
``botocore_resilience`` logger: serving metrics must never fail an install.

With ``PROMETHEUS_MULTIPROC_DIR`` set, the server exposes every worker's values
through a ``MultiProcessCollector`` instead of the given registry, so whichever
worker holds the port answers for all of them.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Optional

from prometheus_client import REGISTRY, CollectorRegistry, start_http_server
from prometheus_client.multiprocess import MultiProcessCollector

from .logs import logger  # never raises: a failing log handler must not fail install()
from .metrics import multiprocess_dir

__all__ = ["start_metrics_server", "stop_metrics_server"]


@dataclass(frozen=True)
class _Server:
    addr: str
    port: int
    handle: object
    """What ``start_http_server`` returned: ``(server, thread)`` from prometheus-client
    0.20 on, ``None`` before, when the server cannot be stopped."""


_lock = threading.Lock()
_running: Optional[_Server] = None


def start_metrics_server(
    port: int,
    addr: str = "0.0.0.0",
    registry: Optional[CollectorRegistry] = None,
    *,
    environ: Optional[Mapping[str, str]] = None,
) -> bool:
    """Serve ``/metrics`` on ``addr:port`` unless this process already serves it.

    Returns ``True`` if this call started the server, ``False`` otherwise. Never
    raises: an address in use or any other failure to start is logged as a WARNING.

    ``registry`` defaults to prometheus-client's ``REGISTRY``. ``environ`` (default
    ``os.environ``) is where ``PROMETHEUS_MULTIPROC_DIR`` is looked up; when it is
    set, ``registry`` is ignored and every process's values in that directory are
    served instead.

    >>> start_metrics_server(9464, "127.0.0.1")  # doctest: +SKIP
    True
    >>> start_metrics_server(9464, "127.0.0.1")  # doctest: +SKIP
    False
    """
    global _running
    with _lock:
        if _running is not None:
            if (_running.addr, _running.port) != (addr, port):
                logger.warning(
                    "A /metrics server is already running on %s:%d; not starting another on %s:%d",
                    _running.addr,
                    _running.port,
                    addr,
                    port,
                )
            return False
        try:
            served = _registry_to_serve(registry, os.environ if environ is None else environ)
            handle: object = start_http_server(port, addr=addr, registry=served)
        except Exception as exc:
            # OSError (EADDRINUSE, unknown address), OverflowError (port out of
            # range), ValueError (multiprocess directory missing)...
            logger.warning(
                "Could not serve /metrics on %s:%d: %s (if the address is in use, another "
                "process, e.g. a sibling worker, may already serve it)",
                addr,
                port,
                exc,
            )
            return False
        _running = _Server(addr, port, handle)
        logger.info("Serving /metrics on %s:%d", addr, port)
        return True


def stop_metrics_server() -> bool:
    """Stop the server :func:`start_metrics_server` started, and free its port (for tests).

    Returns ``True`` if a server was stopped. With prometheus-client older than
    0.20, ``start_http_server`` returns nothing to stop, so this returns
    ``False`` and the server runs until the process exits.
    """
    global _running
    with _lock:
        running = _running
        if running is None or not isinstance(running.handle, tuple):
            return False
        server, thread = running.handle
        server.shutdown()  # stops serve_forever; returns once it has
        server.server_close()  # frees the port
        thread.join()
        _running = None
        return True


def _registry_to_serve(
    registry: Optional[CollectorRegistry], environ: Mapping[str, str]
) -> CollectorRegistry:
    path = multiprocess_dir(environ)
    if path is None:
        return REGISTRY if registry is None else registry
    # Prometheus-client's multiprocess recipe: a registry of its own, holding only
    # the collector that reads and merges every process's files.
    aggregated = CollectorRegistry()
    MultiProcessCollector(aggregated, path=path)  # type: ignore[no-untyped-call]
    return aggregated


def _forget_after_fork() -> None:
    # A forked child has the parent's bookkeeping but not its server thread: let it
    # try for itself (and be told, if the parent still holds the port).
    global _lock, _running
    _lock = threading.Lock()
    _running = None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_after_fork)
