"""Content moderation (CulturePark's downstream task): macro-F1 and ROC AUC per task and culture.

Tasks are files of labelled texts (:mod:`cultura.eval.moderation_tasks`: JSONL, CSV or TSV). The
model, in the role of a culture (per method), answers the task template's yes/no question about each
text; option scoring gives P(yes) (the probability of option 1, "Yes", renormalised over Yes / No).
A small model leans towards one answer whatever the text, so "Yes" is not simply the larger
probability: each (task, culture, method) gets the decision threshold on P(yes) that maximises
macro-F1 on the task's dev split, and is scored on the rest (the test split) with that threshold.
The report gives, per task, macro-F1, accuracy and ROC AUC (threshold-free) next to the constant-label
baselines (always positive, always negative) on the same test examples.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cultura.choices import numbered_question
from cultura.data.hofstede import CONTINENTS
from cultura.eval import plots
from cultura.eval.jobs import Question, evaluate, mean_gate
from cultura.eval.methods import Method, MethodContext, Target
from cultura.eval.metrics import accuracy, macro_f1, roc_auc
from cultura.eval.moderation_tasks import Example, dev_rows
from cultura.eval.report import (
    RESULT_COLUMNS,
    gate_section,
    markdown_table,
    markdown_tail,
    method_lines,
    put_interval,
    run_description,
    short,
    with_intervals,
    write_table,
    write_text,
)
from cultura.intervals import MIN_ITEMS, bootstrap_note, mean_interval, statistic_interval, versus_baseline

ANSWERS = ("Yes", "No")  # option 1 = the positive label, option 2 = the negative one
DEV_FRACTION = 0.3
# macro_f1, accuracy and lift carry 95% bootstrap intervals over the test examples (<name>_low / _high);
# lift is paired: the method and the constant baseline on the same resampled examples.
SUMMARY_COLUMNS: tuple[tuple[str, str], ...] = (
    ("task", "string"), ("target", "string"), ("method", "string"), ("dev", "int32"), ("examples", "int32"),
    ("threshold", "double"), ("macro_f1", "double"), ("macro_f1_low", "double"), ("macro_f1_high", "double"),
    ("accuracy", "double"), ("accuracy_low", "double"), ("accuracy_high", "double"), ("roc_auc", "double"),
    ("positive_rate", "double"), ("best_baseline", "string"), ("baseline_macro_f1", "double"), ("lift", "double"),
    ("lift_low", "double"), ("lift_high", "double"), ("versus_baseline", "string"), ("few", "bool"),
    ("note", "string"),
)
SHOWN_COLUMNS = ["task", "target", "method", "dev", "examples", "threshold", "macro_f1", "accuracy", "roc_auc",
                 "positive_rate", "best_baseline", "baseline_macro_f1", "lift", "versus_baseline", "note"]
BASELINE_COLUMNS: tuple[tuple[str, str], ...] = (
    ("task", "string"), ("baseline", "string"), ("examples", "int32"), ("macro_f1", "double"),
    ("accuracy", "double"),
)


@dataclass
class ModerationReport:
    """What ``cultura eval moderation`` produced."""

    summary: list[dict[str, Any]]
    by_method: list[dict[str, Any]]
    rows: list[dict[str, Any]]
    baselines: list[dict[str, Any]] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)


def moderation_prompt(example: Example) -> str:
    """The template's question about the text, with the options Yes / No numbered."""
    return numbered_question(f'{example.question.question}\n\nText: "{example.text}"', ANSWERS)


def build_pairs(tasks: dict[str, list[Example]], targets: Sequence[Target],
                dev: dict[str, set[int]]) -> list[tuple[Question, Target]]:
    """(question, target) pairs: every example of every task for every culture, each marked with its
    split (``dev`` or ``test``) and gold label."""
    pairs = []
    for target in targets:
        for task, examples in tasks.items():
            for ex in examples:
                label = ex.question.positive if ex.label else ex.question.negative
                split = "dev" if ex.row in dev[task] else "test"
                pairs.append((Question(f"{task}:{ex.row}", ex.text, moderation_prompt(ex), ANSWERS,
                                       {"label": label, "split": split}), target))
    return pairs


