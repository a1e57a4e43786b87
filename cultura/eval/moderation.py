"""Content moderation (CulturePark's downstream task): macro-F1 per task and culture.

A task is a JSONL file of ``{"text": ..., "label": ...}`` rows; its name (the file name, e.g.
``offensive.jsonl`` or ``hate_arabic.jsonl``) picks a classification template from
:data:`TEMPLATES` by its first word. The model, in the role of a culture (per method), answers the
template's yes/no question about each text; option scoring reads its choice. Labels may be 1/0,
true/false, yes/no, or the template's label names (``offensive`` / ``not_offensive``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cultura.errors import CulturaError, DataError, UnknownNameError
from cultura.eval.answers import numbered_question
from cultura.eval.jobs import Question, evaluate, mean_gate
from cultura.eval.methods import Method, MethodContext, Target
from cultura.eval.metrics import accuracy, macro_f1
from cultura.jsonl import read_jsonl_objects
from cultura.eval.report import (RESULT_COLUMNS, gate_section, markdown_table, markdown_tail, method_lines,
                                 run_description, short, write_table, write_text)

ANSWERS = ("Yes", "No")  # option 1 = the positive label, option 2 = the negative one
BUNDLED_TASKS = Path(__file__).resolve().parents[1] / "data" / "files" / "moderation"
SUMMARY_COLUMNS: tuple[tuple[str, str], ...] = (
    ("task", "string"), ("target", "string"), ("method", "string"), ("examples", "int32"),
    ("macro_f1", "double"), ("accuracy", "double"), ("positive_rate", "double"), ("note", "string"),
)


@dataclass(frozen=True)
class Template:
    """A yes/no classification question; ``positive`` is the label a "Yes" means."""

    positive: str
    question: str

    @property
    def negative(self) -> str:
        """The label a "No" means."""
        return f"not_{self.positive}"


TEMPLATES: dict[str, Template] = {t.positive: t for t in (
    Template("offensive", "Would people in your culture find the following text offensive?"),
    Template("hate", "Does the following text express hate against a group of people, as people in your culture would judge it?"),
    Template("abusive", "Is the following text abusive towards someone, as people in your culture would judge it?"),
    Template("vulgar", "Does the following text use vulgar language, as people in your culture would judge it?"),
    Template("threat", "Does the following text threaten someone?"),
    Template("bias", "Does the following text express a biased or prejudiced view of a group of people?"),
    Template("spam", "Is the following message spam?"),
)}


@dataclass(frozen=True)
class Example:
    """One labelled text of a task; ``label`` is True for the positive class."""

    task: str
    row: int
    text: str
    label: bool


@dataclass
class ModerationReport:
    """What ``cultura eval moderation`` produced."""

    summary: list[dict[str, Any]]
    by_method: list[dict[str, Any]]
    rows: list[dict[str, Any]]
    files: list[Path] = field(default_factory=list)


def template_for(task: str) -> Template:
    """The template whose name is the task name or its first word (``hate_arabic`` -> ``hate``)."""
    first = re.split(r"[_\-.\s]", task.lower(), maxsplit=1)[0]
    for name in (task.lower(), first):
        if name in TEMPLATES:
            return TEMPLATES[name]
    raise UnknownNameError("moderation template", task, TEMPLATES)


def parse_label(value: Any, template: Template) -> bool | None:
    """True for the positive class, False for the negative one, None when not a known label."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        key = "_".join(value.strip().lower().replace("-", " ").split())
        if key in ("1", "true", "yes", template.positive):
            return True
        if key in ("0", "false", "no", template.negative, f"non_{template.positive}"):
            return False
    return None


def load_task(path: Path) -> list[Example]:
    """Read one task file; a row without text or with a missing or unknown label names the row."""
    template = template_for(path.stem)
    examples = []
    for number, record in read_jsonl_objects(path, "an object with 'text' and 'label'"):
        text = record.get("text")
        if not isinstance(text, str) or not text.strip():
            raise DataError(f"{path}: row {number}, field 'text': missing or empty")
        if record.get("label") is None:
            raise DataError(f"{path}: row {number}, field 'label': missing")
        label = parse_label(record["label"], template)
        if label is None:
            raise DataError(f"{path}: row {number}, field 'label': {record['label']!r} is not one of 1/0, true/false, "
                            f"yes/no, {template.positive}/{template.negative}")
        examples.append(Example(path.stem, number, text.strip(), label))
    if not examples:
        raise DataError(f"{path}: row 1: the task has no examples")
    return examples


def load_tasks(spec: str | Path, limit: int | None = None) -> dict[str, list[Example]]:
    """Tasks from ``bundled`` (the examples shipped for tests), a folder of ``*.jsonl``, or one file.

    ``limit`` keeps the first N examples of each task.
    """
    root = BUNDLED_TASKS if str(spec) == "bundled" else Path(spec).expanduser()
    if root.is_dir():
        files = sorted(root.glob("*.jsonl"))
        if not files:
            raise CulturaError(f"{root} holds no *.jsonl task files")
    elif root.is_file():
        files = [root]
    else:
        raise CulturaError(f"task folder or file not found: {root}")
    return {path.stem: load_task(path)[:limit] for path in files}


def moderation_prompt(example: Example) -> str:
    """The template's question about the text, with the options Yes / No numbered."""
    template = template_for(example.task)
    return numbered_question(f'{template.question}\n\nText: "{example.text}"', ANSWERS)


