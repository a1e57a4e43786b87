"""Benchmark accuracy (``cultura eval bench``): items with options and a gold answer, asked as numbered
multiple-choice questions and scored by option log-probabilities.

Every item of kind ``multiple_choice`` or ``binary`` is asked as its country (or, without one, as its
culture as written): the prediction is the option the method puts the most probability on, and it is
correct when that option is the gold answer. Accuracy per country and overall per method carries a 95%
bootstrap interval over the items, next to two trivial baselines on the same items: ``random`` (expected
accuracy 1 / number of options) and ``most-common`` (always the most common gold answer of the subset);
``lift`` is the accuracy above the better baseline, a paired difference. Items that share a ``group``
(CulturalBench-Hard's four true/false rows of one question) also give the benchmark's own question-level
accuracy: a question is right only when all its rows are.

A ``scale`` item with a gold answer (WorldValuesBench's: one participant's answer to a value question)
is asked as that participant, described by their demographics (:mod:`cultura.eval.respondents`), and
summarised by :mod:`cultura.eval.value_distance`: per question, the Wasserstein distance between the
method's mean answer distribution and the participants' answers, next to ``uniform`` and
``other-continents``; it has no accuracy (that module says why).

An ``orientation`` item (CDEval's) has no gold answer: it is asked as each culture of ``cultures`` and
summarised by :mod:`cultura.eval.orientation` (the lean to the first pole per Hofstede dimension,
beside the culture's Hofstede score).

A ``short_answer`` item (BLEnD's questions) is asked as an open question: the method's greedy reply
is correct when one of the item's accepted answers appears in it (:mod:`cultura.eval.answer_match`,
BLEnD's soft exact match). Its baseline ``most-common`` answers with another country's answer: the
most-voted answer the *other* countries' annotators gave to the same question in the same language,
correct when it is one of this country's accepted answers (an item no other country answered counts
as wrong for it); a reply has no ``random`` baseline. Methods that mix several chats' distributions
do not apply to open questions.
Items of the other kinds are not scored by this version; the report counts them, by kind and reason.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from cultura.choices import numbered_question
from cultura.data.benchmarks.get import load
from cultura.data.benchmarks.registry import get_benchmark
from cultura.data.benchmarks.schema import Item, read_items
from cultura.errors import ConfigError, UnknownNameError
from cultura.eval import plots
from cultura.eval.agreement import agreement_summary, is_agreement
from cultura.eval.answer_match import matches
from cultura.eval.jobs import Question, evaluate
from cultura.eval.methods import (
    Method,
    MethodContext,
    Target,
    country_target,
    culture_target,
)
from cultura.eval.metrics import MIN_TARGETS_FOR_R
from cultura.eval.orientation import NO_LEAN, is_orientation, orientation_summary
from cultura.eval.report import (
    ALL,
    RESULT_COLUMNS,
    country_cells,
    markdown_table,
    markdown_tail,
    method_lines,
    put_interval,
    run_description,
    with_intervals,
    write_table,
    write_text,
)
from cultura.eval.respondents import item_respondent
from cultura.eval.value_distance import distance_summary, is_scale, scale_points
from cultura.intervals import (
    MIN_ITEMS,
    bootstrap_note,
    mean_interval,
    paired_difference,
    versus_baseline,
)

SCORED_KINDS = ("multiple_choice", "binary", "scale", "short_answer")  # scale only with a gold answer
OPEN_INSTRUCTION = "Answer with a single word or short phrase, without explanation."
BASELINES = ("random", "most-common")
# why each kind this version does not score is left out
NOT_SCORED = {
    "distribution": "scored against a reference distribution, not a gold answer (see `cultura eval opinions`)",
    "agreement": "an agreement item needs two options and the share that agrees",
    "orientation": "an orientation item needs two options",
    "scale": "no gold answer",
}
# accuracy, question_accuracy, the baselines and lift carry 95% bootstrap intervals (<name>_low / _high)
SUMMARY_COLUMNS: tuple[tuple[str, str], ...] = (
    ("benchmark", "string"), ("subset", "string"), ("country", "string"), ("method", "string"), ("measure", "string"),
    ("items", "int32"), ("accuracy", "double"), ("accuracy_low", "double"), ("accuracy_high", "double"),
    ("questions", "int32"), ("question_accuracy", "double"), ("question_accuracy_low", "double"),
    ("question_accuracy_high", "double"), ("random", "double"), ("random_low", "double"), ("random_high", "double"),
    ("most_common", "double"), ("most_common_low", "double"), ("most_common_high", "double"),
    ("best_baseline", "string"), ("lift", "double"), ("lift_low", "double"), ("lift_high", "double"),
    ("versus_baseline", "string"), ("few", "bool"), ("note", "string"),
    # orientation items: the lean to the first pole, the culture's Hofstede score, r over the cultures
    ("orientation", "double"), ("orientation_low", "double"), ("orientation_high", "double"),
    ("hofstede", "double"), ("targets", "int32"), ("r_hofstede", "double"), ("first_position", "double"),
    # agreement items: similarity of P(agree) to the agreeing share, next to its baselines
    ("similarity", "double"), ("similarity_low", "double"), ("similarity_high", "double"), ("p_agree", "double"),
    ("share", "double"), ("uniform", "double"), ("uniform_low", "double"), ("uniform_high", "double"),
    ("global_mean", "double"), ("global_mean_low", "double"), ("global_mean_high", "double"),
    # scale items: normalised Wasserstein-1 per question (lower better), raw W1, the other continents' answers
    ("distance", "double"), ("distance_low", "double"), ("distance_high", "double"), ("w1", "double"),
    ("other_continents", "double"), ("other_continents_low", "double"), ("other_continents_high", "double"),
)
SHOWN_COLUMNS = ["subset", "country", "method", "items", "accuracy", "questions", "question_accuracy", "random",
                 "most_common", "best_baseline", "lift", "versus_baseline"]
AGREEMENT_COLUMNS = ["subset", "country", "method", "items", "similarity", "p_agree", "share", "uniform", "global_mean",
                     "best_baseline", "lift", "versus_baseline"]
ORIENTATION_COLUMNS = ["subset", "country", "method", "items", "orientation", "first_position", "hofstede", "targets",
                       "r_hofstede"]
DISTANCE_COLUMNS = ["subset", "country", "method", "items", "questions", "distance", "w1", "uniform",
                    "other_continents", "best_baseline", "lift", "versus_baseline"]
COLUMNS_BY_MEASURE = {"accuracy": SHOWN_COLUMNS, "orientation": ORIENTATION_COLUMNS, "agreement": AGREEMENT_COLUMNS,
                      "distance": DISTANCE_COLUMNS}
INTERVALS = ("accuracy", "question_accuracy", "random", "most_common", "lift")
LEFT_OUT_COLUMNS = ["kind", "items", "reason"]


@dataclass(frozen=True)
class BenchInputs:
    """The items scored (each with its target), what was left out and why, and where the items came from."""

    benchmark: str
    items: list[tuple[Item, Target]]
    left_out: list[dict[str, Any]]
    source: str
    total: int
    notes: list[str] = field(default_factory=list)


@dataclass
class BenchReport:
    """What ``cultura eval bench`` produced."""

    summary: list[dict[str, Any]]
    by_method: list[dict[str, Any]]
    rows: list[dict[str, Any]]
    left_out: list[dict[str, Any]] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)


def read_benchmark(name: str, source: str | None = None) -> tuple[list[Item], str, list[str]]:
    """(items, where they came from, the loader's notes) for ``name``: a folder or file written by
    ``cultura data get`` (its ``items.parquet``), or a benchmark name read by its loader (from ``source``,
    a file or folder in the published format, or downloaded without it)."""
    path = Path(name)
    if path.exists():
        if source is not None:
            raise ConfigError(f"{name} is an items folder: --from only goes with a benchmark name")
        return read_items(path), str(path), []
    benchmark = get_benchmark(name)
    loaded, read_from = load(benchmark, Path(source) if source is not None else None)
    return loaded.items, read_from, list(loaded.notes)


def scored(item: Item) -> bool:
    """True for the items this evaluation scores: options and one gold answer among them, a short-answer
    question with its accepted answers, or an orientation item with its two options."""
    if item.kind == "short_answer":
        return bool(item.gold)
    if item.kind == "orientation":
        return is_orientation(item)
    if item.kind == "agreement":
        return is_agreement(item)
    return item.kind in SCORED_KINDS and bool(item.options) and bool(item.gold) and len(item.gold) == 1


def item_target(item: Item) -> Target:
    """Who answers the item: a scale item's respondent (described by demographics), else its country when
    known, else its culture as written (UnknownNameError when that names no country or culture)."""
    if is_scale(item):
        scale_points(item)  # options that are no scale are an error before any model time
        return item_respondent(item)
    if item.country:
        return country_target(item.country)
    if not item.culture:
        raise UnknownNameError("culture", "(none)", [])
    return culture_target(item.culture)


def select_items(items: Sequence[Item], limit: int | None = None,
                 cultures: Sequence[Target] = ()) -> tuple[list[tuple[Item, Target]], list[dict]]:
    """(scored items with their targets, left-out counts by kind and reason). An item naming no culture
    (CDEval's) is asked as each of ``cultures``. ``limit`` keeps the first N scored items, the rest of a
    group the limit cuts kept with it (a group is scored whole; an orientation item's group is its
    dimension, not kept whole)."""
    chosen: list[tuple[Item, Target]] = []
    left: Counter[tuple[str, str]] = Counter()
    for item in items:
        if not scored(item):
            left[(item.kind, NOT_SCORED.get(item.kind, "no single gold answer among the options"))] += 1
            continue
        if is_orientation(item) and not (item.country or item.culture):
            if not cultures:
                left[(item.kind, "names no culture, and no cultures were given to ask it as")] += 1
            chosen += [(item, target) for target in cultures]
            continue
        try:
            target = item_target(item)
        except UnknownNameError:
            left[(item.kind, "culture not a known country or culture: no one to answer as")] += 1
            continue
        chosen.append((item, target))
    ids = list(dict.fromkeys(item.id for item, _ in chosen))
    if limit is not None and len(ids) > limit:
        keep = set(ids[:limit])
        last = next(item for item, _ in chosen if item.id == ids[limit - 1])
        if last.group is not None and not is_orientation(last):
            keep |= {item.id for item, _ in chosen if item.group == last.group}
        left[("(any)", f"past --limit {limit}")] += len(ids) - len(keep)
        chosen = [c for c in chosen if c[0].id in keep]
    return chosen, [{"kind": k, "items": n, "reason": why} for (k, why), n in left.items()]


def item_prompt(item: Item) -> str:
    """The item as a numbered multiple-choice question (a short-answer item as an open one); a binary item
    that judges one proposed answer (``meta["option"]``, as CulturalBench-Hard's rows do) names that answer
    and asks whether it is right."""
    text = item.question
    if item.kind == "short_answer":
        return f"{text}\n{OPEN_INSTRUCTION}"
    if item.kind == "binary" and item.meta.get("option"):
        text = f"{text}\nProposed answer: {item.meta['option']}\nIs the proposed answer correct?"
    return numbered_question(text, item.options)


def build_pairs(items: Iterable[tuple[Item, Target]]) -> list[tuple[Question, Target]]:
    """(question, target) pairs, each question carrying its gold answer; an orientation item twice, its
    two options in each order (``swapped``)."""
    pairs = []
    for item, target in items:
        columns = {"gold": gold_text(item), "subset": item.subset or "-"}
        pairs.append((Question(item.id, item.question, item_prompt(item), tuple(item.options or ()),
                               columns | ({"swapped": False} if two_poles(item) else {})), target))
        if two_poles(item):  # asked in both orders too, so a lean to the first position cancels out
            swapped = replace(item, options=tuple(reversed(item.options)))
            pairs.append((Question(item.id, item.question, item_prompt(swapped), swapped.options,
                                   columns | {"swapped": True}), target))
    return pairs


def two_poles(item: Item) -> bool:
    """Whether the item is a lean between two options rather than a right answer (orientation, agreement):
    such items are asked in both option orders."""
    return is_orientation(item) or is_agreement(item)


def gold_text(item: Item) -> str | None:
    """The gold answer as the results show it: every accepted answer of a short answer (`` | ``-joined),
    none for an orientation item."""
    if not item.gold:
        return None
    return " | ".join(item.gold) if is_open(item) else item.gold[0]


def is_open(item: Item) -> bool:
    """Whether the item is answered by a free-text reply (a short-answer question)."""
    return item.kind == "short_answer"


def add_predictions(rows: list[dict[str, Any]], items: dict[str, Item]) -> None:
    """Set ``prediction`` (the top option, or the reply) and ``correct`` (it is the gold answer, or the
    reply holds an accepted answer) on every answered row."""
    for r in rows:
        if r["status"] != "ok":
            continue
        item = items[r["item_id"]]
        if is_open(item):
            r["prediction"] = r["response"]
            r["correct"] = matches(r["response"] or "", item.gold, item.language)
        elif two_poles(item) or is_scale(item):  # the lean or the distribution is measured, not each answer
            r["prediction"] = r["options"][r["top_option"] - 1]
        else:
            r["prediction"] = r["options"][r["top_option"] - 1]
            r["correct"] = r["prediction"] == r["gold"]


def other_countries_answer(item: Item, items: Iterable[Item]) -> str | None:
    """The most-voted answer the other countries' annotators gave to ``item``'s question (its ``group``)
    in its language: the cross-country baseline of a short-answer item (None when no other country has one)."""
    votes: Counter[str] = Counter()
    for other in items:
        if (other.group == item.group and other.language == item.language
                and (other.country or other.culture) != (item.country or item.culture)):
            for cluster in other.meta.get("votes") or [{"answers": list(other.gold[:1]), "count": 1}]:
                if cluster.get("answers"):
                    votes[cluster["answers"][0]] += int(cluster.get("count") or 0)
    return votes.most_common(1)[0][0] if votes else None


def group_correct(rows: Iterable[dict[str, Any]], groups: dict[str, str | None]) -> dict[str, bool]:
    """Per group of items (``groups``: item id -> group), True when every answered row of it is correct.
    Rows without a group, unanswered rows and groups with an unanswered row are left out."""
    answered: dict[str, list[bool]] = {}
    broken: set[str] = set()
    for r in rows:
        group = groups.get(r["item_id"])
        if group is None:
            continue
        if r["status"] != "ok":
            broken.add(group)
        else:
            answered.setdefault(group, []).append(bool(r["correct"]))
    return {g: all(v) for g, v in answered.items() if g not in broken}


def most_common_answer(items: Iterable[Item]) -> str | None:
    """The gold answer string the items share most often (the first such among equals)."""
    counts = Counter(item.gold[0] for item in items)
    return counts.most_common(1)[0][0] if counts else None


def summarise(rows: list[dict[str, Any]], inputs: BenchInputs, methods: Sequence[Method]) -> list[dict[str, Any]]:
    """Per (subset, country or ``all``, method): accuracy, question-level accuracy over groups (where the
    subset has groups of more than one item), the random and most-common baselines on the same items, and
    the lift over the better baseline."""
    items = {item.id: item for item, _ in inputs.items}
    subsets: dict[str, list[Item]] = {}
    for item, _ in inputs.items:
        if not (two_poles(item) or is_scale(item)):
            subsets.setdefault(item.subset or "-", []).append(item)
    summary = []
    for subset, members in subsets.items():
        baselines = baseline_scores(members)
        # short answers share a group across countries (one question asked of each): no question-level score
        grouped = any(n > 1 for n in Counter(i.group for i in members if i.group and not is_open(i)).values())
        in_subset = [r for r in rows if (items[r["item_id"]].subset or "-") == subset]
        for country, in_country in country_cells(in_subset):
            for method in methods:
                mine = [r for r in in_country if r["method"] == method.name]
                summary.append(_cell(inputs.benchmark, subset, country, method.name, mine, items, baselines, grouped))
    names = [m.name for m in methods]
    return (summary + orientation_summary(inputs.benchmark, rows, items, names)
            + agreement_summary(inputs.benchmark, rows, items, names)
            + distance_summary(inputs.benchmark, rows, items, names))


def baseline_scores(members: Sequence[Item]) -> dict[str, dict[str, float]]:
    """Baseline name -> item id -> the baseline's score on the item: ``random`` (1 / number of options;
    none for a short answer) and ``most-common`` (the subset's most common gold answer, or for a short
    answer the other countries' answer, :func:`other_countries_answer`)."""
    common = most_common_answer([i for i in members if not is_open(i)])
    random: dict[str, float] = {}
    most_common: dict[str, float] = {}
    for item in members:
        if is_open(item):
            answer = other_countries_answer(item, members)
            most_common[item.id] = float(answer is not None and matches(answer, item.gold, item.language))
        else:
            random[item.id] = 1.0 / len(item.options)
            most_common[item.id] = float(item.gold[0] == common)
    return {"random": random, "most-common": most_common}


def _cell(benchmark: str, subset: str, country: str, method: str, mine: list[dict[str, Any]], items: dict[str, Item],
          baseline_by_item: dict[str, dict[str, float]], grouped: bool) -> dict[str, Any]:
    ok = [r for r in mine if r["status"] == "ok"]
    entry: dict[str, Any] = {"benchmark": benchmark, "subset": subset, "country": country, "method": method,
                             "measure": "accuracy", "items": len(ok), "few": len(ok) < MIN_ITEMS, "note": ""}
    if not ok:
        entry["note"] = next((r["note"] for r in mine if r["note"]), "no item answered")
        return entry
    correct = [float(r["correct"]) for r in ok]
    put_interval(entry, "accuracy", mean_interval(correct))
    baselines = {name: [scores[r["item_id"]] for r in ok] for name, scores in baseline_by_item.items()
                 if all(r["item_id"] in scores for r in ok)}
    for name, values in baselines.items():
        put_interval(entry, name.replace("-", "_"), mean_interval(values))
    best = max(baselines, key=lambda b: entry[b.replace("-", "_")])
    lift = paired_difference(correct, baselines[best])
    put_interval(entry, "lift", lift)
    entry.update(best_baseline=best, versus_baseline=versus_baseline(lift))
    if grouped:
        questions = list(group_correct(mine, {i: items[i].group for i in {r["item_id"] for r in mine}}).values())
        entry["questions"] = len(questions)
        put_interval(entry, "question_accuracy", mean_interval([float(q) for q in questions]))
    return entry


def by_method(summary: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The overall rows (country ``all``) of each subset and method."""
    return [s for s in summary if s["country"] == ALL]


def run_bench(config: Any, inputs: BenchInputs, methods: Sequence[Method], ctx: MethodContext,
              out: Path) -> BenchReport:
    """Run the benchmark evaluation and write the report folder ``out``."""
    rows = evaluate("bench", build_pairs(inputs.items), methods, ctx, config)
    add_predictions(rows, {item.id: item for item, _ in inputs.items})
    summary = summarise(rows, inputs, methods)
    result = BenchReport(summary, by_method(summary), rows, inputs.left_out)
    result.files = write_report(out, result, inputs, methods, config)
    return result


def left_out_line(inputs: BenchInputs) -> str:
    """One sentence on how many items were scored and how many of which kind were left out, and why."""
    scored_items = len({item.id for item, _ in inputs.items})
    line = f"{scored_items} of {inputs.total} items scored"
    if inputs.left_out:
        parts = [f"{e['items']} {e['kind']} ({e['reason']})" for e in inputs.left_out]
        line += "; left out: " + "; ".join(parts)
    return line + "."


def _tables(summary: Sequence[dict[str, Any]]) -> list[str]:
    """The report's tables, one section per measure the items have: accuracy (overall and per country),
    orientation, agreement, distance."""
    by_measure = {m: [s for s in summary if s["measure"] == m] for m in COLUMNS_BY_MEASURE}
    lines = []
    if by_measure["accuracy"] or not summary:
        scored_rows = by_measure["accuracy"]
        lines += ["## Overall per subset and method\n",
                  markdown_table(with_intervals([s for s in scored_rows if s["country"] == ALL], INTERVALS, ("lift",)),
                                 SHOWN_COLUMNS),
                  "\n## Per country\n",
                  markdown_table(with_intervals([s for s in scored_rows if s["country"] != ALL], INTERVALS, ("lift",)),
                                 SHOWN_COLUMNS)]
    if by_measure["orientation"]:
        lines += ["\n## Orientation per Hofstede dimension\n",
                  "`orientation` is the mean probability of the option pointing to the dimension's first pole "
                  f"(CDEval's Option 1; {NO_LEAN} is no lean), over the dimension's items, asked as each culture "
                  "and in both option orders; `first_position` is the mean probability of the option shown first "
                  "(far from 0.5: the position decided more than the content); "
                  "`hofstede` is the culture's primary country's published score on the dimension; `r_hofstede`, "
                  f"on the `all` row, is Pearson's r between the two over the cultures (needs {MIN_TARGETS_FOR_R} "
                  "or more; `-` when the method leans alike for every culture, as `base` does).\n",
                  markdown_table(with_intervals(by_measure["orientation"], ("orientation",)), ORIENTATION_COLUMNS, 3)]
    if by_measure["agreement"]:
        lines += ["\n## Agreement with the descriptors\n",
                  "Each descriptor is asked as its culture, in both option orders: `p_agree` is the mean "
                  "probability of `agree`, `share` the mean share of the source community that agreed, and "
                  "`similarity` the mean of 1 - Jensen-Shannon distance between the two per item; `uniform` "
                  "(P(agree) 0.5) and `global_mean` (the other descriptors' mean share) are the baselines on the "
                  "same items, `lift` the similarity above the better one (paired).\n",
                  markdown_table(with_intervals(by_measure["agreement"], ("similarity", "uniform", "global_mean",
                                                                          "lift"), ("lift",)), AGREEMENT_COLUMNS)]
    if by_measure["distance"]:
        lines += ["\n## Distance to the people's answers per question\n",
                  "Each participant is asked the value question as the person their demographics describe "
                  "(`prompted`: continent, urban or rural, education in the system prompt; `base` hears the "
                  "question alone). Per question, the method's answer distribution (the mean of its option "
                  "distributions over the question's participants on the row) is compared with the histogram "
                  "of their answers by the Wasserstein-1 (Earth Mover's) distance, WorldValuesBench's own "
                  "metric, **divided by the scale's span** (max - min) so 1-4 and 1-10 scales count alike: 0 "
                  "is the same distribution, 1 all the mass at opposite ends; lower is better. `distance` is "
                  "the mean over `questions` with its 95% bootstrap interval over questions, `w1` the mean raw "
                  "distance in scale points. The baselines on the same questions: `uniform` (every point "
                  "alike) and `other_continents` (each participant predicted by the other continents' answers "
                  "to the question, their own left out; on the `all` row the mix of those, one per "
                  "participant, which with continents of like size is close to the pooled answers: a hard "
                  "baseline there, the continent rows are where the demographics should show). `lift` is "
                  "the better baseline's distance minus the method's (paired over questions; above zero the "
                  "method is closer to the people).\n",
                  markdown_table(with_intervals(by_measure["distance"], ("distance", "uniform", "other_continents",
                                                                         "lift"), ("lift",)), DISTANCE_COLUMNS)]
    return lines


def write_report(out: Path, result: BenchReport, inputs: BenchInputs, methods: Sequence[Method],
                 config: Any) -> list[Path]:
    """Write results, summary, the accuracy plot and report.md."""
    out.mkdir(parents=True, exist_ok=True)
    files = write_table(out, "results", result.rows, RESULT_COLUMNS)
    files += write_table(out, "summary", result.summary, SUMMARY_COLUMNS)
    shown = [s for s in result.by_method if s.get("accuracy") is not None]  # orientation rows have no accuracy
    labels = [f"{s['subset']}/{s['method']}" for s in shown]
    values = [(s["accuracy"], s["accuracy_low"], s["accuracy_high"]) for s in shown]
    for s in {s["subset"]: s for s in shown}.values():  # the baselines once per subset
        for name in (n for n in ("random", "most_common") if s.get(n) is not None):
            labels.append(f"{s['subset']}/{name}")
            values.append((s[name], s[f"{name}_low"], s[f"{name}_high"]))
    figures = []
    if labels:
        figures.append(("Accuracy per subset and method, with the baselines",
                        plots.interval_bars(out / "accuracy.png", f"{inputs.benchmark}: accuracy (95% CI)",
                                            "accuracy", labels, values)))
    files += [p for _, p in figures]
    lines = [f"# Benchmark: {inputs.benchmark}\n",
             f"Items from `{inputs.source}`. Each item with options and a gold answer is asked as a numbered "
             "multiple-choice question, as the item's country (or its culture as written) per method; the "
             "prediction is the option with the most probability, and `accuracy` is the share of items where it "
             "is the gold answer. `random` is the expected accuracy of a uniform guess (the mean of 1 / number of "
             "options) and `most_common` the accuracy of always answering the subset's most common gold answer, "
             "both on the same items; `lift` is the accuracy above the better of the two (`best_baseline`), a "
             "paired difference over the items; `versus_baseline` is `better` or `worse` when its interval "
             "excludes zero, else `cannot tell`. Where items share a group (CulturalBench-Hard: four true/false "
             "rows of one question), `question_accuracy` is the benchmark's own metric: a question counts right "
             "only when every row of it is right (over `questions`, groups with every row answered). A short-answer "
             "item is asked as an open question (\"" + OPEN_INSTRUCTION + "\" after it) and answered by the method's "
             "greedy reply, which is correct when one of the country's accepted answers appears in it after "
             "normalising both (case, punctuation; in English also articles and plural -s: a stand-in for the "
             "lemmatiser of BLEnD's own scorer); its `most_common` baseline answers with the other countries' "
             "most-voted answer to the same question in the same language, and there is no `random`. Every figure "
             "is `value [low, high]` with its 95% bootstrap interval over items (over questions for "
             "`question_accuracy`). A `scale` item (one survey participant's answer) has no accuracy: its "
             "questions are scored by distance, in their own section.\n",
             bootstrap_note() + "\n", run_description(config),
             "## Items\n", left_out_line(inputs) + "\n",
             markdown_table(inputs.left_out, LEFT_OUT_COLUMNS) if inputs.left_out else "Nothing was left out.\n",
             *[f"- loader note: {n}" for n in inputs.notes],
             "\n## Methods\n", method_lines(methods),
             *_tables(result.summary),
             markdown_tail(result.rows, config, figures, out)]
    files.append(write_text(out / "report.md", "\n".join(lines)))
    return files
