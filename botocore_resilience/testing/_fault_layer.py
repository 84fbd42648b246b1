"""The WSGI fault layer in front of moto: latency, injected error responses, request counting."""

from __future__ import annotations

import contextlib
import io
import re
import socket
import threading
from collections.abc import Iterable, Iterator
from typing import Any, Callable, Optional, Union

from ._counter import RecordedRequest, RequestCounter
from ._faults import BodyFault, HTTPFault, render
from ._hold import Hold
from ._rules import RuleBook
from ._s3_requests import S3Request, describe

__all__ = ["INTERNAL_HEADER", "FaultLayer"]

# Requests carrying this header (the server's own housekeeping calls) skip the layer.
INTERNAL_HEADER = "x-botocore-resilience-internal"
_INTERNAL_ENVIRON_KEY = "HTTP_" + INTERNAL_HEADER.upper().replace("-", "_")
_ATTEMPT = re.compile(r"attempt=(\d+)")
_PART_NUMBER = re.compile(r"(?:^|&)partNumber=(\d+)")
# A hold nobody releases lets its request go after this long.
_HOLD_TIMEOUT = 60.0

StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


class FaultLayer:
    """WSGI middleware: hold each request back by ``latency``, answer it with a fault if a rule
    fires, else pass it to moto; record every request either way.

    ``stopping`` is set while the server shuts down: it cuts latency waits short, so
    stopping never waits for them.
    """

    def __init__(
        self,
        *,
        account_id: str,
        rules: RuleBook[Union[HTTPFault, BodyFault]],
        counter: RequestCounter,
        stopping: threading.Event,
        holds: Optional[RuleBook[Hold]] = None,
    ) -> None:
        self.app: Optional[WSGIApp] = None  # moto's app, set before the first request
        self._account_id = account_id
        self._rules = rules
        self._holds: RuleBook[Hold] = holds if holds is not None else RuleBook()
        self._counter = counter
        self._stopping = stopping
        self._lock = threading.Lock()
        self._in_flight_changed = threading.Condition(self._lock)
        self._latency = 0.0
        self._in_flight = 0
        self._peak = 0

    @property
    def latency(self) -> float:
        with self._lock:
            return self._latency

    @latency.setter
    def latency(self, seconds: float) -> None:
        if not seconds >= 0:  # also rejects NaN
            raise ValueError(f"latency must be >= 0 seconds, not {seconds!r}")
        with self._lock:
            self._latency = float(seconds)

    @property
    def in_flight(self) -> int:
        """Requests received and not yet answered."""
        with self._lock:
            return self._in_flight

    @property
    def peak_in_flight(self) -> int:
        """The most requests in flight at once since the last :meth:`reset_peak`."""
        with self._lock:
            return self._peak

    def reset_peak(self) -> None:
        with self._lock:
            self._peak = self._in_flight

    def wait_for_in_flight(self, count: int, timeout: float) -> bool:
        """Block until at least ``count`` requests are in flight; ``False`` on timeout."""
        with self._in_flight_changed:
            return self._in_flight_changed.wait_for(lambda: self._in_flight >= count, timeout)

    def wait_for_idle(self, timeout: float) -> bool:
        """Block until no request is in flight; ``False`` on timeout."""
        with self._in_flight_changed:
            return self._in_flight_changed.wait_for(lambda: self._in_flight == 0, timeout)

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        app = self.app
        assert app is not None, "FaultLayer.app must be set before serving"
        # moto keeps one store per account: each server gets its own account.
        environ.setdefault("HTTP_X_MOTO_ACCOUNT_ID", self._account_id)
        path = _decode(environ.get("PATH_INFO", ""))
        if environ.get(_INTERNAL_ENVIRON_KEY) or path.startswith("/moto-api"):
            return app(environ, start_response)
        with self._in_flight_changed:
            self._in_flight += 1
            self._peak = max(self._peak, self._in_flight)
            self._in_flight_changed.notify_all()
        try:
            return self._serve(app, path, environ, start_response)
        finally:
            with self._in_flight_changed:
                self._in_flight -= 1
                self._in_flight_changed.notify_all()

    def _serve(
        self, app: WSGIApp, path: str, environ: dict[str, Any], start_response: StartResponse
    ) -> Iterable[bytes]:
        method = environ.get("REQUEST_METHOD", "GET").upper()
        request = describe(
            method,
            path,
            environ.get("QUERY_STRING", ""),
            copy_source="HTTP_X_AMZ_COPY_SOURCE" in environ,
        )
        attempt_match = _ATTEMPT.search(environ.get("HTTP_AMZ_SDK_REQUEST", ""))
        attempt = int(attempt_match.group(1)) if attempt_match else None
        if not _buffer_chunked_body(environ):
            # The client went away mid-body (a cancelled part of a transfer): nobody reads this.
            start_response("400 Bad Request", [("Content-Length", "0"), ("Connection", "close")])
            self._record(request, path, 400, None, 0.0, attempt)
            return [b""]

        delay = self.latency
        if delay > 0 and self._stopping.wait(delay):
            # The server is stopping and has closed this connection: nobody will read this.
            start_response("503 Service Unavailable", [("Content-Length", "0")])
            self._record(request, path, None, None, delay, attempt)
            return [b""]

        part = _PART_NUMBER.search(environ.get("QUERY_STRING", ""))
        facts = {
            "method": method,
            "bucket": request.bucket,
            "key": request.key,
            "operation": request.operation,
            "part_number": part.group(1) if part else None,
        }
        hold = self._holds.take(facts)
        if hold is not None:
            hold.wait(self._stopping, _HOLD_TIMEOUT)
        fault = self._rules.take(facts)
        if isinstance(fault, BodyFault):
            return self._serve_failing_body(
                app, fault, request, path, delay, attempt, environ, start_response
            )
        if fault is not None:
            # Read the request body first: closing a socket with unread input makes the
            # kernel send a reset, and the client would see that instead of our answer.
            _drain(environ)
            wire = render(fault, protocol="rest-xml", service_id="s3", method=method)
            start_response(wire.status_line, list(wire.headers.items()))
            self._record(request, path, fault.status, fault, delay, attempt)
            return [wire.body]

        statuses: list[str] = []

        def capture(status: str, headers: Any, exc_info: Any = None) -> Any:
            statuses.append(status)
            return start_response(status, headers, exc_info)

        body = app(environ, capture)
        status = int(statuses[-1].split(None, 1)[0]) if statuses else None
        self._record(request, path, status, None, delay, attempt)
        return body

    def _serve_failing_body(
        self,
        app: WSGIApp,
        fault: BodyFault,
        request: S3Request,
        path: str,
        delay: float,
        attempt: Optional[int],
        environ: dict[str, Any],
        start_response: StartResponse,
    ) -> Iterable[bytes]:
        statuses: list[str] = []

        def capture(status: str, headers: Any, exc_info: Any = None) -> Any:
            statuses.append(status)
            return start_response(status, headers, exc_info)

        body = app(environ, capture)
        status = int(statuses[-1].split(None, 1)[0]) if statuses else None
        self._record(request, path, status, None, delay, attempt)
        return _failing_body(body, fault, environ.get("werkzeug.socket"), self._stopping)

    def _record(
        self,
        request: S3Request,
        path: str,
        status: Optional[int],
        fault: Optional[HTTPFault],
        delay: float,
        attempt: Optional[int],
    ) -> None:
        self._counter.record(
            RecordedRequest(
                method=request.method,
                path=path,
                bucket=request.bucket,
                key=request.key,
                operation=request.operation,
                status=status,
                fault=fault,
                added_latency=delay,
                attempt=attempt,
            )
        )


