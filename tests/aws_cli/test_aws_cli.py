"""The real ``aws`` command (AWS CLI v1) against the local S3, with and without the plugin.

Each test runs ``python -m awscli`` in a subprocess, as a user's shell would run ``aws``,
with fake credentials, ``--endpoint-url`` pointing at the local S3, and ``AWS_CONFIG_FILE``
pointing at a config file of its own, whose ``[plugins]`` section names
``botocore_resilience.awscli`` (or does not, for the comparison run). Faults are injected
at the HTTP layer of the local S3, and the server counts what reached it.

awscli pins (and now bundles) its own botocore, so these tests run in a tox env of their
own (``tox -e awscli``); elsewhere they are skipped. The test process never imports
``awscli``: importing it makes ``import botocore`` resolve to the CLI's bundled copy.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Optional

import pytest

from botocore_resilience.testing import CLIENT_TIMEOUT, INTERNAL_ERROR, SLOW_DOWN, LocalS3

if importlib.util.find_spec("awscli") is None:
    pytest.skip("awscli (AWS CLI v1) is not installed: tox -e awscli", allow_module_level=True)

WARNING_OPEN = "WARNING botocore_resilience: circuit s3/us-east-1 OPEN after"
# The CLI may back off for real between attempts (a few seconds at most); never a hang.
TIMEOUT = 120


class AwsCli:
    """Runs ``aws`` against one local S3, with a config file with or without the plugin."""

    def __init__(self, s3: LocalS3, home: Path, *, plugin: bool) -> None:
        self.s3 = s3
        self.config = home / ("config-with-plugin" if plugin else "config-without-plugin")
        lines = [
            "[default]",
            "region = us-east-1",
            "s3 =",
            "    addressing_style = path",
            "    max_concurrent_requests = 1",
        ]
        if plugin:
            lines += ["[plugins]", "resilience = botocore_resilience.awscli"]
        self.config.write_text("\n".join(lines) + "\n")
        self.home = home

    def __call__(self, *args: str, **settings: str) -> subprocess.CompletedProcess[str]:
        """``aws ARGS --endpoint-url ...`` with ``settings`` added to a clean environment."""
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("AWS_", "BOTOCORE_RESILIENCE_"))
        }
        env.update(
            AWS_CONFIG_FILE=str(self.config),
            AWS_SHARED_CREDENTIALS_FILE=str(self.home / "no-credentials"),
            AWS_ACCESS_KEY_ID="testing",
            AWS_SECRET_ACCESS_KEY="testing",
            AWS_EC2_METADATA_DISABLED="true",
            AWS_PAGER="",
            **settings,
        )
        return subprocess.run(
            [sys.executable, "-m", "awscli", *args, "--endpoint-url", self.s3.endpoint_url],
            env=env,
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
        )


@pytest.fixture
def aws(s3: LocalS3, tmp_path: Path) -> AwsCli:
    return AwsCli(s3, tmp_path, plugin=True)


@pytest.fixture
def aws_without_plugin(s3: LocalS3, tmp_path: Path) -> AwsCli:
    return AwsCli(s3, tmp_path, plugin=False)


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.strip()]


# -- a bare 408 ------------------------------------------------------------------------------


def test_a_bare_408_is_retried_with_the_plugin(aws: AwsCli, s3: LocalS3) -> None:
    bucket = s3.create_bucket()
    s3.inject(CLIENT_TIMEOUT, times=1)

    done = aws("s3api", "list-objects-v2", "--bucket", bucket)

    assert done.returncode == 0, done.stderr
    assert s3.requests.count(operation="ListObjectsV2") == 2
    assert s3.faults_injected == 1


def test_a_bare_408_is_not_retried_without_the_plugin(
    aws_without_plugin: AwsCli, s3: LocalS3
) -> None:
    bucket = s3.create_bucket()
    s3.inject(CLIENT_TIMEOUT, times=1)

    done = aws_without_plugin("s3api", "list-objects-v2", "--bucket", bucket)

    assert done.returncode != 0
    assert "ClientTimeout" in done.stderr
    assert s3.requests.count(operation="ListObjectsV2") == 1


# -- a 503 storm -----------------------------------------------------------------------------

# The user's own attempts setting is kept by the plugin; two attempts keep the CLI's real
# backoff short in both runs.
STORM = {"AWS_MAX_ATTEMPTS": "2", "BOTOCORE_RESILIENCE_FAILURE_THRESHOLD": "1"}


def test_a_503_storm_opens_the_circuit_with_the_plugin(aws: AwsCli, s3: LocalS3) -> None:
    bucket = s3.create_bucket()
    s3.inject(SLOW_DOWN, times=None)

    done = aws("s3api", "list-objects-v2", "--bucket", bucket, **STORM)

    assert done.returncode != 0
    lines = error_lines(done.stderr)
    opened = [line for line in lines if line.startswith(WARNING_OPEN)]
    assert len(opened) == 1, done.stderr
    # The open period is recovery_timeout plus up to 10% of jitter, to a tenth of a second.
    prefix = f"{WARNING_OPEN} 1 consecutive failed calls (last: 503 SlowDown); calls fail fast for "
    assert opened[0].startswith(prefix), done.stderr
    assert opened[0].endswith(" s"), done.stderr
    assert 60 <= float(opened[0][len(prefix) : -2]) <= 66, done.stderr
    assert s3.requests.count(operation="ListObjectsV2") == 2  # the user's AWS_MAX_ATTEMPTS


def test_a_503_storm_opens_nothing_without_the_plugin(
    aws_without_plugin: AwsCli, s3: LocalS3
) -> None:
    bucket = s3.create_bucket()
    s3.inject(SLOW_DOWN, times=None)

    done = aws_without_plugin("s3api", "list-objects-v2", "--bucket", bucket, **STORM)

    assert done.returncode != 0
    assert "SlowDown" in done.stderr
    assert "botocore_resilience" not in done.stderr
    assert s3.requests.count(operation="ListObjectsV2") == 2


# -- an open circuit -------------------------------------------------------------------------


def rejected_line(line: str) -> Optional[str]:
    marker = "Circuit s3/us-east-1 is open: s3 DeleteObject was not sent; next probe in "
    return line if marker in line else None


def test_once_open_the_circuit_fails_the_rest_of_the_run_fast(aws: AwsCli, s3: LocalS3) -> None:
    # aws s3 rm --recursive deletes object by object (one at a time: max_concurrent_requests
    # = 1 in the config). The first delete fails and opens the circuit; the others are
    # rejected before anything is sent, each reported on one line, and the run fails.
    bucket = s3.create_bucket()
    client = s3.client()
    for key in ("a", "b", "c"):
        client.put_object(Bucket=bucket, Key=key, Body=b"x")
    s3.requests.reset()
    s3.inject(SLOW_DOWN, times=None, method="DELETE")

    done = aws(
        "s3",
        "rm",
        f"s3://{bucket}",
        "--recursive",
        AWS_MAX_ATTEMPTS="1",
        BOTOCORE_RESILIENCE_FAILURE_THRESHOLD="1",
    )

    assert done.returncode != 0
    assert s3.requests.count(method="DELETE") == 1
    lines = error_lines(done.stderr)
    rejected = [line for line in lines if rejected_line(line)]
    assert len(rejected) == 2, done.stderr
    assert all(line.startswith("delete failed: s3://") for line in rejected)
    assert sum(line.startswith(WARNING_OPEN) for line in lines) == 1


def test_without_the_plugin_every_delete_is_sent(aws_without_plugin: AwsCli, s3: LocalS3) -> None:
    bucket = s3.create_bucket()
    client = s3.client()
    for key in ("a", "b", "c"):
        client.put_object(Bucket=bucket, Key=key, Body=b"x")
    s3.requests.reset()
    s3.inject(SLOW_DOWN, times=None, method="DELETE")

    done = aws_without_plugin("s3", "rm", f"s3://{bucket}", "--recursive", AWS_MAX_ATTEMPTS="1")

    assert done.returncode != 0
    assert s3.requests.count(method="DELETE") == 3
    assert "is open" not in done.stderr


# -- settings --------------------------------------------------------------------------------


def test_a_bad_setting_is_one_error_line_and_the_command_still_runs(
    aws: AwsCli, s3: LocalS3
) -> None:
    bucket = s3.create_bucket()

    done = aws(
        "s3api", "list-objects-v2", "--bucket", bucket, BOTOCORE_RESILIENCE_FAILURE_THRESHOLD="0"
    )

    assert done.returncode == 0, done.stderr
    (line,) = error_lines(done.stderr)
    assert line.startswith("ERROR botocore_resilience: botocore_resilience not installed: ")
    assert "BOTOCORE_RESILIENCE_FAILURE_THRESHOLD='0' is not valid" in line


def test_debug_shows_the_retry_lines(aws: AwsCli, s3: LocalS3) -> None:
    bucket = s3.create_bucket()
    s3.inject(CLIENT_TIMEOUT, times=1)

    done = aws("s3api", "list-objects-v2", "--bucket", bucket, "--debug")

    assert done.returncode == 0
    retries = [
        line
        for line in done.stderr.splitlines()
        if line.startswith("INFO botocore_resilience:") and "ListObjectsV2" in line
    ]
    assert len(retries) == 1, done.stderr


# -- a state store: circuits shared between runs ---------------------------------------------


@pytest.fixture
def redis_url(tmp_path: Path) -> Iterator[str]:
    pytest.importorskip("redis")
    # tests/ is on sys.path (pytest's default import mode): the fleet suite's real redis-server.
    from fleet.redis_servers import RedisServer, redis_available

    if not redis_available():
        pytest.skip("redis-server is not installed")
    server = RedisServer(str(tmp_path)).start()
    yield server.url
    server.stop()


def test_a_run_that_meets_an_open_fleet_circuit_fails_at_once_and_sends_nothing(
    aws: AwsCli, s3: LocalS3, redis_url: str
) -> None:
    bucket = s3.create_bucket()
    fleet = {
        "BOTOCORE_RESILIENCE_STATE_URL": redis_url,
        "BOTOCORE_RESILIENCE_FAILURE_THRESHOLD": "1",
        "AWS_MAX_ATTEMPTS": "1",
    }
    # One run meets a 503 storm and opens the fleet's circuit in the store.
    s3.inject(SLOW_DOWN, times=None)
    first = aws("s3api", "list-objects-v2", "--bucket", bucket, **fleet)
    assert first.returncode != 0
    assert WARNING_OPEN in first.stderr
    s3.reset()  # the server is healthy again, and has seen nothing yet

    # The next run, a new process, learns the circuit is open before its first call is sent.
    second = aws("s3api", "list-objects-v2", "--bucket", bucket, **fleet)

    assert second.returncode == 255
    # The CLI's own error line, and before it the plugin's WARNING as this process learns
    # the fleet's state (the circuit name and why it opened).
    *learned, line = error_lines(second.stderr)
    assert line.startswith(
        "Circuit s3/us-east-1 is open: s3 ListObjectsV2 was not sent; next probe in "
    ), second.stderr
    assert all(other.startswith(WARNING_OPEN) for other in learned), second.stderr
    assert s3.requests.total == 0


# -- retry defaults ----------------------------------------------------------------------------


def test_the_plugins_attempts_replace_the_clis_default_where_the_user_set_none(
    aws: AwsCli, aws_without_plugin: AwsCli, s3: LocalS3
) -> None:
    # A 500 that never ends: botocore retries it in every mode, so the requests the server
    # sees are the attempts the run was configured with. The CLI's own default (legacy mode,
    # 5 attempts; standard mode, 3, where botocore's 2026 retries are on) against the
    # plugin's 4, which it sets only because neither AWS_MAX_ATTEMPTS nor a profile did.
    bucket = s3.create_bucket()
    s3.inject(INTERNAL_ERROR, times=None)

    done = aws_without_plugin("s3api", "head-bucket", "--bucket", bucket)
    assert done.returncode != 0
    without = s3.requests.count(operation="HeadBucket")
    s3.requests.reset()

    done = aws("s3api", "head-bucket", "--bucket", bucket)
    assert done.returncode != 0
    assert s3.requests.count(operation="HeadBucket") == 4
    assert without in (3, 5), without
