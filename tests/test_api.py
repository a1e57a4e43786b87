"""The public Python API: a lazy face without side effects, overrides that name their mistakes, and
README's example run as it stands (generate -> refine -> finetune -> evaluate on the default model)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def _python(code: str, cwd: Path | None = None, timeout: int = 900) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "RAY_AUTH_MODE": "disabled", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
    env.pop("OMP_WAIT_POLICY", None)  # so the side-effect check below sees whether cultura sets it
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)


def test_import_is_lazy_and_changes_no_environment():
    done = _python(textwrap.dedent("""
        import os, sys
        before = dict(os.environ)
        import cultura
        assert dict(os.environ) == before, "import cultura changed the environment"
        assert "cultura.api" not in sys.modules
        verbs = [cultura.load_config, cultura.create_engine, cultura.generate, cultura.refine, cultura.finetune,
                 cultura.synthesize_palette, cultura.evaluate, cultura.serve, cultura.run_experiment]
        assert cultura.serve.__module__ == "cultura.api", "the serve verb, not the cultura.serve package"
        assert all("Args:" in (v.__doc__ or "") for v in verbs)
        heavy = [m for m in ("torch", "transformers", "ray", "sentence_transformers") if m in sys.modules]
        assert not heavy, heavy
        assert dict(os.environ) == before
        print(",".join(cultura.__all__))
    """))
    assert done.returncode == 0, done.stderr
    assert "evaluate" in done.stdout
    with pytest.raises(AttributeError):
        import cultura

        cultura.no_such_verb  # noqa: B018


def test_overrides_set_the_verbs_section_and_name_a_misspelled_field():
    from cultura.api import load_config, with_overrides
    from cultura.errors import ConfigError

    config = load_config(sampling={"max_tokens": 20}, placement="shared")
    assert config.sampling.max_tokens == 20
    changed = with_overrides(config, "generate", rounds=2, cultures=["german"], sampling={"temperature": 0.0},
                             max_seeds=None)
    assert (changed.generate.rounds, changed.generate.cultures, changed.sampling.temperature) == (2, ["german"], 0.0)
    assert changed.sampling.max_tokens == 20, "an override keeps what the configuration already set"
    assert config.generate.rounds != 2, "the given configuration is not changed"
    with pytest.raises(ConfigError, match="roundz"):
        with_overrides(config, "generate", roundz=2)
    with pytest.raises(ConfigError, match="generate.rounds"):
        with_overrides(config, "generate", rounds=0)


def test_evaluate_refuses_an_unknown_option_or_evaluation_before_any_model_loads():
    import cultura
    from cultura.errors import ConfigError, UnknownNameError

    with pytest.raises(ConfigError, match="countrys"):
        cultura.evaluate(None, "opinions", countrys="Germany")
    with pytest.raises(UnknownNameError, match="evaluation"):
        cultura.evaluate(None, "vibes")
    with pytest.raises(UnknownNameError, match="method"):
        cultura.evaluate(None, "hofstede", methods="base,magic")


def _readme_example() -> str:
    section = README.read_text(encoding="utf-8").split("## Python API", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    assert len(blocks) == 1, "the Python API section holds one runnable example"
    return blocks[0]


@pytest.mark.slow
def test_readme_python_api_example_runs_without_the_cli(tmp_path, default_model_path):
    check = textwrap.dedent("""
        import sys
        assert "cultura.commands" not in sys.modules and "cultura.cli" not in sys.modules
        assert {r["method"] for r in res.result.by_method} == {"base", "prompted", "adapter", "midpoint", "world-mean"}
        assert res.answered >= 2 * 3 * 24 * 0.9, res.answered
        assert (res.report / "report.md").is_file()
        from cultura.cards import read_card
        made = read_card(gen.out)[0]  # every output's card, each passing on the seeds it rests on
        assert made["stage"] == "generate" and made["split"] == "train" and made["seed_ids"]
        assert made["paper"] == "CulturePark arXiv:2405.15145v3" and made["data_licence"].startswith("Apache-2.0")
        refined, adapters, german, report = (read_card(p)[0] for p in (ref.out, ada.out, ada.out / "german", res.report))
        for card in (refined, adapters, german, report["adapters_trained_on"]):
            assert card["seed_ids"] == made["seed_ids"] or set(card["seed_ids"]) <= set(made["seed_ids"]), card
            assert card["split"] == "train" and card["data_licence"] == made["data_licence"]
        assert refined["made_by"]["stage"] == "generate" and refined["sft_rows"]["german"] > 0
        assert german["library_name"] == "peft" and german["base_model"] == made["model"] and "eval_loss" in german
        assert set(adapters["adapters"]) == {"german", "chinese"} and report["evaluation"] == "hofstede"
        print("API-EXAMPLE-OK")
    """)
    done = _python(_readme_example() + check, cwd=tmp_path, timeout=1200)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "API-EXAMPLE-OK" in done.stdout
    methods = re.findall(r"^(base|prompted|adapter) 2 ", done.stdout, flags=re.M)
    assert sorted(methods) == ["adapter", "base", "prompted"], done.stdout
