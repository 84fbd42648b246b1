"""The code in the docs runs, and does what the text around it says.

Docs drift silently: an example that stopped working is worse than none. These tests take
the code blocks out of the Markdown and run them against the installed package.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"


def python_blocks(page: Path) -> list[str]:
    """The ```python blocks of a page, dedented (blocks inside list items are indented)."""
    text = page.read_text()
    return [
        textwrap.dedent(match.group(2))
        for match in re.finditer(r"^([ \t]*)```python\n(.*?)^\1```", text, re.M | re.S)
    ]


def _run_python(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args], cwd=cwd, capture_output=True, text=True, timeout=240, check=False
    )


def test_every_python_block_in_the_docs_compiles() -> None:
    pages = sorted(DOCS.rglob("*.md"))
    count = 0
    for page in pages:
        for n, block in enumerate(python_blocks(page), 1):
            compile(block, f"{page.relative_to(ROOT)} block {n}", "exec")
            count += 1
    assert count >= 10


def test_the_tutorial_script_trips_the_circuit_on_the_fifth_call(tmp_path: Path) -> None:
    """docs/tutorial.md: calls 1-5 fail to connect, the circuit opens, calls 6-7 are rejected."""
    (tmp_path / "trip.py").write_text(python_blocks(DOCS / "tutorial.md")[0])
    # Same script, without botocore's real backoff sleeps (the retry decisions are unchanged).
    runner = (
        "import runpy\n"
        "from botocore_resilience.testing import no_backoff\n"
        "with no_backoff():\n"
        "    runpy.run_path('trip.py', run_name='__main__')\n"
    )
    result = _run_python(["-c", runner], tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[:5] == [f"call {i}: EndpointConnectionError" for i in range(1, 6)], result.stdout
    for i in (6, 7):
        assert re.fullmatch(
            rf"call {i}: rejected by s3/us-east-1, next probe in 1?\d s", lines[i - 1]
        )
    assert lines[7] == "{'s3/us-east-1': <CircuitState.OPEN: 'open'>}"
    # The log lines the tutorial points at: a retry at INFO, the opening at WARNING.
    assert "INFO botocore_resilience: " in result.stderr
    assert "WARNING botocore_resilience: circuit s3/us-east-1" in result.stderr


@pytest.mark.parametrize(
    ("marker", "tests"),
    [("def test_an_outage_fails_fast", 2), ("def test_a_plain_session", 1)],
    ids=["fixtures", "plain-session"],
)
def test_the_testing_how_to_examples_pass(tmp_path: Path, marker: str, tests: int) -> None:
    """docs/how-to/test-your-code.md: its tests pass with the package's pytest fixtures,
    including the one whose code makes a plain ``boto3.Session()``."""
    pytest.importorskip("moto.server", reason="LocalS3 needs the testing extra (moto[server])")
    pytest.importorskip("werkzeug", reason="LocalS3 needs the testing extra (moto[server])")
    (block,) = [b for b in python_blocks(DOCS / "how-to" / "test-your-code.md") if marker in b]
    (tmp_path / "test_howto.py").write_text(block)
    # No credentials of the developer's (or CI's) may make the example pass by accident.
    environ = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    environ["AWS_SHARED_CREDENTIALS_FILE"] = str(tmp_path / "no-credentials")
    environ["AWS_CONFIG_FILE"] = str(tmp_path / "no-config")
    environ["AWS_EC2_METADATA_DISABLED"] = "true"
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_howto.py"],
        cwd=tmp_path,
        env=environ,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{tests} passed" in result.stdout


def test_the_settings_page_lists_every_setting_with_its_default() -> None:
    """docs/reference/settings.md has one row per setting of the code's table, default included."""
    from botocore_resilience.config import SETTINGS

    page = (DOCS / "reference" / "settings.md").read_text()
    rows = {
        match.group(1): (match.group(2), match.group(3))
        for match in re.finditer(
            r"^\| `(BOTOCORE_RESILIENCE_\w+)` \| `(\w+)` \| ([^|]+) \|", page, re.M
        )
    }
    assert set(rows) == {setting.env for setting in SETTINGS}
    for setting in SETTINGS:
        option, default = rows[setting.env]
        assert option == setting.option
        shown = default.strip().strip("`")
        if setting.default is None:
            assert shown == "unset", setting.env
        elif isinstance(setting.default, bool):
            assert shown == ("true" if setting.default else "false") or shown == (
                "on" if setting.default else "off"
            ), setting.env
        elif isinstance(setting.default, float):
            assert float(shown) == setting.default, setting.env
        else:
            assert shown.strip('"') == str(setting.default), setting.env


def test_the_readme_names_every_event_install_registers() -> None:
    """README.md's "It registers handlers on botocore's ... events" lists exactly what
    ``install()`` registers on a session."""
    import botocore.session
    from prometheus_client import CollectorRegistry

    import botocore_resilience

    session = botocore.session.Session()
    emitter = session.get_component("event_emitter")
    registered: set[str] = set()
    for method in ("register", "register_first", "register_last"):
        original = getattr(emitter, method)

        def spy(event_name: str, *args: Any, _original: Any = original, **kwargs: Any) -> Any:
            registered.add(event_name)
            return _original(event_name, *args, **kwargs)

        setattr(emitter, method, spy)
    botocore_resilience.install(session, registry=CollectorRegistry(), environ={})
    botocore_resilience.uninstall(session)
    assert registered  # the spy saw the registrations

    readme = (ROOT / "README.md").read_text()
    sentence = re.search(r"It registers handlers on\s+botocore's (.*?) events\.", readme, re.S)
    assert sentence, "README.md no longer says which events it registers"
    named = set(re.findall(r"`([a-z0-9.-]+)`", sentence.group(1)))
    assert named == registered
