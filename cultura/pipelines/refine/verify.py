"""Verification: does an opinion agree with the culture's answer to the seed question?

Each opinion is labelled ``Entail``, ``Contradict`` or ``Irrelevant`` by the model. A ``Contradict``
opinion is rewritten to agree with the seed attitude, and the *rewrite* is verified again; only an
``Entail`` (original or rewrite) survives. Every step is recorded in the opinion's audit trail.

The control flow (:func:`verify_opinions`) takes an ``ask`` function (a batch of chats in, raw
answers out), so one batched model call serves each step for a whole batch of opinions. An answer
that is a :class:`~cultura.engines.base.Failure` (its request failed) ends that opinion alone with
the decision ``failed`` and the reason in ``error``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from cultura.engines.base import Failure
from cultura.pipelines.refine.opinions import parse_opinions

ENTAIL, CONTRADICT, IRRELEVANT = "Entail", "Contradict", "Irrelevant"
LABELS = (ENTAIL, CONTRADICT, IRRELEVANT)
_STEMS = {ENTAIL: ("entail",), CONTRADICT: ("contradict",), IRRELEVANT: ("irrelevan",)}
_WORD = re.compile(r"[a-z]+")
_NEGATIONS = {"not", "doesn", "don", "isn", "never", "neither", "nor"}  # in the two words before a label

VERIFY_SYSTEM = ("You check whether an opinion agrees with how most people in a country answered a survey "
                 "question. Reply with exactly one word: ENTAIL, CONTRADICT or IRRELEVANT.")
# label -> (question, answer, opinion): the worked examples, one per label
VERIFY_EXAMPLES = {
    ENTAIL: ("How important is work in your life?", "Very important", "People in Japan put work at the centre of life."),
    CONTRADICT: ("Is religion important in your life?", "Not important",
                 "People in Sweden think religion is central to daily life."),
    IRRELEVANT: ("Should women have the same rights as men?", "Agree", "People in Norway enjoy long summer holidays."),
}
# The order of the worked examples. Small models lean on it heavily: the default model answers
# ENTAIL to everything under this order and CONTRADICT under most others (it cannot judge either way).
VERIFY_ORDER = (CONTRADICT, IRRELEVANT, ENTAIL)
REWRITE_SYSTEM = ("You rewrite an opinion so that it agrees with how most people in a country answered a survey "
                  "question. Keep it one full sentence about people in that country. Reply with the sentence only.")
REWRITE_EXAMPLE = (("Is religion important in your life?", "Not important", "Sweden",
                    "People in Sweden think religion is central to daily life."),
                   "People in Sweden think religion plays only a small part in daily life.")
Ask = Callable[[Sequence[Sequence[Mapping[str, str]]], int], "list[str | Failure]"]


def parse_label(answer: str) -> tuple[str, bool]:
    """``(label, recognised)`` for a model's verification answer.

    Case, punctuation and extra words are tolerated ("label: entail.", "The answer is Contradict");
    an answer naming no label, several labels, or a negated label ("does not entail") is
    ``(Irrelevant, False)`` so the caller can count it.
    """
    text = (answer or "").lower()
    words = _WORD.findall(text)
    found: list[str] = []
    for i, word in enumerate(words):
        for label, stems in _STEMS.items():
            if word.startswith(stems):
                if _NEGATIONS.intersection(words[max(0, i - 2):i]):
                    return IRRELEVANT, False
                found.append(label)
    distinct = list(dict.fromkeys(found))
    if len(distinct) == 1:
        return distinct[0], True
    return IRRELEVANT, False


def _verify_user(question: str, attitude: str, opinion: str) -> str:
    return f'Question: "{question}"\nMost people answered: "{attitude}"\nOpinion: "{opinion}"\nLabel:'


def verification_messages(question: str, attitude: str, opinion: str,
                          order: Sequence[str] = VERIFY_ORDER) -> list[dict[str, str]]:
    """The chat asking for the label of ``opinion`` against the answer ``attitude`` to ``question``;
    one worked example per label, in ``order``."""
    messages = [{"role": "system", "content": VERIFY_SYSTEM}]
    for label in order:
        messages += [{"role": "user", "content": _verify_user(*VERIFY_EXAMPLES[label])},
                     {"role": "assistant", "content": label.upper()}]
    messages.append({"role": "user", "content": _verify_user(question, attitude, opinion)})
    return messages


def _rewrite_user(question: str, attitude: str, country: str, opinion: str) -> str:
    return (f'Question: "{question}"\nMost people in {country} answered: "{attitude}"\n'
            f'Opinion: "{opinion}"\nRewritten opinion:')


def rewrite_messages(question: str, attitude: str, country: str, opinion: str) -> list[dict[str, str]]:
    """The chat asking to rewrite ``opinion`` so that it agrees with ``attitude``."""
    example, answer = REWRITE_EXAMPLE
    return [{"role": "system", "content": REWRITE_SYSTEM},
            {"role": "user", "content": _rewrite_user(*example)},
            {"role": "assistant", "content": answer},
            {"role": "user", "content": _rewrite_user(question, attitude, country, opinion)}]


def read_rewrite(answer: str, min_words: int = 5) -> str | None:
    """The rewritten opinion in a model's answer (its first readable sentence), or None."""
    opinions, _ = parse_opinions(answer, min_words=min_words)
    return opinions[0] if opinions else None


