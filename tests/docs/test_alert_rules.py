"""The shipped alert rules, Grafana dashboard and documented PromQL: valid, true to the contract.

With ``promtool`` on PATH (Debian: ``apt-get install prometheus``):

* ``promtool check rules`` accepts ``docs/prometheus/alerts.yml``;
* ``promtool test rules`` passes ``docs/prometheus/alerts_test.yml`` (each alert fires on
  synthetic series when it should, and stays silent in the look-alike case);
* every PromQL expression in the dashboard and in ```` ```promql ```` blocks of the docs
  parses (wrapped as recording rules and checked by promtool);
* the dashboard's panel queries compute what their titles say, on synthetic series
  (promtool unit tests generated here).

Without promtool those tests skip, with the reason; the checks that need only Python
(metric and label names against the contract, runbook anchors, test coverage of each
alert) always run.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

yaml = pytest.importorskip(
    "yaml", reason="PyYAML is needed to read the rule files (it comes with moto[server])"
)

from promql_sources import (  # noqa: E402  (after the importorskip above)
    DASHBOARD,
    ROOT,
    RULES,
    RULES_TEST,
    RUNBOOK,
    _dashboard,
    _panels,
    _rules,
    dashboard_expressions,
    docs_promql_blocks,
    rule_expressions,
    substitute,
)

PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None,
    reason="promtool not on PATH: install it (Debian/Ubuntu: apt-get install prometheus) "
    "to check the rules",
)

# Contract section 6, with the default namespace: family -> its labels.
FAMILIES: dict[str, set[str]] = {
    "botocore_operations_total": {"service", "operation", "bucket", "result"},
    "botocore_operation_duration_seconds": {"service", "operation", "bucket"},
    "botocore_circuit_breaker_state": {"circuit_name"},
    "botocore_circuit_breaker_transitions_total": {"circuit_name", "from_state", "to_state"},
    "botocore_retry_attempts_total": {"service", "operation", "attempt"},
    "botocore_retry_quota_exhausted_total": {"service", "operation"},
}
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")
# Labels Prometheus adds (job, instance) or prometheus-client's histogram exposes (le).
TARGET_LABELS = {"job", "instance", "le"}
ALL_LABELS = set().union(*FAMILIES.values()) | TARGET_LABELS
LABEL_VALUES = {
    "result": {"success", "error", "circuit_open"},
    "from_state": {"closed", "open", "half_open"},
    "to_state": {"closed", "open", "half_open"},
}


def _run(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL is not None
    return subprocess.run(
        [PROMTOOL, *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )


def _check_parses(expressions: dict[str, str], tmp_path: Path) -> None:
    """Wrap each expression as a recording rule and let promtool parse them all."""
    names = list(expressions)
    rules = {
        "groups": [
            {
                "name": "parse-check",
                "rules": [
                    {"record": f"parse_check:expr_{i}", "expr": expressions[name]}
                    for i, name in enumerate(names)
                ],
            }
        ]
    }
    path = tmp_path / "expressions.rules.yml"
    path.write_text(yaml.safe_dump(rules, sort_keys=False))
    result = _run("check", "rules", str(path))
    index = "\n".join(f"  expr_{i}: {name}" for i, name in enumerate(names))
    assert result.returncode == 0, f"{result.stdout}{result.stderr}\nwhich is:\n{index}"


# -- promtool: the rules themselves --------------------------------------------------------------


@needs_promtool
def test_promtool_accepts_the_alert_rules() -> None:
    result = _run("check", "rules", str(RULES))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(_rules())} rules found" in result.stdout


@needs_promtool
def test_alert_rule_unit_tests_pass() -> None:
    result = _run("test", "rules", str(RULES_TEST))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


# -- promtool: every other expression we ship parses --------------------------------------------


@needs_promtool
def test_every_dashboard_expression_parses(tmp_path: Path) -> None:
    expressions = dashboard_expressions()
    assert len(expressions) >= 10
    _check_parses(expressions, tmp_path)


@needs_promtool
def test_every_promql_block_in_the_docs_parses(tmp_path: Path) -> None:
    expressions = docs_promql_blocks()
    assert expressions, "no ```promql blocks found in docs/"
    _check_parses(expressions, tmp_path)


# -- promtool: the dashboard's queries compute what their panels say ----------------------------


def _panel_expr(title: str, ref_id: str = "A") -> str:
    for panel in _panels(_dashboard()):
        if panel["title"] == title:
            for target in panel["targets"]:
                if target["refId"] == ref_id:
                    return substitute(target["expr"])
    raise AssertionError(f"no panel {title!r} with target {ref_id}")


@needs_promtool
def test_dashboard_panels_compute_what_they_show(tmp_path: Path) -> None:
    """Evaluate the panel queries on synthetic series with promtool and check the numbers."""
    base = 'job="app", instance="pod-a"'
    ops = "botocore_operations_total"
    retries = "botocore_retry_attempts_total"
    dur = "botocore_operation_duration_seconds_bucket"
    s3 = 'service="s3", operation="GetObject", bucket="b"'
    series = [
        # 10 successful calls/s, 1 failed, 5 rejected
        (f'{ops}{{{base}, {s3}, result="success"}}', "0+600x10"),
        (f'{ops}{{{base}, {s3}, result="error"}}', "0+60x10"),
        (f'{ops}{{{base}, {s3}, result="circuit_open"}}', "0+300x10"),
        # every sent call took between 0.5 s and 1 s
        (f'{dur}{{{base}, {s3}, le="0.5"}}', "0x10"),
        (f'{dur}{{{base}, {s3}, le="1"}}', "0+660x10"),
        (f'{dur}{{{base}, {s3}, le="+Inf"}}', "0+660x10"),
        # 3 first retries/s, 1 second retry/s
        (
            f'{retries}{{{base}, service="s3", operation="GetObject", attempt="1"}}',
            "0+180x10",
        ),
        (
            f'{retries}{{{base}, service="s3", operation="GetObject", attempt="2"}}',
            "0+60x10",
        ),
        # one circuit open in one pod and closed in another; one closed everywhere
        (f'botocore_circuit_breaker_state{{{base}, circuit_name="s3/us-east-1"}}', "2x10"),
        (
            'botocore_circuit_breaker_state{job="app", instance="pod-b", '
            'circuit_name="s3/us-east-1"}',
            "0x10",
        ),
        (f'botocore_circuit_breaker_state{{{base}, circuit_name="dynamodb/us-east-1"}}', "0x10"),
        # s3 opened once in the last 5 minutes
        (
            f'botocore_circuit_breaker_transitions_total{{{base}, circuit_name="s3/us-east-1", '
            'from_state="closed", to_state="open"}',
            "0 0 0 0 0 0 0 1 1 1 1",
        ),
    ]
    cases = [
        (
            _panel_expr("Calls by result"),
            [
                ('{result="success"}', 10),
                ('{result="error"}', 1),
                ('{result="circuit_open"}', 5),
            ],
        ),
        # histogram_quantile interpolates inside the (0.5, 1] bucket; rounded, as promtool
        # compares floats exactly
        (
            f"round({_panel_expr('Call duration p50 / p99', 'A')}, 0.001)",
            [
                ('{service="s3", operation="GetObject"}', 0.75),
            ],
        ),
        (
            f"round({_panel_expr('Call duration p50 / p99', 'B')}, 0.001)",
            [
                ('{service="s3", operation="GetObject"}', 0.995),
            ],
        ),
        (_panel_expr("Retries by attempt"), [('{attempt="1"}', 3), ('{attempt="2"}', 1)]),
        # 4 retries/s over 11 sent calls/s: rejected calls are not in the denominator
        (f"round({_panel_expr('Retries per sent call')}, 0.001)", [('{service="s3"}', 0.364)]),
        (
            _panel_expr("Circuit state"),
            [
                ('{circuit_name="s3/us-east-1"}', 2),
                ('{circuit_name="dynamodb/us-east-1"}', 0),
            ],
        ),
        (_panel_expr("Circuits open now"), [("{}", 1)]),
        (
            _panel_expr("Circuit transitions"),
            [
                ('{circuit_name="s3/us-east-1", from_state="closed", to_state="open"}', 1),
            ],
        ),
    ]
    test = {
        "rule_files": [],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [{"series": s, "values": v} for s, v in series],
                "promql_expr_test": [
                    {
                        "expr": expr,
                        "eval_time": "10m",
                        "exp_samples": [
                            {"labels": labels, "value": value} for labels, value in samples
                        ],
                    }
                    for expr, samples in cases
                ],
            }
        ],
    }
    path = tmp_path / "dashboard_test.yml"
    path.write_text(yaml.safe_dump(test, sort_keys=False))
    result = _run("test", "rules", str(path))
    assert result.returncode == 0, result.stdout + result.stderr


# -- no promtool needed ------------------------------------------------------------------------


def _all_expressions() -> dict[str, str]:
    return {**rule_expressions(), **dashboard_expressions(), **docs_promql_blocks()}


def test_every_metric_name_is_a_contract_family() -> None:
    allowed = set(FAMILIES) | {
        "botocore_operation_duration_seconds" + suffix for suffix in HISTOGRAM_SUFFIXES
    }
    for where, expr in _all_expressions().items():
        for name in re.findall(r"\bbotocore_\w+", expr):
            assert name in allowed, f"{where}: {name} is not a metric of the contract"


def test_every_label_is_a_contract_label() -> None:
    """Labels in selectors, by/without and on/ignoring clauses must exist on our metrics."""
    for where, expr in _all_expressions().items():
        code = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # label values may contain anything
        used = set(re.findall(r"(\w+)\s*(?:=~|!~|!=|=)\s*\"", code))
        for clause in re.findall(
            r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)", code
        ):
            used |= {label.strip() for label in clause.split(",") if label.strip()}
        unknown = used - ALL_LABELS
        assert not unknown, (
            f"{where}: labels {sorted(unknown)} are on none of the contract's metrics"
        )
        for label, value in re.findall(r'(\w+)\s*(?:=|!=)\s*"([^"]*)"', expr):
            if label in LABEL_VALUES and value:
                assert value in LABEL_VALUES[label], f"{where}: {label}={value!r} never occurs"


def test_every_alert_has_tests_that_fire_and_stay_silent() -> None:
    tests = yaml.safe_load(RULES_TEST.read_text())["tests"]
    cases = [case for test in tests for case in test.get("alert_rule_test", [])]
    for rule in _rules():
        mine = [case for case in cases if case["alertname"] == rule["alert"]]
        assert any(case["exp_alerts"] for case in mine), f"{rule['alert']}: no test where it fires"
        assert any(not case["exp_alerts"] for case in mine), (
            f"{rule['alert']}: no test where it is silent"
        )


def test_every_alert_tells_the_on_call_where_to_look() -> None:
    anchors = set(re.findall(r"\{ *#([\w-]+) *\}", RUNBOOK.read_text()))
    for rule in _rules():
        annotations = rule["annotations"]
        assert annotations.get("summary"), rule["alert"]
        assert "Check, in order:" in annotations.get("description", ""), rule["alert"]
        page, _, anchor = annotations["runbook_url"].partition("#")
        assert page == "runbook/", f"{rule['alert']}: runbook_url should point at runbook/#..."
        assert anchor in anchors, f"{rule['alert']}: docs/runbook.md has no section {{ #{anchor} }}"


def test_dashboard_variables_are_defined_and_namespace_defaults_to_botocore() -> None:
    dashboard = _dashboard()
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["namespace"]["query"] == "botocore"
    text = DASHBOARD.read_text()
    used = set(re.findall(r"\$\{(\w+)\}|\$(\w+)", text))
    for braced, bare in used:
        name = braced or bare
        assert name in variables or name.startswith("__"), (
            f"dashboard uses undefined variable ${name}"
        )
    # Every query goes through the chosen data source, never a hard-coded one.
    for panel in _panels(dashboard):
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
