"""Fleet tests: real ``redis-server`` processes (and a real three-master cluster) on loopback.

Skipped as a whole when ``redis-server`` or redis-py is missing (``.ci/run`` installs both).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from .redis_servers import RedisCluster, RedisServer, redis_available

try:
    import redis  # noqa: F401

    _HAVE_REDIS_PY = True
except ImportError:  # pragma: no cover - the test extra installs it
    _HAVE_REDIS_PY = False

# Without redis-server or redis-py (both come with .ci/run and the test extra) there is
# nothing real to test against: the fleet tests are not collected.
if not (_HAVE_REDIS_PY and redis_available()):  # pragma: no cover
    collect_ignore_glob = ["test_*.py"]


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A fresh ``redis-server`` for one test (starting one takes a few milliseconds)."""
    server = RedisServer(str(tmp_path)).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisCluster]:
    """One real three-master Redis Cluster for the whole session."""
    cluster = RedisCluster(str(tmp_path_factory.mktemp("cluster"))).start()
    yield cluster
    cluster.stop()
