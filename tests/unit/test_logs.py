"""The library's logger never raises into its caller, whatever the application's handlers do.

``install()`` logs (typos in variable names, a registry it cannot use, a ``/metrics`` port
already taken) and must still return; the hot path logs too and must never fail a call.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator

import botocore.session
import pytest
from prometheus_client import CollectorRegistry, Counter

import botocore_resilience
from botocore_resilience.logs import log_internal_error, logger

NAME = "botocore_resilience"


class RaisingHandler(logging.Handler):
    """A handler whose ``emit`` raises instead of calling ``handleError``."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.seen: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.seen.append(record)
        raise RuntimeError("this handler is broken")


@pytest.fixture
def raising() -> Iterator[RaisingHandler]:
    handler = RaisingHandler()
    plain = logging.getLogger(NAME)
    saved = plain.level
    plain.addHandler(handler)
    plain.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        plain.removeHandler(handler)
        plain.setLevel(saved)


def test_a_raising_handler_never_reaches_the_caller(raising: RaisingHandler) -> None:
    logger.warning("circuit %s OPEN", "s3/us-east-1", extra={"transition": "t"})
    logger.info("retry %d", 1)
    logger.error("bad %s", "thing", exc_info=True)
    assert [r.getMessage() for r in raising.seen] == [
        "circuit s3/us-east-1 OPEN",
        "retry 1",
        "bad thing",
    ]


def test_records_keep_the_callers_extra_and_location(raising: RaisingHandler) -> None:
    def the_caller() -> None:
        logger.warning("hello", extra={"transition": "t"})

    the_caller()
    (record,) = raising.seen
    assert record.transition == "t"  # type: ignore[attr-defined]
    assert record.funcName == "the_caller"
    assert record.name == NAME


def test_the_logger_is_the_plain_logger_for_everything_but_logging() -> None:
    plain = logging.getLogger(NAME)
    assert logger.name == NAME
    assert logger.handlers is plain.handlers
    assert logger.isEnabledFor(logging.CRITICAL)


def test_internal_errors_are_logged_without_a_second_prefix(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.DEBUG, logger=NAME):
        try:
            raise KeyError("x")
        except KeyError:
            log_internal_error("test_logs: prefix check")
    (record,) = [r for r in caplog.records if r.name == NAME]
    assert not record.getMessage().startswith(NAME)
    assert record.getMessage().startswith("internal error in test_logs: prefix check ignored")


def test_install_never_fails_because_of_the_applications_logging(
    raising: RaisingHandler,
) -> None:
    # Warnings at install time, each through the raising handler: a misspelt variable, a
    # registry that holds a foreign collector under our name, a /metrics port taken.
    foreign = CollectorRegistry()
    Counter("botocore_operations", "not ours", registry=foreign)
    first = botocore_resilience.install(
        botocore.session.Session(),
        registry=foreign,
        environ={"BOTOCORE_RESILIENCE_FAILURE_TRESHOLD": "3"},
    )
    first.uninstall()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        second = botocore_resilience.install(
            botocore.session.Session(),
            registry=CollectorRegistry(),
            environ={},
            metrics_port=port,
            metrics_addr="127.0.0.1",
        )
    second.uninstall()
    messages = [r.getMessage() for r in raising.seen if r.levelno >= logging.WARNING]
    # Each message once, without a "botocore_resilience:" of its own: the logger's name says it.
    typo = "ignoring unknown setting BOTOCORE_RESILIENCE_FAILURE_TRESHOLD (did you mean"
    assert any(m.startswith(typo) for m in messages), messages
    assert any(m.startswith("metrics disabled") for m in messages), messages
    assert not any(m.startswith(NAME) for m in messages), messages
    assert any(f":{port}" in m for m in messages), messages  # could not serve, or already serving