def _step(step: str, text: str, output: str, label: str | None = None, recognised: bool | None = None) -> dict[str, Any]:
    return {"step": step, "input": text, "output": output, "label": label, "recognised": recognised}


def verify_opinions(items: Sequence[Mapping[str, Any]], ask: Ask, verify_tokens: int = 8,
                    rewrite_tokens: int = 64, min_words: int = 5,
                    order: Sequence[str] = VERIFY_ORDER) -> list[dict[str, Any]]:
    """Verify opinions against their seed attitude; rewrite and re-verify the contradicting ones.

    Each item needs ``opinion``, ``seed_text``, ``attitude`` (None: cannot be verified) and
    ``country``. At most three batched calls of ``ask``: label all, rewrite the ``Contradict`` ones,
    label the rewrites. Returns one result per item: ``label``, ``rewrite``, ``rewrite_label``,
    ``verified`` (survives), ``text`` (what survives: the opinion or its rewrite), ``decision``,
    ``unrecognised`` (labels that fell back to Irrelevant), ``audit`` (every step taken) and
    ``error`` (why a step's request failed, with decision ``failed``; else None).
    ``order`` is the order of the worked examples in the verification prompt.
    """
    results = [{"label": None, "rewrite": None, "rewrite_label": None, "verified": False,
                "text": item["opinion"], "decision": "dropped-no-attitude", "unrecognised": 0, "audit": [],
                "error": None}
               for item in items]

    def answered(indices: list[int], answers: list[str | Failure]) -> list[tuple[int, str]]:
        """The (item, answer) pairs whose request ran; the failed items end here."""
        ran = []
        for i, answer in zip(indices, answers):
            if isinstance(answer, Failure):
                results[i].update(verified=False, decision="failed", error=answer.error)
            else:
                ran.append((i, answer))
        return ran

    todo = [i for i, item in enumerate(items) if item.get("attitude")]
    answers = ask([verification_messages(items[i]["seed_text"], items[i]["attitude"], items[i]["opinion"], order)
                   for i in todo], verify_tokens) if todo else []
    contradicting = []
    for i, answer in answered(todo, answers):
        label, recognised = parse_label(answer)
        r = results[i]
        r.update(label=label, unrecognised=int(not recognised))
        r["audit"].append(_step("verify", items[i]["opinion"], answer, label, recognised))
        if label == ENTAIL:
            r.update(verified=True, decision="kept")
        elif label == CONTRADICT:
            contradicting.append(i)
        else:
            r["decision"] = "dropped-irrelevant"
    rewrites = ask([rewrite_messages(items[i]["seed_text"], items[i]["attitude"], items[i]["country"],
                                     items[i]["opinion"]) for i in contradicting], rewrite_tokens) if contradicting else []
    rewritten = []
    for i, answer in answered(contradicting, rewrites):
        text = read_rewrite(answer, min_words)
        results[i]["audit"].append(_step("rewrite", items[i]["opinion"], answer))
        if text is None:
            results[i]["decision"] = "dropped-rewrite-empty"
        else:
            results[i]["rewrite"] = text
            rewritten.append(i)
    # the REWRITE is what gets verified again, never the original opinion
    second = ask([verification_messages(items[i]["seed_text"], items[i]["attitude"], results[i]["rewrite"], order)
                  for i in rewritten], verify_tokens) if rewritten else []
    for i, answer in answered(rewritten, second):
        label, recognised = parse_label(answer)
        r = results[i]
        r["rewrite_label"] = label
        r["unrecognised"] += int(not recognised)
        r["audit"].append(_step("reverify", r["rewrite"], answer, label, recognised))
        if label == ENTAIL:
            r.update(verified=True, text=r["rewrite"], decision="kept-rewrite")
        else:
            r["decision"] = f"dropped-rewrite-{label.lower()}"
    return results
