"""What counts as a failure (docs/explanation/what-counts.md): small predicates over plain values.

Two questions are asked, at two moments:

* per **attempt**, inside botocore's retry loop: is this attempt one that should be
  retried, and has botocore not classified it already? (:func:`is_gap`, built on
  :func:`is_retryable_attempt`, :func:`botocore_retries` and :func:`is_modeled_error`)
  — the answer fills botocore's gaps, never overrides it;
* per **logical call**, once botocore has finished: did the service fail us?
  (:func:`judge_response`, :func:`judge_exception`) — the answer feeds the circuit.

A service that answers with a client error (``NoSuchKey``, ``AccessDenied``, any
other 4xx) is healthy: it answered. Only the transport failing, 5xx, timeouts and
throttling count against a circuit.
"""

from __future__ import annotations

import asyncio
import copy
import http.client
import sys
from concurrent.futures import CancelledError
from typing import Any, Optional

import urllib3.exceptions
from botocore.exceptions import BotoCoreError, ClientError, HTTPClientError
from botocore.exceptions import ConnectionError as BotoConnectionError

from .breaker import Outcome

__all__ = [
    "FAILURE_CODES",
    "FAILURE_STATUSES",
    "botocore_retries",
    "is_failure_code",
    "is_failure_exception",
    "is_failure_status",
    "is_gap",
    "is_modeled_error",
    "is_retryable_attempt",
    "judge_exception",
    "judge_response",
]

FAILURE_STATUSES = frozenset({408, 429, 500, 502, 503, 504})

FAILURE_CODES = frozenset(
    {
        # The service is unavailable, timed out, or is throttling us: worth trying again.
        "ServiceUnavailable",
        "SlowDown",
        "RequestTimeout",
        "RequestTimeoutException",
        "InternalError",
        "Throttling",
        "ThrottlingException",
        "RequestThrottled",
        "TooManyRequestsException",
        "ProvisionedThroughputExceededException",
        # botocore's own throttling codes (botocore.retries.standard), so that whatever
        # botocore treats as throttling also counts against the circuit.
        "ThrottledException",
        "RequestThrottledException",
        "TransactionInProgressException",
        "RequestLimitExceeded",
        "BandwidthLimitExceeded",
        "LimitExceededException",
        "PriorRequestNotComplete",
        "EC2ThrottledException",
    }
)

# Connection-level errors and timeouts: EndpointConnectionError and ConnectTimeoutError
# subclass ConnectionError; ReadTimeoutError, ConnectionClosedError and
# ResponseStreamingError subclass HTTPClientError.
_FAILURE_EXCEPTIONS = (BotoConnectionError, HTTPClientError)

# What a bare HTTPClientError may wrap when the transport itself failed: socket and TLS
# errors (OSError), the HTTP libraries' own errors, and a timeout. Anything else in it was
# raised by the caller's own code while botocore sent the request (s3transfer's cancelled
# parts raise the sibling's error, or its CancelledError, from the request body's read()).
_TRANSPORT_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    http.client.HTTPException,
    urllib3.exceptions.HTTPError,
    TimeoutError,
    asyncio.TimeoutError,
)
# Libraries whose errors are transport errors although they subclass none of the above
# (aiohttp's ServerDisconnectedError, ClientPayloadError, ... under aiobotocore).
_TRANSPORT_MODULES = ("aiohttp", "urllib3", "http", "ssl", "socket", "h11", "httpcore")


def is_failure_status(status: Optional[int]) -> bool:
    """HTTP statuses that mean "try again later": 408, 429, 500, 502, 503, 504."""
    return status in FAILURE_STATUSES


def is_failure_code(code: Optional[str]) -> bool:
    """AWS error codes that mean the service is unavailable, slow or throttling us."""
    return code in FAILURE_CODES


def is_failure_exception(exception: Optional[BaseException]) -> bool:
    """Transport failures: nothing (or nothing whole) came back from the service.

    botocore's generic ``HTTPClientError`` (the class itself, not its subclasses, which
    each name a transport fault) wraps whatever was raised while the request was sent;
    it counts only when what it wraps is a transport fault. A caller's own cancellation
    (s3transfer stopping the other parts of a failed transfer) is not one.
    """
    if not isinstance(exception, _FAILURE_EXCEPTIONS):
        return False
    if type(exception) is HTTPClientError:
        return _wraps_transport_fault(exception)
    return True


