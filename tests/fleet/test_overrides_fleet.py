"""An operator's ``force_open()`` and ``reset()`` act on the whole fleet.

The operator is a separate process with its own install on the same ``redis-server``;
this process calls the local S3 over HTTP and hears the change through the store (its
``on_transition`` callback), without failing a single call. Waits are on events, with
generous deadlines.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

import botocore_resilience
from botocore_resilience import CircuitBreakerOpen, CircuitState, Transition
from botocore_resilience.testing import LocalS3

from .redis_servers import RedisServer

CIRCUIT = "s3/us-east-1"
WAIT = 60.0

OPERATOR = textwrap.dedent(
    """
    import sys

    import botocore.session
    from prometheus_client import CollectorRegistry

    import botocore_resilience

    url, action = sys.argv[1], sys.argv[2]
    installation = botocore_resilience.install(
        botocore.session.get_session(),
        registry=CollectorRegistry(),
        environ={},
        state_url=url,
        state_timeout=5.0,
    )
    breaker = installation.circuits.breaker_for("s3", "us-east-1", "HeadBucket", "")
    getattr(breaker, action)()
    print(breaker.state.value)
    """
)


def operator(server: RedisServer, action: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", OPERATOR, server.url, action],
        capture_output=True,
        text=True,
        timeout=WAIT,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


class Heard:
    """This process's transitions, waited for by target state."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self.transitions: list[Transition] = []

    def __call__(self, transition: Transition) -> None:
        with self._changed:
            self.transitions.append(transition)
            self._changed.notify_all()

    def wait_for(self, state: CircuitState) -> Transition:
        with self._changed:
            assert self._changed.wait_for(
                lambda: any(t.to_state is state for t in self.transitions), WAIT
            ), self.transitions
            return next(t for t in self.transitions if t.to_state is state)


def test_force_open_and_reset_from_another_process_act_here(
    s3: LocalS3, redis_server: RedisServer
) -> None:
    heard = Heard()
    session = s3.session()
    botocore_resilience.install(
        session,
        registry=CollectorRegistry(),
        environ={},
        state_url=redis_server.url,
        state_timeout=5.0,
        on_transition=heard,
    )
    try:
        client: Any = s3.client(session=session)
        bucket = s3.create_bucket()
        client.head_bucket(Bucket=bucket)  # this process uses the circuit: it listens
        sent = s3.requests.count(operation="HeadBucket")

        assert operator(redis_server, "force_open") == "open"
        opened = heard.wait_for(CircuitState.OPEN)
        assert opened.cause == "forced"
        for _ in range(3):
            with pytest.raises(CircuitBreakerOpen):
                client.head_bucket(Bucket=bucket)
        assert s3.requests.count(operation="HeadBucket") == sent  # nothing sent, no probe

        assert operator(redis_server, "reset") == "closed"
        heard.wait_for(CircuitState.CLOSED)
        client.head_bucket(Bucket=bucket)
        assert s3.requests.count(operation="HeadBucket") == sent + 1
    finally:
        botocore_resilience.uninstall(session)
