"""Verification: does an opinion agree with the culture's answer to the seed question?

Each opinion is labelled ``Entail``, ``Contradict`` or ``Irrelevant`` by option scoring
(:mod:`cultura.classify`): the three labels are numbered options, the model's log-probabilities of
the option numbers decide, and the question is asked once per cyclic order of the labels so that
no label wins by where it was listed. A ``Contradict`` opinion is rewritten to agree with the seed
attitude, and the *rewrite* is verified again; only an ``Entail`` (original or rewrite) survives.
Every step is recorded in the opinion's audit trail, with each label's probability and the valid
mass (the probability the model put on the option numbers at all).

The control flow (:func:`verify_opinions`) takes a ``score`` function (``(chat, options)`` pairs in,
option scores out) and an ``ask`` function (chats in, answers out), so one batched model call serves
each step for a whole batch of opinions. A result that is a :class:`~cultura.engines.base.Failure`
(its request failed) ends that opinion alone with the decision ``failed`` and the reason in ``error``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from cultura.classify import LabelScores, Score, classify_many, label_orders
from cultura.engines.base import Failure
from cultura.choices import numbered_question
from cultura.pipelines.refine.opinions import parse_opinions

ENTAIL, CONTRADICT, IRRELEVANT = "Entail", "Contradict", "Irrelevant"
LABELS = (ENTAIL, CONTRADICT, IRRELEVANT)
ORDERS = label_orders(LABELS)
# how each label reads as an answer option
LABEL_OPTIONS = {ENTAIL: "It agrees with that answer.", CONTRADICT: "It goes against that answer.",
                 IRRELEVANT: "It is about another subject."}
VERIFY_SYSTEM = ("You judge whether what a person said agrees with how most people in their country answered "
                 "a survey question.")
# label -> (question, answer, country, opinion): one worked example per label, answered with that
# label's number in the order asked. Without them the default model puts about 0.3 of its probability
# on the option numbers; with them about 0.96 (bench/judge.py).
VERIFY_EXAMPLES = {
    ENTAIL: ("How important is work in your life?", "Very important", "Japan", "I think work is at the centre of my life."),
    CONTRADICT: ("Is religion important in your life?", "Not important", "Sweden", "Religion is central to my daily life."),
    IRRELEVANT: ("Should women have the same rights as men?", "Agree", "Norway", "I enjoy long summer holidays by the sea."),
}
REWRITE_SYSTEM = ("You rewrite what a person said so that it agrees with how most people in their country "
                  "answered a survey question. Keep it one full sentence in the first person. Reply with the "
                  "sentence only.")
REWRITE_EXAMPLE = (("Is religion important in your life?", "Not important", "Sweden",
                    "Religion is central to my daily life."),
                   "Religion plays only a small part in my daily life.")
Ask = Callable[[Sequence[Sequence[Mapping[str, str]]], int], "list[str | Failure]"]


def verification_question(question: str, attitude: str, country: str, opinion: str,
                          order: Sequence[str] = LABELS) -> str:
    """The question asking how ``opinion`` (said by a person from ``country``) relates to the answer
    ``attitude`` most people there gave to ``question``, with the labels numbered in ``order``."""
    case = (f'Survey question: "{question}"\nMost people in {country} answered: "{attitude}"\n'
            f'A person from {country} said: "{opinion}"\n\nHow does what the person said relate to that answer?')
    return numbered_question(case, [LABEL_OPTIONS[label] for label in order])


def verification_messages(question: str, attitude: str, country: str, opinion: str,
                          order: Sequence[str] = LABELS) -> list[dict[str, str]]:
    """The chat asking for the label of ``opinion``, its labels numbered in ``order``, after one worked
    example per label answered in the same order."""
    messages = [{"role": "system", "content": VERIFY_SYSTEM}]
    for label in LABELS:
        messages += [{"role": "user", "content": verification_question(*VERIFY_EXAMPLES[label], order)},
                     {"role": "assistant", "content": str(list(order).index(label) + 1)}]
    messages.append({"role": "user", "content": verification_question(question, attitude, country, opinion, order)})
    return messages


def judge(items: Sequence[Mapping[str, Any]], score: Score, text: str = "opinion") -> list[LabelScores | Failure]:
    """The verification labels of ``items`` (``seed_text``, ``attitude``, ``country`` and the text
    in field ``text``), in one ``score`` call: every item asked in every order of :data:`ORDERS`."""
    chats = [[verification_messages(i["seed_text"], i["attitude"], i["country"], i[text], order) for order in ORDERS]
             for i in items]
    return classify_many(chats, LABELS, ORDERS, score)


def _rewrite_user(question: str, attitude: str, country: str, opinion: str) -> str:
    return (f'Survey question: "{question}"\nMost people in {country} answered: "{attitude}"\n'
            f'A person from {country} said: "{opinion}"\nRewritten:')


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


def describe(scores: LabelScores) -> str:
    """A judgement as text for the audit trail: ``Entail 0.52, Contradict 0.31, Irrelevant 0.17``."""
    return ", ".join(f"{label} {p:.2f}" for label, p in zip(scores.labels, scores.probs))


def _step(step: str, text: str, output: str, scores: LabelScores | None = None) -> dict[str, Any]:
    return {"step": step, "input": text, "output": output, "label": scores.label if scores else None,
            "probs": list(scores.probs) if scores else None, "valid_mass": scores.valid_mass if scores else None}


def verify_opinions(items: Sequence[Mapping[str, Any]], score: Score, ask: Ask, rewrite_tokens: int = 64,
                    min_words: int = 5) -> list[dict[str, Any]]:
    """Verify opinions against their seed attitude; rewrite and re-verify the contradicting ones.

    Each item needs ``opinion``, ``seed_text``, ``attitude`` (None: cannot be verified) and
    ``country``. At most three batched calls: label all (``score``), rewrite the ``Contradict`` ones
    (``ask``), label the rewrites (``score``). Returns one result per item: ``label``, ``valid_mass``
    (of its verification), ``rewrite``, ``rewrite_label``, ``verified`` (survives), ``text`` (what
    survives: the opinion or its rewrite), ``decision``, ``audit`` (every step taken, with each
    label's probability) and ``error`` (why a step's request failed, with decision ``failed``; else None).
    """
    results = [{"label": None, "valid_mass": None, "rewrite": None, "rewrite_label": None, "verified": False,
                "text": item["opinion"], "decision": "dropped-no-attitude", "audit": [], "error": None}
               for item in items]

    def ran(indices: list[int], answers: Sequence[Any]) -> list[tuple[int, Any]]:
        """The (item, answer) pairs whose requests ran; the failed items end here."""
        done = []
        for i, answer in zip(indices, answers):
            if isinstance(answer, Failure):
                results[i].update(verified=False, decision="failed", error=answer.error)
            else:
                done.append((i, answer))
        return done

    todo = [i for i, item in enumerate(items) if item.get("attitude")]
    contradicting = []
    for i, scores in ran(todo, judge([items[i] for i in todo], score) if todo else []):
        r = results[i]
        r.update(label=scores.label, valid_mass=scores.valid_mass)
        r["audit"].append(_step("verify", items[i]["opinion"], describe(scores), scores))
        if scores.label == ENTAIL:
            r.update(verified=True, decision="kept")
        elif scores.label == CONTRADICT:
            contradicting.append(i)
        else:
            r["decision"] = "dropped-irrelevant"
    rewrites = ask([rewrite_messages(items[i]["seed_text"], items[i]["attitude"], items[i]["country"],
                                     items[i]["opinion"]) for i in contradicting], rewrite_tokens) if contradicting else []
    rewritten = []
    for i, answer in ran(contradicting, rewrites):
        text = read_rewrite(answer, min_words)
        results[i]["audit"].append(_step("rewrite", items[i]["opinion"], answer))
        if text is None:
            results[i]["decision"] = "dropped-rewrite-empty"
        else:
            results[i]["rewrite"] = text
            rewritten.append(i)
    # the REWRITE is what gets verified again, never the original opinion
    again = [dict(items[i], rewrite=results[i]["rewrite"]) for i in rewritten]
    for i, scores in ran(rewritten, judge(again, score, text="rewrite") if again else []):
        r = results[i]
        r["rewrite_label"] = scores.label
        r["audit"].append(_step("reverify", r["rewrite"], describe(scores), scores))
        if scores.label == ENTAIL:
            r.update(verified=True, text=r["rewrite"], decision="kept-rewrite")
        else:
            r["decision"] = f"dropped-rewrite-{scores.label.lower()}"
    return results
