"""What counts (docs/explanation/what-counts.md): statuses, codes, exceptions, and which ones
botocore retries."""

from __future__ import annotations

from typing import Any, Optional

import botocore.session
import pytest
from botocore.awsrequest import AWSResponse
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    NoRegionError,
    ParamValidationError,
    PartialCredentialsError,
    ProxyConnectionError,
    ReadTimeoutError,
    UnknownServiceError,
)
from botocore.retries.standard import RetryContext

from botocore_resilience.breaker import Outcome
from botocore_resilience.classification import (
    FAILURE_CODES,
    FAILURE_STATUSES,
    botocore_retries,
    describe_attempt,
    error_code,
    is_failure_code,
    is_failure_exception,
    is_failure_status,
    is_gap,
    is_modeled_error,
    is_retryable_attempt,
    judge_exception,
    judge_response,
)
from botocore_resilience.errors import CircuitBreakerOpen

CONTRACT_STATUSES = [408, 429, 500, 502, 503, 504]
HEALTHY_STATUSES = [200, 201, 204, 206, 301, 304, 307, 400, 401, 403, 404, 405, 409, 412, 416]
HEALTHY_STATUSES += [413, 422, 501, 505, 507]
CONTRACT_CODES = [
    "ServiceUnavailable",
    "SlowDown",
    "RequestTimeout",
    "InternalError",
    "Throttling",
    "ThrottlingException",
    "RequestThrottled",
    "TooManyRequestsException",
    "ProvisionedThroughputExceededException",
]
# botocore's own throttling codes (botocore.retries.standard.ThrottledRetryableChecker).
BOTOCORE_THROTTLING_CODES = [
    "ThrottledException",
    "RequestThrottledException",
    "TransactionInProgressException",
    "RequestLimitExceeded",
    "BandwidthLimitExceeded",
    "LimitExceededException",
    "PriorRequestNotComplete",
    "EC2ThrottledException",
]
SERVICE_ANSWERED_CODES = [
    "NoSuchKey",
    "NoSuchBucket",
    "NoSuchUpload",
    "AccessDenied",
    "InvalidRequest",
    "InvalidArgument",
    "MalformedXML",
    "InvalidBucketName",
    "BucketAlreadyExists",
    "PreconditionFailed",
    "InvalidRange",
    "ResourceNotFoundException",
    "ValidationException",
    "ConditionalCheckFailedException",
    "ExpiredToken",
    "SignatureDoesNotMatch",
    "TooManyRequests",  # a code, not a throttling code: only its 429 status counts
    "slowdown",  # codes are case-sensitive
]


def endpoint_error(cls: type[BotoCoreError]) -> BotoCoreError:
    if cls is ProxyConnectionError:
        return cls(proxy_url="http://proxy:3128", error="refused")
    if cls is ConnectionClosedError:
        return cls(endpoint_url="https://s3.amazonaws.com")
    return cls(endpoint_url="https://s3.amazonaws.com", error="boom")


TRANSPORT_ERRORS = [
    EndpointConnectionError,
    ConnectTimeoutError,
    ReadTimeoutError,
    ConnectionClosedError,
    ProxyConnectionError,
]
LOCAL_ERRORS: list[BaseException] = [
    NoCredentialsError(),
    PartialCredentialsError(provider="env", cred_var="AWS_SECRET_ACCESS_KEY"),
    ParamValidationError(report="Missing required parameter in input: Bucket"),
    NoRegionError(),
    UnknownServiceError(service_name="nope", known_service_names="s3"),
    CircuitBreakerOpen(circuit_name="s3/x", service="s3", operation="Get", retry_after=1.0),
    ValueError("a bug in a handler"),
    KeyError("x"),
]


# -- statuses and codes ---------------------------------------------------------------------


def test_failure_statuses_are_the_contract_list() -> None:
    assert set(FAILURE_STATUSES) == set(CONTRACT_STATUSES)


def test_failure_codes_cover_the_contract_and_botocore_throttling() -> None:
    assert set(CONTRACT_CODES) <= FAILURE_CODES
    assert set(BOTOCORE_THROTTLING_CODES) <= FAILURE_CODES
    assert not set(SERVICE_ANSWERED_CODES) & FAILURE_CODES


def test_failure_codes_include_everything_botocore_calls_throttling() -> None:
    # If botocore learns a new throttling code, it must count against the circuit too.
    from botocore.retries import standard

    assert set(standard.ThrottledRetryableChecker._THROTTLED_ERROR_CODES) <= FAILURE_CODES
    assert set(standard.TransientRetryableChecker._TRANSIENT_ERROR_CODES) <= FAILURE_CODES


