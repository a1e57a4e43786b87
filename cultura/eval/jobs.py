"""From questions, targets and methods to answered result rows (the part all evaluations share).

:func:`evaluate` builds one row per (question, target) pair and method, asks each method for its
plan, sends the applicable rows through the Ray Data job (:meth:`cultura.eval.runner.EnginePool.answer`),
and returns rows in the :data:`cultura.eval.report.RESULT_COLUMNS` layout, in a stable order.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from cultura.eval.methods import Method, MethodContext, NotApplicable, Target
from cultura.eval.metrics import expected_option, top_option
from cultura.eval.runner import EnginePool


@dataclass(frozen=True)
class Question:
    """One item: its id and text, the user message asked, the options (none for an open question,
    answered by a free-text reply).

    ``columns`` holds evaluation-specific result columns (a gold label, a reference distribution).
    """

    item_id: str
    text: str
    prompt: str
    options: tuple[str, ...]
    columns: dict[str, Any] = field(default_factory=dict)


def evaluate(evaluation: str, pairs: Iterable[tuple[Question, Target]], methods: Sequence[Method],
             ctx: MethodContext, config: Any) -> list[dict[str, Any]]:
    """Answer every (question, target) pair with every method; returns result rows.

    Methods with a ``prepare`` step run it first over every pair. Everything runs on the command's
    engine actors (``ctx.engines``), or on a pool started for this call and freed at its end. A
    method that does not apply to a target gives a ``not_applicable`` row with the reason; a sampled
    answer that stays unreadable an ``unreadable`` row with its counts; a row the engine refused or
    failed a ``failed`` row with the reason, the other rows answered. Answered rows carry ``valid_mass``;
    an open question (no options) is answered by one chat's greedy reply, in ``response``, and a method
    that mixes several chats does not apply to it.
    """
    pairs = list(pairs)
    owned = ctx.engines is None
    if owned:
        ctx.engines = EnginePool(config, ctx.adapters)
    try:
        for method in methods:
            if method.prepare is not None and pairs:
                method.prepare(ctx, [(q.prompt, t) for q, t in pairs], config)
        results, jobs = _plan_rows(evaluation, pairs, methods, ctx)
        answers = ctx.engines.answer(jobs)
    finally:
        if owned:
            ctx.engines.close()
            ctx.engines = None
    for row_id, answer in answers.items():
        row = results[row_id]
        row.update(components=answer["components"], n_samples=answer["n_samples"], valid_mass=answer["valid_mass"],
                   n_reasks=answer["n_reasks"], n_unparsable=answer["n_unparsable"])
        if answer["status"] != "ok":
            row.update(status=answer["status"], note=join_notes(row.get("note"), answer["error"]))
            continue
        if not row["options"]:  # an open question: the reply is the answer
            row.update(status="ok", response=answer["response"])
            continue
        row.update(status="ok", probs=answer["probs"], expected=expected_option(answer["probs"]),
                   top_option=top_option(answer["probs"]) + 1)
    missing = [r for r in results if r["status"] == "pending"]
    if missing:  # the Ray Data job must answer every row it was given
        raise RuntimeError(f"{len(missing)} evaluation rows came back unanswered")
    return results


def _plan_rows(evaluation: str, pairs: Sequence[tuple[Question, Target]], methods: Sequence[Method],
               ctx: MethodContext) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The result rows (pending or not applicable) and the plan rows to answer, linked by ``row_id``.

    The plan rows go question by question, so a batch holds a question's chats for every target and
    method: identical chats (the base method's, the continent agents') are scored once, and prompts
    that share their beginning are read together.
    """
    results: list[dict[str, Any]] = []
    jobs: list[tuple[int, dict[str, Any]]] = []
    order: dict[str, int] = {}
    for question, target in pairs:
        for method in methods:
            row = {"evaluation": evaluation, "item_id": question.item_id, "item_text": question.text,
                   "target": target.key, "country": target.country, "method": method.name,
                   "options": list(question.options), **question.columns}
            try:
                plan = method.build(ctx, target, question.prompt)
                if not question.options:
                    check_open(method, plan)
            except NotApplicable as exc:
                row.update(status="not_applicable", note=str(exc))
            else:
                row.update(status="pending", note=plan.note,
                           gate=json.dumps(plan.gate, sort_keys=True) if plan.gate is not None else None)
                jobs.append((order.setdefault(question.prompt, len(order)),
                             {"row_id": len(results), "plan": plan.to_json(), "options": list(question.options)}))
            results.append(row)
    jobs.sort(key=lambda job: job[0])  # stable: the rows of one question keep their order
    return results, [job for _, job in jobs]


def check_open(method: Method, plan: Any) -> None:
    """Raise NotApplicable unless ``method`` can answer an open question: by one chat's reply."""
    if method.prepare is not None:
        raise NotApplicable(f"{method.name} reads the options after a drafted answer; an open question has none")
    if len(plan.components) != 1:
        raise NotApplicable(f"{method.name} mixes {len(plan.components)} chats' option distributions; "
                            "a free-text reply comes from one")


def not_applicable(rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Distinct (target, method, reason) of rows a method could not answer, for the report."""
    seen: dict[tuple[str, str, str], int] = {}
    for r in rows:
        if r["status"] in ("not_applicable", "unreadable", "failed"):
            key = (r["target"], r["method"], r["note"] or r["status"])
            seen[key] = seen.get(key, 0) + 1
    return [{"target": t, "method": m, "items": n, "reason": why} for (t, m, why), n in seen.items()]


def mean_gate(rows: Iterable[dict[str, Any]], continents: Sequence[str]) -> dict[str, list[float]]:
    """Mean Cultural MoE gate weight per continent for each target, over rows that carry a gate."""
    sums: dict[str, list[float]] = {}
    counts: dict[str, int] = {}
    for r in rows:
        if not r.get("gate"):
            continue
        weights = json.loads(r["gate"])
        acc = sums.setdefault(r["target"], [0.0] * len(continents))
        for i, c in enumerate(continents):
            acc[i] += float(weights.get(c, 0.0))
        counts[r["target"]] = counts.get(r["target"], 0) + 1
    return {t: [v / counts[t] for v in acc] for t, acc in sums.items()}


def sample_counts(rows: Iterable[dict[str, Any]]) -> dict[str, int]:
    """Totals of sampled answers, re-asks and answers still unreadable after re-asking."""
    totals = {"n_samples": 0, "n_reasks": 0, "n_unparsable": 0}
    for r in rows:
        for key in totals:
            totals[key] += int(r.get(key) or 0)
    return totals


def join_notes(*parts: str | None) -> str:
    """Notes joined with "; ", empty ones left out."""
    return "; ".join(p for p in parts if p)
