"""Supervised fine-tuning sets: reading them, checking them, and tokenising them for LoRA training.

Two inputs, one output shape (a list of chat conversations per adapter):

- ``--per culture``: the refinement output, ``DIR/sft/<culture>.jsonl`` (or ``.parquet``), one
  conversation a row in the OpenAI chat fine-tuning format (``{"messages": [...], "culture": ...}``).
- ``--per continent``: a Cultural Palette dataset (``DIR/palette.parquet`` or ``.jsonl``, or the
  published JSONL files), read with :func:`cultura.pipelines.palette_data.read.read_palette`, rows
  ``{query, continent, response, rejected_response, ...}``; each row becomes the continent persona's
  system prompt, the query, and the chosen response (SFT on the preferred answers).

Tokenisation uses the model's chat template; the loss covers the assistant turns only (every other
label is -100), including the end-of-turn token so the model learns where to stop.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cultura.adapters import validate_adapter_name
from cultura.data.cultures import get_culture
from cultura.data.hofstede import CONTINENTS
from cultura.data.seed_files import load_seeds
from cultura.errors import DataError, UnknownNameError
from cultura.jsonl import read_jsonl
from cultura.personas import chatbot_messages, continent_persona
from cultura.pipelines.palette_data.read import read_palette
from cultura.pipelines.palette_data.schema import PARQUET
from cultura.pipelines.refine.judge_check import first_person

ROLES = ("system", "user", "assistant")
KINDS = ("culture", "continent")
IGNORE_INDEX = -100  # label of tokens the loss skips


@dataclass(frozen=True)
class SftSet:
    """The training conversations of one adapter and where they came from."""

    name: str  # adapter name: the culture key or the continent in lower case
    kind: str  # culture | continent
    target: str  # culture key or continent name (as the personas spell it)
    source: Path  # the file the rows were read from
    sha256: str  # content hash of that file
    conversations: tuple[tuple[dict[str, str], ...], ...]
    # seeds the rows were made from (the ``seed_id`` of each row), None when a row does not say
    seed_ids: tuple[str, ...] | None = None


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    return files_sha256([path])


def files_sha256(paths: Sequence[Path]) -> str:
    """Hex SHA-256 of the files' bytes, one after the other."""
    digest = hashlib.sha256()
    for path in paths:
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def read_rows(path: Path) -> Iterator[tuple[int, Any]]:
    """Yield ``(row number, row)`` from a JSONL or Parquet file; a malformed line is a DataError."""
    if path.suffix == ".parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:
            table = pq.read_table(path)
        except (pa.ArrowException, OSError) as exc:
            raise DataError(f"{path}: not a readable Parquet file ({exc})") from None
        yield from enumerate(table.to_pylist(), start=1)
        return
    yield from read_jsonl(path)


def check_messages(messages: Any, where: str) -> tuple[dict[str, str], ...]:
    """Validate one conversation (roles, non-empty text, at least one assistant turn) and return it."""
    if not isinstance(messages, (list, tuple)) or not messages:
        raise DataError(f"{where}, field 'messages': expected a non-empty list of chat messages")
    checked = []
    for i, m in enumerate(messages):
        if not isinstance(m, dict):
            raise DataError(f"{where}, messages[{i}]: expected an object with 'role' and 'content'")
        role, content = m.get("role"), m.get("content")
        if role not in ROLES:
            raise DataError(f"{where}, messages[{i}].role: must be one of {', '.join(ROLES)}, got {role!r}")
        if not isinstance(content, str) or not content.strip():
            raise DataError(f"{where}, messages[{i}].content: expected non-empty text")
        checked.append({"role": role, "content": content})
    if not any(m["role"] == "assistant" for m in checked):
        raise DataError(f"{where}, field 'messages': no assistant message to learn from")
    return tuple(checked)


def _culture_files(data: Path) -> dict[str, Path]:
    """Culture name -> SFT file in ``data/sft`` (or ``data`` itself); JSONL preferred over Parquet."""
    folder = data / "sft" if (data / "sft").is_dir() else data
    files: dict[str, Path] = {}
    for suffix in (".parquet", ".jsonl"):  # later wins: JSONL when both exist
        for path in sorted(folder.glob(f"*{suffix}")):
            if not path.name.startswith("."):
                files[path.stem] = path
    if not files:
        raise DataError(f"no SFT files in {folder} (expected sft/<culture>.jsonl or .parquet; "
                        "run `cultura refine` first)")
    return files