@pytest.mark.parametrize("status", CONTRACT_STATUSES)
def test_failure_status(status: int) -> None:
    assert is_failure_status(status)
    assert judge_response(status, None) is Outcome.FAILURE
    assert is_retryable_attempt(status, None, None)


@pytest.mark.parametrize("status", HEALTHY_STATUSES)
def test_not_a_failure_status(status: int) -> None:
    assert not is_failure_status(status)
    assert judge_response(status, None) is Outcome.SUCCESS
    assert not is_retryable_attempt(status, None, None)


def test_no_status_is_not_a_failure_status() -> None:
    assert not is_failure_status(None)


@pytest.mark.parametrize("code", CONTRACT_CODES + BOTOCORE_THROTTLING_CODES)
def test_failure_code(code: str) -> None:
    assert is_failure_code(code)
    # The code decides even when the status alone would not (e.g. a 400 Throttling).
    assert judge_response(400, code) is Outcome.FAILURE
    assert judge_response(503, code) is Outcome.FAILURE
    assert is_retryable_attempt(400, code, None)


@pytest.mark.parametrize("code", SERVICE_ANSWERED_CODES)
def test_the_service_answered(code: str) -> None:
    assert not is_failure_code(code)
    for status in (400, 403, 404, 409, 412):
        assert judge_response(status, code) is Outcome.SUCCESS
    assert not is_retryable_attempt(404, code, None)


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (404, "NoSuchKey"),
        (404, "NoSuchBucket"),
        (403, "AccessDenied"),
        (400, "InvalidRequest"),
        (400, "InvalidArgument"),
        (400, "MalformedXML"),
        (400, "InvalidBucketName"),
        (200, None),
        (204, None),
        (304, None),
    ],
)
def test_judge_response_success(status: int, code: Optional[str]) -> None:
    assert judge_response(status, code) is Outcome.SUCCESS


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (503, "SlowDown"),
        (503, "ServiceUnavailable"),
        (500, "InternalError"),
        (400, "RequestTimeout"),
        (400, "Throttling"),
        (400, "ThrottlingException"),
        (400, "ProvisionedThroughputExceededException"),
        (429, "TooManyRequests"),
        (408, "ClientTimeout"),
        (502, None),
        (504, None),
    ],
)
def test_judge_response_failure(status: int, code: Optional[str]) -> None:
    assert judge_response(status, code) is Outcome.FAILURE


def test_error_code_of_a_parsed_response() -> None:
    assert error_code({"Error": {"Code": "SlowDown", "Message": "x"}}) == "SlowDown"
    assert error_code({"Error": {"Message": "no code"}}) is None
    assert error_code({"Error": {"Code": 503}}) is None
    assert error_code({"Error": {}}) is None
    assert error_code({"ResponseMetadata": {}}) is None
    assert error_code({}) is None
    assert error_code(None) is None


# -- exceptions -----------------------------------------------------------------------------


@pytest.mark.parametrize("cls", TRANSPORT_ERRORS)
def test_transport_errors_are_failures(cls: type[BotoCoreError]) -> None:
    error = endpoint_error(cls)
    assert is_failure_exception(error)
    assert judge_exception(error) is Outcome.FAILURE
    assert is_retryable_attempt(None, None, error)


@pytest.mark.parametrize("error", LOCAL_ERRORS, ids=lambda e: type(e).__name__)
def test_errors_before_sending_are_not_counted(error: BaseException) -> None:
    assert not is_failure_exception(error)
    assert judge_exception(error) is Outcome.NOT_COUNTED
    assert not is_retryable_attempt(None, None, error)


def test_a_client_error_raised_as_an_exception_is_not_a_transport_failure() -> None:
    error = ClientError({"Error": {"Code": "SlowDown"}}, "GetObject")
    assert judge_exception(error) is Outcome.NOT_COUNTED


def test_the_rejection_is_not_something_botocore_would_retry() -> None:
    from botocore.exceptions import ConnectionError as BotoConnectionError
    from botocore.exceptions import HTTPClientError

    rejection = LOCAL_ERRORS[5]
    assert isinstance(rejection, BotoCoreError)
    assert not isinstance(rejection, (BotoConnectionError, HTTPClientError))


def test_an_exception_decides_over_the_status() -> None:
    # A caught exception means there is no response, whatever the arguments say.
    assert not is_retryable_attempt(503, "SlowDown", NoCredentialsError())
    assert is_retryable_attempt(200, None, endpoint_error(ReadTimeoutError))


# -- does botocore already retry it? ---------------------------------------------------------


@pytest.fixture(scope="module")
def operation_model() -> Any:
    session = botocore.session.Session()
    return session.get_service_model("s3").operation_model("GetObject")


