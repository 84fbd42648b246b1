"""Requests held at the local S3 server until a test lets them go."""

from __future__ import annotations

import threading

__all__ = ["Hold"]


class Hold:
    """Matching requests wait at the server, their bodies unread, until :meth:`release`.

    Returned by :meth:`LocalS3.hold`. A held request has been received (headers only):
    its client is still sending the body, and blocks once the socket buffers are full.
    That is the moment a test wants when it acts "while the request is in flight",
    reached without sleeping. :meth:`LocalS3.stop` releases every hold.

    >>> hold = Hold()
    >>> hold.held, hold.released
    (0, False)
    >>> hold.release()
    >>> hold.released
    True
    """

    def __init__(self) -> None:
        self._changed = threading.Condition(threading.Lock())
        self._held = 0
        self._released = False

    @property
    def held(self) -> int:
        """Requests waiting now."""
        with self._changed:
            return self._held

    @property
    def released(self) -> bool:
        with self._changed:
            return self._released

    def release(self) -> None:
        """Let every held request (and every later one) go on (idempotent)."""
        with self._changed:
            self._released = True
            self._changed.notify_all()

    def wait_for_held(self, count: int = 1, timeout: float = 10.0) -> bool:
        """Block until at least ``count`` requests are held; ``False`` if ``timeout`` passes."""
        with self._changed:
            return self._changed.wait_for(lambda: self._held >= count, timeout)

    def wait(self, stopping: threading.Event, timeout: float) -> None:
        """Called by the server for a request this hold matches: wait for release, the
        server stopping, or ``timeout`` (a forgotten hold must not keep a thread forever)."""
        with self._changed:
            self._held += 1
            self._changed.notify_all()
            try:
                self._changed.wait_for(lambda: self._released or stopping.is_set(), timeout)
            finally:
                self._held -= 1
                self._changed.notify_all()
