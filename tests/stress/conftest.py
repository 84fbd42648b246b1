"""Load tests: the shared S3 fixtures are in ``tests/conftest.py``; here, no backoff.

Every test here is bounded in time (``pytest.mark.timeout``): a deadlock fails the test
instead of hanging the run. No test sleeps to move a state machine; threads are lined up
with barriers and events, and time moves only on the fake clock.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Callable

import pytest

from botocore_resilience.testing import no_backoff

WAIT = 30.0  # seconds any cross-thread wait may take before the test calls it a deadlock

Installed = Callable[..., "tuple[Any, Any]"]
"""The type of the ``installed`` fixture (``tests/conftest.py``)."""


@pytest.fixture(autouse=True)
def _no_waits() -> Iterator[None]:
    # botocore's backoff and adaptive mode's token bucket must never make a test wait.
    with no_backoff():
        yield