def retry_context(
    operation_model: Any,
    status: Optional[int] = None,
    code: Optional[str] = None,
    exception: Optional[BaseException] = None,
) -> RetryContext:
    http = parsed = None
    if status is not None:
        http = AWSResponse("https://bucket.s3.amazonaws.com/key", status, {}, None)
        parsed = {"ResponseMetadata": {"HTTPStatusCode": status}}
        if code is not None:
            parsed["Error"] = {"Code": code, "Message": "details that must not be logged"}
    return RetryContext(
        attempt_number=1,
        operation_model=operation_model,
        parsed_response=parsed,
        http_response=http,
        caught_exception=exception,
        request_context={},
    )


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (503, "SlowDown"),
        (503, None),
        (503, "ServiceUnavailable"),
        (500, "InternalError"),
        (502, None),
        (504, None),
        (400, "Throttling"),
        (400, "ThrottlingException"),
        (400, "RequestTimeout"),
        (400, "ProvisionedThroughputExceededException"),
        (429, "TooManyRequestsException"),
        (429, "SlowDown"),
    ],
)
def test_botocore_retries_these(operation_model: Any, status: int, code: Optional[str]) -> None:
    assert botocore_retries(retry_context(operation_model, status, code))


@pytest.mark.parametrize("cls", TRANSPORT_ERRORS)
def test_botocore_retries_connection_errors(operation_model: Any, cls: type) -> None:
    assert botocore_retries(retry_context(operation_model, exception=endpoint_error(cls)))


@pytest.mark.parametrize(("status", "code"), [(429, "TooManyRequests"), (429, None)])
def test_a_bare_429_is_whatever_this_botocore_says(
    operation_model: Any, status: int, code: Optional[str]
) -> None:
    # botocore 1.31-1.43 leave a bare 429 to us; 1.44 added a checker that retries it.
    # We must agree with the botocore we run on, never keep our own copy of its rules.
    from botocore.retries.standard import StandardRetryConditions

    context = retry_context(operation_model, status, code)
    itself = StandardRetryConditions(max_attempts=10).is_retryable(context)
    assert botocore_retries(context) == itself


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (408, "ClientTimeout"),  # a gap the plugin fills, on every botocore we support
        (408, None),
        (404, "NoSuchKey"),
        (403, "AccessDenied"),
        (400, "MalformedXML"),
        (200, None),
    ],
)
def test_botocore_does_not_retry_these(
    operation_model: Any, status: int, code: Optional[str]
) -> None:
    assert not botocore_retries(retry_context(operation_model, status, code))


def test_botocore_does_not_retry_local_errors(operation_model: Any) -> None:
    assert not botocore_retries(retry_context(operation_model, exception=NoCredentialsError()))


# -- the gaps: what botocore could not classify ----------------------------------------------


def codecommit_list_repositories() -> Any:
    session = botocore.session.Session()
    return session.get_service_model("codecommit").operation_model("ListRepositories")


def test_a_modeled_error_code_is_modeled() -> None:
    # CodeCommit's ListRepositories declares InvalidOrderException (a shape without a
    # modeled code: the shape's name is the code).
    operation = codecommit_list_repositories()
    assert is_modeled_error(retry_context(operation, 429, "InvalidOrderException"))
    assert not is_modeled_error(retry_context(operation, 429, "TooManyRequests"))
    assert not is_modeled_error(retry_context(operation, 429, None))


def test_a_modeled_code_is_matched_by_its_modeled_code_too(operation_model: Any) -> None:
    # S3 GetObject declares NoSuchKey; an unknown code and a bare status are not modeled.
    assert is_modeled_error(retry_context(operation_model, 404, "NoSuchKey"))
    assert not is_modeled_error(retry_context(operation_model, 404, "404"))
    assert not is_modeled_error(retry_context(None, 404, "NoSuchKey"))  # type: ignore[arg-type]


def test_a_429_with_a_modeled_code_is_no_gap() -> None:
    # Issue 10, item 3: botocore classified it (and declines to retry it on 1.44); we must
    # not retry it either, on any botocore.
    context = retry_context(codecommit_list_repositories(), 429, "InvalidOrderException")
    assert not botocore_retries(context)
    assert not is_gap(context)


@pytest.mark.parametrize(("status", "code"), [(408, "ClientTimeout"), (408, None), (408, "408")])
def test_a_bare_408_is_a_gap(operation_model: Any, status: int, code: Optional[str]) -> None:
    assert is_gap(retry_context(operation_model, status, code))


@pytest.mark.parametrize(("status", "code"), [(429, "TooManyRequests"), (429, None)])
def test_a_bare_429_is_a_gap_only_where_botocore_has_one(
    operation_model: Any, status: int, code: Optional[str]
) -> None:
    context = retry_context(operation_model, status, code)
    assert is_gap(context) == (not botocore_retries(context))


