"""cluster.yaml is valid for the Ray cluster launcher (Ray's own schema validation)."""

from __future__ import annotations

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def test_cluster_yaml_passes_ray_schema_validation():
    from ray.autoscaler._private.util import prepare_config, validate_config

    config = yaml.safe_load((ROOT / "cluster.yaml").read_text())
    prepared = prepare_config(config)
    validate_config(prepared)
    workers = prepared["available_node_types"]["worker.gpu"]
    assert workers["resources"]["GPU"] == 1 and workers["min_workers"] == 0 and workers["max_workers"] >= 1
    assert any("[gpu]" in cmd for cmd in prepared["setup_commands"])


def test_kuberay_manifests_are_well_formed():
    for name, kind in [("rayjob-generate.yaml", "RayJob"), ("rayservice-serve.yaml", "RayService")]:
        doc = yaml.safe_load((ROOT / "deploy" / "k8s" / name).read_text())
        assert doc["apiVersion"].startswith("ray.io/") and doc["kind"] == kind
