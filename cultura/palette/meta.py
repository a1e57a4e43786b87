"""The Meta Agent's prompts: cultural drafts, self-regulated aggregation, final decision.

Pure functions from (prompt, drafts, gate weights, country) to chat messages, shared by the offline
:class:`~cultura.palette.palette.Palette` and the Serve deployments.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from cultura.data.hofstede import CONTINENTS, countries
from cultura.personas import Persona, continent_persona, reply_in

META_PERSONA = ("You are the Meta Agent of a cultural assistant: you combine drafts written by experts on different "
                "continents into one culturally appropriate answer.")


def meta_system(language: str = "English") -> str:
    """The Meta Agent's system prompt, answering in ``language``."""
    return f"{META_PERSONA} {reply_in(language)}"


META_SYSTEM = meta_system()

# Stage 2, self-regulated aggregation, then stage 3, the final decision. The question comes last:
# a small model answers the last thing it read instead of imitating the drafts' layout.
AGGREGATION_STEPS = (
    "Where the drafts disagree, follow the more relevant (heavier) draft; keep what fits {target}; leave "
    "out what is generic, repeated or wrong; do not mention the experts, drafts or weights."
)
FINAL_DECISION = "Now answer this question {for_whom}in two or three coherent sentences: {prompt}"

MAX_DRAFT_CHARS = 1200
# What the small model puts before its answer, often echoing the prompt's layout: a draft line ("- Asia
# expert (weight 0.40):", "Germany expert:"), a bare label ("Answer:", "Expert:", "Meta Agent:"), a
# sentence announcing the answer ("The answer to this question would be:"), a place as speaker
# ("Nigeria:"), several in a row ("Answer: Expert: ..."). Places are matched by _place_label.
_OPENING = r"^\s*(?:[-*>#]+\s*)?(?:\*\*)?\s*[\"\u201c]?"
_LABEL = re.compile(
    _OPENING + r"(?:(?:the\s+)?(?:final\s+|correct\s+|best\s+|short\s+)?(?:answer|response|decision|reply)"
    r"|(?:[A-Z][\w'.-]*\s+){0,3}(?:expert|agent|draft)s?(?:\s*\d+)?)"
    r"(?:\s*\(weight [0-9.]+\))?\s*(?:\*\*\s*:|:\s*(?:\*\*)?)\s*", re.IGNORECASE)
_ANNOUNCEMENT = re.compile(  # "The answer to this question would be: ...", also before a quote
    _OPENING + r"(?:the\s+)?(?:final\s+|correct\s+|best\s+|short\s+)?(?:answer|response|reply)"
    r"(?:\s+(?:to|for)\s+(?:this|the|your)\s+question)?\s+(?:is|would\s+be|will\s+be)"
    r"(?:\s*(?:\*\*\s*)?:\s*(?:\*\*)?|\s+(?=[\"\u201c]))\s*", re.IGNORECASE)
_QUOTES = {'"': '"', "“": "”", "'": "'"}


def _place_label(text: str) -> int:
    """Length of a leading "<continent or country>:" speaker label, or 0."""
    head, colon, _ = text.partition(":")
    if not colon or len(head) > 40:
        return 0
    name = head.strip(" -*#>\t\n").strip()
    return len(head) + 1 if name in _places() else 0


def _places() -> frozenset[str]:
    global _PLACES
    if _PLACES is None:
        _PLACES = frozenset(CONTINENTS) | frozenset(countries())
    return _PLACES


_PLACES: frozenset[str] | None = None


def _echo_pattern(echo: str) -> re.Pattern:
    """A leading ``echo``, its words separated by any whitespace, in any case."""
    return re.compile(r"^\s*" + r"\s+".join(re.escape(w) for w in echo.split()), re.IGNORECASE)


def _target(country: str | None) -> str:
    return f"people from {country}" if country else "the person asking"


def _question(prompt: str, country: str | None) -> str:
    return f"I am from {country}. {prompt.strip()}" if country else prompt.strip()


def draft_messages(prompt: str, continent: str, country: str | None = None,
                   language: str = "English") -> list[dict[str, str]]:
    """Stage 1, a cultural draft: the continent agent's persona (answering in ``language``) and the
    question, prefixed with the asker's country when known."""
    persona = continent_persona(continent, language=language)
    return [{"role": "system", "content": persona.system_prompt},
            {"role": "user", "content": _question(prompt, country)}]


