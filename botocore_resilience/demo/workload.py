"""The demo's workload: a few threads calling S3 at a steady rate through one client.

Each thread calls ``PutObject``, ``GetObject`` and ``HeadObject`` in turn, on the demo's
keys in turn (so which calls meet a fault on some keys is fixed by the keys, not by
chance), and credits every call to the phase in which it started (:class:`~.tally.Tally`).
"""

from __future__ import annotations

import itertools
import random
import threading
import time
import uuid
from typing import Any, Callable

from ..errors import CircuitBreakerOpen
from ..observers import CIRCUIT_OPEN, ERROR, SUCCESS
from .tally import Tally

__all__ = ["KEYS", "OPERATIONS", "PAYLOAD", "Workload", "call", "make_bucket"]

OPERATIONS = ("PutObject", "GetObject", "HeadObject")
KEYS = tuple(f"demo/object-{i}" for i in range(10))
PAYLOAD = b"hello from botocore-resilience\n"


class Workload:
    """``workers`` threads, ``rate`` calls per second each, until :meth:`stop`."""

    def __init__(
        self,
        client: Any,
        bucket: str,
        tally: Tally,
        *,
        workers: int,
        rate: float,
        on_rejected: Callable[[str, CircuitBreakerOpen, float], None],
        on_unexpected: Callable[[Exception], None],
    ) -> None:
        self._client = client
        self._bucket = bucket
        self._tally = tally
        self._interval = 1.0 / rate
        self._on_rejected = on_rejected
        self._on_unexpected = on_unexpected
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._work, args=(i,), daemon=True) for i in range(workers)
        ]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        for thread in self._threads:
            if thread.is_alive():
                thread.join(timeout=timeout)

    def _work(self, index: int) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        operations = itertools.cycle(OPERATIONS[index % 3 :] + OPERATIONS[: index % 3])
        keys = itertools.cycle(KEYS[index:] + KEYS[:index])
        # Spread the threads out over one interval.
        next_call = time.monotonic() + random.Random(index).random() * self._interval
        while not self._stop.wait(max(0.0, next_call - time.monotonic())):
            operation = next(operations)
            phase = self._tally.start()
            started = time.perf_counter()
            try:
                call(self._client, operation, self._bucket, next(keys))
                result = SUCCESS
            except CircuitBreakerOpen as rejection:
                result = CIRCUIT_OPEN
                self._on_rejected(operation, rejection, time.perf_counter() - started)
            except (BotoCoreError, ClientError):
                result = ERROR
            except Exception as error:  # not botocore's: the demo says so, once per type
                result = ERROR
                self._on_unexpected(error)
            self._tally.record(phase, result, time.perf_counter() - started)
            next_call = max(next_call + self._interval, time.monotonic())


def make_bucket(s3: Any) -> str:
    """A fresh bucket on ``s3`` holding :data:`KEYS`, made without the plugin (setup is not
    part of the show)."""
    bucket: str = s3.create_bucket(f"botocore-resilience-demo-{uuid.uuid4().hex[:8]}")
    setup = s3.client()
    for key in KEYS:
        setup.put_object(Bucket=bucket, Key=key, Body=PAYLOAD)
    return bucket


def call(client: Any, operation: str, bucket: str, key: str) -> None:
    """One S3 call of the workload."""
    if operation == "PutObject":
        client.put_object(Bucket=bucket, Key=key, Body=PAYLOAD)
    elif operation == "GetObject":
        client.get_object(Bucket=bucket, Key=key)["Body"].read()
    else:
        client.head_object(Bucket=bucket, Key=key)