@pytest.mark.parametrize(
    ("status", "code"),
    [(503, "SlowDown"), (500, None), (400, "Throttling"), (404, "NoSuchKey"), (403, None)],
)
def test_no_gap_where_botocore_retries_or_the_service_answered(
    operation_model: Any, status: int, code: Optional[str]
) -> None:
    assert not is_gap(retry_context(operation_model, status, code))


def test_no_gap_for_exceptions(operation_model: Any) -> None:
    assert not is_gap(retry_context(operation_model, exception=endpoint_error(ReadTimeoutError)))
    assert not is_gap(retry_context(operation_model, exception=NoCredentialsError()))


def test_asking_botocore_leaves_the_request_context_alone(operation_model: Any) -> None:
    # botocore's max-attempts checker records its limit in the request context, from where it
    # goes into the next attempt's amz-sdk-request header: asking must not change it.
    context = retry_context(operation_model, 408, None)
    context.request_context["retries"] = {"attempt": 1, "max": 4, "invocation-id": "x"}
    assert is_gap(context)
    assert not botocore_retries(context)
    assert context.request_context["retries"] == {"attempt": 1, "max": 4, "invocation-id": "x"}


# -- describing an attempt for logs ---------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "code", "exception", "expected"),
    [
        (503, "SlowDown", None, "503 SlowDown"),
        (429, None, None, "429"),
        (None, "Throttling", None, "Throttling"),
        (None, None, None, "unknown"),
        (None, None, endpoint_error(EndpointConnectionError), "EndpointConnectionError"),
        (None, None, endpoint_error(ReadTimeoutError), "ReadTimeoutError"),
        (503, "SlowDown", endpoint_error(ConnectTimeoutError), "ConnectTimeoutError"),
    ],
)
def test_describe_attempt(
    status: Optional[int], code: Optional[str], exception: Any, expected: str
) -> None:
    assert describe_attempt(status, code, exception) == expected


def test_describe_attempt_never_includes_messages() -> None:
    secret = "AKIAIOSFODNN7EXAMPLE/wJalrXUtnFEMI?X-Amz-Signature=deadbeef"
    errors: list[BaseException] = [
        EndpointConnectionError(endpoint_url=f"https://s3.amazonaws.com/{secret}", error=secret),
        ReadTimeoutError(endpoint_url=f"https://x/{secret}", error=secret),
        NoCredentialsError(),
        ValueError(secret),
        ClientError({"Error": {"Code": "AccessDenied", "Message": secret}}, "GetObject"),
    ]
    for error in errors:
        description = describe_attempt(None, None, error)
        assert description == type(error).__name__
        assert secret not in description
        assert "amazonaws" not in description
    assert describe_attempt(403, "AccessDenied", None) == "403 AccessDenied"


# -- what a bare HTTPClientError wraps ------------------------------------------------------


def _wrapped(error: object) -> BaseException:
    from botocore.exceptions import HTTPClientError

    return HTTPClientError(error=error)


@pytest.mark.parametrize(
    "inner",
    [
        ClientError({"Error": {"Code": "AccessDenied"}}, "UploadPart"),
        ClientError({"Error": {"Code": "SlowDown"}}, "UploadPart"),
        endpoint_error(ReadTimeoutError),  # a sibling's transport fault, re-raised by its part
    ],
    ids=["403 of a sibling", "503 of a sibling", "timeout of a sibling"],
)
def test_a_cancelled_part_is_not_counted_nor_retried_by_the_plugin(inner: BaseException) -> None:
    # s3transfer re-raises the failed part's error from the other parts' body read().
    error = _wrapped(inner)
    assert judge_exception(error) is Outcome.NOT_COUNTED
    assert not is_retryable_attempt(None, None, error)


def test_a_cancellation_is_not_counted() -> None:
    from concurrent.futures import CancelledError

    from s3transfer.exceptions import FatalError

    assert judge_exception(_wrapped(CancelledError("cancelled"))) is Outcome.NOT_COUNTED
    assert judge_exception(_wrapped(FatalError("fatal"))) is Outcome.NOT_COUNTED
    assert judge_exception(_wrapped(ValueError("the caller's own bug"))) is Outcome.NOT_COUNTED


@pytest.mark.parametrize(
    "inner",
    [
        ConnectionResetError(104, "reset"),
        __import__("ssl").SSLError("bad record mac"),
        __import__("http.client").client.RemoteDisconnected("gone"),
        __import__("urllib3").exceptions.ProtocolError("broken"),
        TimeoutError(),
        "a message only",
    ],
    ids=["reset", "ssl", "http.client", "urllib3", "timeout", "no exception"],
)
def test_a_wrapped_transport_fault_counts(inner: object) -> None:
    error = _wrapped(inner)
    assert judge_exception(error) is Outcome.FAILURE
    assert is_retryable_attempt(None, None, error)
