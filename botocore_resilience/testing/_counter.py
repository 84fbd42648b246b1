"""The local server's record of every request that reached it."""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass
from typing import Optional

from ._faults import HTTPFault

__all__ = ["RecordedRequest", "RequestCounter"]


@dataclass(frozen=True)
class RecordedRequest:
    """One request that reached the local server.

    Attributes:
        method: HTTP method, upper case.
        path: the decoded URL path (``/bucket/key``).
        bucket: the bucket it names, or ``None``.
        key: the object key it names, or ``None``.
        operation: the S3 operation, best effort (``"GetObject"``).
        status: the HTTP status answered, or ``None`` if the server stopped first.
        fault: the fault injected into it, or ``None`` if moto answered.
        added_latency: seconds the server held it back on purpose (``LocalS3.latency``).
        attempt: botocore's attempt number for the logical call (1 for the first try,
            2 for the first retry, ...), from the ``amz-sdk-request`` header, when sent.

    Read them from ``LocalS3.requests``, e.g. the attempts of one retried upload::

        [(r.attempt, r.status) for r in s3.requests.records(operation="PutObject")]
        # [(1, 503), (2, 503), (3, 200)]
    """

    method: str
    path: str
    bucket: Optional[str]
    key: Optional[str]
    operation: str
    status: Optional[int]
    fault: Optional[HTTPFault]
    added_latency: float
    attempt: Optional[int]


class RequestCounter:
    """Counts the requests that reached a :class:`LocalS3` (refused connections never do).

    >>> from botocore_resilience.testing import LocalS3
    >>> with LocalS3() as s3:  # doctest: +SKIP
    ...     s3.client().list_buckets()
    ...     s3.requests.total, s3.requests.count(operation="ListBuckets")
    (1, 1)
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._records: list[RecordedRequest] = []

    def record(self, request: RecordedRequest) -> None:
        with self._lock:
            self._records.append(request)

    @property
    def total(self) -> int:
        """How many requests reached the server since the last :meth:`reset`."""
        with self._lock:
            return len(self._records)

    def count(
        self,
        *,
        operation: Optional[str] = None,
        method: Optional[str] = None,
        bucket: Optional[str] = None,
        faulted: Optional[bool] = None,
    ) -> int:
        """How many matched every given filter (``faulted=True``: only those a fault answered)."""
        return len(self.records(operation=operation, method=method, bucket=bucket, faulted=faulted))

    def records(
        self,
        *,
        operation: Optional[str] = None,
        method: Optional[str] = None,
        bucket: Optional[str] = None,
        faulted: Optional[bool] = None,
    ) -> list[RecordedRequest]:
        """The recorded requests, oldest first, filtered like :meth:`count`."""
        with self._lock:
            records = list(self._records)
        return [
            r
            for r in records
            if (operation is None or r.operation == operation)
            and (method is None or r.method == method.upper())
            and (bucket is None or r.bucket == bucket)
            and (faulted is None or (r.fault is not None) == faulted)
        ]

    def by_operation(self) -> dict[str, int]:
        """``{"GetObject": 4, ...}``."""
        with self._lock:
            return dict(Counter(r.operation for r in self._records))

    def by_method(self) -> dict[str, int]:
        """``{"GET": 4, ...}``."""
        with self._lock:
            return dict(Counter(r.method for r in self._records))

    def reset(self) -> None:
        """Forget every recorded request."""
        with self._lock:
            self._records.clear()

    def __repr__(self) -> str:
        return f"RequestCounter(total={self.total})"
