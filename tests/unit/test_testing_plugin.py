"""The pytest plugin loads in every suite, so it must cost nothing and need nothing.

Each check runs in a fresh interpreter: this one has long since imported moto.
"""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(60)

# Makes moto, werkzeug and flask impossible to import, as without the ``testing`` extra.
BLOCK_SERVER_PACKAGES = """
import sys
class Blocker:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("moto", "werkzeug", "flask"):
            raise ImportError(f"No module named {name!r} (blocked by the test)")
        return None
sys.meta_path.insert(0, Blocker())
"""


def run_python(code: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=cwd, check=False
    )


def test_importing_the_plugin_and_the_package_imports_no_server() -> None:
    result = run_python(
        "import sys\n"
        "import botocore_resilience.testing.pytest_plugin\n"
        "import botocore_resilience.testing\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('moto', 'werkzeug', 'flask')))"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_a_suite_without_moto_gets_the_fixtures_that_need_no_server(tmp_path: Path) -> None:
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    (tmp_path / "test_user.py").write_text(
        textwrap.dedent(
            """
            import boto3
            import botocore.endpoint
            from botocore.config import Config
            from botocore.exceptions import ClientError
            import pytest
            from botocore_resilience.testing import SLOW_DOWN

            def test_clock(resilience_fake_clock):
                resilience_fake_clock.advance(5)
                assert resilience_fake_clock.monotonic() == 5

            def test_no_backoff(resilience_no_backoff):
                botocore.endpoint.time.sleep(3)
                assert resilience_no_backoff.delays == [3]

            def test_injector(resilience_fault_injector):
                client = boto3.client(
                    "s3", region_name="us-east-1", endpoint_url="http://127.0.0.1:9",
                    aws_access_key_id="x", aws_secret_access_key="x",
                    config=Config(retries={"mode": "standard", "total_max_attempts": 1}),
                )
                resilience_fault_injector(client).inject(SLOW_DOWN, times=None)
                with pytest.raises(ClientError, match="SlowDown"):
                    client.list_buckets()

            def test_local_s3(resilience_local_s3):
                pass
            """
        )
    )
    result = run_python(
        BLOCK_SERVER_PACKAGES
        + "import pytest\n"
        + "sys.exit(pytest.main(['-q', '-p', 'no:cacheprovider', 'test_user.py']))\n",
        cwd=tmp_path,
    )
    # Count outcomes, not the exact summary line: old botocore on 3.12+ and boto3 on 3.9 add
    # "1 warning" to it.
    assert re.search(r"\b3 passed\b", result.stdout), result.stdout + result.stderr
    assert re.search(r"\b1 error\b", result.stdout), result.stdout + result.stderr
    assert not re.search(r"\bfailed\b", result.stdout), result.stdout + result.stderr
    assert "pip install 'botocore-resilience[testing]'" in result.stdout


def test_the_local_s3_fixture_gives_each_test_a_clean_running_server(tmp_path: Path) -> None:
    # Two tests in one fresh session, in a fixed order: the first leaves every kind of mess
    # (a sticky fault, latency, counted requests, the server stopped), the second must see
    # none of it. Run here, in a suite of their own, their order is not the outer suite's.
    pytest.importorskip("moto.server", reason="LocalS3 needs the testing extra (moto[server])")
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    (tmp_path / "test_user.py").write_text(
        textwrap.dedent(
            """
            import pytest
            from botocore.config import Config
            from botocore.exceptions import ClientError
            from botocore_resilience.testing import SLOW_DOWN

            ONE_ATTEMPT = Config(retries={"mode": "standard", "total_max_attempts": 1})

            def test_1_leaves_a_mess(resilience_local_s3, resilience_s3_bucket):
                resilience_local_s3.inject(SLOW_DOWN, times=None)
                resilience_local_s3.latency = 0.01
                with pytest.raises(ClientError, match="503"):  # HEAD: no body, no code
                    resilience_local_s3.client(config=ONE_ATTEMPT).head_bucket(
                        Bucket=resilience_s3_bucket
                    )
                assert resilience_local_s3.requests.total == 1
                resilience_local_s3.stop()
                assert not resilience_local_s3.running

            def test_2_starts_clean(resilience_local_s3, resilience_s3_bucket):
                server = resilience_local_s3
                assert server.running
                assert (server.faults, server.latency, server.requests.total) == ([], 0.0, 0)
                client = server.client(config=ONE_ATTEMPT)
                answer = client.head_bucket(Bucket=resilience_s3_bucket)
                assert answer["ResponseMetadata"]["HTTPStatusCode"] == 200
                assert server.requests.total == 1
            """
        )
    )
    result = run_python(
        "import sys, pytest\n"
        "sys.exit(pytest.main(['-v', '-p', 'no:cacheprovider', '-p', 'no:randomly', "
        "'test_user.py']))\n",
        cwd=tmp_path,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    first = output.index("test_user.py::test_1_leaves_a_mess PASSED")
    assert output.index("test_user.py::test_2_starts_clean PASSED") > first, output