def load_culture_sets(data: Path, only: Sequence[str] | None = None) -> list[SftSet]:
    """One :class:`SftSet` per culture file of a refinement output folder."""
    files = _culture_files(data)
    for name in only or ():
        if name not in files:
            raise UnknownNameError("culture in the data", name, files)
    sets = []
    for name, path in files.items():
        if only and name not in only:
            continue
        validate_adapter_name(name)
        conversations = []
        seed_ids: set[str] | None = set()
        for number, row in read_rows(path):
            where = f"{path}, row {number}"
            if not isinstance(row, dict):
                raise DataError(f"{where}: expected an object with a 'messages' field")
            if "messages" not in row:
                raise DataError(f"{where}: missing field 'messages' (the OpenAI chat fine-tuning format)")
            culture = row.get("culture")
            if culture is not None and str(culture).lower() != name.lower():
                raise DataError(f"{where}, field 'culture': {culture!r} in the file of culture {name!r}")
            conversations.append(check_messages(row["messages"], where))
            if seed_ids is not None and row.get("seed_id"):
                seed_ids.add(str(row["seed_id"]))
            else:
                seed_ids = None  # one row without its seed: what the adapter saw is not known
        sets.append(SftSet(name, "culture", name, path, file_sha256(path), tuple(conversations),
                           tuple(sorted(seed_ids)) if seed_ids is not None else None))
    return sets


def _palette_files(data: Path) -> tuple[Path, list[Path]]:
    """What :func:`cultura.pipelines.palette_data.read.read_palette` reads for ``data``: (source, files)."""
    if data.is_dir() and (data / PARQUET).is_file():
        return data / PARQUET, [data / PARQUET]
    if data.is_dir():
        files = sorted(data.glob("*.jsonl"))
        if not files:
            raise DataError(f"no Palette dataset in {data} (expected palette.parquet or palette.jsonl; "
                            "build it with `cultura palette-data`)")
        return (files[0] if len(files) == 1 else data), files
    return data, [data]


def load_continent_sets(data: Path, only: Sequence[str] | None = None) -> list[SftSet]:
    """One :class:`SftSet` per continent of a Palette dataset (ours or the published JSONL files):
    SFT on the chosen responses, with the continent persona's system prompt."""
    source, files = _palette_files(data)
    wanted = {o.lower() for o in only or ()}
    for name in wanted:
        if name not in {c.lower() for c in CONTINENTS}:
            raise UnknownNameError("continent", name, [c.lower() for c in CONTINENTS])
    by_continent: dict[str, list[tuple[dict[str, str], ...]]] = {}
    for row in read_palette(source).select(["query", "continent", "response"]).to_pylist():
        if wanted and row["continent"].lower() not in wanted:
            continue
        messages = continent_persona(row["continent"]).messages(row["query"])
        messages.append({"role": "assistant", "content": row["response"]})
        by_continent.setdefault(row["continent"], []).append(check_messages(messages, str(source)))
    digest = files_sha256(files)
    return [SftSet(c.lower(), "continent", c, source, digest, tuple(rows)) for c, rows in sorted(by_continent.items())]


def load_sft_sets(data: str | Path, per: str, only: Sequence[str] | None = None) -> list[SftSet]:
    """The training sets in ``data`` for ``per`` = ``culture`` or ``continent``; errors before any training.

    ``only`` restricts them to some names. Raises :class:`DataError` for missing, empty or
    malformed data and :class:`UnknownNameError` for a name in ``only`` that the data lacks.
    """
    root = Path(data).expanduser()
    if per not in KINDS:
        raise DataError(f"--per must be one of {', '.join(KINDS)}, got {per!r}")
    if not root.exists():
        raise DataError(f"data folder not found: {root}")
    sets = load_culture_sets(root, only) if per == "culture" else load_continent_sets(root, only)
    if not sets:
        raise DataError(f"no {per} rows in {root}")
    for s in sets:
        if len(s.conversations) < 2:
            raise DataError(f"{s.source}: {len(s.conversations)} usable rows for {s.name!r}; at least 2 are needed "
                            "(one to train on, one held out for the evaluation loss)")
    return sets


