"""A threaded werkzeug server in a background thread, on a port it keeps across stop and start.

Generic WSGI plumbing, knowing nothing of S3 or faults. What it adds to
werkzeug's ``make_server``: it binds the socket itself (werkzeug exits the
process when a port is taken), with ``SO_REUSEADDR`` so a restart can bind the
same port again; and it tracks accepted connections, so that :meth:`stop` cuts
them (a stopped server must not go on answering over a kept-alive connection).
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
from typing import TYPE_CHECKING, Any, Optional

if TYPE_CHECKING:
    from werkzeug.serving import BaseWSGIServer

__all__ = ["BackgroundServer"]

_logger = logging.getLogger("botocore_resilience.testing")

# How often the serving loop checks for a stop request: the most stop() can wait.
_POLL_INTERVAL = 0.05


class BackgroundServer:
    """Serves one WSGI app on ``host``; ``port=0`` picks a free port at the first start."""

    def __init__(self, app: Any, *, host: str, port: int, name: str) -> None:
        self._app = app
        self._host = host
        self._port = port
        self._name = name
        self._connections = _Connections()
        self._server: Optional[BaseWSGIServer] = None
        self._thread: Optional[threading.Thread] = None

    @property
    def port(self) -> int:
        """The port; 0 until the first start chose one."""
        return self._port

    @property
    def running(self) -> bool:
        return self._server is not None

    def start(self) -> None:
        """Bind and serve (the caller serialises start and stop). Raises ``OSError``."""
        if self._server is not None:
            return
        from werkzeug.serving import make_server

        listener = _listen(self._host, self._port)
        try:
            server = make_server(
                self._host,
                listener.getsockname()[1],
                self._app,
                threaded=True,
                request_handler=_handler_class(self._connections),
                fd=listener.fileno(),  # werkzeug duplicates it
            )
        finally:
            listener.close()
        self._port = server.server_address[1]
        thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": _POLL_INTERVAL},
            name=f"{self._name}:{self._port}",
            daemon=True,
        )
        thread.start()
        self._server, self._thread = server, thread

    def stop(self) -> None:
        """Refuse new connections and cut the open ones (the caller serialises start and stop)."""
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        server.shutdown()  # returns once the serving loop has exited
        server.server_close()  # from here on, connecting is refused
        self._connections.close_all()  # kept-alive and in-flight ones too
        thread.join()
        self._server = self._thread = None


def _listen(host: str, port: int) -> socket.socket:
    # Bound here rather than by werkzeug, which exits the process when a port is taken.
    # SO_REUSEADDR lets a restart bind the port while old connections sit in TIME_WAIT.
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((host, port))
        listener.listen(256)
    except BaseException:
        listener.close()
        raise
    return listener


class _Connections:
    """The sockets the server has accepted and not yet closed."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()

    def add(self, connection: socket.socket) -> None:
        with self._lock:
            self._open.add(connection)

    def discard(self, connection: socket.socket) -> None:
        with self._lock:
            self._open.discard(connection)

    def close_all(self) -> None:
        with self._lock:
            connections, self._open = self._open, set()
        for connection in connections:
            # shutdown, not close: the handler thread owns the socket and closes it itself,
            # and shutdown wakes it if it is blocked reading.
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)


def _handler_class(connections: _Connections) -> Any:
    from werkzeug.serving import WSGIRequestHandler

    class Handler(WSGIRequestHandler):
        protocol_version = "HTTP/1.1"

        def setup(self) -> None:
            super().setup()
            connections.add(self.connection)

        def finish(self) -> None:
            try:
                super().finish()
            finally:
                connections.discard(self.connection)

        def log_request(self, code: Any = "-", size: Any = "-") -> None:
            pass  # one line per request would drown test output

        def log(self, type: str, message: str, *args: Any) -> None:
            _logger.debug("local server %s: " + message.rstrip(), type, *args)

    return Handler
