"""The HTTP server behind ``/metrics``: a fixed number of threads, whatever the clients do.

prometheus-client's ``start_http_server`` starts one thread per connection and
never times a connection out, so idle sockets hold threads for ever (300 idle
connections held 332 threads). This server has one thread that accepts
connections and waits, with a selector, until each has sent something, and a
fixed pool of ``workers`` threads that answer requests:

* a connection that sends nothing costs a file descriptor, not a thread, and is
  closed after ``idle_timeout`` seconds;
* at most ``max_waiting`` connections wait for their first bytes; past that the
  oldest waiting one is closed, so idle sockets cannot keep a scraper out;
* a worker's reads and writes time out after ``idle_timeout`` seconds too, so a
  client that stops half-way frees its worker.

Requests are answered by prometheus-client's own WSGI application (content
negotiation, gzip, ``name[]`` filters) through :mod:`wsgiref`, one request per
connection, as prometheus-client's server does.

In a forked child, :meth:`MetricsHTTPServer.close_in_child` closes the child's
copies of the listening socket and of the waiting connections (the threads that
served them exist only in the parent), so that the port is free as soon as the
parent stops serving, instead of being held by a child that never answers.
"""

from __future__ import annotations

import contextlib
import queue
import selectors
import socket
import threading
import time
from collections import OrderedDict
from typing import Any, Optional
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer

from . import _fork

__all__ = ["IDLE_TIMEOUT", "MAX_WAITING", "WORKERS", "MetricsHTTPServer"]

WORKERS = 4
"""Threads answering requests: a scrape takes milliseconds, and Prometheus servers
scraping one process are few."""
IDLE_TIMEOUT = 10.0
"""Seconds a connection may stay silent (before its request, or within it): Prometheus's
default scrape timeout."""
MAX_WAITING = 256
"""Connections waiting for their first bytes, at most (oldest closed first)."""

_LISTENER = object()
_WAKER = object()


class _Handler(WSGIRequestHandler):
    timeout = IDLE_TIMEOUT  # set per server: see MetricsHTTPServer.__init__

    def log_message(self, format: str, *args: Any) -> None:
        pass  # a scrape every 15 s must not write a line to stderr each time


class _Listener(WSGIServer):
    """The listening socket and what wsgiref's handler reads from its server."""

    allow_reuse_address = True
    request_queue_size = 128  # the kernel's backlog while the accept thread is busy