def build_pairs(tasks: dict[str, list[Example]], targets: Sequence[Target]) -> list[tuple[Question, Target]]:
    """(question, target) pairs: every example of every task for every culture."""
    pairs = []
    for target in targets:
        for task, examples in tasks.items():
            template = template_for(task)
            for ex in examples:
                label = template.positive if ex.label else template.negative
                pairs.append((Question(f"{task}:{ex.row}", ex.text, moderation_prompt(ex), ANSWERS,
                                       {"label": label}), target))
    return pairs


def add_predictions(rows: list[dict[str, Any]]) -> None:
    """Set each answered row's ``prediction``: the positive label for option 1 ("Yes"), else the negative."""
    for r in rows:
        if r["status"] == "ok":
            template = template_for(r["item_id"].split(":")[0])
            r["prediction"] = template.positive if r["top_option"] == 1 else template.negative


def summarise(rows: list[dict[str, Any]], tasks: dict[str, list[Example]], targets: Sequence[Target],
              methods: Sequence[Method]) -> list[dict[str, Any]]:
    """Macro-F1, accuracy and the share predicted positive per (task, culture, method)."""
    summary = []
    for task in tasks:
        template = template_for(task)
        for target in targets:
            for method in methods:
                mine = [r for r in rows if r["item_id"].split(":")[0] == task and r["target"] == target.key
                        and r["method"] == method.name]
                ok = [r for r in mine if r["status"] == "ok"]
                entry = {"task": task, "target": target.key, "method": method.name, "examples": len(ok),
                         "macro_f1": None, "accuracy": None, "positive_rate": None, "note": ""}
                if ok:
                    truth, predicted = [r["label"] for r in ok], [r["prediction"] for r in ok]
                    entry.update(macro_f1=macro_f1(truth, predicted, [template.positive, template.negative]),
                                 accuracy=accuracy(truth, predicted),
                                 positive_rate=sum(p == template.positive for p in predicted) / len(ok))
                else:
                    entry["note"] = next((r["note"] for r in mine if r["note"]), "no example answered")
                summary.append(entry)
    return summary


def by_method(summary: Sequence[dict[str, Any]], methods: Sequence[Method]) -> list[dict[str, Any]]:
    """Mean macro-F1 per method over the (task, culture) cells it answered."""
    out = []
    for method in methods:
        cells = [s for s in summary if s["method"] == method.name and s["macro_f1"] is not None]
        out.append({"method": method.name, "cells": len(cells),
                    "macro_f1": sum(s["macro_f1"] for s in cells) / len(cells) if cells else None})
    return out


def run_moderation(config: Any, tasks: dict[str, list[Example]], targets: Sequence[Target],
                   methods: Sequence[Method], ctx: MethodContext, out: Path) -> ModerationReport:
    """Run the moderation evaluation and write the report folder ``out``."""
    rows = evaluate("moderation", build_pairs(tasks, targets), methods, ctx, config)
    add_predictions(rows)
    summary = summarise(rows, tasks, targets, methods)
    result = ModerationReport(summary, by_method(summary, methods), rows)
    result.files = write_report(out, result, targets, methods, config, tasks)
    return result


def write_report(out: Path, result: ModerationReport, targets: Sequence[Target], methods: Sequence[Method],
                 config: Any, tasks: dict[str, list[Example]]) -> list[Path]:
    """Write results, summary, plots (macro-F1 bars, gate heat map, table), report.md."""
    from cultura.data.hofstede import CONTINENTS
    from cultura.eval import plots

    out.mkdir(parents=True, exist_ok=True)
    files = write_table(out, "results", result.rows, RESULT_COLUMNS)
    files += write_table(out, "summary", result.summary, SUMMARY_COLUMNS)
    groups = [f"{task}/{t.key}" for task in tasks for t in targets]
    series = {m.name: [next((s["macro_f1"] for s in result.summary if f"{s['task']}/{s['target']}" == g
                             and s["method"] == m.name), None) for g in groups] for m in methods}
    figures = [("Macro-F1 per task, culture and method",
                plots.grouped_bars(out / "macro_f1_by_method.png", "Content moderation macro-F1", "macro-F1",
                                   groups, series, (0, 1)))]
    gates = mean_gate(result.rows, CONTINENTS)
    if gates:
        names = [t.key for t in targets if t.key in gates]
        figures.append(("Cultural MoE gate weights (mean over examples)",
                        plots.heatmap(out / "gate_weights.png", "Gate weight per continent", names, CONTINENTS,
                                      [gates[n] for n in names])))
    columns = ["task", "target", "method", "examples", "macro_f1", "accuracy"]
    cells = [[short(s.get(c)) for c in columns] for s in result.summary]
    figures.append(("Table", plots.table(out / "table.png", "Content moderation", columns, cells)))
    files += [p for _, p in figures]
    lines = ["# Content moderation\n",
             "Each task's texts are classified with the task's yes/no template, in the role of each culture (per "
             "method); macro-F1 over the two labels, per task and culture.\n",
             run_description(config), "## Tasks\n",
             "".join(f"- `{t}`: {len(ex)} examples, template: \"{template_for(t).question}\"\n" for t, ex in tasks.items()),
             "\n## Methods\n", method_lines(methods),
             "## Mean macro-F1 per method\n", markdown_table(result.by_method),
             "\n## Per task, culture and method\n",
             markdown_table(result.summary, [c for c, _ in SUMMARY_COLUMNS]),
             gate_section(gates, CONTINENTS, "culture"), markdown_tail(result.rows, config, figures, out)]
    files.append(write_text(out / "report.md", "\n".join(lines)))
    return files
