"""Shared pieces of the benchmarks: a stubbed transport, clients, and honest statistics.

Not a test module and not part of the package: ``bench/*.py`` import it as a sibling.
"""

from __future__ import annotations

import platform
import statistics
import sys
import time
from collections.abc import Sequence
from typing import Any, Callable, Optional

import boto3
import botocore
from botocore.config import Config

from botocore_resilience.testing._stub import StubTransport

REGION = "us-east-1"
CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
# Never contacted: the stub answers every request before it would be sent.
UNREACHABLE = "http://127.0.0.1:9"
# The same explicit client config everywhere, so bare botocore and the plugin run the
# same retry machinery (adaptive mode is also what the plugin would choose by default).
CONFIG = Config(retries={"mode": "adaptive", "total_max_attempts": 4})

_HEAD_OBJECT_HEADERS = {
    "Content-Length": "5",
    "Content-Type": "binary/octet-stream",
    "ETag": '"5d41402abc4b2a76b9719d911017c592"',
    "Last-Modified": "Tue, 01 Jul 2025 12:00:00 GMT",
    "x-amz-request-id": "0000000000000000",
    "Accept-Ranges": "bytes",
}


answer_head_object = StubTransport(200, headers=_HEAD_OBJECT_HEADERS)
"""A ``before-send`` handler: a 200 for S3 ``HeadObject``, nothing sent."""


def stubbed_client(session: Optional[Any] = None, config: Config = CONFIG) -> Any:
    """An S3 client whose transport is the stub (registered last: our handlers run first)."""
    session = session or boto3.Session(region_name=REGION, **CREDENTIALS)
    client = session.client(
        "s3", endpoint_url=UNREACHABLE, config=config.merge(Config(s3={"addressing_style": "path"}))
    )
    client.meta.events.register_last("before-send.s3", answer_head_object)
    return client


def per_call(fn: Callable[[], Any], calls: int) -> float:
    """Seconds per call of ``fn``, over ``calls`` calls."""
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - start) / calls


def summary(values: Sequence[float]) -> str:
    """``median [min .. max]`` with the interquartile range, for a spread reported honestly."""
    ordered = sorted(values)
    q = statistics.quantiles(ordered, n=4) if len(ordered) >= 2 else [ordered[0]] * 3
    return (
        f"median {statistics.median(ordered):.4g}  "
        f"IQR [{q[0]:.4g} .. {q[2]:.4g}]  range [{ordered[0]:.4g} .. {ordered[-1]:.4g}]"
    )


def machine() -> str:
    import os

    return (
        f"Python {platform.python_version()} ({platform.python_implementation()}), "
        f"botocore {botocore.__version__}, boto3 {boto3.__version__}, "
        f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPUs, "
        f"{platform.processor() or 'unknown processor'}; argv: {' '.join(sys.argv)}"
    )
