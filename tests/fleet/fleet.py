"""A fleet of real worker processes (``worker.py``) driven from a test or a bench."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any, Optional

WORKER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "worker.py")
DEADLINE = 60.0


class Worker:
    """One worker process and the events it printed."""

    def __init__(self, index: int, options: dict[str, Any]) -> None:
        self.index = index
        self.key = options["key"]
        env = dict(os.environ)
        env.setdefault("AWS_EC2_METADATA_DISABLED", "true")
        self.process = subprocess.Popen(
            [sys.executable, WORKER, json.dumps(options)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        self.events: queue.Queue[dict[str, Any]] = queue.Queue()
        self.seen: list[dict[str, Any]] = []
        self.stderr: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=self._read_stderr, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            try:
                self.events.put(json.loads(line))
            except ValueError:
                self.stderr.append(line)
        self.events.put({"ev": "exit"})

    def _read_stderr(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.stderr.append(line)

    def send(self, command: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(command + "\n")
        self.process.stdin.flush()

    def wait_for(self, kind: str, deadline: float = DEADLINE, **match: Any) -> dict[str, Any]:
        """The first event of ``kind`` (matching ``match``) not yet consumed; raises if none
        came within ``deadline`` seconds in all (other events arriving meanwhile do not
        extend it: a worker whose circuit keeps moving would otherwise hold a caller forever)."""
        for event in self.seen:
            if event["ev"] == kind and all(event.get(k) == v for k, v in match.items()):
                self.seen.remove(event)
                return event
        end = time.monotonic() + deadline
        while True:
            try:
                event = self.events.get(timeout=max(0.0, end - time.monotonic()))
            except queue.Empty:
                raise AssertionError(
                    f"worker {self.index}: no {kind} {match} in {deadline} s; "
                    f"stderr: {''.join(self.stderr)[-2000:]}"
                ) from None
            if event["ev"] == "exit":
                self.events.put(event)
                raise AssertionError(
                    f"worker {self.index} exited before {kind}: {''.join(self.stderr)[-2000:]}"
                )
            if event["ev"] == kind and all(event.get(k) == v for k, v in match.items()):
                return event
            self.seen.append(event)

    def has(self, kind: str, **match: Any) -> bool:
        """Whether an event of ``kind`` arrived already (consumes nothing)."""
        while True:
            try:
                self.seen.append(self.events.get_nowait())
            except queue.Empty:
                break
        return any(
            e["ev"] == kind and all(e.get(k) == v for k, v in match.items()) for e in self.seen
        )

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        for stream in (self.process.stdin, self.process.stdout, self.process.stderr):
            if stream is not None:
                with suppress(OSError):
                    stream.close()


class Fleet:
    """``size`` workers with the same options (each its own key)."""

    def __init__(self, size: int, options: dict[str, Any], *, key_prefix: str = "w") -> None:
        self.workers = [Worker(i, {**options, "key": f"{key_prefix}{i}"}) for i in range(size)]
        for worker in self.workers:
            worker.wait_for("ready")

    def add(self, options: dict[str, Any], key: str) -> Worker:
        worker = Worker(len(self.workers), {**options, "key": key})
        worker.wait_for("ready")
        self.workers.append(worker)
        return worker

    def send(self, command: str) -> None:
        for worker in self.workers:
            if worker.process.poll() is None:
                worker.send(command)

    def summaries(self, workers: Optional[list[Worker]] = None) -> list[dict[str, Any]]:
        return [worker.wait_for("summary") for worker in (workers or self.workers)]

    def close(self) -> None:
        for worker in self.workers:
            worker.close()


@contextmanager
def fleet(size: int, options: dict[str, Any], **kwargs: Any) -> Iterator[Fleet]:
    made = Fleet(size, options, **kwargs)
    try:
        yield made
    finally:
        made.close()
