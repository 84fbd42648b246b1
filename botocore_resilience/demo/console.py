"""The demo's screen: timeline lines and, on a terminal, a live status line under them."""

from __future__ import annotations

import itertools
import shutil
import threading
import time
from typing import TextIO

__all__ = ["Console", "format_duration", "isatty"]


class Console:
    """Timeline lines and, on a terminal, a live status line under them. Thread-safe."""

    _STYLES = {"bold": "1", "dim": "2", "red": "31", "green": "32", "yellow": "33", "cyan": "36"}

    def __init__(self, stream: TextIO, *, color: bool, live: bool) -> None:
        self._stream = stream
        self._color = color
        self._live = live
        self._lock = threading.Lock()
        self._status = ""
        self._spinner = itertools.cycle("|/-\\")
        self.zero = time.monotonic()
        """Where timeline timestamps count from."""

    def paint(self, text: str, style: str) -> str:
        if not self._color or not style:
            return text
        return f"\033[{';'.join(self._STYLES[s] for s in style.split())}m{text}\033[0m"

    def print(self, text: str = "", style: str = "") -> None:
        with self._lock:
            self._write(self.paint(text, style) + "\n")

    def lines(self, lines: list[tuple[str, str]]) -> None:
        """Print ``(text, style)`` pairs, as the report makes them."""
        for text, style in lines:
            self.print(text, style)

    def event(self, text: str, style: str = "") -> None:
        """A timeline line: seconds since :attr:`zero`, then ``text``."""
        self.print(f"{time.monotonic() - self.zero:6.1f}s  " + self.paint(text, style))

    def status(self, text: str) -> None:
        """Redraw the live status line (on a terminal; elsewhere the timeline shows progress)."""
        if self._live:
            with self._lock:
                self._status = f"{next(self._spinner)} {text}"
                self._write("")

    def close(self) -> None:
        with self._lock:
            self._status = ""
            self._write("")

    def _write(self, text: str) -> None:
        if self._live:
            self._stream.write("\r\033[K")  # the old status line goes...
        self._stream.write(text)
        if self._live and self._status:  # ...and comes back under the new text
            width = shutil.get_terminal_size().columns - 1
            self._stream.write(self.paint(self._status[:width], "dim"))
        self._stream.flush()


def isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def format_duration(seconds: float) -> str:
    """``12 us``, ``3.4 ms``, ``1.25 s``: a call's wall time as people read it."""
    if seconds < 1e-3:
        return f"{seconds * 1e6:.0f} us"
    return f"{seconds * 1e3:.1f} ms" if seconds < 1.0 else f"{seconds:.2f} s"
