"""Every CLI command's bad inputs in one table: each gets a clear message and exit status 2, no traceback.

The HTTP endpoints' table is ``BAD_REQUESTS`` in tests/test_serve.py (it needs the running app).
Every case here is refused before Ray starts, so the whole table runs in about a minute.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

CULTURA = str(Path(sys.executable).with_name("cultura"))

# (arguments, text the error must contain). {dir} is a folder of bad files made by `bad_files`.
BAD_INPUT = [
    # unknown names, with suggestions
    (["chat", "--culture", "Germny", "hi"], "did you mean"),
    (["data", "hofstede", "Atlantis"], "unknown country"),
    (["data", "seeds", "--culture", "klingon"], "unknown culture"),
    (["generate", "--cultures", "klingon", "--out", "{dir}/g"], "unknown culture 'klingon'"),
    (["eval", "hofstede", "--cultures", "klingon", "--methods", "base", "--report", "{dir}/r"], "unknown culture"),
    (["eval", "hofstede", "--cultures", "german", "--methods", "magic", "--report", "{dir}/r"], "unknown method"),
    (["eval", "opinions", "--countries", "narnia", "--methods", "base", "--report", "{dir}/r"], "unknown country"),
    (["palette", "hi", "--country", "Narnia"], "unknown country 'Narnia'"),
    (["palette", "hi", "--country", "Japan,Germany"], "needs --gate-only"),
    (["palette", "hi", "--gate-only", "--country", "Japan,Narnia"], "unknown country 'Narnia'"),
    (["chat", "--repetition-penalty", "0", "hi"], "--repetition-penalty"),
    (["demo", "--country", "Narnia"], "unknown country"),
    (["generate", "--cultures", "german", "--adapter", "nosuch", "--out", "{dir}/g"], "unknown adapter 'nosuch'"),
    (["chat", "--engine", "llamacpp", "hi"], "'llamacpp' is not one of"),
    (["nosuchcommand"], "No such command"),
    # path traversal in adapter and model names
    (["chat", "--adapter", "../../etc", "hi"], "not a PEFT adapter folder"),  # cwd {dir}/deep/er
    (["chat", "--adapter", "../../nosuch", "hi"], "not a registered name"),
    (["chat", "--model", "../../x", "hi"], "neither an existing folder"),
    (["generate", "--cultures", "german", "--adapter", "culture/../../x", "--out", "{dir}/g"],
     "not a registered name"),
    (["finetune", "--data", "{dir}/empty", "--out", "{dir}/a", "--only", "../../x"], "invalid adapter name"),
    # missing files and folders
    (["chat", "--config", "/nonexistent/c.yaml", "hi"], "config file not found"),
    (["generate", "--cultures", "german", "--seeds", "/nonexistent.jsonl", "--out", "{dir}/g"], "file not found"),
    (["refine", "--in", "/nonexistent", "--out", "{dir}/r"], "input folder not found"),
    (["finetune", "--data", "/nonexistent", "--out", "{dir}/a"], "data folder not found"),
    (["adapters", "list", "--dir", "/nonexistent"], "registry folder not found"),
    (["eval", "moderation", "--tasks", "/nonexistent", "--cultures", "german", "--report", "{dir}/r"],
     "not found"),
    (["palette-data", "--prompts", "/nonexistent", "--out", "{dir}/p"], "file not found"),
    # non-UTF-8 files
    (["chat", "--config", "{dir}/binary.jsonl", "hi"], "not valid YAML"),
    (["generate", "--cultures", "german", "--seeds", "{dir}/binary.jsonl", "--out", "{dir}/g"], "cannot read"),
    (["palette-data", "--prompts", "{dir}/binary.jsonl", "--out", "{dir}/p"], "cannot read"),
    (["serve", "--config", "{dir}/binary.jsonl"], "not valid YAML"),
    # empty input
    (["chat", "  "], "empty"),
    (["palette", "", "--country", "Japan"], "the prompt is empty"),
    (["generate", "--cultures", "german", "--seeds", "{dir}/empty.jsonl", "--out", "{dir}/g"], "nothing to generate"),
    (["refine", "--in", "{dir}/empty", "--out", "{dir}/r"], "manifest.json is missing"),
    (["finetune", "--data", "{dir}/empty", "--out", "{dir}/a"], "no SFT files"),
    (["eval", "moderation", "--tasks", "{dir}/empty", "--cultures", "german", "--report", "{dir}/r"],
     "holds no task files"),
    (["palette-data", "--prompts", "{dir}/empty.jsonl", "--out", "{dir}/p"], "no prompts"),
    # wrong schema
    (["generate", "--cultures", "german", "--seeds", "{dir}/wrong.jsonl", "--out", "{dir}/g"], "row 1, field 'id'"),
    (["generate", "--cultures", "german", "--seeds", "{dir}/notjson.jsonl", "--out", "{dir}/g"],
     "row 1: not valid JSON"),
    (["data", "seeds", "--file", "{dir}/by-culture.jsonl"], "'german' is a culture; survey data is keyed by country"),
    (["eval", "opinions", "--questions", "{dir}/by-culture.jsonl", "--countries", "Germany", "--report", "{dir}/r"],
     "survey data is keyed by country"),
    (["data", "seeds", "--split", "test"], "'test' is not one of"),
    (["eval", "opinions", "--countries", "Germany", "--proxy", "continent", "--report", "{dir}/r"],
     "'continent' is not"),
    (["data", "get", "wikipedia"], "'wikipedia' is not"),
    (["refine", "--in", "{dir}/wrong-run", "--out", "{dir}/r"], "not generation output"),
    # wrong types, negative and out-of-range numbers
    (["chat", "--max-tokens", "0", "hi"], "--max-tokens"),
    (["chat", "--max-tokens", "lots", "hi"], "'lots' is not a valid integer"),
    (["chat", "--temperature", "-1", "hi"], "--temperature"),
    (["generate", "--cultures", "german", "--rounds", "-1", "--out", "{dir}/g"], "generate.rounds"),
    (["refine", "--in", "{dir}/empty", "--out", "{dir}/r", "--k", "-3"], "must be >= 1 or 'auto'"),
    (["finetune", "--data", "{dir}/empty", "--out", "{dir}/a", "--lr", "-1"], "finetune.learning_rate"),
    (["palette", "hi", "--top-k", "9"], "palette.top_k"),
    (["palette", "hi", "--tau", "0"], "palette.tau"),
    (["serve", "--port", "70000"], "--port"),
    (["serve", "--host", "0.0.0.0.0"], "not an IP address or host name"),
    (["demo", "--cultures", "german"], "two or more cultures"),
    # an output path that is a file
    (["generate", "--cultures", "german", "--out", "{dir}/empty.jsonl"], "is a file"),
]


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory) -> Path:
    """A folder of bad inputs: a binary file, an empty file and folder, a wrong-schema file and run."""
    root = tmp_path_factory.mktemp("bad")
    (root / "binary.jsonl").write_bytes(b"\xff\xfe\x00\x81 not text")
    (root / "empty.jsonl").write_text("")
    (root / "wrong.jsonl").write_text('{"a": 1}\n')
    (root / "notjson.jsonl").write_text("{not json\n")
    (root / "by-culture.jsonl").write_text('{"id": "c1", "source": "wvs", "topic": "t", "kind": "question", '
                                           '"text": "Q?", "options": ["Yes", "No"], "attitudes": {"german": "Yes"}}\n')
    (root / "empty").mkdir()
    (root / "etc").mkdir()  # what ../../etc reaches from the working folder below: a folder, not an adapter
    (root / "deep" / "er").mkdir(parents=True)
    (root / "wrong-run").mkdir()
    (root / "wrong-run" / "manifest.json").write_text('{"x": 1}\n')
    return root


@pytest.mark.parametrize(("args", "message"), BAD_INPUT, ids=[" ".join(a)[:60] for a, _ in BAD_INPUT])
def test_bad_input_gives_a_message_and_exit_status_2(bad_files, args, message):
    argv = [a.replace("{dir}", str(bad_files)) for a in args]
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    # A fixed working folder, so relative paths such as ../../etc mean the same on every checkout.
    result = subprocess.run([CULTURA, *argv], capture_output=True, text=True, timeout=120, env=env,
                            cwd=bad_files / "deep" / "er")
    assert result.returncode == 2, result.stdout + result.stderr
    assert message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    assert not (bad_files / "g").exists() and not (bad_files / "r").exists(), "a refused run left output behind"