def p_yes(row: dict[str, Any]) -> float:
    """P(yes) of an answered row: the probability of option 1 ("Yes")."""
    return float(row["probs"][0])


def choose_threshold(scores: Sequence[float], labels: Sequence[bool]) -> tuple[float, str]:
    """(threshold, note): the P(yes) cut (positive when P(yes) >= it) with the best macro-F1 on the dev
    examples, the one nearest 0.5 among equals; 0.5 with a note when the dev split lacks a class."""
    if not any(labels) or all(labels):
        return 0.5, "dev split without both labels: threshold 0.5"
    values = sorted(set(scores))
    candidates = [values[0] - 1e-9] + [(a + b) / 2 for a, b in zip(values, values[1:])] + [values[-1] + 1e-9]

    def quality(t: float) -> tuple[float, float]:
        return macro_f1(list(labels), [s >= t for s in scores], [True, False]), -abs(t - 0.5)

    return max(candidates, key=quality), ""


def add_predictions(rows: list[dict[str, Any]], tasks: dict[str, list[Example]]) -> dict[tuple[str, str, str], tuple[float, str]]:
    """Choose each (task, target, method)'s threshold on its dev rows and set every answered row's
    ``prediction``; returns the thresholds with their notes."""
    cells: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for r in rows:
        if r["status"] == "ok":
            cells.setdefault((r["item_id"].split(":")[0], r["target"], r["method"]), []).append(r)
    thresholds = {}
    for (task, target, method), mine in cells.items():
        template = tasks[task][0].question
        dev = [r for r in mine if r["split"] == "dev"]
        threshold, note = choose_threshold([p_yes(r) for r in dev], [r["label"] == template.positive for r in dev])
        thresholds[(task, target, method)] = (threshold, note)
        for r in mine:
            r["prediction"] = template.positive if p_yes(r) >= threshold else template.negative
    return thresholds


def constant_baselines(tasks: dict[str, list[Example]], dev: dict[str, set[int]]) -> list[dict[str, Any]]:
    """Always-positive and always-negative on each task's test examples: macro-F1 and accuracy."""
    rows = []
    for task, examples in tasks.items():
        template = tasks[task][0].question
        test = [template.positive if e.label else template.negative for e in examples if e.row not in dev[task]]
        for label in (template.positive, template.negative):
            entry = {"task": task, "baseline": f"always {label}", "examples": len(test), "macro_f1": None,
                     "accuracy": None}
            if test:
                entry.update(macro_f1=macro_f1(test, [label] * len(test), [template.positive, template.negative]),
                             accuracy=accuracy(test, [label] * len(test)))
            rows.append(entry)
    return rows


def binary_macro_f1(truth: Any, predicted: Any, axis: int = -1) -> Any:
    """Macro-F1 over the two labels of 0/1 arrays (1 = positive), vectorized along ``axis`` for the
    bootstrap; a label with no true and no predicted member scores 0, as :func:`macro_f1` does."""
    import numpy as np

    truth, predicted = np.asarray(truth) > 0.5, np.asarray(predicted) > 0.5

    def f1(t: Any, p: Any) -> Any:
        tp = np.sum(t & p, axis=axis)
        wrong = np.sum(t != p, axis=axis)
        denominator = 2 * tp + wrong
        return np.where(denominator > 0, 2 * tp / np.maximum(denominator, 1), 0.0)

    return (f1(truth, predicted) + f1(~truth, ~predicted)) / 2


def _lift_statistic(truth: Any, predicted: Any, baseline: Any, axis: int = -1) -> Any:
    return binary_macro_f1(truth, predicted, axis) - binary_macro_f1(truth, baseline, axis)