def _wraps_transport_fault(wrapper: HTTPClientError) -> bool:
    wrapped = getattr(wrapper, "kwargs", {}).get("error")
    if not isinstance(wrapped, BaseException):
        return True  # nothing to look at (built by hand, or a message): as before, a fault
    if isinstance(wrapped, (BotoCoreError, ClientError, CancelledError)):
        # botocore's own errors never come out of the HTTP library: the caller raised this
        # one (a sibling part's error re-raised from a body's read(), or a cancellation).
        return False
    if isinstance(wrapped, _TRANSPORT_ERRORS):
        return True
    module = type(wrapped).__module__.split(".", 1)[0]
    return module in _TRANSPORT_MODULES


def error_code(parsed: Optional[dict[str, Any]]) -> Optional[str]:
    """The AWS error code of a parsed response, if it has one."""
    if not parsed:
        return None
    error = parsed.get("Error")
    if not error:
        return None
    code = error.get("Code")
    return code if isinstance(code, str) else None


def is_retryable_attempt(
    status: Optional[int], code: Optional[str], exception: Optional[BaseException]
) -> bool:
    """Whether one attempt failed in a way worth retrying: a transport failure, a failure
    status or a failure code. The plugin retries it only where botocore did not classify it
    (:func:`is_gap`)."""
    if exception is not None:
        return is_failure_exception(exception)
    return is_failure_status(status) or is_failure_code(code)


def judge_response(status: int, code: Optional[str]) -> Outcome:
    """Judge a logical call that ended with an HTTP response."""
    if is_failure_status(status) or is_failure_code(code):
        return Outcome.FAILURE
    return Outcome.SUCCESS


def judge_exception(exception: BaseException) -> Outcome:
    """Judge a logical call that ended with an exception and no response.

    Transport failures count; anything else (missing credentials, a local error in a
    handler) says nothing about the service's health.
    """
    return Outcome.FAILURE if is_failure_exception(exception) else Outcome.NOT_COUNTED


def botocore_retries(retry_context: Any) -> bool:
    """Whether botocore's standard/adaptive retry conditions cover this attempt
    (ignoring max attempts and the retry quota, which botocore applies itself).

    ``retry_context`` is a ``botocore.retries.standard.RetryContext``. We ask botocore's
    own checkers rather than keep a copy of their tables, so that as botocore learns
    to retry more, we fill less.
    """
    # Asked on a copy without the request context: botocore's max-attempts checker writes
    # its limit there (into the amz-sdk-request header of the next attempt), and ours is
    # out of reach on purpose.
    probe = copy.copy(retry_context)
    probe.request_context = {}
    return _STANDARD_CONDITIONS.is_retryable(probe)  # type: ignore[no-any-return]


def is_modeled_error(retry_context: Any) -> bool:
    """Whether the attempt's error code is one the operation's model declares.

    botocore has classified such an error: its model says whether it is retryable (and
    botocore >= 1.44 declines a 429 that carries one). Matched the way botocore matches
    (the shape's modeled code, else its name), with public model APIs only, so that it
    works on botocore versions that have no such check of their own.
    """
    code = error_code(retry_context.parsed_response)
    operation = retry_context.operation_model
    if code is None or operation is None:
        return False
    for shape in operation.error_shapes or ():
        if code == (shape.metadata.get("error", {}).get("code") or shape.name):
            return True
    return False


def is_gap(retry_context: Any) -> bool:
    """Whether the plugin should retry an attempt that botocore does not: it failed in a
    way the plugin retries (:func:`is_retryable_attempt`), and botocore could not classify
    it, neither retrying it (:func:`botocore_retries`) nor knowing its error from the
    model (:func:`is_modeled_error`). A response botocore classified and declined stays
    declined."""
    http = retry_context.http_response
    status = http.status_code if http is not None else None
    code = error_code(retry_context.parsed_response)
    if not is_retryable_attempt(status, code, retry_context.caught_exception):
        return False
    return not botocore_retries(retry_context) and not is_modeled_error(retry_context)


def _standard_conditions() -> Any:
    from botocore.retries import standard

    # botocore's own conditions, whole, so that whatever a botocore release adds (1.44 added
    # a checker for bare 429s) is asked too. Its max-attempts check is set out of reach:
    # attempts are counted by the caller, against the client's real limit.
    return standard.StandardRetryConditions(max_attempts=sys.maxsize)


_STANDARD_CONDITIONS = _standard_conditions()


def describe_attempt(
    status: Optional[int], code: Optional[str], exception: Optional[BaseException]
) -> str:
    """A short reason for logs: ``"503 SlowDown"``, ``"EndpointConnectionError"``.

    Only codes, statuses and exception class names: never messages, which can echo
    request data.
    """
    if exception is not None:
        return type(exception).__name__
    if code and code != str(status):  # a HEAD error has no body: its "code" is the status
        return f"{status} {code}" if status else code
    return str(status) if status is not None else "unknown"
