"""Cultural Palette on the real default model and a real local Ray: the stages, the blends, the data.

One Palette (engine actor, five continent agents, the Meta Agent, the gate actor) serves the class's
tests and is closed before the dataset synthesis, which starts its own agents: on two CPUs only one
engine fits at a time.
"""

from __future__ import annotations

import json
import math

import pytest

from cultura.data.hofstede import CONTINENTS
from cultura.errors import CulturaError, UnknownNameError
from cultura.palette.meta import final_answer

PROMPT = "What should I bring when visiting a friend's family for dinner?"


def random_lora(base_path, folder, seed: int, r: int, alpha: float) -> str:
    """A small LoRA adapter with random (non-zero) A and B on the default model, saved with peft."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(base_path, dtype=torch.float32)
    config = LoraConfig(r=r, lora_alpha=alpha, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    peft_model = get_peft_model(model, config)
    with torch.no_grad():
        for name, param in peft_model.named_parameters():
            if "lora_" in name:
                param.mul_(0.05)  # small updates: the model still speaks
    peft_model.save_pretrained(str(folder))
    return str(folder)


def lora_deltas(folder) -> dict[str, object]:
    """Module -> scaling * B @ A of a saved adapter."""
    from pathlib import Path

    from safetensors.torch import load_file

    config = json.loads((Path(folder) / "adapter_config.json").read_text())
    scaling = config["lora_alpha"] / config["r"]
    tensors = load_file(str(Path(folder) / "adapter_model.safetensors"))
    return {key.removesuffix(".lora_A.weight"): scaling * tensors[key.replace("lora_A", "lora_B")] @ tensors[key]
            for key in tensors if key.endswith("lora_A.weight")}


@pytest.fixture(scope="module")
def continent_loras(tmp_path_factory, default_model_path):
    """Two random LoRA adapters standing for the Asia and Europe continent adapters."""
    root = tmp_path_factory.mktemp("loras")
    return {"Asia": random_lora(default_model_path, root / "asia", seed=1, r=4, alpha=8),
            "Europe": random_lora(default_model_path, root / "europe", seed=2, r=2, alpha=2)}


def test_merged_adapter_is_the_weighted_sum(continent_loras, tmp_path):
    from cultura.palette.merge import merge_adapters

    weights = {"Asia": 0.7, "Europe": 0.3}
    merged = merge_adapters("default", continent_loras, weights, tmp_path / "merged")
    assert json.loads((merged / "adapter_config.json").read_text())["r"] == 4 + 2
    parts = {c: lora_deltas(folder) for c, folder in continent_loras.items()}
    result = lora_deltas(merged)
    assert set(result) == set(parts["Asia"]) and len(result) > 0
    for module, delta in result.items():
        expected = sum(weights[c] * parts[c][module] for c in weights)
        assert float((delta - expected).abs().max()) < 1e-5, module
    assert merge_adapters("default", continent_loras, weights, tmp_path / "merged") == merged  # cached


def test_concatenation_covers_modules_only_some_adapters_have_and_refuses_dora(tmp_path):
    import torch
    from safetensors.torch import save_file

    from cultura.palette.merge import concatenated_lora, merge_adapters

    torch.manual_seed(0)
    q, v = "base_model.model.layers.0.q_proj", "base_model.model.layers.0.v_proj"
    first = ({"r": 2, "lora_alpha": 4, "target_modules": ["q_proj"]},
             {f"{q}.lora_A.weight": torch.randn(2, 5), f"{q}.lora_B.weight": torch.randn(3, 2)})
    second = ({"r": 4, "lora_alpha": 2, "use_rslora": True, "target_modules": ["q_proj", "v_proj"]},
              {f"{m}.lora_{f}.weight": torch.randn(*shape) for m in (q, v) for f, shape in (("A", (4, 5)), ("B", (3, 4)))})
    config, merged = concatenated_lora([first, second], [0.25, 0.75])
    assert config["r"] == config["lora_alpha"] == 6 and config["target_modules"] == ["q_proj", "v_proj"]

    def delta(tensors, module, scaling=1.0):
        return scaling * tensors[f"{module}.lora_B.weight"] @ tensors[f"{module}.lora_A.weight"]

    expected_q = 0.25 * delta(first[1], q, 4 / 2) + 0.75 * delta(second[1], q, 2 / 4 ** 0.5)
    assert torch.allclose(delta(merged, q), expected_q, atol=1e-6)
    assert torch.allclose(delta(merged, v), 0.75 * delta(second[1], v, 2 / 4 ** 0.5), atol=1e-6)
    dora = tmp_path / "dora"
    dora.mkdir()
    (dora / "adapter_config.json").write_text(json.dumps({**first[0], "use_dora": True}))
    save_file(first[1], str(dora / "adapter_model.safetensors"))
    with pytest.raises(CulturaError, match="use_dora"):
        merge_adapters("default", {"Asia": str(dora)}, {"Asia": 1.0}, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def agent_calls(pal) -> dict[str, int]:
    """How many respond calls each agent actor has served (read from the actor itself)."""
    import ray

    handles = dict(pal.handles.agents) | {"meta": pal.handles.meta}
    return {k: ray.get(h.__ray_call__.remote(lambda agent: agent.calls)) for k, h in handles.items()}


@pytest.fixture(scope="class")
def pal(ray_session, continent_loras, tmp_path_factory):
    """A Palette with the two random adapters as Asia's and Europe's, short answers, k=2."""
    from cultura.config import load_config
    from cultura.palette import Palette

    config = load_config(None, {"palette.max_tokens": 12, "palette.top_k": 2, "palette.tau": 0.2,
                                "palette.continent_adapters": continent_loras, "palette.batch_size": 4,
                                "home": str(tmp_path_factory.mktemp("home"))})
    palette = Palette(config)
    yield palette
    palette.close()


class TestPalette:
    def test_drafts_come_only_from_the_chosen_agents(self, pal):
        before = agent_calls(pal)
        response = pal.respond(PROMPT, "japanese")
        after = agent_calls(pal)
        assert response.country == "Japan" and response.blend == "aggregate"
        assert math.isclose(sum(response.weights.values()), 1.0, rel_tol=1e-9)
        assert len(response.selected) == 2 and set(response.drafts) == set(response.selected)
        assert all(response.weights[c] == 0 for c in CONTINENTS if c not in response.selected)
        assert all(text.strip() for text in response.drafts.values()) and response.text.strip()
        for continent in CONTINENTS:
            assert after[continent] - before[continent] == (1 if continent in response.selected else 0), continent
        assert after["meta"] - before["meta"] == 1
        assert set(response.missing) == set(response.selected) - {"Asia", "Europe"}
        assert {"gate_s", "drafts_s", "aggregate_s", "total_s"} <= set(response.timings)

    def test_select_answers_with_the_top_draft(self, pal):
        before = agent_calls(pal)
        prompt = "How do people greet each other in Nigeria?"
        response = pal.respond(prompt, blend="select")
        after = agent_calls(pal)
        assert response.country == "Nigeria" and response.selected[0] == "Africa"
        assert list(response.drafts) == ["Africa"]  # the answer is that draft, without an echoed label
        assert response.text == final_answer(response.drafts["Africa"], prompt, {}, {}, "Nigeria")
        assert {k for k in after if after[k] != before[k]} == {"Africa"}

    def test_weighted_merge_generates_once_with_a_cached_merged_adapter(self, pal):
        before = agent_calls(pal)
        first = pal.respond("Which gifts are polite in Korea and in Germany?", "South Korea", blend="weighted-merge")
        assert agent_calls(pal) == before  # no drafts, no Meta Agent: one generation on the engine
        assert first.drafts == {} and first.text.strip() and first.merged_adapter
        record = json.loads((__import__("pathlib").Path(first.merged_adapter) / "cultura_merge.json").read_text())
        # the selected continents with an adapter, at the weights rounded to palette.merge_round (a
        # continent whose weight rounds to 0 beside the home continent's takes no part)
        from cultura.palette.merge import round_weights

        merged_with = round_weights({c: first.weights[c] for c in first.selected if c in ("Asia", "Europe")}, 0.05)
        assert "Asia" in merged_with and record["weights"] == pytest.approx(merged_with)
        assert math.isclose(sum(record["weights"].values()), 1.0, rel_tol=1e-6)
        second = pal.respond("Which gifts are polite in Korea and in Germany?", "South Korea", blend="weighted-merge")
        assert second.merged_adapter == first.merged_adapter

    def test_respond_batch_batches_prompts_through_ray_data(self, pal):
        prompts = [PROMPT, "Is it rude to be late to a meeting?", "How do people celebrate a wedding in Brazil?"]
        rows = pal.respond_batch(prompts, ["India", None, None]).take_all()
        assert [r["prompt"] for r in sorted(rows, key=lambda r: prompts.index(r["prompt"]))] == prompts
        for row in rows:
            assert math.isclose(sum(row["weights"].values()), 1.0, rel_tol=1e-6)
            drafted = {c for c, text in row["drafts"].items() if text is not None}
            assert drafted == set(row["selected"]) and row["text"].strip()
        assert next(r for r in rows if r["prompt"] == prompts[2])["country"] == "Brazil"

    def test_bad_input_is_a_clear_error(self, pal):
        with pytest.raises(CulturaError, match="prompt is empty"):
            pal.respond("  ")
        with pytest.raises(UnknownNameError, match="did you mean"):
            pal.respond(PROMPT, "Brazill")
        with pytest.raises(CulturaError, match="row 2"):
            pal.respond_batch([PROMPT, ""])


def test_config_rejects_bad_gate_values():
    from cultura.config import load_config
    from cultura.errors import ConfigError

    for key, value in (("palette.top_k", 0), ("palette.top_k", 6), ("palette.tau", -0.5), ("palette.tau", 0),
                       ("palette.temperature", -1), ("palette.continent_adapters", {"Atlantis": "x"})):
        with pytest.raises(ConfigError, match="palette"):
            load_config(None, {key: value})


def test_palette_data_synthesis_pairs_chosen_and_rejected(ray_session, tmp_path):
    import pyarrow.parquet as pq

    from cultura.config import load_config
    from cultura.pipelines.palette_data.read import load_palette_jsonl
    from cultura.pipelines.palette_data.schema import palette_schema
    from cultura.pipelines.palette_data.synthesize import synthesize_palette

    config = load_config(None, {"palette.max_tokens": 16, "palette.max_distance": 10.0})
    summary = synthesize_palette(config, tmp_path / "pal", "bundled", limit=2, samples=2)
    assert summary.prompts == 2 and summary.samples == 2 * 5 * 2
    table = pq.read_table(tmp_path / "pal" / "palette.parquet")
    assert table.schema.equals(palette_schema(), check_metadata=False)
    assert summary.rows == table.num_rows > 0
    assert summary.ratings_read == summary.samples * 6  # option scoring rates every dimension
    assert 0 < summary.as_dict()["judge_valid_mass"] <= 1
    rows = table.to_pylist()
    by_query: dict[str, dict[str, dict]] = {}
    for row in rows:
        assert row["continent"] not in by_query.setdefault(row["query"], {})
        by_query[row["query"]][row["continent"]] = row
    for query, chosen in by_query.items():
        for continent, row in chosen.items():
            others = [c for c in CONTINENTS if c in chosen and c != continent]
            assert row["rejected_continents"] == others
            assert row["rejected_response"] == [chosen[o]["response"] for o in others]
            assert row["response"] in [c["response"] for c in row["candidates"]]
            assert row["hofstede_distance"] == min(c["distance"] for c in row["candidates"] if c["distance"] is not None)
            assert all(1 <= r <= 5 for r in row["judge_ratings"].values()) and 0 < row["judge_valid_mass"] <= 1
    jsonl = load_palette_jsonl(tmp_path / "pal" / "palette.jsonl")
    assert jsonl.column("response").to_pylist() == table.column("response").to_pylist()
    manifest = json.loads((tmp_path / "pal" / "manifest.json").read_text())
    assert manifest["status"] == "complete" and manifest["summary"]["rows"] == table.num_rows
    with pytest.raises(CulturaError, match="--overwrite"):
        synthesize_palette(config, tmp_path / "pal", "bundled", limit=1)


def test_published_palette_jsonl_loads(tmp_path):
    from cultura.errors import DataError
    from cultura.pipelines.palette_data.read import load_palette_jsonl, palette_pairs

    folder = tmp_path / "published"
    folder.mkdir()
    (folder / "Asia.jsonl").write_text(json.dumps(
        {"query": "How to greet elders?", "response": "Bow slightly.", "rejected_response": ["Hug them.", "Wave."]})
        + "\n", encoding="utf-8")
    (folder / "europe_train.jsonl").write_text(json.dumps(
        {"query": "How to greet elders?", "chosen": "Shake hands.", "rejected": "Bow."}) + "\n", encoding="utf-8")
    table = load_palette_jsonl(folder)
    assert table.column("continent").to_pylist() == ["Asia", "Europe"]
    assert table.column("rejected_response").to_pylist() == [["Hug them.", "Wave."], ["Bow."]]
    assert len(palette_pairs(table)) == 3
    (folder / "Oceania.jsonl").write_text('{"query": "x"}\n', encoding="utf-8")
    with pytest.raises(DataError, match=r"Oceania.jsonl: row 1, field 'response'"):
        load_palette_jsonl(folder)
