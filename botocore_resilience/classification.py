"""What counts as a failure (contract §4): small predicates over plain values.

Two questions are asked, at two moments:

* per **attempt**, inside botocore's retry loop: is this attempt one that should be
  retried, and does botocore already retry it? (:func:`is_retryable_attempt`,
  :func:`botocore_retries`) — the answer fills botocore's gaps, never overrides it;
* per **logical call**, once botocore has finished: did the service fail us?
  (:func:`judge_response`, :func:`judge_exception`) — the answer feeds the circuit.

A service that answers with a client error (``NoSuchKey``, ``AccessDenied``, any
other 4xx) is healthy: it answered. Only the transport failing, 5xx, timeouts and
throttling count against a circuit.
"""

from __future__ import annotations

import sys
from typing import Any, Optional

from botocore.exceptions import ConnectionError as BotoConnectionError
from botocore.exceptions import HTTPClientError

from .breaker import Outcome

__all__ = [
    "FAILURE_CODES",
    "FAILURE_STATUSES",
    "botocore_retries",
    "is_failure_code",
    "is_failure_exception",
    "is_failure_status",
    "is_retryable_attempt",
    "judge_exception",
    "judge_response",
]

FAILURE_STATUSES = frozenset({408, 429, 500, 502, 503, 504})

FAILURE_CODES = frozenset(
    {
        # Named by the contract (the seed design's retriable table).
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
# subclass ConnectionError; ReadTimeoutError and ConnectionClosedError subclass
# HTTPClientError.
_FAILURE_EXCEPTIONS = (BotoConnectionError, HTTPClientError)


def is_failure_status(status: Optional[int]) -> bool:
    """HTTP statuses that mean "try again later": 408, 429, 500, 502, 503, 504."""
    return status in FAILURE_STATUSES


def is_failure_code(code: Optional[str]) -> bool:
    """AWS error codes that mean the service is unavailable, slow or throttling us."""
    return code in FAILURE_CODES


def is_failure_exception(exception: Optional[BaseException]) -> bool:
    """Transport failures: nothing (or nothing whole) came back from the service."""
    return isinstance(exception, _FAILURE_EXCEPTIONS)


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
    """Whether one attempt failed in a way the contract retries."""
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
    return _STANDARD_CONDITIONS.is_retryable(retry_context)  # type: ignore[no-any-return]


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