def _decode(wsgi_path: str) -> str:
    # WSGI hands paths over as latin-1 decoded bytes; S3 keys are UTF-8.
    try:
        return wsgi_path.encode("latin-1").decode("utf-8")
    except UnicodeError:
        return wsgi_path


def _buffer_chunked_body(environ: dict[str, Any]) -> bool:
    """Read a ``Transfer-Encoding: chunked`` body in full and hand it on as a plain one.

    Why: werkzeug's development server decodes chunked bodies in a ``RawIOBase`` whose
    ``readinto`` writes a short read into the buffer by slice assignment. Given the
    ``bytearray`` that ``RawIOBase.read`` passes, that shrinks the buffer yet reports the
    full count, and CPython 3.12.1's ``read`` then copies past the buffer's end: moto's
    thread crashed the whole test process (SIGSEGV) when a client abandoned a chunked
    upload mid-body (botocore >= 1.36 sends chunked bodies with checksums; s3transfer
    cancels the parts in flight when one fails). Reading into a ``memoryview`` makes the
    same short read raise instead. Returns ``False`` if the body ended early.
    """
    stream = environ.get("wsgi.input")
    if stream is None or not environ.get("wsgi.input_terminated"):
        return True
    if not hasattr(stream, "readinto"):
        return True
    chunks: list[bytes] = []
    view = memoryview(bytearray(65536))
    try:
        while True:
            count = stream.readinto(view)
            if not count:
                break
            chunks.append(bytes(view[:count]))
    except (OSError, ValueError):
        return False
    finally:
        view.release()
    body = b"".join(chunks)
    environ["wsgi.input"] = io.BytesIO(body)
    environ["CONTENT_LENGTH"] = str(len(body))
    environ["wsgi.input_terminated"] = False
    environ.pop("HTTP_TRANSFER_ENCODING", None)
    return True


def _drain(environ: dict[str, Any]) -> None:
    stream = environ.get("wsgi.input")
    if stream is None:
        return
    if environ.get("wsgi.input_terminated"):
        while stream.read(65536):
            pass
        return
    try:
        remaining = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return
    while remaining > 0:
        chunk = stream.read(min(remaining, 65536))
        if not chunk:
            break
        remaining -= len(chunk)


def _failing_body(
    body: Iterable[bytes],
    fault: BodyFault,
    connection: Optional[socket.socket],
    stopping: threading.Event,
) -> Iterator[bytes]:
    # The status and headers (Content-Length of the whole body) go out as moto wrote them;
    # only the body is cut short, the way a proxy or a server dying mid-response cuts it.
    try:
        yield b""  # the status line and headers go out now, whatever ``after`` is
        sent = 0
        for chunk in body:
            if sent + len(chunk) >= fault.after:
                head = chunk[: fault.after - sent]
                if head:
                    yield head
                break
            sent += len(chunk)
            yield chunk
        if fault.kind == "stall":
            stopping.wait(fault.seconds)
    finally:
        close = getattr(body, "close", None)
        if close is not None:
            close()
    # Close the connection under the client (the server cannot take back the Content-Length
    # it sent), then tell the server the connection is gone so it writes nothing more.
    if connection is not None:
        with contextlib.suppress(OSError):
            connection.shutdown(socket.SHUT_RDWR)
    raise ConnectionAbortedError("body cut short by botocore_resilience.testing")
