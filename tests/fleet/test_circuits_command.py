"""``python -m botocore_resilience circuits`` against a real ``redis-server``."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from typing import Any

from botocore_resilience.cli import main
from botocore_resilience.store import open_store, parse_state_url

from .redis_servers import RedisServer

PASSWORD = "op-s3cret-77"


def _run(*argv: str, url: Any) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    environ = {"BOTOCORE_RESILIENCE_STATE_URL": url} if url else {}
    status = main(["circuits", *argv], environ=environ, stdout=out, stderr=err)
    return status, out.getvalue(), err.getvalue()


def test_list_open_and_close_act_on_the_fleet(tmp_path: Any) -> None:
    server = RedisServer(str(tmp_path), password=PASSWORD).start()
    try:
        store = open_store(parse_state_url(server.url), 2.0)
        for _ in range(5):
            store.add_failure("s3/us-east-1", 0)
        store.move("s3/us-east-1", 0, "open", "503", 60.0, False)
        store.add_failure("dynamodb/eu-west-1", 0)

        status, out, err = _run(url=server.url)
        assert status == 0, err
        lines = out.splitlines()
        assert lines[0].split() == ["name", "state", "failures", "next", "probe", "(s)"]
        rows = {line.split()[0]: line.split()[1:] for line in lines[1:]}
        assert rows["dynamodb/eu-west-1"] == ["closed", "1", "-"]
        assert rows["s3/us-east-1"][:2] == ["open", "5"]
        assert 0 < float(rows["s3/us-east-1"][2]) <= 60

        status, out, _ = _run("close", "s3/us-east-1", url=server.url)
        assert status == 0
        assert store.load("s3/us-east-1").state == "closed"
        status, out, _ = _run("open", "dynamodb/eu-west-1", "--json", url=server.url)
        assert status == 0
        assert json.loads(out) == [
            {
                "name": "dynamodb/eu-west-1",
                "state": "open (forced)",
                "failures": 1,
                "next_probe_in": None,
                "probes_in_flight": 0,
            }
        ]
        assert not store.admit("dynamodb/eu-west-1", 1, 60, "t").granted  # no probe, ever
        store.close()
    finally:
        server.stop()


def test_without_a_store_it_says_so(tmp_path: Any) -> None:
    status, _out, err = _run(url=None)
    assert status == 2
    assert "BOTOCORE_RESILIENCE_STATE_URL" in err
    status, _, err = _run("open", url="redis://localhost:1")
    assert status == 2
    assert "NAME" in err


def test_an_unreachable_store_exits_1_without_showing_the_password(tmp_path: Any) -> None:
    server = RedisServer(str(tmp_path), password=PASSWORD)  # never started: refused
    status, out, err = _run(url=server.url)
    assert status == 1
    assert "unavailable (connection)" in err
    assert PASSWORD not in out + err


def test_the_module_runs_as_a_command(redis_server: RedisServer) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "botocore_resilience", "circuits", "open", "s3/x"],
        env={"BOTOCORE_RESILIENCE_STATE_URL": redis_server.url, "PATH": ""},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "open (forced)" in result.stdout
