"""The Grafana dashboard asks only for metrics the service exports, with labels they carry."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.metrics import MetricWrapperBase

from service.metrics import Metrics

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy" / "grafana" / "dashboards" / "streamuq.json"
LATENCY = "streamuq_frame_latency_seconds"
METRIC = re.compile(r"\bstreamuq_[a-z0-9_]+")
BY = re.compile(r"\bby\s*\(([^)]*)\)")
MATCHER = re.compile(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)")
SAMPLE_SUFFIXES = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_count", "_sum", "_created")}
# Labels Prometheus adds at scrape time, and the bucket bound of histograms.
TARGET_LABELS = {"instance", "job", "service", "le"}


def _exported() -> dict[str, set[str]]:
    """Every sample name the service's metrics expose → the labels of its family."""
    names: dict[str, set[str]] = {}
    collectors = [c for c in vars(Metrics()).values() if isinstance(c, MetricWrapperBase)]
    assert len(collectors) >= 7, collectors
    for collector in collectors:
        for family in collector.describe():
            for suffix in SAMPLE_SUFFIXES.get(family.type, ("",)):
                names[family.name + suffix] = set(collector._labelnames)
    return names


def _dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return data


def _exprs() -> list[str]:
    dashboard = _dashboard()
    panels = [p for p in dashboard["panels"] if p["type"] != "row"]
    exprs = [target["expr"] for panel in panels for target in panel["targets"]]
    exprs += [v["definition"] for v in dashboard["templating"]["list"] if v["type"] == "query"]
    return exprs


def _as_promql(expr: str) -> str:
    """Grafana's variables replaced by what they stand for, so that promtool can parse it."""
    expr = expr.replace("$__rate_interval", "1m").replace("$instance", ".*")
    return re.sub(r"label_values\((\w+),\s*\w+\)", r"\1", expr)


def test_dashboard_metric_names_are_exported_by_the_service() -> None:
    exported = _exported()
    used = {name for expr in _exprs() for name in METRIC.findall(expr)}
    assert used, "the dashboard queries no streamuq metric"
    assert used <= set(exported), f"not exported by service/metrics.py: {sorted(used - set(exported))}"


def test_dashboard_labels_exist_on_their_metrics() -> None:
    exported = _exported()
    for expr in _exprs():
        labels = set().union(*(exported[name] for name in METRIC.findall(expr))) | TARGET_LABELS
        grouped = {label.strip() for group in BY.findall(expr) for label in group.split(",") if label.strip()}
        matched = {m for selector in re.findall(r"\{([^}]*)\}", expr) for m in MATCHER.findall(selector)}
        assert grouped | matched <= labels, (expr, sorted((grouped | matched) - labels))


def test_dashboard_has_the_panels_operators_need() -> None:
    exprs = "\n".join(_exprs())
    for quantile in ("0.5", "0.99"):
        per_stage = rf"histogram_quantile\({quantile}, sum by \(le, stage\) \(rate\({LATENCY}_bucket"
        assert re.search(per_stage, exprs), f"p{quantile} latency per stage"
    for needed in (
        "rate(streamuq_frames_total",
        "streamuq_streams_active",
        "rate(streamuq_dropped_frames_total",
        "streamuq_queue_depth",
        "streamuq_batch_size_bucket",
    ):
        assert needed in exprs, needed


def test_dashboard_uses_the_provisioned_datasource() -> None:
    dashboard = _dashboard()
    (variable,) = [v for v in dashboard["templating"]["list"] if v["type"] == "datasource"]
    provisioned = yaml.safe_load(
        (ROOT / "deploy" / "grafana" / "provisioning" / "datasources" / "prometheus.yml").read_text()
    )
    (datasource,) = provisioned["datasources"]
    assert variable["current"]["value"] == datasource["uid"]
    for panel in dashboard["panels"]:
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))


@pytest.mark.skipif(
    shutil.which("promtool") is None, reason="promtool not installed (apt-get install prometheus)"
)
def test_dashboard_queries_parse_as_promql(tmp_path: Path) -> None:
    rules = [
        {"record": f"streamuq:dashboard_query_{i}", "expr": _as_promql(e)} for i, e in enumerate(_exprs())
    ]
    path = tmp_path / "dashboard-queries.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    result = subprocess.run(
        ["promtool", "check", "rules", str(path)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
