"""Where the PromQL we ship lives: alert rules, the Grafana dashboard, ```promql blocks in the docs.

Shared by the tests in this directory (pytest puts it on ``sys.path``).
"""

from __future__ import annotations

import json
import re
import textwrap
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
RULES = DOCS / "prometheus" / "alerts.yml"
RULES_TEST = DOCS / "prometheus" / "alerts_test.yml"
DASHBOARD = DOCS / "grafana" / "botocore-resilience.json"
RUNBOOK = DOCS / "runbook.md"

# What Grafana substitutes before a query reaches Prometheus.
GRAFANA_VARIABLES = {
    "__rate_interval": "5m",
    "__interval": "1m",
    "__range": "1h",
    "namespace": "botocore",
    "service": ".*",
    "circuit": ".*",
}


def _rules() -> list[dict[str, Any]]:
    return [
        rule for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]
    ]


def _dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text())


def _panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    panels = []
    for panel in dashboard["panels"]:
        panels.append(panel)
        panels.extend(panel.get("panels", []))  # panels inside collapsed rows
    return panels


def substitute(expr: str) -> str:
    """Expand Grafana variables (``$x`` and ``${x}``) as Grafana does before sending a query."""

    def one(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        if name not in GRAFANA_VARIABLES:
            raise AssertionError(f"unknown Grafana variable ${name} in {expr!r}")
        return GRAFANA_VARIABLES[name]

    expanded = re.sub(r"\$\{(\w+)\}|\$(\w+)", one, expr)
    assert "$" not in expanded, expanded
    return expanded


def dashboard_expressions() -> dict[str, str]:
    """Every PromQL expression in the dashboard, expanded, by where it is."""
    dashboard = _dashboard()
    found: dict[str, str] = {}
    for panel in _panels(dashboard):
        for target in panel.get("targets", []):
            if target.get("expr"):
                found[f"panel {panel['title']!r} {target['refId']}"] = substitute(target["expr"])
    for variable in dashboard["templating"]["list"]:
        if variable["type"] != "query":
            continue
        query = (
            variable["query"]["query"] if isinstance(variable["query"], dict) else variable["query"]
        )
        # label_values(<series selector>, <label>) is Grafana's; the selector inside is PromQL.
        match = re.fullmatch(r"label_values\((.+),\s*(\w+)\)", query.strip())
        assert match, f"variable {variable['name']}: unexpected query {query!r}"
        found[f"variable {variable['name']!r}"] = substitute(match.group(1))
    return found


def docs_promql_blocks() -> dict[str, str]:
    """Every ```promql block in the docs' Markdown, by file and position."""
    found: dict[str, str] = {}
    for page in sorted(DOCS.rglob("*.md")):
        text = page.read_text()
        for n, match in enumerate(
            re.finditer(r"^([ \t]*)```promql\n(.*?)^\1```", text, re.M | re.S)
        ):
            found[f"{page.relative_to(ROOT)} block {n + 1}"] = textwrap.dedent(
                match.group(2)
            ).strip()
    return found


def rule_expressions() -> dict[str, str]:
    return {f"alert {rule['alert']}": rule["expr"] for rule in _rules()}
