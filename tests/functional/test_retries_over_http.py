"""Retries over real HTTP: botocore's own retries untouched, its gaps filled, 4xx never retried.

Every test counts what reached the local S3, and checks botocore's own
``ResponseMetadata["RetryAttempts"]``: the plugin must agree with botocore exactly.
"""

from __future__ import annotations

from typing import Any, Callable

import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from botocore_resilience.testing import (
    ACCESS_DENIED,
    CLIENT_TIMEOUT,
    INTERNAL_ERROR,
    SLOW_DOWN,
    TOO_MANY_REQUESTS,
    HTTPFault,
    LocalS3,
    no_backoff,
)

Installed = Callable[..., "tuple[Any, Any]"]


def test_standard_mode_and_four_attempts_by_default(installed: Installed) -> None:
    # Standard, not adaptive: adaptive's token bucket delays the breaker's verdicts
    # (docs/explanation/adaptive-mode.md).
    _, client = installed()
    assert client.meta.config.retries["mode"] == "standard"
    assert client.meta.config.retries["total_max_attempts"] == 4


def test_user_retry_config_wins(installed: Installed) -> None:
    _, client = installed(config=Config(retries={"mode": "standard", "total_max_attempts": 2}))
    assert client.meta.config.retries["mode"] == "standard"
    assert client.meta.config.retries["total_max_attempts"] == 2


def test_aws_retry_mode_in_the_environment_wins(
    installed: Installed, monkeypatch: pytest.MonkeyPatch
) -> None:
    # botocore reads its own environment; the plugin's defaults sit below it.
    monkeypatch.setenv("AWS_RETRY_MODE", "standard")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "2")
    _, client = installed()
    assert client.meta.config.retries == {"mode": "standard", "total_max_attempts": 2}


@pytest.mark.parametrize("fault", [SLOW_DOWN, INTERNAL_ERROR], ids=lambda f: f.code)
def test_botocore_retries_transient_5xx(s3: LocalS3, installed: Installed, fault: Any) -> None:
    _, client = installed()
    bucket = s3.create_bucket()
    s3.inject(fault, times=2)
    response = client.head_bucket(Bucket=bucket)
    assert response["ResponseMetadata"]["RetryAttempts"] == 2
    assert s3.requests.total == 3


@pytest.mark.parametrize("fault", [TOO_MANY_REQUESTS, CLIENT_TIMEOUT], ids=lambda f: f.code)
def test_gaps_botocore_leaves_are_filled(s3: LocalS3, installed: Installed, fault: Any) -> None:
    # botocore alone gives RetryAttempts 0 for a bare 429 TooManyRequests / 408 ClientTimeout.
    _, client = installed()
    bucket = s3.create_bucket()
    s3.inject(fault, times=2)
    response = client.head_bucket(Bucket=bucket)
    assert response["ResponseMetadata"]["RetryAttempts"] == 2
    assert s3.requests.total == 3


def _botocore_retries_alone(client: Any, fault: Any) -> bool:
    # botocore 1.44 started retrying a bare 429 itself; 1.31-1.43 did not.
    from botocore.awsrequest import AWSResponse
    from botocore.retries.standard import RetryContext, StandardRetryConditions

    context = RetryContext(
        attempt_number=1,
        operation_model=client.meta.service_model.operation_model("HeadBucket"),
        http_response=AWSResponse("http://127.0.0.1/", fault.status, {}, None),
        parsed_response={"Error": {"Code": str(fault.status), "Message": ""}},
    )
    return bool(StandardRetryConditions(max_attempts=4).is_retryable(context))


@pytest.mark.parametrize("fault", [TOO_MANY_REQUESTS, CLIENT_TIMEOUT], ids=lambda f: f.code)
def test_without_the_plugin_botocore_alone_decides(s3: LocalS3, fault: Any) -> None:
    # The control for the test above: where this botocore has the gap, it is real; where
    # botocore closed it, botocore retries by itself and the plugin adds nothing.
    client = s3.client(config=Config(retries={"mode": "adaptive", "total_max_attempts": 4}))
    bucket = s3.create_bucket()
    s3.inject(fault, times=1)
    if _botocore_retries_alone(client, fault):  # HEAD errors have no body: code = status
        assert client.head_bucket(Bucket=bucket)["ResponseMetadata"]["RetryAttempts"] == 1
        assert s3.requests.total == 2
        return
    with pytest.raises(ClientError) as raised:
        client.head_bucket(Bucket=bucket)
    assert raised.value.response["ResponseMetadata"]["RetryAttempts"] == 0
    assert s3.requests.total == 1


