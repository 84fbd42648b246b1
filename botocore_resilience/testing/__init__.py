"""Test tools for code that calls AWS through botocore: real faults, no waiting.

* :class:`LocalS3`: a real S3 (moto's server) on ``127.0.0.1``, with injected
  error responses, added latency, connection refusal (stop/start on the same
  port) and a count of the requests that reached it. Needs the ``testing``
  extra (``pip install 'botocore-resilience[testing]'``).
* :class:`FaultInjector`: faults for any botocore client or session, injected
  inside botocore's retry loop (also under ``moto.mock_aws``).
* :func:`no_backoff`: botocore (and aiobotocore) retries without sleeping, while a block runs.
* :class:`FakeClock`: time that moves only when a test says so.
* pytest fixtures (loaded automatically when this package is installed):
  ``resilience_local_s3``, ``resilience_s3_bucket``, ``resilience_fault_injector``,
  ``resilience_no_backoff``, ``resilience_fake_clock``, and for async tests
  ``resilience_aio_session``, ``resilience_aioboto3_session`` (with
  :meth:`LocalS3.aio_client`).

>>> from botocore.config import Config
>>> from botocore_resilience.testing import LocalS3, SLOW_DOWN, no_backoff
>>> with LocalS3() as s3, no_backoff() as skipped:  # doctest: +SKIP
...     client = s3.client(config=Config(retries={"mode": "standard", "total_max_attempts": 4}))
...     bucket = s3.create_bucket()
...     s3.inject(SLOW_DOWN, times=3)
...     client.head_bucket(Bucket=bucket)["ResponseMetadata"]["RetryAttempts"]
3
>>> len(skipped.delays)  # doctest: +SKIP
3

Importing this package imports neither moto nor werkzeug; :class:`LocalS3`
imports them when it first starts.
"""

from __future__ import annotations

from ._backoff import SkippedBackoff, no_backoff
from ._clock import FakeClock
from ._counter import RecordedRequest, RequestCounter
from ._faults import (
    ACCESS_DENIED,
    BAD_GATEWAY,
    CLIENT_TIMEOUT,
    CONNECT_TIMEOUT,
    CONNECTION_CLOSED,
    DROPPED_BODY,
    ENDPOINT_CONNECTION_ERROR,
    GATEWAY_TIMEOUT,
    INTERNAL_ERROR,
    PROVISIONED_THROUGHPUT_EXCEEDED,
    READ_TIMEOUT,
    REQUEST_TIMEOUT,
    SERVICE_UNAVAILABLE,
    SLOW_DOWN,
    STALLED_BODY,
    THROTTLING,
    THROTTLING_EXCEPTION,
    TOO_MANY_REQUESTS,
    BodyFault,
    ConnectionFault,
    Fault,
    HTTPFault,
)
from ._hold import Hold
from ._injector import FaultInjector
from ._local_s3 import LocalS3
from ._rules import FaultRule

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
    "FakeClock",
    "Fault",
    "FaultInjector",
    "FaultRule",
    "HTTPFault",
    "Hold",
    "LocalS3",
    "RecordedRequest",
    "RequestCounter",
    "SkippedBackoff",
    "no_backoff",
]