def summarise(rows: list[dict[str, Any]], tasks: dict[str, list[Example]], targets: Sequence[Target],
              methods: Sequence[Method], thresholds: dict[tuple[str, str, str], tuple[float, str]],
              baselines: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per (task, culture, method) on the test split: the dev-chosen threshold, macro-F1, accuracy, ROC
    AUC and the share predicted positive, next to the best constant baseline and the lift over it."""
    summary = []
    for task in tasks:
        template = tasks[task][0].question
        best = max((b for b in baselines if b["task"] == task and b["macro_f1"] is not None),
                   key=lambda b: b["macro_f1"], default=None)
        for target in targets:
            for method in methods:
                mine = [r for r in rows if r["item_id"].split(":")[0] == task and r["target"] == target.key
                        and r["method"] == method.name]
                ok = [r for r in mine if r["status"] == "ok"]
                test = [r for r in ok if r["split"] == "test"]
                threshold, note = thresholds.get((task, target.key, method.name), (None, ""))
                entry = {"task": task, "target": target.key, "method": method.name,
                         "dev": sum(r["split"] == "dev" for r in ok), "examples": len(test), "threshold": threshold,
                         "macro_f1": None, "accuracy": None, "roc_auc": None, "positive_rate": None,
                         "best_baseline": best["baseline"] if best else None,
                         "baseline_macro_f1": best["macro_f1"] if best else None, "lift": None,
                         "versus_baseline": None, "few": len(test) < MIN_ITEMS, "note": note}
                if test:
                    truth, predicted = [r["label"] for r in test], [r["prediction"] for r in test]
                    t = [float(x == template.positive) for x in truth]
                    p = [float(x == template.positive) for x in predicted]
                    put_interval(entry, "macro_f1", statistic_interval(binary_macro_f1, t, p))
                    put_interval(entry, "accuracy", mean_interval([float(a == b) for a, b in zip(t, p)]))
                    entry.update(roc_auc=roc_auc([x == 1.0 for x in t], [p_yes(r) for r in test]),
                                 positive_rate=sum(p) / len(test))
                    if best:  # the constant label on the same examples: a paired difference
                        constant = float(best["baseline"] == f"always {template.positive}")
                        lift = statistic_interval(_lift_statistic, t, p, [constant] * len(t))
                        put_interval(entry, "lift", lift)
                        entry["versus_baseline"] = versus_baseline(lift)
                else:
                    entry["note"] = next((r["note"] for r in mine if r["note"]), "no test example answered")
                summary.append(entry)
    return summary


def by_method(summary: Sequence[dict[str, Any]], methods: Sequence[Method]) -> list[dict[str, Any]]:
    """Mean macro-F1, ROC AUC, best constant baseline and lift per method over the (task, culture) cells
    it answered, each mean with its bootstrap interval over those cells."""
    out = []
    for method in methods:
        cells = [s for s in summary if s["method"] == method.name and s["macro_f1"] is not None]
        entry: dict[str, Any] = {"method": method.name, "cells": len(cells)}
        for name in ("macro_f1", "roc_auc", "baseline_macro_f1", "lift"):
            values = [s[name] for s in cells if s[name] is not None]
            interval = mean_interval(values)
            entry.update({name: interval.mean if values else None, f"{name}_low": interval.low if values else None,
                          f"{name}_high": interval.high if values else None})
        out.append(entry)
    return out


def run_moderation(config: Any, tasks: dict[str, list[Example]], targets: Sequence[Target],
                   methods: Sequence[Method], ctx: MethodContext, out: Path,
                   dev_fraction: float = DEV_FRACTION) -> ModerationReport:
    """Run the moderation evaluation and write the report folder ``out``."""
    dev = {task: dev_rows(examples, dev_fraction) for task, examples in tasks.items()}
    rows = evaluate("moderation", build_pairs(tasks, targets, dev), methods, ctx, config)
    thresholds = add_predictions(rows, tasks)
    baselines = constant_baselines(tasks, dev)
    summary = summarise(rows, tasks, targets, methods, thresholds, baselines)
    result = ModerationReport(summary, by_method(summary, methods), rows, baselines)
    result.files = write_report(out, result, targets, methods, config, tasks, dev_fraction)
    return result


def write_report(out: Path, result: ModerationReport, targets: Sequence[Target], methods: Sequence[Method],
                 config: Any, tasks: dict[str, list[Example]], dev_fraction: float = DEV_FRACTION) -> list[Path]:
    """Write results, summary, baselines, plots (macro-F1 bars, gate heat map, table), report.md."""
    out.mkdir(parents=True, exist_ok=True)
    files = write_table(out, "results", result.rows, RESULT_COLUMNS)
    files += write_table(out, "summary", result.summary, SUMMARY_COLUMNS)
    files += write_table(out, "baselines", result.baselines, BASELINE_COLUMNS)
    groups = [f"{task}/{t.key}" for task in tasks for t in targets]
    series = {m.name: [next((s["macro_f1"] for s in result.summary if f"{s['task']}/{s['target']}" == g
                             and s["method"] == m.name), None) for g in groups] for m in methods}
    figures = [("Macro-F1 per task, culture and method (test split)",
                plots.grouped_bars(out / "macro_f1_by_method.png", "Content moderation macro-F1", "macro-F1",
                                   groups, series, (0, 1)))]
    gates = mean_gate(result.rows, CONTINENTS)
    if gates:
        figures.append(("Cultural MoE gate weights (mean over examples)",
                        plots.gate_heatmap(out, gates, [t.key for t in targets if t.key in gates])))
    columns = ["task", "target", "method", "examples", "threshold", "macro_f1", "roc_auc", "baseline_macro_f1"]
    cells = [[short(s.get(c)) for c in columns] for s in result.summary]
    figures.append(("Table", plots.table(out / "table.png", "Content moderation", columns, cells)))
    files += [p for _, p in figures]
    lines = ["# Content moderation\n",
             "Each task's texts are classified with the task's yes/no template, in the role of each culture (per "
             "method). P(yes) is the probability of option 1 (\"Yes\") from option scoring. Each task is split "
             f"into dev ({dev_fraction:.0%} of each label, by a hash of the row) and test; each (task, culture, "
             "method) predicts positive when P(yes) reaches the threshold that maximises macro-F1 on dev, and is "
             "scored on test: macro-F1 over the two labels, accuracy, and ROC AUC of P(yes) (threshold-free; 0.5 "
             "is chance). `best_baseline` is the better constant label on the same test examples and `lift` the "
             "macro-F1 above it, a paired difference on those examples; `versus_baseline` is `better` or `worse` "
             "when its interval excludes zero, else `cannot tell`. Every figure is `value [low, high]` with its 95% "
             "bootstrap interval over test examples (per cell) or over cells (mean per method).\n",
             bootstrap_note() + "\n",
             run_description(config), "## Tasks\n",
             "".join(f"- `{t}`: {len(ex)} examples ({sum(e.label for e in ex)} {ex[0].question.positive}), "
                     f"template: \"{ex[0].question.question}\"\n" for t, ex in tasks.items()),
             "\n## Methods\n", method_lines(methods),
             "## Mean per method\n",
             markdown_table(with_intervals(result.by_method, ("macro_f1", "roc_auc", "baseline_macro_f1", "lift"),
                                           ("lift",)), ["method", "cells", "macro_f1", "roc_auc", "baseline_macro_f1",
                                                        "lift"]),
             "\n## Constant-label baselines (test split)\n", markdown_table(result.baselines),
             "\n## Per task, culture and method (test split)\n",
             markdown_table(with_intervals(result.summary, ("macro_f1", "accuracy", "lift"), ("lift",)),
                            SHOWN_COLUMNS),
             gate_section(gates, CONTINENTS, "culture"), markdown_tail(result.rows, config, figures, out)]
    files.append(write_text(out / "report.md", "\n".join(lines)))
    return files
