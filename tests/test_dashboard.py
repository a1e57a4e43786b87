"""The Grafana dashboard (deploy/grafana/cultura_dashboard.json) plots only what the code exports, with
the labels the code records, and every metric the code declares has a panel."""

from __future__ import annotations

import importlib
import json
import pkgutil
import re
from pathlib import Path

import cultura

DASHBOARD = Path(__file__).resolve().parents[1] / "deploy" / "grafana" / "cultura_dashboard.json"
# modules that import an optional engine at the top by design (its own venv has it: make test-vllm)
OPTIONAL_ENGINE_MODULES = {"cultura.engines.vllm.ngram": "vllm"}
RAY_LABELS = {"SessionName", "NodeAddress", "WorkerId", "Component", "JobId"}  # Ray adds these to every series


def declared_metrics():
    """Exported series name -> (spec, extra labels) of every metric any cultura module declares."""
    from cultura.metrics import DECLARED

    for module in pkgutil.walk_packages(cultura.__path__, "cultura."):
        try:
            importlib.import_module(module.name)
        except ModuleNotFoundError as exc:  # a module built on an optional engine that is not installed
            if OPTIONAL_ENGINE_MODULES.get(module.name) != (exc.name or "").split(".")[0]:
                raise
    series = {}
    for spec in DECLARED.values():
        for name in spec.series:
            series[name] = (spec, {"le"} if name.endswith("_bucket") else set())
    return series


def plotted():
    """(panel title, PromQL expression) of every query on the dashboard."""
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return [(p["title"], t["expr"]) for p in dashboard["panels"] if p["type"] != "row" for t in p["targets"]]


def test_every_plotted_metric_and_label_is_exported():
    series = declared_metrics()
    queries = plotted()
    assert len(queries) >= 20
    for title, expr in queries:
        names = re.findall(r"\bray_cultura_\w+", expr)
        assert names, f"{title}: plots no cultura metric"
        for name in names:
            assert name in series, f"{title}: {name} is not exported by the code (known: {sorted(series)})"
        for labels, name in re.findall(r"by \(([^)]*)\) \((?:rate\()?(ray_cultura_\w+)", expr):
            spec, extra = series[name]
            unknown = {label.strip() for label in labels.split(",")} - set(spec.tags) - extra - RAY_LABELS
            assert not unknown, f"{title}: {name} has no label(s) {sorted(unknown)} (its tags: {spec.tags})"


def test_every_declared_metric_has_a_panel():
    plotted_names = {name for _, expr in plotted() for name in re.findall(r"\bray_cultura_\w+", expr)}
    missing = sorted({spec.full_name for spec, _ in declared_metrics().values()
                      if not set(spec.series) & plotted_names})
    assert not missing, f"metrics without a panel on the dashboard: {missing}"
