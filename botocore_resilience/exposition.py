"""Serving ``/metrics`` over HTTP: one server per process, however many installs ask for it.

``install()`` calls :func:`start_metrics_server` when ``metrics_port`` is set.
The first call starts a :class:`~botocore_resilience._metrics_http.MetricsHTTPServer`
(one accepting thread and four answering ones, however many clients connect; idle
connections are closed after 10 s); later calls change nothing. A port that is
already taken, typically by a sibling gunicorn worker that got there first, logs a
WARNING on the ``botocore_resilience`` logger: serving metrics must never fail an
install.

With ``PROMETHEUS_MULTIPROC_DIR`` set, the server exposes every worker's values
through a ``MultiProcessCollector`` instead of the given registry, so whichever
worker holds the port answers for all of them.

A forked child does not serve its parent's ``/metrics``: it closes its copy of the
listening socket at fork (otherwise the port stays bound, by a process that never
answers, after the parent exits), and may start its own server with
:func:`start_metrics_server`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Optional

from prometheus_client import REGISTRY, CollectorRegistry, make_wsgi_app
from prometheus_client.multiprocess import MultiProcessCollector

from . import _fork
from ._metrics_http import MetricsHTTPServer
from .logs import logger  # never raises: a failing log handler must not fail install()
from .metrics import multiprocess_dir

__all__ = ["running_server", "start_metrics_server", "stop_metrics_server"]


@dataclass(frozen=True)
class _Server:
    addr: str
    port: int
    server: MetricsHTTPServer


_lock = _fork.new_lock()
_running: Optional[_Server] = None


def start_metrics_server(
    port: int,
    addr: str = "0.0.0.0",
    registry: Optional[CollectorRegistry] = None,
    *,
    environ: Optional[Mapping[str, str]] = None,
    **server_options: Any,
) -> bool:
    """Serve ``/metrics`` on ``addr:port`` unless this process already serves it.

    Returns ``True`` if this call started the server, ``False`` otherwise. Never
    raises: an address in use or any other failure to start is logged as a WARNING.

    ``registry`` defaults to prometheus-client's ``REGISTRY``. ``environ`` (default
    ``os.environ``) is where ``PROMETHEUS_MULTIPROC_DIR`` is looked up; when it is
    set, ``registry`` is ignored and every process's values in that directory are
    served instead. ``server_options`` (``workers``, ``idle_timeout``, ``max_waiting``)
    go to :class:`~botocore_resilience._metrics_http.MetricsHTTPServer`; for tests.

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
            server = MetricsHTTPServer(addr, port, make_wsgi_app(served), **server_options)
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
        _running = _Server(addr, port, server)
        logger.info("Serving /metrics on %s:%d", addr, port)
        return True


def stop_metrics_server() -> bool:
    """Stop the server :func:`start_metrics_server` started, and free its port (for tests).

    Returns ``True`` if a server was stopped.
    """
    global _running
    with _lock:
        running = _running
        if running is None:
            return False
        running.server.close()
        _running = None
        return True


def running_server() -> Optional[MetricsHTTPServer]:
    """The server this process runs, if any (for tests and diagnostics)."""
    running = _running
    return running.server if running is not None else None


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
    # A forked child has the parent's bookkeeping and sockets but not its server threads:
    # close the child's copies (a listening socket nobody accepts on would keep the port
    # after the parent exits), and let it start a server of its own. _lock is made
    # usable again by _fork's handler, which runs first.
    global _running
    running = _running
    _running = None
    if running is not None:
        try:
            running.server.close_in_child()
        except Exception:
            logger.warning("could not close the /metrics socket in a forked child", exc_info=True)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_after_fork)
