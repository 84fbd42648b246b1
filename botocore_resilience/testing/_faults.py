"""What a fault is, and how it looks on the wire.

A fault is a value: :class:`HTTPFault` (an error response: status, AWS error
code, message, headers) or :class:`ConnectionFault` (a botocore connection
error raised instead of a response). The same values drive the local S3
server's fault layer and the in-process :class:`FaultInjector`.
"""

from __future__ import annotations

import http
import json
import types
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal, Union
from xml.sax.saxutils import escape

from botocore.exceptions import (
    BotoCoreError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
)

__all__ = [
    "ACCESS_DENIED",
    "BAD_GATEWAY",
    "CLIENT_TIMEOUT",
    "CONNECTION_CLOSED",
    "CONNECT_TIMEOUT",
    "DROPPED_BODY",
    "ENDPOINT_CONNECTION_ERROR",
    "GATEWAY_TIMEOUT",
    "INTERNAL_ERROR",
    "PROVISIONED_THROUGHPUT_EXCEEDED",
    "READ_TIMEOUT",
    "REQUEST_TIMEOUT",
    "SERVICE_UNAVAILABLE",
    "SLOW_DOWN",
    "STALLED_BODY",
    "THROTTLING",
    "THROTTLING_EXCEPTION",
    "TOO_MANY_REQUESTS",
    "BodyFault",
    "ConnectionFault",
    "Fault",
    "HTTPFault",
    "RenderedResponse",
]


@dataclass(frozen=True)
class HTTPFault:
    """An error response: HTTP ``status``, AWS error ``code``, ``message`` and extra ``headers``.

    The body is rendered the way the service's protocol renders errors (S3's
    ``<Error><Code>..</Code><Message>..</Message></Error>``, JSON
    ``{"__type": code, "message": ...}`` for DynamoDB-style services, ...).
    With ``code=""`` the body is empty and botocore reports the status code as
    the error code (``"503"``), which is also what it sees for any ``HEAD``
    request: a HEAD response never has a body.

    >>> SLOW_DOWN
    HTTPFault(status=503, code='SlowDown', message='Please reduce your request rate.', headers={})
    >>> HTTPFault(503, "SlowDown", headers={"Retry-After": "1"}).headers["Retry-After"]
    '1'
    """

    status: int
    code: str = ""
    message: str = ""
    headers: Mapping[str, str] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        if not isinstance(self.status, int) or not 100 <= self.status <= 599:
            raise ValueError(f"status must be an HTTP status code (100-599), not {self.status!r}")
        # A private copy, read-only: a fault is a value and must not change once injected.
        object.__setattr__(self, "headers", types.MappingProxyType(dict(self.headers)))

    def __repr__(self) -> str:
        return (
            f"HTTPFault(status={self.status!r}, code={self.code!r}, "
            f"message={self.message!r}, headers={dict(self.headers)!r})"
        )


@dataclass(frozen=True)
class ConnectionFault:
    """A connection-level failure: ``error`` (a botocore exception class) raised, not answered.

    Only the in-process :class:`FaultInjector` can raise these; the local S3
    server shows connection refusal by being stopped (:meth:`LocalS3.stop`).

    >>> from botocore.exceptions import ReadTimeoutError
    >>> READ_TIMEOUT == ConnectionFault(ReadTimeoutError)
    True
    """

    error: type[BotoCoreError] = EndpointConnectionError
    message: str = "fault injected by botocore_resilience.testing"

    def __post_init__(self) -> None:
        if not (isinstance(self.error, type) and issubclass(self.error, BotoCoreError)):
            raise TypeError(f"error must be a botocore exception class, not {self.error!r}")

    def exception(self, endpoint_url: str) -> BotoCoreError:
        """The exception to raise for a request to ``endpoint_url``.

        >>> str(ENDPOINT_CONNECTION_ERROR.exception("http://127.0.0.1:1/"))
        'Could not connect to the endpoint URL: "http://127.0.0.1:1/"'
        """
        # botocore's error templates use ``endpoint_url`` or ``error``; extra keys are ignored.
        return self.error(endpoint_url=endpoint_url, error=self.message)


