"""Dialogue scripts: who speaks at each turn, and the guidance each speaker is given.

A round is one turn of the opener (the main contact, or the first delegate in ``in`` mode) followed
by one turn of every other participant. The first round always opens on the seed question.

- ``self-guidance``: CulturePark's guided rounds (here in our own words): opinions and reasons;
  agreement and more reasons; more about one's culture; one's own opinion; more interesting ideas;
  introducing something of one's culture *to the other person*. Rounds past the sixth cycle through
  the five after the opening, so any number of rounds works.
- ``free``: after the opening, each speaker simply answers what the others said last.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from cultura.errors import ConfigError
from cultura.pipelines.generate.schema import SCRIPTS


@dataclass(frozen=True)
class Guidance:
    """What the opener and the responders are asked to do in one round ({other} = who they talk to)."""

    opener: str
    responder: str


OPENING = ("You are meeting {other}. Ask {other}, in your own words, what they think about this "
           "question and why:\n{question}")
SELF_GUIDANCE: tuple[Guidance, ...] = (
    Guidance(OPENING, "Answer {other}: give your opinion on the question and the reasons behind it."),
    Guidance("Tell {other} whether you agree and why, and ask for more reasons.",
             "Say whether you agree with {other}, and give more reasons for your view."),
    Guidance("Ask {other} to say more about their culture and how it shapes this view.",
             "Tell {other} more about your culture and how it shapes your view on this question."),
    Guidance("Give your own opinion on the question, and ask for the opinion of {other}.",
             "State your own opinion on the question clearly to {other}."),
    Guidance("Bring up a new, interesting idea about the topic and ask {other} about it.",
             "Share more interesting ideas about the topic with {other}."),
    Guidance("Introduce to {other} something of your own culture that relates to the topic.",
             "Introduce to {other} something of your culture that relates to the topic: a custom, a "
             "saying or a tradition, and what it means."),
)


@dataclass(frozen=True)
class TurnPlan:
    """One planned turn: the index of the speaker in the dialogue's speakers, and its guidance."""

    speaker: int
    guidance: str | None


def round_guidance(script: str, round_index: int) -> Guidance | None:
    """The guidance for round ``round_index`` (0-based) of ``script``; ``None`` when unguided."""
    if script not in SCRIPTS:
        raise ConfigError(f"script must be one of {', '.join(SCRIPTS)}, got {script!r}")
    if round_index == 0:
        return SELF_GUIDANCE[0]
    if script == "free":
        return None
    later = SELF_GUIDANCE[1:]
    return later[(round_index - 1) % len(later)]


def plan_turns(script: str, rounds: int, names: Sequence[str], question: str) -> list[TurnPlan]:
    """Every turn of a dialogue among ``names`` (the opener first), in speaking order.

    Each round is the opener, then each other speaker. Guidance names the person spoken to: the
    responders address the opener; the opener addresses the others.
    """
    if rounds < 1:
        raise ConfigError(f"rounds must be >= 1, got {rounds}")
    if len(names) < 2:
        raise ConfigError("a dialogue needs at least two speakers")
    opener, responders = names[0], list(names[1:])
    others = _join_names(responders)
    plan = []
    for r in range(rounds):
        g = round_guidance(script, r)
        plan.append(TurnPlan(0, g.opener.format(other=others, question=question) if g else None))
        for i, _ in enumerate(responders, start=1):
            plan.append(TurnPlan(i, g.responder.format(other=opener, question=question) if g else None))
    return plan


def conversation_for(speaker: str, turns: Sequence[Mapping], guidance: str | None,
                     named: bool = False) -> list[dict[str, str]]:
    """The chat ``speaker`` sees before its next turn (user/assistant messages, no system prompt).

    Its own past turns are assistant messages; what the others said since it last spoke becomes one
    user message (prefixed with their names when ``named``, for dialogues of three or more). The last
    user message carries the guidance for the turn to come; past guidance is left out (a small model
    parrots it) except where it was all the speaker heard (the opening, which holds the question).
    ``turns`` are dicts with ``speaker``, ``text`` and ``guidance``; the same function rebuilds any
    past turn's prompt from a written dialogue (``turns[:i]``, that turn's speaker and guidance).
    """
    messages: list[dict[str, str]] = []
    heard: list[str] = []
    for turn in [*turns, {"speaker": speaker, "text": None, "guidance": guidance}]:
        if turn["speaker"] != speaker:
            heard.append(f"{turn['speaker']}: {turn['text']}" if named else turn["text"])
            continue
        pending = turn["text"] is None
        parts = heard + ([turn["guidance"]] if turn.get("guidance") and (pending or not heard) else [])
        if parts:
            messages.append({"role": "user", "content": "\n\n".join(parts)})
        if not pending:
            messages.append({"role": "assistant", "content": turn["text"]})
        heard = []
    return messages


def _join_names(names: Sequence[str]) -> str:
    if len(names) == 1:
        return names[0]
    return ", ".join(names[:-1]) + " and " + names[-1]
