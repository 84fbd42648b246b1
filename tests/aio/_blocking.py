"""Catch blocking calls made by the plugin on the event loop's thread, by instrumentation.

:class:`BlockingCallWatch` installs a ``sys.setprofile`` hook on the current thread (the
one ``asyncio.run`` drives the loop on). For every call into something that can block
the thread (sleeping, socket I/O, ``select``, waiting on a thread's condition, event,
queue or future), it walks the stack and records the call if any frame below it runs
code of ``botocore_resilience`` (outside its ``testing`` package). It also counts how
often the plugin's event handlers were entered, so a test can show the watch saw them.

No timing is involved: a handler that *would* block for a microsecond is caught like
one that blocks for a minute.
"""

from __future__ import annotations

import os
import select
import socket
import sys
import threading
import time
from types import FrameType
from typing import Any, Optional

import botocore_resilience
from botocore_resilience.handlers import EventHandlers

_PACKAGE = os.path.dirname(botocore_resilience.__file__) + os.sep
_TESTING = os.path.join(_PACKAGE, "testing") + os.sep

# C functions that block the calling thread.
_BLOCKING_BUILTINS = {time.sleep, select.select}
_SOCKET_METHODS = {"connect", "connect_ex", "send", "sendall", "sendto", "recv", "recv_into"}
# Python functions that wait on another thread or on the network: (file name ending, name).
_BLOCKING_FUNCTIONS = {
    ("threading.py", "wait"),  # Condition.wait, Event.wait
    ("threading.py", "join"),
    ("queue.py", "get"),
    ("queue.py", "put"),
    ("_base.py", "result"),  # concurrent.futures.Future.result
    ("socket.py", "create_connection"),
    ("socket.py", "getaddrinfo"),
}
_HANDLER_CODES = {
    getattr(EventHandlers, name).__code__
    for name in dir(EventHandlers)
    if name.startswith("on_") and callable(getattr(EventHandlers, name))
}


def _ours(frame: Optional[FrameType]) -> Optional[str]:
    """The first frame of the plugin (not its testing kit) on the stack, as ``file:function``."""
    while frame is not None:
        filename = frame.f_code.co_filename
        if filename.startswith(_PACKAGE) and not filename.startswith(_TESTING):
            return f"{os.path.basename(filename)}:{frame.f_code.co_name}"
        frame = frame.f_back
    return None


def _describe_blocking(event: str, frame: FrameType, arg: Any) -> Optional[str]:
    if event == "c_call":
        if arg in _BLOCKING_BUILTINS:
            return f"{arg.__module__}.{arg.__name__}"
        owner = getattr(arg, "__self__", None)
        if isinstance(owner, socket.socket) and arg.__name__ in _SOCKET_METHODS:
            return f"socket.{arg.__name__}"
        return None
    if event == "call":
        code = frame.f_code
        for ending, name in _BLOCKING_FUNCTIONS:
            if code.co_name == name and code.co_filename.endswith(ending):
                return f"{ending}:{name}"
    return None


class BlockingCallWatch:
    """``with BlockingCallWatch() as watch:`` ... ``watch.blocking`` lists what blocked."""

    def __init__(self) -> None:
        self.blocking: list[str] = []
        self.handler_calls = 0
        self._thread = threading.get_ident()
        self._previous: Any = None

    def _profile(self, frame: FrameType, event: str, arg: Any) -> None:
        if event == "call" and frame.f_code in _HANDLER_CODES:
            self.handler_calls += 1
            return
        if event not in ("call", "c_call"):
            return
        what = _describe_blocking(event, frame, arg)
        if what is None:
            return
        # For a c_call the frame is the caller's; for a call it is the callee's own.
        where = _ours(frame if event == "c_call" else frame.f_back)
        if where is not None:
            self.blocking.append(f"{what} from {where}")

    def __enter__(self) -> BlockingCallWatch:
        self._previous = sys.getprofile()
        sys.setprofile(self._profile)
        return self

    def __exit__(self, *exc: object) -> None:
        sys.setprofile(self._previous)