class MetricsHTTPServer:
    """Serve a WSGI ``app`` on ``addr:port`` with bounded threads; :meth:`close` stops it.

    ``stats`` counts connections: ``accepted``, ``answered`` (handed to a worker and
    closed after), ``timed_out`` (silent for ``idle_timeout``) and ``dropped`` (closed
    because ``max_waiting`` were waiting).

    >>> from prometheus_client import CollectorRegistry, make_wsgi_app
    >>> server = MetricsHTTPServer("127.0.0.1", 0, make_wsgi_app(CollectorRegistry()))
    >>> server.port > 0
    True
    >>> server.close()
    """

    def __init__(
        self,
        addr: str,
        port: int,
        app: Any,
        *,
        workers: int = WORKERS,
        idle_timeout: float = IDLE_TIMEOUT,
        max_waiting: int = MAX_WAITING,
    ) -> None:
        handler = type("MetricsHandler", (_Handler,), {"timeout": idle_timeout})
        listener_class = type(
            "MetricsListener", (_Listener,), {"address_family": _family(addr, port)}
        )
        self._listener = listener_class((addr, port), handler)  # binds: may raise OSError
        self._listener.set_app(app)
        self._idle_timeout = idle_timeout
        self._max_waiting = max_waiting
        self._selector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._selector.register(self._listener.socket, selectors.EVENT_READ, _LISTENER)
        self._selector.register(self._wake_r, selectors.EVENT_READ, _WAKER)
        # Connections that have not sent anything yet -> (address, deadline); oldest first.
        self._waiting: OrderedDict[socket.socket, tuple[Any, float]] = OrderedDict()
        self._requests: queue.Queue[Optional[tuple[socket.socket, Any]]] = queue.Queue()
        self._stopping = False
        self._stats_lock = _fork.new_lock()
        self.stats = {"accepted": 0, "answered": 0, "timed_out": 0, "dropped": 0}
        self.threads = [
            threading.Thread(target=self._accept_loop, name="botocore-resilience-metrics")
        ] + [
            threading.Thread(target=self._work, name=f"botocore-resilience-metrics-{n}")
            for n in range(workers)
        ]
        for thread in self.threads:
            thread.daemon = True
            thread.start()

    @property
    def port(self) -> int:
        return int(self._listener.server_address[1])

    def close(self) -> None:
        """Stop accepting, close every connection, and wait for the threads to end."""
        self._stopping = True
        with contextlib.suppress(OSError):
            self._wake_w.send(b"x")
        for _ in self.threads[1:]:
            self._requests.put(None)
        for thread in self.threads:
            if thread is not threading.current_thread():
                thread.join()
        self._close_sockets()

    def close_in_child(self) -> None:
        """In a forked child: close this process's copies of the sockets; no thread to stop."""
        self._stopping = True
        self.threads = []
        with contextlib.suppress(queue.Empty):
            while True:
                item = self._requests.get_nowait()
                if item is not None:
                    item[0].close()
        self._close_sockets()

    def _close_sockets(self) -> None:
        for conn in list(self._waiting):
            conn.close()
        self._waiting.clear()
        with contextlib.suppress(Exception):
            self._selector.close()
        self._listener.socket.close()
        self._wake_r.close()
        self._wake_w.close()

    def _count(self, what: str) -> None:
        with self._stats_lock:
            self.stats[what] += 1

    # -- the accepting thread ---------------------------------------------------------

    def _accept_loop(self) -> None:
        while not self._stopping:
            timeout = None
            if self._waiting:
                oldest_deadline = min(deadline for _addr, deadline in self._waiting.values())
                timeout = max(0.0, oldest_deadline - time.monotonic())
            try:
                events = self._selector.select(timeout)
            except (OSError, ValueError):  # closed under us: stopping
                return
            for key, _mask in events:
                if key.data is _LISTENER:
                    self._accept()
                elif key.data is _WAKER:
                    with contextlib.suppress(OSError):
                        self._wake_r.recv(64)
                else:
                    conn = key.fileobj
                    assert isinstance(conn, socket.socket)
                    self._selector.unregister(conn)
                    addr, _deadline = self._waiting.pop(conn)
                    conn.setblocking(True)
                    self._requests.put((conn, addr))
            self._expire(time.monotonic())

    def _accept(self) -> None:
        try:
            conn, addr = self._listener.socket.accept()
        except OSError:  # the client gave up already, or we are closing
            return
        self._count("accepted")
        conn.setblocking(False)
        if len(self._waiting) >= self._max_waiting:
            oldest, _ = self._waiting.popitem(last=False)
            self._selector.unregister(oldest)
            oldest.close()
            self._count("dropped")
        self._waiting[conn] = (addr, time.monotonic() + self._idle_timeout)
        self._selector.register(conn, selectors.EVENT_READ, conn)

    def _expire(self, now: float) -> None:
        for conn, (_addr, deadline) in list(self._waiting.items()):
            if deadline > now:
                break  # in order of arrival, so in order of deadline
            del self._waiting[conn]
            self._selector.unregister(conn)
            conn.close()
            self._count("timed_out")

    # -- the workers --------------------------------------------------------------------

    def _work(self) -> None:
        while True:
            item = self._requests.get()
            if item is None:
                return
            conn, addr = item
            try:
                if not self._stopping:
                    self._listener.finish_request(conn, addr)  # reads, answers; times out
            except Exception:
                pass  # a client that went away or timed out: nothing to tell anyone
            finally:
                with contextlib.suppress(OSError):
                    self._listener.shutdown_request(conn)
                self._count("answered")


def _family(addr: str, port: int) -> socket.AddressFamily:
    """IPv4 or IPv6, as ``addr`` resolves (what prometheus-client's server does)."""
    infos = socket.getaddrinfo(addr or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    return infos[0][0]
