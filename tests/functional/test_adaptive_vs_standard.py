"""The default retry mode does not hide an outage (docs/explanation/adaptive-mode.md).

In adaptive mode, once throttling has switched its token bucket on, every attempt waits for
a token (0.5 a second at worst) before it is sent, so the breaker hears of each failed call
later: in a sustained SlowDown storm the circuit opened after 37.0 s instead of 19.7 s, for
the same 20 requests (bench/adaptive_vs_standard.py, medians of 3 runs; docs/performance.md).
The plugin's default is therefore standard mode. Asserted here as behaviour, never as time:
how many requests go out before the circuit opens, and how many attempts a token bucket
would have held back (each a wait).
"""

from __future__ import annotations

from typing import Any, Callable

import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from botocore_resilience import CircuitBreakerOpen, CircuitState
from botocore_resilience.testing import SLOW_DOWN, LocalS3, no_backoff

Installed = Callable[..., "tuple[Any, Any]"]
CIRCUIT = "s3/us-east-1"
THRESHOLD = 5
ATTEMPTS = 4


def storm_until_open(s3: LocalS3, installation: Any, client: Any) -> tuple[int, int]:
    """(requests sent, attempts a token bucket held back) until the circuit opened."""
    bucket = s3.create_bucket()
    s3.inject(SLOW_DOWN, times=None)
    with no_backoff() as skipped:
        for _ in range(THRESHOLD):
            with pytest.raises(ClientError):
                client.list_objects_v2(Bucket=bucket)
        assert installation.breakers()[CIRCUIT].state is CircuitState.OPEN
        with pytest.raises(CircuitBreakerOpen):
            client.list_objects_v2(Bucket=bucket)
    return s3.requests.total, skipped.token_waits


def test_the_default_opens_as_standard_mode_does_with_no_attempt_held_back(
    s3: LocalS3, installed: Installed
) -> None:
    installation, client = installed()
    sent, held_back = storm_until_open(s3, installation, client)
    assert sent == THRESHOLD * ATTEMPTS
    assert held_back == 0
    assert client.meta.config.retries == {"mode": "standard", "total_max_attempts": ATTEMPTS}


def test_adaptive_mode_holds_attempts_back_before_the_circuit_hears(
    s3: LocalS3, installed: Installed
) -> None:
    # What the default avoids: the same requests, most of them held back by the bucket
    # first (each a wait of up to 2 s in a real storm), so the opening comes later.
    installation, client = installed(config=Config(retries={"mode": "adaptive"}))
    sent, held_back = storm_until_open(s3, installation, client)
    assert sent == THRESHOLD * ATTEMPTS
    assert held_back >= THRESHOLD * ATTEMPTS // 2