def split_rows(rows: Sequence[Any], eval_fraction: float, seed: int) -> tuple[list[Any], list[Any]]:
    """Shuffle ``rows`` reproducibly and hold out ``eval_fraction`` of them (at least one, at most n-1)."""
    order = list(rows)
    random.Random(seed).shuffle(order)
    n_eval = min(len(order) - 1, max(1, round(len(order) * eval_fraction)))
    return order[n_eval:], order[:n_eval]


def assistant_spans(tokenizer: Any, messages: Sequence[dict[str, str]]) -> tuple[str, list[tuple[int, int]]]:
    """The chat-templated text of ``messages`` and the character spans of the assistant turns.

    Each span runs from where the template's assistant header ends to the end of that turn (its
    end-of-turn token included). Templates that rewrite earlier turns are refused.
    """
    text = tokenizer.apply_chat_template(list(messages), tokenize=False)
    spans = []
    for i, m in enumerate(messages):
        if m["role"] != "assistant":
            continue
        head = tokenizer.apply_chat_template(list(messages[:i]), tokenize=False, add_generation_prompt=True)
        upto = tokenizer.apply_chat_template(list(messages[: i + 1]), tokenize=False)
        if not (upto.startswith(head) and text.startswith(upto)):
            raise DataError("the model's chat template renders a conversation differently from its prefixes; "
                            "assistant-only loss masks cannot be computed for it")
        spans.append((len(head), len(upto)))
    return text, spans


def tokenize_conversation(tokenizer: Any, messages: Sequence[dict[str, str]],
                          max_length: int) -> dict[str, list[int]] | None:
    """``input_ids``, ``attention_mask`` and ``labels`` (assistant tokens only) for one conversation.

    Returns None when truncation to ``max_length`` leaves no assistant token to learn from.
    """
    text, spans = assistant_spans(tokenizer, messages)
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True, truncation=True,
                    max_length=max_length)
    labels = []
    for token, (start, end) in zip(enc["input_ids"], enc["offset_mapping"]):
        inside = any(s <= start < e for s, e in spans)
        labels.append(token if inside else IGNORE_INDEX)
    if all(label == IGNORE_INDEX for label in labels):
        return None
    return {"input_ids": list(enc["input_ids"]), "attention_mask": list(enc["attention_mask"]), "labels": labels}


def tokenize_rows(tokenizer: Any, conversations: Sequence[Sequence[dict[str, str]]], max_length: int,
                  where: str) -> list[dict[str, list[int]]]:
    """Tokenise conversations, dropping those that keep no assistant token; none left is a DataError."""
    rows = [r for r in (tokenize_conversation(tokenizer, c, max_length) for c in conversations) if r is not None]
    if not rows:
        raise DataError(f"{where}: no row keeps an assistant token within max_length={max_length}")
    return rows


def seed_answer_conversations(culture: str, limit: int | None = None) -> list[list[dict[str, str]]]:
    """Small SFT conversations straight from the bundled seeds, in the refinement's format: the
    culture's chatbot chat with a seed's numbered question, answered with the number of the culture's
    surveyed answer and a first-person opinion restating it.

    A stand-in for refined dialogues where none exist yet (tests, benchmarks, a first demo).
    """
    c = get_culture(culture)
    rows = []
    for seed in load_seeds(cultures=[c.key]):
        answer = seed.attitude(c.key)
        if not answer:
            continue
        reply = f"{seed.options.index(answer) + 1}. {first_person(seed, answer)}"
        rows.append([*chatbot_messages(c.key, seed.numbered_prompt()), {"role": "assistant", "content": reply}])
    return rows[:limit]


def write_sft_jsonl(folder: str | Path, culture: str, conversations: Sequence[Sequence[dict[str, str]]]) -> Path:
    """Write ``folder/sft/<culture>.jsonl`` in the refinement output's format; returns the file."""
    path = Path(folder) / "sft" / f"{culture}.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [json.dumps({"messages": list(m), "culture": culture}, ensure_ascii=False) for m in conversations]
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
    tmp.replace(path)
    return path
