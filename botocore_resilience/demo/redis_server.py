"""The ``redis-server`` that ``demo --fleet N`` starts for its processes to share."""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from typing import Optional

__all__ = ["DEADLINE", "RedisServer", "missing_parts"]

DEADLINE = 60.0
"""Seconds a wait may take: far above what it needs, so only a hang trips it."""


def missing_parts() -> Optional[str]:
    """What ``--fleet`` needs and is missing, in words, or ``None``."""
    problems = []
    if shutil.which("redis-server") is None:
        problems.append("redis-server (Debian/Ubuntu: apt-get install redis-server)")
    try:
        import redis  # noqa: F401
    except ImportError:
        problems.append("redis-py (pip install 'botocore-resilience[redis]')")
    if not problems:
        return None
    return "demo --fleet needs " + " and ".join(problems) + ": the fleet shares its circuits there."


class RedisServer:
    """A ``redis-server`` of the demo's own: loopback, a free port, nothing kept on disk."""

    def __init__(self) -> None:
        self._directory = tempfile.TemporaryDirectory(prefix="botocore-resilience-demo-")
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = int(probe.getsockname()[1])
        self._process: Optional[subprocess.Popen[bytes]] = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        server = shutil.which("redis-server") or "redis-server"
        args = [server, "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
        args += ["--appendonly", "no", "--dir", self._directory.name, "--loglevel", "warning"]
        self._process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + DEADLINE
        while not self._answers():
            if self._process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"redis-server did not start on port {self.port}")
            time.sleep(0.02)
        return self

    def _answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1.0) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        if self._process is not None:
            self._process.kill()
            self._process.wait()
            self._process = None
        self._directory.cleanup()
