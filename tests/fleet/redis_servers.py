"""Real ``redis-server`` processes for the fleet tests: one server, or a three-master cluster.

Each server listens on 127.0.0.1 at a free port, keeps nothing on disk, and can be
killed, hung (``SIGSTOP``), resumed and restarted on the same port, which is what the
tests of "the store fails mid-outage" need. Readiness is waited for with a generous
deadline, never a fixed sleep.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from typing import Optional

__all__ = ["REDIS_SERVER", "RedisCluster", "RedisServer", "free_port", "redis_available"]

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
REDIS_CLI = shutil.which("redis-cli") or "/usr/bin/redis-cli"
_DEADLINE = 30.0
_PORT_TRIES = 5


def redis_available() -> bool:
    return os.access(REDIS_SERVER, os.X_OK) and os.access(REDIS_CLI, os.X_OK)


def free_port(*, cluster: bool = False) -> int:
    """A free loopback port; for a cluster node, one whose bus port (+10000) is free too."""
    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if not cluster:
            return port
        if port <= 55535:
            with socket.socket() as bus:
                try:
                    bus.bind(("127.0.0.1", port + 10000))
                except OSError:
                    continue
            return port


def _ping(port: int, password: Optional[str] = None) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0) as sock:
            if password is not None:
                sock.sendall(f"AUTH {password}\r\n".encode())
                sock.recv(64)
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


class RedisServer:
    """One ``redis-server`` on a free loopback port."""

    def __init__(self, directory: str, *, password: Optional[str] = None, cluster: bool = False):
        self.directory = directory
        self.password = password
        self.cluster = cluster
        self.port = free_port(cluster=cluster)
        self.process: Optional[subprocess.Popen[bytes]] = None
        self._started = False
        self.log = ""

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        """Start it; on its first start, on another free port if this one was taken meanwhile
        (another process may bind a port between ``free_port`` choosing it and redis-server
        binding it: seen with two tox envs running side by side). A restart keeps its port."""
        for attempt in range(_PORT_TRIES):
            if self._launch():
                self._started = True
                return self
            # A restart tries its own port again: clients reconnect to it.
            if not self._started and attempt + 1 < _PORT_TRIES:
                self.port = free_port(cluster=self.cluster)
        raise RuntimeError(f"redis-server on port {self.port} did not start: {self._last_words()}")

    def _last_words(self) -> str:
        try:
            with open(self.log, encoding="utf-8", errors="replace") as log:
                return " | ".join(log.read().strip().splitlines()[-3:])
        except OSError:
            return "(no log)"

    def _launch(self) -> bool:
        """``True`` once it answers; ``False`` if it exited first (its port was taken)."""
        args = [
            REDIS_SERVER,
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--save", "",
            "--appendonly", "no",
            "--dir", self.directory,
            "--loglevel", "warning",
        ]  # fmt: skip
        if self.password:
            args += ["--requirepass", self.password]
        if self.cluster:
            args += [
                "--cluster-enabled", "yes",
                "--cluster-config-file", f"nodes-{self.port}.conf",
                "--cluster-node-timeout", "5000",
            ]  # fmt: skip
        # Its own words on why it stopped, for the error below.
        self.log = os.path.join(self.directory, f"redis-{self.port}.log")
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                args, stdout=log, stderr=subprocess.STDOUT, cwd=self.directory
            )
        deadline = time.monotonic() + _DEADLINE
        while True:
            answered = _ping(self.port, self.password)
            if self.process.poll() is not None:  # exited: whoever answered, it was not ours
                self.process = None
                return False
            if answered:
                return True
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"redis-server on port {self.port} did not answer: {self._last_words()}"
                )
            time.sleep(0.01)

    def kill(self) -> None:
        """SIGKILL, and wait until the port refuses connections."""
        if self.process is not None:
            if self.process.poll() is None:
                os.kill(self.process.pid, signal.SIGCONT)  # a stopped process dies too
                self.process.kill()
            self.process.wait()
            self.process = None

    def hang(self) -> None:
        """SIGSTOP: connections are accepted by the kernel, nothing is ever answered."""
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGCONT)

    def restart(self) -> None:
        self.kill()
        self.start()

    def cli(self, *args: str) -> str:
        auth = ["-a", self.password, "--no-auth-warning"] if self.password else []
        return subprocess.run(
            [REDIS_CLI, "-p", str(self.port), *auth, *args],
            check=True,
            capture_output=True,
            text=True,
            timeout=_DEADLINE,
        ).stdout

    def stop(self) -> None:
        self.kill()


class RedisCluster:
    """Three ``redis-server`` masters joined into a cluster with ``redis-cli --cluster create``."""

    def __init__(self, directory: str) -> None:
        self.nodes = [RedisServer(directory, cluster=True) for _ in range(3)]

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.nodes[0].port}/0?cluster=true"

    def start(self) -> RedisCluster:
        for node in self.nodes:
            node.start()
        create = [REDIS_CLI, "--cluster", "create"]
        create += [f"127.0.0.1:{node.port}" for node in self.nodes]
        create += ["--cluster-replicas", "0", "--cluster-yes"]
        subprocess.run(
            create,
            check=True,
            capture_output=True,
            timeout=_DEADLINE,
        )
        deadline = time.monotonic() + _DEADLINE
        while not all("cluster_state:ok" in node.cli("cluster", "info") for node in self.nodes):
            if time.monotonic() > deadline:
                raise RuntimeError("the redis cluster did not reach cluster_state:ok")
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()
