"""FaultInjector: faults inside botocore's retry loop, under moto's mock_aws and against LocalS3.

Every protocol's rendering is checked by botocore's own parser: a client whose
endpoint refuses connections gets a sticky fault, so the injected answer is
the only thing it ever sees.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Callable

import boto3
import botocore.session
import pytest
from botocore.config import Config
from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
)
from moto import mock_aws

from botocore_resilience.testing import (
    CONNECT_TIMEOUT,
    CONNECTION_CLOSED,
    ENDPOINT_CONNECTION_ERROR,
    PROVISIONED_THROUGHPUT_EXCEEDED,
    READ_TIMEOUT,
    SLOW_DOWN,
    THROTTLING,
    THROTTLING_EXCEPTION,
    ConnectionFault,
    FaultInjector,
    HTTPFault,
    LocalS3,
)

pytestmark = pytest.mark.timeout(30)

DUMMY = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
# Nothing listens on port 9 here; any attempt that is *not* answered by the injector fails.
NOWHERE = "http://127.0.0.1:9"


def retries(total: int) -> Config:
    return Config(
        retries={"mode": "standard", "total_max_attempts": total},
        connect_timeout=1,
        read_timeout=5,
    )


@pytest.fixture
def moto() -> Iterator[None]:
    with mock_aws():
        yield


def test_faults_are_attempts_that_botocore_retries_under_mock_aws(moto: None) -> None:
    s3 = boto3.client("s3", region_name="us-east-1", config=retries(4))
    s3.create_bucket(Bucket="bkt")
    with FaultInjector(s3) as faults:
        rule = faults.inject(SLOW_DOWN, times=2, operation="PutObject")

        response = s3.put_object(Bucket="bkt", Key="k", Body=b"v")

        assert response["ResponseMetadata"]["RetryAttempts"] == 2
        assert rule.fired == 2
        assert faults.injected == 2
    assert s3.get_object(Bucket="bkt", Key="k")["Body"].read() == b"v"


def test_a_faulted_attempt_has_no_side_effect_in_moto(moto: None) -> None:
    # botocore calls every before-send handler, moto's included, even after ours answered;
    # the injector hides the request from moto, so nothing is stored.
    s3 = boto3.client("s3", region_name="us-east-1", config=retries(1))
    s3.create_bucket(Bucket="bkt")
    with FaultInjector(s3) as faults:
        faults.inject(SLOW_DOWN, operation="PutObject")
        with pytest.raises(ClientError, match="SlowDown"):
            s3.put_object(Bucket="bkt", Key="k", Body=b"v")

    assert s3.list_objects_v2(Bucket="bkt")["KeyCount"] == 0


def test_json_protocol_faults_under_mock_aws(moto: None) -> None:
    dynamodb = boto3.client("dynamodb", region_name="us-east-1", config=retries(1))
    dynamodb.create_table(
        TableName="tbl",
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    with FaultInjector(dynamodb) as faults:
        faults.inject(PROVISIONED_THROUGHPUT_EXCEEDED, operation="PutItem")
        with pytest.raises(ClientError) as raised:
            dynamodb.put_item(TableName="tbl", Item={"id": {"S": "1"}})

    error = raised.value.response["Error"]
    assert error["Code"] == "ProvisionedThroughputExceededException"
    assert error["Message"] == PROVISIONED_THROUGHPUT_EXCEEDED.message
    assert dynamodb.scan(TableName="tbl")["Count"] == 0


def test_injector_in_front_of_the_local_server(local_s3: LocalS3) -> None:
    client = local_s3.client(config=retries(4))
    bucket = local_s3.create_bucket()
    with FaultInjector(client) as faults:
        faults.inject(READ_TIMEOUT, times=1)
        faults.inject(SLOW_DOWN, times=1)

        response = client.head_bucket(Bucket=bucket)

    assert response["ResponseMetadata"]["RetryAttempts"] == 2
    # Injected attempts are never sent: only the last one reached the server.
    assert [r.attempt for r in local_s3.requests.records()] == [3]


@pytest.fixture
def local_s3() -> Iterator[LocalS3]:
    with LocalS3() as server:
        yield server


@pytest.mark.parametrize(
    ("fault", "error"),
    [
        (ENDPOINT_CONNECTION_ERROR, EndpointConnectionError),
        (CONNECT_TIMEOUT, ConnectTimeoutError),
        (READ_TIMEOUT, ReadTimeoutError),
        (CONNECTION_CLOSED, ConnectionClosedError),
    ],
    ids=lambda v: v.__name__ if isinstance(v, type) else None,
)
def test_connection_faults_are_raised_and_retried(
    moto: None, fault: ConnectionFault, error: type[Exception]
) -> None:
    s3 = boto3.client("s3", region_name="us-east-1", config=retries(1))
    with FaultInjector(s3) as faults:
        faults.inject(fault)
        with pytest.raises(error):
            s3.list_buckets()

    s3 = boto3.client("s3", region_name="us-east-1", config=retries(3))
    with FaultInjector(s3) as faults:
        faults.inject(fault, times=2)
        assert s3.list_buckets()["ResponseMetadata"]["RetryAttempts"] == 2


def client_for(service: str) -> Any:
    return boto3.client(
        service, region_name="us-east-1", endpoint_url=NOWHERE, config=retries(1), **DUMMY
    )


CALLS: dict[str, Callable[[Any], Any]] = {
    "s3": lambda c: c.list_buckets(),  # rest-xml
    "dynamodb": lambda c: c.get_item(TableName="tbl", Key={"id": {"S": "1"}}),  # json
    "sts": lambda c: c.get_caller_identity(),  # query
    "ec2": lambda c: c.describe_regions(),  # ec2
    "lambda": lambda c: c.list_functions(),  # rest-json
    "cloudwatch": lambda c: c.list_metrics(),  # json now, query on botocore 1.31
}


@pytest.mark.parametrize("service", sorted(CALLS))
@pytest.mark.parametrize(
    "fault",
    [THROTTLING_EXCEPTION, HTTPFault(503, "SlowDown", "a <b> & 'c'")],
    ids=["ThrottlingException", "escaped"],
)
def test_every_protocol_parses_the_injected_error(service: str, fault: HTTPFault) -> None:
    client = client_for(service)
    with FaultInjector(client) as faults:
        faults.inject(fault, times=None)
        with pytest.raises(ClientError) as raised:
            CALLS[service](client)
    assert raised.value.response["Error"]["Code"] == fault.code
    assert raised.value.response["Error"]["Message"] == fault.message
    assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == fault.status


def test_a_session_wide_injector_learns_each_protocol() -> None:
    session = boto3.Session(region_name="us-east-1")
    with FaultInjector(session) as faults:
        faults.inject(THROTTLING_EXCEPTION, times=None)
        for service in ("dynamodb", "sts"):
            client = session.client(service, endpoint_url=NOWHERE, config=retries(1), **DUMMY)
            with pytest.raises(ClientError) as raised:
                CALLS[service](client)
            assert raised.value.response["Error"]["Code"] == "ThrottlingException"


def test_session_install_covers_clients_created_afterwards_only() -> None:
    session = boto3.Session(region_name="us-east-1")
    before = session.client("sts", endpoint_url=NOWHERE, config=retries(1), **DUMMY)
    faults = FaultInjector(session)
    faults.inject(THROTTLING, times=None, service="sts")
    after = session.client("sts", endpoint_url=NOWHERE, config=retries(1), **DUMMY)
    s3 = session.client("s3", endpoint_url=NOWHERE, config=retries(1), **DUMMY)

    with pytest.raises(ClientError, match="Throttling"):
        after.get_caller_identity()
    with pytest.raises(EndpointConnectionError):
        before.get_caller_identity()  # not covered: really sent, and refused
    with pytest.raises(EndpointConnectionError):
        s3.list_buckets()  # service="sts" only

    faults.uninstall()
    with pytest.raises(EndpointConnectionError):
        after.get_caller_identity()  # its copy of the handler now does nothing
    faults.uninstall()  # idempotent


def test_a_botocore_session_can_be_the_target() -> None:
    session = botocore.session.get_session()
    with FaultInjector(session) as faults:
        faults.inject(SLOW_DOWN)
        client = session.create_client(
            "s3", region_name="us-east-1", endpoint_url=NOWHERE, config=retries(1), **DUMMY
        )
        with pytest.raises(ClientError, match="SlowDown"):
            client.list_buckets()


def test_sticky_per_operation_faults_leave_other_operations_alone(moto: None) -> None:
    s3 = boto3.client("s3", region_name="us-east-1", config=retries(1))
    s3.create_bucket(Bucket="bkt")
    with FaultInjector(s3) as faults:
        rule = faults.inject(SLOW_DOWN, times=None, operation="GetObject")
        for _ in range(3):
            with pytest.raises(ClientError):
                s3.get_object(Bucket="bkt", Key="k")
        assert s3.list_objects_v2(Bucket="bkt")["KeyCount"] == 0
        assert rule.fired == 3
        assert faults.faults == [rule]
        rule.remove()
        with pytest.raises(ClientError, match="NoSuchKey"):
            s3.get_object(Bucket="bkt", Key="k")


def test_two_injectors_on_one_client_fail_an_attempt_once(moto: None) -> None:
    s3 = boto3.client("s3", region_name="us-east-1", config=retries(4))
    first, second = FaultInjector(s3), FaultInjector(s3)
    first.inject(SLOW_DOWN, times=1)
    second.inject(SLOW_DOWN, times=1)

    assert s3.list_buckets()["ResponseMetadata"]["RetryAttempts"] == 2
    assert (first.injected, second.injected) == (1, 1)
    first.uninstall()
    second.uninstall()


def test_install_is_idempotent_and_targets_are_checked(moto: None) -> None:
    s3 = boto3.client("s3", region_name="us-east-1", config=retries(4))
    faults = FaultInjector(s3).install(s3)
    faults.inject(SLOW_DOWN, times=1)
    assert s3.list_buckets()["ResponseMetadata"]["RetryAttempts"] == 1
    faults.uninstall()
    with pytest.raises(TypeError, match="cannot inject"):
        FaultInjector(object())
    with pytest.raises(TypeError, match="HTTPFault"):
        faults.inject("SlowDown")  # type: ignore[arg-type]


def test_fixture_factory_uninstalls_after_the_test(
    resilience_fault_injector: Callable[..., FaultInjector], moto: None
) -> None:
    s3 = boto3.client("s3", region_name="us-east-1", config=retries(2))
    faults = resilience_fault_injector(s3)
    faults.inject(SLOW_DOWN)
    assert s3.list_buckets()["ResponseMetadata"]["RetryAttempts"] == 1
    assert repr(faults) == "FaultInjector(faults=0, injected=1)"
