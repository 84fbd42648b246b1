"""Waiting on events and counts, never on time: the fleet tests' one polling helper."""

from __future__ import annotations

import threading
from typing import Callable


def wait_until(predicate: Callable[[], bool], what: str, deadline: float = 30.0) -> None:
    """Return once ``predicate()`` holds; fail after ``deadline`` seconds (generous: the
    suite must pass on a busy 2-core machine), saying what did not happen."""
    pause = threading.Event()
    for _ in range(int(deadline / 0.01)):
        if predicate():
            return
        pause.wait(0.01)
    raise AssertionError(f"timed out waiting for {what}")
