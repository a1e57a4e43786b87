"""The Meta Agent's prompts: cultural drafts, self-regulated aggregation, final decision.

Pure functions from (prompt, drafts, gate weights, country) to chat messages, shared by the offline
:class:`~cultura.palette.palette.Palette` and the Serve deployments.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from cultura.data.hofstede import CONTINENTS
from cultura.personas import Persona, continent_persona

META_SYSTEM = (
    "You are the Meta Agent of a cultural assistant: you combine drafts written by experts on different "
    "continents into one culturally appropriate answer. Reply in English only."
)
ENGLISH = " Reply in English only."  # the small default model drifts into other languages otherwise

# Stage 2, self-regulated aggregation, then stage 3, the final decision. The question comes last:
# a small model answers the last thing it read instead of imitating the drafts' layout.
AGGREGATION_STEPS = (
    "Where the drafts disagree, follow the more relevant (heavier) draft; keep what fits {target}; leave "
    "out what is generic, repeated or wrong; do not mention the experts, drafts or weights."
)
FINAL_DECISION = "Now answer this question {for_whom}in two or three coherent sentences: {prompt}"

MAX_DRAFT_CHARS = 1200
# A label the small model puts before its answer, often echoing a draft line ("- Asia expert (weight
# 0.40):"), sometimes several in a row ("Answer: Expert: ...").
_LABEL = re.compile(r"^\s*(?:[-*]\s+)?(?:\*\*)?(?:(?:" + "|".join(CONTINENTS) + r")\s+)?"
                    r"(?:final answer|final decision|answer|response|expert|draft)(?:\s*\d+)?\s*"
                    r"(?:\(weight [0-9.]+\)\s*)?(?:\*\*\s*:|:\s*(?:\*\*)?)\s*", re.IGNORECASE)


def _target(country: str | None) -> str:
    return f"people from {country}" if country else "the person asking"


def _question(prompt: str, country: str | None) -> str:
    return f"I am from {country}. {prompt.strip()}" if country else prompt.strip()


def draft_messages(prompt: str, continent: str, country: str | None = None) -> list[dict[str, str]]:
    """Stage 1, a cultural draft: the continent agent's persona (answering in English) and the question,
    prefixed with the asker's country when known."""
    persona = continent_persona(continent)
    return [{"role": "system", "content": persona.system_prompt + ENGLISH},
            {"role": "user", "content": _question(prompt, country)}]


def aggregation_messages(prompt: str, drafts: Mapping[str, str], weights: Mapping[str, float],
                         country: str | None = None, max_draft_chars: int = MAX_DRAFT_CHARS) -> list[dict[str, str]]:
    """Stages 2 and 3 for the Meta Agent: the drafts heaviest first with their gate weights, the
    self-regulated aggregation rules, then the final-decision instruction with the question.

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
    return [{"role": "system", "content": META_SYSTEM}, {"role": "user", "content": user}]


def blended_messages(prompt: str, weights: Mapping[str, float], country: str | None = None) -> list[dict[str, str]]:
    """The chat for one generation with merged continent adapters (the weighted-merge mode).

    The system prompt names the blended continents with their weights, heaviest first.
    """
    mix = ", ".join(f"{c} ({w:.2f})" for c, w in sorted(weights.items(), key=lambda kv: (-kv[1], kv[0])) if w > 0)
    system = (f"You are a knowledgeable assistant about the cultures of {mix}, blended by those weights. "
              f"You answer with the values, customs and everyday practice that fit {_target(country)}.{ENGLISH}")
    return [{"role": "system", "content": system}, {"role": "user", "content": _question(prompt, country)}]


def clean_answer(text: str) -> str:
    """The Meta Agent's answer without its leading labels ("Answer:", "Draft 1:", "- Asia expert
    (weight 0.40):", up to three in a row) or wrapping quotes."""
    text = text.strip()
    for _ in range(3):
        unlabelled = _LABEL.sub("", text, count=1).strip()
        if unlabelled == text:
            break
        text = unlabelled
    if len(text) > 1 and text[0] == text[-1] == '"':
        text = text[1:-1].strip()
    return text


def meta_persona() -> Persona:
    """The Meta Agent's persona (no adapter: it blends, it does not speak for a continent)."""
    return Persona(key="meta", name="Meta Agent", role="meta", system_prompt=META_SYSTEM)
