"""``python -m botocore_resilience``: the ``config`` command, and how ``demo`` reads its flags.

``cli.main`` runs in-process with a passed-in environment and streams; one test runs the
real entry point in a subprocess to check that it reads the process environment.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from typing import Any, Optional

import pytest

from botocore_resilience import cli, demo
from botocore_resilience.config import ENV_PREFIX, SETTINGS


def run_cli(*argv: str, environ: Optional[dict[str, str]] = None) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = cli.main(list(argv), environ=environ or {}, stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


def table_rows(text: str) -> dict[str, list[str]]:
    """``{option: [env, value, source]}`` from the ``config`` table (values have no spaces)."""
    lines = text.split("\n\n")[0].splitlines()  # the note on retries follows a blank line
    assert lines[0].split() == ["option", "environment", "variable", "value", "source"]
    return {line.split()[0]: line.split()[1:] for line in lines[1:]}


def test_config_lists_every_setting_with_its_variable_default_and_source() -> None:
    code, out, err = run_cli("config")
    assert (code, err) == (0, "")
    rows = table_rows(out)
    assert list(rows) == [setting.option for setting in SETTINGS]
    for setting in SETTINGS:
        env, value, source = rows[setting.option]
        assert env == setting.env
        assert source == "default"
        assert value == cli.format_value(setting.default)
    assert rows["failure_threshold"][1] == "5"
    assert rows["recovery_timeout"][1] == "60"
    assert rows["enabled"][1] == "true"
    assert rows["name"][1] == '""'
    assert rows["metrics_port"][1] == "(unset)"


def test_config_says_how_the_retry_settings_apply() -> None:
    # Issue 10, item 5: the plugin's max_attempts replaces botocore's per-service defaults
    # where it applies; the output says so beside the values.
    code, out, _ = run_cli("config")
    assert code == 0
    note = out.split("\n\n", 1)[1]
    assert "only what a client's user set nowhere" in note
    assert "one number for every service" in note


def test_config_shows_environment_and_keyword_sources() -> None:
    environ = {
        ENV_PREFIX + "FAILURE_THRESHOLD": "3",
        ENV_PREFIX + "SCOPE": "operation",
        ENV_PREFIX + "METRICS_PORT": "9464",
        "UNRELATED": "ignored",
    }
    code, out, _ = run_cli(
        "config", "--set", "scope=bucket", "--set", "recovery_timeout=2.5", environ=environ
    )
    assert code == 0
    rows = table_rows(out)
    assert rows["failure_threshold"][1:] == ["3", "environment"]
    assert rows["metrics_port"][1:] == ["9464", "environment"]
    # A keyword beats the environment, as in install(scope="bucket").
    assert rows["scope"][1:] == ["bucket", "keyword"]
    assert rows["recovery_timeout"][1:] == ["2.5", "keyword"]
    untouched = {"failure_threshold", "metrics_port", "scope", "recovery_timeout"}
    assert {rows[o][2] for o in rows if o not in untouched} == {"default"}


def test_config_json_has_typed_values_and_sources() -> None:
    code, out, _ = run_cli(
        "config", "--json", "--set", "breaker=off", environ={ENV_PREFIX + "ENABLED": "no"}
    )
    assert code == 0
    settings = json.loads(out)
    assert list(settings) == [setting.option for setting in SETTINGS]
    for setting in SETTINGS:
        entry = settings[setting.option]
        assert entry["env"] == setting.env
        assert entry["default"] == setting.default
        assert entry["help"] == setting.help
    assert settings["enabled"] == {**settings["enabled"], "value": False, "source": "environment"}
    assert settings["breaker"]["value"] == "off"
    assert settings["breaker"]["source"] == "keyword"
    assert settings["failure_threshold"]["value"] == 5
    assert settings["metrics_port"]["value"] is None
    assert settings["metrics_port"]["source"] == "default"


@pytest.mark.parametrize(
    ("environ", "argv", "message"),
    [
        (
            {ENV_PREFIX + "FAILURE_THRESHOLD": "0"},
            [],
            "BOTOCORE_RESILIENCE_FAILURE_THRESHOLD='0' is not valid: "
            "expected an integer from 1 to 1000000000",
        ),
        (
            {ENV_PREFIX + "BREAKER": "sometimes"},
            [],
            "BOTOCORE_RESILIENCE_BREAKER='sometimes' is not valid: expected one of on, off, "
            "metrics-only",
        ),
        ({}, ["--set", "recovery_timeout=-1"], "recovery_timeout='-1' is not valid"),
        ({}, ["--set", "no_such_option=1"], "no_such_option='1' is not valid"),
    ],
)
def test_config_bad_value_exits_2_with_the_message_on_stderr(
    environ: dict[str, str], argv: list[str], message: str
) -> None:
    code, out, err = run_cli("config", *argv, environ=environ)
    assert code == 2
    assert out == ""
    assert message in err
    assert err.startswith("python -m botocore_resilience config: error: ")


def test_config_json_bad_value_prints_no_json() -> None:
    code, out, err = run_cli("config", "--json", environ={ENV_PREFIX + "METRICS_PORT": "http"})
    assert (code, out) == (2, "")
    assert "BOTOCORE_RESILIENCE_METRICS_PORT='http' is not valid" in err


@pytest.mark.parametrize(
    "argv",
    [[], ["nope"], ["config", "--set", "no-equals-sign"], ["demo", "--duration-scale", "0"]],
)
def test_usage_errors_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.main(argv, environ={})
    assert exited.value.code == 2
    assert "usage:" in capsys.readouterr().err


@pytest.mark.parametrize("as_json", [[], ["--json"]])
def test_config_warns_about_misspelt_variables_on_stderr(as_json: list[str]) -> None:
    environ = {
        ENV_PREFIX + "FAILURE_TRESHOLD": "3",
        "BOTOCORE_RESILIANCE_SCOPE": "bucket",
        ENV_PREFIX + "SCOPE": "operation",
    }
    code, out, err = run_cli("config", *as_json, environ=environ)
    assert code == 0  # a typo in a name cannot fail install() either: it only warns
    assert err.splitlines() == [
        "python -m botocore_resilience config: warning: ignoring unknown setting "
        "BOTOCORE_RESILIANCE_SCOPE (did you mean BOTOCORE_RESILIENCE_SCOPE?)",
        "python -m botocore_resilience config: warning: ignoring unknown setting "
        "BOTOCORE_RESILIENCE_FAILURE_TRESHOLD "
        "(did you mean BOTOCORE_RESILIENCE_FAILURE_THRESHOLD?)",
    ]
    assert "TRESHOLD" not in out  # stdout stays the table (or JSON) alone
    if as_json:
        assert json.loads(out)["scope"]["value"] == "operation"


@pytest.mark.parametrize(
    "argv",
    [
        ["--workers", "\uff15"],  # the same rule as every count: ASCII digits
        ["--workers", "1_000"],
        ["--workers", "0"],
        ["--rate", "\u0663"],
        ["--rate", "nan"],
        ["--duration-scale", "1e400"],
        ["--metrics-port", "65536"],
        ["--metrics-port", "8_000"],
        ["--metrics-addr", "0x0"],  # as BOTOCORE_RESILIENCE_METRICS_ADDR refuses it
        ["--metrics-addr", "127.1"],
    ],
)
def test_demo_flags_follow_the_settings_rules(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.main(["demo", *argv], environ={})
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert f"argument {argv[0]}: expected " in err, err


def test_every_command_says_how_to_run_it() -> None:
    parser = cli._parser()
    (commands,) = [a for a in parser._actions if a.dest == "command"]
    for name, subparser in commands.choices.items():  # type: ignore[union-attr]
        assert callable(subparser.get_default("run")), name


@pytest.mark.parametrize(
    ("value", "text"),
    [(True, "true"), (False, "false"), (None, "(unset)"), ("", '""'), (60.0, "60"), (2.5, "2.5")],
)
def test_format_value(value: Any, text: str) -> None:
    assert cli.format_value(value) == text


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        ([], demo.DemoOptions()),
        (["--fast"], demo.DemoOptions(duration_scale=0.5)),
        (["--fast", "--duration-scale", "0.8"], demo.DemoOptions(duration_scale=0.8)),
        (
            ["--workers", "2", "--rate", "10", "--retry-mode", "adaptive", "--color", "never"],
            demo.DemoOptions(workers=2, rate=10.0, retry_mode="adaptive", color=False),
        ),
        (
            ["--metrics-port", "9464", "--metrics-addr", "0.0.0.0", "--color", "always"],
            demo.DemoOptions(metrics_port=9464, metrics_addr="0.0.0.0", color=True),
        ),
        (["--scenario", "partial"], demo.DemoOptions(scenario="partial")),
        (["--fleet", "3", "--fast"], demo.DemoOptions(fleet=3, duration_scale=0.5)),
    ],
)
def test_demo_flags_become_options(
    argv: list[str], expected: demo.DemoOptions, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[tuple[demo.DemoOptions, Any]] = []

    def fake_run(options: demo.DemoOptions, *, stdout: Any, stderr: Any, environ: Any) -> int:
        seen.append((options, environ))
        return 7

    monkeypatch.setattr(demo, "run", fake_run)
    environ = {"NO_COLOR": "1"}
    assert cli.main(["demo", *argv], environ=environ, stdout=io.StringIO()) == 7
    assert seen == [(expected, environ)]


def test_the_module_entry_point_reads_the_process_environment() -> None:
    environ = {k: v for k, v in os.environ.items() if not k.startswith(ENV_PREFIX)}
    environ[ENV_PREFIX + "SUCCESS_THRESHOLD"] = "4"
    done = subprocess.run(
        [sys.executable, "-m", "botocore_resilience", "config"],
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert table_rows(done.stdout)["success_threshold"][1:] == ["4", "environment"]

    environ[ENV_PREFIX + "SUCCESS_THRESHOLD"] = "two"
    done = subprocess.run(
        [sys.executable, "-m", "botocore_resilience", "config"],
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "BOTOCORE_RESILIENCE_SUCCESS_THRESHOLD='two' is not valid" in done.stderr
