"""Functional tests: real boto3 clients over real HTTP (fixtures in ``tests/conftest.py``)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from botocore_resilience.testing import no_backoff


@pytest.fixture(autouse=True)
def _no_waits() -> Iterator[None]:
    # botocore's backoff and adaptive mode's token bucket must never make a test wait.
    with no_backoff():
        yield