@dataclass(frozen=True)
class BodyFault:
    """A response that starts well and whose body then fails: the real status and headers
    (``Content-Length`` included) and the first ``after`` bytes of the body are sent, then
    the body ``"stall"``-s (nothing more for up to ``seconds``, then the connection is
    closed) or is ``"drop"``-ped (the connection is closed at once).

    Only the local S3 server can send these (:meth:`LocalS3.inject`). A client with a
    ``read_timeout`` shorter than ``seconds`` sees a stalled body as botocore's
    ``ReadTimeoutError`` from ``Body.read()``; a dropped one as ``ResponseStreamingError``
    (``IncompleteReadError`` on botocore versions that check the length only).

    >>> STALLED_BODY
    BodyFault(kind='stall', after=0, seconds=30.0)
    >>> BodyFault("drop", after=1024).after
    1024
    """

    kind: Literal["stall", "drop"] = "stall"
    after: int = 0
    seconds: float = 30.0

    def __post_init__(self) -> None:
        if self.kind not in ("stall", "drop"):
            raise ValueError(f"kind must be 'stall' or 'drop', not {self.kind!r}")
        if isinstance(self.after, bool) or not isinstance(self.after, int) or self.after < 0:
            raise ValueError(f"after must be a number of bytes >= 0, not {self.after!r}")
        if not self.seconds >= 0:  # also rejects NaN
            raise ValueError(f"seconds must be >= 0, not {self.seconds!r}")


Fault = Union[HTTPFault, ConnectionFault]
"""Either kind of fault a request can meet before its response starts."""

STALLED_BODY = BodyFault("stall")
"""Headers sent, then a body that never comes (for up to 30 s): a read times out."""
DROPPED_BODY = BodyFault("drop")
"""Headers sent, then the connection closed before the body: a read fails at once."""


SLOW_DOWN = HTTPFault(503, "SlowDown", "Please reduce your request rate.")
"""S3 throttling: 503 ``SlowDown`` (botocore retries it and treats it as throttling)."""
SERVICE_UNAVAILABLE = HTTPFault(503, "ServiceUnavailable", "Service is unable to handle request.")
"""503 ``ServiceUnavailable``."""
INTERNAL_ERROR = HTTPFault(
    500, "InternalError", "We encountered an internal error. Please try again."
)
"""500 ``InternalError`` (retried by botocore)."""
BAD_GATEWAY = HTTPFault(502)
"""A bare 502 with an empty body, as a load balancer sends it."""
GATEWAY_TIMEOUT = HTTPFault(504)
"""A bare 504 with an empty body."""
TOO_MANY_REQUESTS = HTTPFault(429, "TooManyRequests", "Too Many Requests")
"""429 ``TooManyRequests``: a code botocore does not know, so botocore alone does not retry it."""
REQUEST_TIMEOUT = HTTPFault(
    408,
    "RequestTimeout",
    "Your socket connection to the server was not read from or written to "
    "within the timeout period.",
)
"""408 ``RequestTimeout`` (botocore retries this code as transient)."""
CLIENT_TIMEOUT = HTTPFault(408, "ClientTimeout", "Client timed out.")
"""408 ``ClientTimeout``: a code botocore does not know, so botocore alone does not retry it."""
ACCESS_DENIED = HTTPFault(403, "AccessDenied", "Access Denied")
"""403 ``AccessDenied``: a service answer, never retried, and a *success* for a circuit breaker."""
THROTTLING = HTTPFault(400, "Throttling", "Rate exceeded")
"""400 ``Throttling``, as query-protocol services (STS, SNS, ...) throttle."""
THROTTLING_EXCEPTION = HTTPFault(400, "ThrottlingException", "Rate exceeded")
"""400 ``ThrottlingException``, as JSON-protocol services throttle."""
PROVISIONED_THROUGHPUT_EXCEEDED = HTTPFault(
    400,
    "ProvisionedThroughputExceededException",
    "The level of configured provisioned throughput for the table was exceeded.",
)
"""DynamoDB's 400 ``ProvisionedThroughputExceededException``."""

ENDPOINT_CONNECTION_ERROR = ConnectionFault(EndpointConnectionError)
"""botocore's ``EndpointConnectionError`` (connection refused, DNS failure)."""
CONNECT_TIMEOUT = ConnectionFault(ConnectTimeoutError)
"""botocore's ``ConnectTimeoutError``."""
READ_TIMEOUT = ConnectionFault(ReadTimeoutError)
"""botocore's ``ReadTimeoutError``."""
CONNECTION_CLOSED = ConnectionFault(ConnectionClosedError)
"""botocore's ``ConnectionClosedError`` (the server hung up before answering)."""


