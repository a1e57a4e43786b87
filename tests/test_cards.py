"""Cards: what produced an output, written beside it and passed on from stage to stage."""

from __future__ import annotations

from cultura.cards import DATA_LICENCES, data_licence, provenance, read_card, upstream, upstream_of, write_card


def test_a_card_round_trips_through_a_local_folder_and_a_uri(tmp_path):
    fields = {"stage": "generate", "seed_ids": ["a", "b"], "split": "train", "nested": {"k": [1, 2.5]}}
    path = write_card(tmp_path / "run", "Dialogues", fields, "Some *Markdown*.")
    assert path == tmp_path / "run" / "README.md"
    front, body = read_card(tmp_path / "run")
    assert {k: front[k] for k in fields} == fields and "python" in front["versions"]
    assert body.startswith("# Dialogues") and "Some *Markdown*." in body
    write_card(f"file://{tmp_path}/remote", "Remote", {"stage": "refine"})
    assert read_card(tmp_path / "remote")[0]["stage"] == "refine"
    assert not list((tmp_path / "run").glob(".*")), "no temporary file left behind"


def test_a_stage_inherits_the_seeds_and_licence_of_the_output_it_was_made_from(tmp_path):
    write_card(tmp_path / "gen", "Dialogues", {"stage": "generate", "model": "m", "seeds": "bundled",
                                                "split": "train", "seed_ids": ["s1"], "data_licence": "X",
                                                "mode": "cross"})
    inherited = upstream(tmp_path / "gen")
    assert inherited == {"seeds": "bundled", "split": "train", "seed_ids": ["s1"], "data_licence": "X",
                         "made_by": {"stage": "generate", "model": "m"}}
    (tmp_path / "gen" / "sft").mkdir()
    assert upstream_of(tmp_path / "gen" / "sft" / "german.jsonl") == inherited  # a file two levels down
    write_card(tmp_path / "experiment", "Experiment", {"experiment": "x"})  # not a stage: not inherited
    assert upstream_of(tmp_path / "experiment" / "adapters") == {} and upstream(tmp_path / "nothing") == {}


def test_the_data_licence_follows_the_seed_source():
    assert data_licence("bundled") == DATA_LICENCES["bundled"]
    assert data_licence("globalopinionqa") == data_licence("my.csv", ["goqa-0123456789"]) == "CC-BY-NC-SA-4.0"
    assert data_licence("my.csv", ["wvs-q1"]) == "as the seed file's source states"


def test_provenance_names_the_model_engine_dtype_and_paper():
    from cultura.api import load_config

    config = load_config(engine={"dtype": "bfloat16"})
    fields = provenance(config, "palette")
    assert fields["dtype"] == "bfloat16" and fields["engine"] == config.engine.kind
    assert fields["paper"] == "Cultural Palette arXiv:2412.11167v3" and fields["arxiv"] == "2412.11167"
    assert "paper" not in provenance(config)