def test_gap_retries_stop_at_max_attempts(s3: LocalS3, installed: Installed) -> None:
    _, client = installed(max_attempts=3)
    bucket = s3.create_bucket()
    s3.inject(TOO_MANY_REQUESTS, times=None)
    with pytest.raises(ClientError) as raised:
        client.head_bucket(Bucket=bucket)
    assert raised.value.response["ResponseMetadata"]["RetryAttempts"] == 2
    assert s3.requests.total == 3


def test_persistent_5xx_exhausts_max_attempts(s3: LocalS3, installed: Installed) -> None:
    _, client = installed()
    bucket = s3.create_bucket()
    s3.inject(INTERNAL_ERROR, times=None)
    with pytest.raises(ClientError) as raised:
        client.head_bucket(Bucket=bucket)
    assert raised.value.response["ResponseMetadata"]["RetryAttempts"] == 3
    assert s3.requests.total == 4


@pytest.mark.parametrize(
    "fault",
    [ACCESS_DENIED, HTTPFault(400, "InvalidRequest", "bad"), HTTPFault(404, "NoSuchKey", "no")],
    ids=lambda f: f.code,
)
def test_client_errors_are_never_retried(s3: LocalS3, installed: Installed, fault: Any) -> None:
    _, client = installed()
    bucket = s3.create_bucket()
    s3.inject(fault, times=None)
    with pytest.raises(ClientError) as raised:
        client.get_object(Bucket=bucket, Key="k")
    assert raised.value.response["ResponseMetadata"]["RetryAttempts"] == 0
    assert s3.requests.total == 1


def test_legacy_mode_chosen_by_the_user_is_left_whole(s3: LocalS3, installed: Installed) -> None:
    # Legacy mode has its own table (it retries a bare 429 but not a 408): the user chose it,
    # so we add nothing to it.
    _, client = installed(config=Config(retries={"mode": "legacy", "total_max_attempts": 4}))
    bucket = s3.create_bucket()
    s3.inject(CLIENT_TIMEOUT, times=1)
    with pytest.raises(ClientError) as raised:
        client.head_bucket(Bucket=bucket)
    assert raised.value.response["ResponseMetadata"]["RetryAttempts"] == 0
    assert s3.requests.total == 1


def test_a_429_with_a_modeled_error_code_is_not_retried(s3: LocalS3, installed: Installed) -> None:
    # Issue 10, item 3: S3 GetObject models InvalidObjectState. botocore classified the
    # response (a modeled, non-retryable error) and declined: so does the plugin.
    _, client = installed()
    bucket = s3.create_bucket()
    s3.inject(HTTPFault(429, "InvalidObjectState", "archived"), times=None)
    with pytest.raises(ClientError) as raised:
        client.get_object(Bucket=bucket, Key="k")
    assert raised.value.response["ResponseMetadata"]["RetryAttempts"] == 0
    assert s3.requests.total == 1


def test_a_gap_retry_waits_what_botocore_would(s3: LocalS3, installed: Installed) -> None:
    # Issue 11: the wait of a retry the plugin adds is botocore's own backoff on this
    # version; with the jitter at 0 only x-amz-retry-after (honoured by botocore's 2026
    # retry behaviour, ignored before) makes it wait.
    from botocore import configprovider

    _, client = installed()
    bucket = s3.create_bucket()
    s3.inject(HTTPFault(408, "ClientTimeout", headers={"x-amz-retry-after": "1500"}), times=1)
    with no_backoff() as skipped:
        response = client.head_bucket(Bucket=bucket)
    assert response["ResponseMetadata"]["RetryAttempts"] == 1
    new_retries = getattr(configprovider, "NEW_RETRIES_ENABLED", False)
    assert skipped.delays == [1.5 if new_retries else 0.0]
