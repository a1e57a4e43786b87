"""`cultura finetune` on a multi-node cluster: two adapters train at once, each Ray Train run on its
own worker node, into an output given as a file:// URI."""

from __future__ import annotations

import json
import re


def test_two_adapters_train_on_different_nodes(cluster, workers, tmp_path):
    from cultura.pipelines.finetune.data import seed_answer_conversations, write_sft_jsonl

    for culture in ("german", "chinese"):
        write_sft_jsonl(tmp_path / "data", culture, seed_answer_conversations(culture, 6))
    out = tmp_path / "adapters"
    result = cluster.cli("finetune", "--data", f"file://{tmp_path / 'data'}", "--out", f"file://{out}",
                         "--max-steps", "1", "--evaluations", "1", "--max-length", "96", "--batch-size", "2")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "2 trained, 0 failed, 2 at a time" in result.stdout and "warning:" not in result.stderr
    nodes = dict(re.findall(r"^  (\w+) .* on node (\w+)\)", result.stdout, re.M))
    assert set(nodes) == {"german", "chinese"}
    assert len(set(nodes.values())) == 2, nodes  # one run per worker node
    assert {n for n in nodes.values()} <= {w[:12] for w in workers}
    registry = json.loads((out / "registry.json").read_text())["adapters"]
    assert {name: entry["path"] for name, entry in registry.items()} == {"chinese": "chinese", "german": "german"}
    assert all((out / name / "adapter_model.safetensors").is_file() for name in registry)
    print(f"\nfinetune on the cluster: runs on nodes {nodes}")
