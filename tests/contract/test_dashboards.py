"""The Grafana dashboard and the Prometheus alert rules in deploy/ (issue 26) parse, and every metric they
query is one a running Tollway exports: the names are read from a real server's /metrics."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import httpx2
import pytest
import yaml

from tests.contract.servers import OPERATOR_KEY, REPO, Tollway

pytestmark = pytest.mark.slow

DASHBOARD = REPO / "deploy" / "grafana" / "tollway-dashboard.json"
ALERTS = REPO / "deploy" / "prometheus" / "alerts.yml"
PROMETHEUS_OWN = {"up"}  # series Prometheus itself writes for every scrape target
# A counter's TYPE line already names its `_total` series; a histogram's names the family.
SUFFIXES = {"histogram": ("_bucket", "_sum", "_count")}
KEYWORDS = {
    "sum", "max", "min", "avg", "count", "topk", "rate", "irate", "increase", "delta", "histogram_quantile",
    "time", "by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset", "and", "or", "unless",
}  # fmt: skip


def exported(t: Tollway) -> set[str]:
    """Every series name /metrics may carry, from its `# TYPE` lines (present before any traffic)."""
    text = httpx2.get(f"{t.url}/metrics", headers={"authorization": f"Bearer {OPERATOR_KEY}"}).text
    names = set()
    for name, kind in re.findall(r"^# TYPE (\S+) (\S+)$", text, flags=re.MULTILINE):
        names |= {name + suffix for suffix in SUFFIXES.get(kind, ("",))}
    return names


def queried(expr: str) -> set[str]:
    """The metric names an expression reads: identifiers outside braces, label matchers and strings."""
    bare = re.sub(r"\{[^}]*\}", "", re.sub(r'"[^"]*"', "", expr))
    bare = re.sub(r"\[[^\]]*\]", "", bare)
    words = set(re.findall(r"[a-zA-Z_][a-zA-Z0-9_]*", bare))
    groupings = set(re.findall(r"\b(?:by|without|on|ignoring)\s*\(([^)]*)\)", bare))
    labels = {label.strip() for group in groupings for label in group.split(",")}
    return {w for w in words - KEYWORDS - labels if not re.fullmatch(r"e\d*|\d.*", w)}


def dashboard_exprs(node: Any) -> list[str]:
    if isinstance(node, dict):
        own = [node["expr"]] if isinstance(node.get("expr"), str) else []
        query = node.get("query")
        if isinstance(query, dict) and isinstance(query.get("query"), str):
            own.append(re.sub(r"label_values\((\w+),.*\)", r"\1", query["query"]))
        return own + [e for value in node.values() for e in dashboard_exprs(value)]
    if isinstance(node, list):
        return [e for value in node for e in dashboard_exprs(value)]
    return []


def balanced(expr: str) -> bool:
    depth = 0
    for char in expr:
        depth += {"(": 1, ")": -1}.get(char, 0)
        if depth < 0:
            return False
    return depth == 0


def test_every_metric_the_dashboard_and_alerts_query_is_exported(tollway: Tollway) -> None:
    _, key = tollway.funded("1.00")
    tollway.client(key).chat.completions.create(
        model="smollm2-135m", messages=[{"role": "user", "content": "Hi"}], max_tokens=2
    )  # some traffic, so the labelled series exist too
    names = exported(tollway)
    assert {
        "tollway_http_requests_total",
        "tollway_jobs_oldest_age_seconds",
        "tollway_upstream_cooldowns_total",
        "tollway_ledger_invariant_violations",
        "tollway_ledger_invariant_last_check_timestamp_seconds",
    } <= names
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = dashboard_exprs(dashboard["panels"]) + dashboard_exprs(dashboard["templating"])
    rules = [rule for group in yaml.safe_load(ALERTS.read_text())["groups"] for rule in group["rules"]]
    assert len(exprs) >= 20 and len(rules) >= 6
    for expr in exprs + [rule["expr"] for rule in rules]:
        assert balanced(expr), expr
        unknown = queried(expr) - names - PROMETHEUS_OWN
        assert not unknown, (unknown, expr)
    for rule in rules:
        assert (
            rule["alert"]
            and rule["labels"]["severity"] in {"warning", "critical"}
            and rule["annotations"]["summary"]
        )


def test_the_name_reader_finds_metrics_and_skips_labels_functions_and_numbers() -> None:
    expr = 'histogram_quantile(0.95, sum by (le, route) (rate(tollway_nope_bucket{a="b"}[5m]))) * 60 / 1e9'
    assert queried(expr) == {"tollway_nope_bucket"}
    assert queried('up{job="tollway"} == 0 and on (instance) tollway_jobs > 1') == {"up", "tollway_jobs"}
    assert queried("time() - max(tollway_nope_seconds) > 1800") == {"tollway_nope_seconds"}


def test_the_dashboard_covers_what_operators_watch() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    text = json.dumps(dashboard)
    for needle in (
        "by (route)", "by (model)", "by (provider", "tollway_spend_nano_usd_total",
        "tollway_reservations_outstanding", "tollway_jobs{", "tollway_jobs_oldest_age_seconds",
        "tollway_rate_limited_total", "tollway_upstream_cooldowns_total", "tollway_ledger_invariant_violations",
    ):  # fmt: skip
        assert needle in text, needle
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    assert all(panel["type"] in {"row", "timeseries"} for panel in dashboard["panels"])
    assert Path(ALERTS).read_text().count("alert:") >= 6
    alerts = {r["alert"]: r["expr"] for g in yaml.safe_load(ALERTS.read_text())["groups"] for r in g["rules"]}
    assert "tollway_ledger_invariant_violations" in alerts["TollwayLedgerInvariantViolated"]
    assert "tollway_ledger_invariant_last_check_timestamp_seconds" in alerts["TollwayLedgerCheckStale"]
