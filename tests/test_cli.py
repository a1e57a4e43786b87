"""The CLI as a user runs it: fast help, real answers, clear errors without tracebacks."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path


CULTURA = str(Path(sys.executable).with_name("cultura"))


def run_cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    return subprocess.run([CULTURA, *args], capture_output=True, text=True, timeout=timeout, env=env)


def test_help_is_fast_and_imports_nothing_heavy():
    start = time.perf_counter()
    result = run_cli("--help")
    elapsed = time.perf_counter() - start
    assert result.returncode == 0 and "chat" in result.stdout and "models" in result.stdout
    assert elapsed < 2.0, f"--help took {elapsed:.2f} s"
    probe = subprocess.run(
        [sys.executable, "-c",
         "import sys, cultura.cli as c\n"
         "for name in c.COMMANDS: c.cli.get_command(None, name)\n"
         "heavy = [m for m in ('torch', 'transformers', 'ray', 'vllm', 'sentence_transformers', 'matplotlib')"
         " if m in sys.modules]\n"
         "print(heavy)"],
        capture_output=True, text=True, timeout=60)
    assert probe.stdout.strip() == "[]", probe.stdout + probe.stderr


def test_every_subcommand_has_help():
    from cultura.cli import COMMANDS

    for name in COMMANDS:
        result = run_cli(name, "--help")
        assert result.returncode == 0 and "Usage" in result.stdout, name


def test_chat_answers_as_a_german_persona():
    result = run_cli("chat", "--culture", "german", "--max-tokens", "24", "How important is family in your life?")
    assert result.returncode == 0, result.stderr
    assert "Germany" in result.stdout
    answer = result.stdout.split("\n", 1)[1].strip()
    assert len(answer.split()) >= 3


def test_models_list_shows_the_prepared_default():
    result = run_cli("models", "list")
    assert result.returncode == 0 and "SmolLM2-135M-Instruct" in result.stdout and "True" in result.stdout


def test_data_commands_show_bundled_data():
    hof = run_cli("data", "hofstede", "germany")
    assert hof.returncode == 0 and "Germany" in hof.stdout and "PDI" in hof.stdout
    seeds = run_cli("data", "seeds", "--culture", "german")
    assert seeds.returncode == 0 and "seeds" in seeds.stdout


def test_palette_gate_only_prints_one_json_object_per_country_without_chatter():
    import json

    from cultura.data.hofstede import CONTINENTS
    from cultura.eval.countries import resolve_countries

    result = run_cli("palette", "What should I bring when visiting a friend's family for dinner?", "--gate-only",
                     "--country", "Japan,Germany,palette18", "--json")
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["country"] for r in rows] == resolve_countries("Japan,Germany,palette18")
    for r in rows:
        assert list(r["weights"]) == list(CONTINENTS) and abs(sum(r["weights"].values()) - 1) < 1e-3
        assert r["selected"][0] == max(r["weights"], key=r["weights"].get)
    assert "Loading weights" not in result.stderr, result.stderr


QUIET_DRIVER = """
import os, sys
from cultura import console
from cultura.ray_utils import init_ray
console.configure(verbose=False)
init_ray(num_cpus=1, include_dashboard=False)
os.write(2, b"a line from C code\\n")  # what Ray's C++ core worker does with its error-level lines
print("a line from cultura", file=sys.stderr)
print(console._stderr_log)
import ray
ray.shutdown()
"""


def test_without_verbose_c_level_stderr_goes_to_rays_session_logs_and_python_stderr_stays():
    result = subprocess.run([sys.executable, "-c", QUIET_DRIVER], capture_output=True, text=True, timeout=180,
                            env=dict(os.environ, HF_HUB_OFFLINE="1"))
    assert result.returncode == 0, result.stderr
    log = Path(result.stdout.strip().splitlines()[-1])
    assert "a line from cultura" in result.stderr
    assert "a line from C code" not in result.stderr and "Started a local Ray" not in result.stderr
    assert log.parent.name == "logs" and "a line from C code" in log.read_text()