def aggregation_messages(prompt: str, drafts: Mapping[str, str], weights: Mapping[str, float],
                         country: str | None = None, max_draft_chars: int = MAX_DRAFT_CHARS,
                         language: str = "English") -> list[dict[str, str]]:
    """Stages 2 and 3 for the Meta Agent (answering in ``language``): the drafts heaviest first with
    their gate weights, the self-regulated aggregation rules, then the final-decision instruction
    with the question.

    Each draft is cut to ``max_draft_chars`` characters to bound the prompt. ``weights`` maps every
    drafting continent to its gate weight (missing ones count as 0).
    """
    ordered = sorted(drafts, key=lambda c: (-float(weights.get(c, 0.0)), c))
    lines = []
    for continent in ordered:
        text = " ".join(str(drafts[continent]).split())[:max_draft_chars] or "(empty draft)"
        lines.append(f"- {continent} expert (weight {float(weights.get(continent, 0.0)):.2f}): {text}")
    for_whom = f"for a person from {country}, " if country else ""
    user = ("Expert drafts, most relevant first:\n" + "\n".join(lines) + "\n\n"
            + AGGREGATION_STEPS.format(target=_target(country)) + "\n\n"
            + FINAL_DECISION.format(for_whom=for_whom, prompt=prompt.strip()))
    return [{"role": "system", "content": meta_system(language)}, {"role": "user", "content": user}]


def blended_messages(prompt: str, weights: Mapping[str, float], country: str | None = None,
                     language: str = "English") -> list[dict[str, str]]:
    """The chat for one generation with merged continent adapters (the weighted-merge mode), answering in ``language``.

    The system prompt names the blended continents with their weights, heaviest first.
    """
    mix = ", ".join(f"{c} ({w:.2f})" for c, w in sorted(weights.items(), key=lambda kv: (-kv[1], kv[0])) if w > 0)
    system = (f"You are a knowledgeable assistant about the cultures of {mix}, blended by those weights. "
              f"You answer with the values, customs and everyday practice that fit {_target(country)}. {reply_in(language)}")
    return [{"role": "system", "content": system}, {"role": "user", "content": _question(prompt, country)}]


def clean_answer(text: str, prompt: str | None = None, country: str | None = None) -> str:
    """The Meta Agent's answer without what it echoed before answering: leading labels ("Answer:",
    "The answer is:", "- Asia expert (weight 0.40):", "Nigeria:"), the question itself (as the user
    wrote it, as the agents read it, or inside the final-decision instruction), wrapping quotes; up
    to four in a row. Empty when nothing else was said."""
    echoes = []
    if prompt and prompt.strip():
        for_whom = f"for a person from {country}, " if country else ""
        echoes = [_echo_pattern(e) for e in (FINAL_DECISION.format(for_whom=for_whom, prompt=prompt.strip()),
                                              _question(prompt, country), prompt)]
    text = text.strip()
    for _ in range(4):
        before = text
        text = _ANNOUNCEMENT.sub("", _LABEL.sub("", text, count=1).strip(), count=1).strip()
        text = text[_place_label(text):].strip()
        for echo in echoes:
            text = echo.sub("", text, count=1).strip()
        if len(text) > 1 and _QUOTES.get(text[0]) == text[-1]:
            text = text[1:-1].strip()
        if text == before:
            break
    return text


def final_answer(text: str, prompt: str, drafts: Mapping[str, str], weights: Mapping[str, float],
                 country: str | None = None) -> str:
    """The answer the user gets: the Meta Agent's ``text`` cleaned (:func:`clean_answer`), or, when
    it said nothing but labels and the question, the heaviest draft, cleaned the same way."""
    for candidate in [text] + [str(drafts[c]) for c in sorted(drafts, key=lambda c: (-float(weights.get(c, 0.0)), c))]:
        answer = clean_answer(candidate, prompt, country)
        if answer:
            return answer
    return text.strip()


def meta_persona() -> Persona:
    """The Meta Agent's persona (no adapter: it blends, it does not speak for a continent)."""
    return Persona(key="meta", name="Meta Agent", role="meta", system_prompt=META_SYSTEM)