@dataclass(frozen=True)
class RenderedResponse:
    """An :class:`HTTPFault` as bytes on the wire: status line, headers and body."""

    status: int
    reason: str
    headers: Mapping[str, str]
    body: bytes

    @property
    def status_line(self) -> str:
        """``"503 Service Unavailable"``: the form WSGI's ``start_response`` takes."""
        return f"{self.status} {self.reason}"


def render(
    fault: HTTPFault,
    *,
    protocol: str,
    service_id: str,
    method: str = "GET",
    request_id: str | None = None,
) -> RenderedResponse:
    """Render ``fault`` as the service would send it, for botocore's protocol ``protocol``.

    >>> r = render(SLOW_DOWN, protocol="rest-xml", service_id="s3", request_id="R1")
    >>> r.body.decode()  # doctest: +NORMALIZE_WHITESPACE
    '<?xml version="1.0" encoding="UTF-8"?>\\n<Error><Code>SlowDown</Code><Message>Please reduce
    your request rate.</Message><RequestId>R1</RequestId></Error>'
    >>> render(THROTTLING_EXCEPTION, protocol="json", service_id="dynamodb").body
    b'{"__type": "ThrottlingException", "message": "Rate exceeded"}'
    """
    request_id = request_id or uuid.uuid4().hex[:16].upper()
    headers: dict[str, str]
    if service_id == "s3":
        headers = {"x-amz-request-id": request_id, "x-amz-id-2": request_id}
    else:
        headers = {"x-amzn-RequestId": request_id}

    body = b""
    if protocol in ("json", "rest-json"):
        headers["Content-Type"] = (
            "application/x-amz-json-1.0" if protocol == "json" else "application/json"
        )
        if fault.code:
            body = json.dumps({"__type": fault.code, "message": fault.message}).encode()
            if protocol == "rest-json":
                headers["x-amzn-ErrorType"] = fault.code
    elif protocol == "smithy-rpc-v2-cbor":
        # botocore's CBOR error parser needs a map, even an empty one.
        headers["Content-Type"] = "application/cbor"
        headers["smithy-protocol"] = "rpc-v2-cbor"
        entries = {"__type": fault.code, "message": fault.message} if fault.code else {}
        body = _cbor_text_map(entries)
    else:
        headers["Content-Type"] = "application/xml"
        if fault.code:
            body = _xml_error(
                fault, protocol=protocol, service_id=service_id, request_id=request_id
            )

    if method.upper() == "HEAD" and protocol != "smithy-rpc-v2-cbor":
        body = b""
    headers.update(fault.headers)
    headers["Content-Length"] = str(len(body))
    try:
        reason = http.HTTPStatus(fault.status).phrase
    except ValueError:
        reason = "Unknown"
    return RenderedResponse(fault.status, reason, types.MappingProxyType(headers), body)


def _xml_error(fault: HTTPFault, *, protocol: str, service_id: str, request_id: str) -> bytes:
    code, message, rid = escape(fault.code), escape(fault.message), escape(request_id)
    error = f"<Code>{code}</Code><Message>{message}</Message>"
    if protocol == "rest-xml" and service_id == "s3":
        text = f"<Error>{error}<RequestId>{rid}</RequestId></Error>"
    elif protocol == "ec2":
        text = (
            f"<Response><Errors><Error>{error}</Error></Errors>"
            f"<RequestID>{rid}</RequestID></Response>"
        )
    else:
        kind = "Receiver" if fault.status >= 500 else "Sender"
        text = (
            f"<ErrorResponse><Error><Type>{kind}</Type>{error}</Error>"
            f"<RequestId>{rid}</RequestId></ErrorResponse>"
        )
    return ('<?xml version="1.0" encoding="UTF-8"?>\n' + text).encode()


def _cbor_text_map(entries: Mapping[str, str]) -> bytes:
    out = _cbor_head(5, len(entries))
    for key, value in entries.items():
        out += _cbor_text(key) + _cbor_text(value)
    return out


def _cbor_text(text: str) -> bytes:
    data = text.encode()
    return _cbor_head(3, len(data)) + data


def _cbor_head(major: int, length: int) -> bytes:
    if length < 24:
        return bytes([major << 5 | length])
    for info, size in ((24, 1), (25, 2), (26, 4), (27, 8)):
        if length < 1 << (8 * size):
            return bytes([major << 5 | info]) + length.to_bytes(size, "big")
    raise ValueError("CBOR item too long")
