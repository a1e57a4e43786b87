"""Evaluation methods: one registry of names, each building what the model is asked for one item.

A method turns (target, question) into a :class:`Plan`: one or more components, each a chat (a
persona's system prompt plus the question) with an optional LoRA adapter and a weight. The answer
distribution of a plan is the weighted mixture of its components' option distributions. A method
that cannot apply to a target (no adapter for that culture) raises :class:`NotApplicable`, and the
evaluation reports it rather than skipping it silently. A method whose plan needs generated text
first (``palette``: Cultural Palette's answer) has a ``prepare`` step that runs once for every
(question, target) of the evaluation before any plan is built.

Adding a method is one entry in :data:`METHODS`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from cultura.choices import choice_messages
from cultura.data.cultures import CULTUREPARK_CULTURES, country_key, culture_of_country, get_culture
from cultura.data.hofstede import CONTINENTS, continent_of, has_scores, resolve_country
from cultura.errors import CulturaError, UnknownNameError
from cultura.palette import Palette
from cultura.palette.gate import hofstede_distance
from cultura.personas import chatbot_messages, continent_persona, culture_persona, respondent_persona


class NotApplicable(CulturaError):
    """A method cannot answer for a target (for example: no adapter for that culture)."""


@dataclass(frozen=True)
class Target:
    """Who the model answers as: ``key`` as the user named it, the reference ``country``, the culture.

    ``culture`` is the culture key used for personas (a CulturePark key or a country's own key);
    ``adapter_keys`` are the adapter names to try for it, most specific first. A survey respondent
    known by demographics (:func:`respondent_target`) has no country or culture: ``persona`` is the
    system prompt that describes them, and ``key`` the group their rows are summarised by.
    """

    key: str
    country: str
    culture: str
    adapter_keys: tuple[str, ...]
    persona: str = ""


@dataclass(frozen=True)
class Component:
    """One chat to score: its messages, adapter (registered name) and weight in the mixture."""

    label: str
    messages: tuple[dict[str, str], ...]
    adapter: str | None = None
    weight: float = 1.0


@dataclass(frozen=True)
class Plan:
    """What a method asks for one (target, question): components, and the gate weights if any."""

    components: tuple[Component, ...]
    gate: dict[str, float] | None = None
    note: str = ""

    def to_json(self) -> str:
        """The components as JSON (for a Ray Data row)."""
        return json.dumps([asdict(c) for c in self.components], ensure_ascii=False)


@dataclass
class MethodContext:
    """What methods may use: adapters (registered with the engine) and the Cultural MoE gate.

    ``adapters`` maps adapter name -> folder (every adapter the engine must know);
    ``culture_adapters`` maps culture key -> adapter name; ``continent_adapters`` maps continent ->
    adapter name. ``gate_factory`` builds the gate on first use (its embedder loads lazily).
    """

    adapters: dict[str, str] = field(default_factory=dict)
    culture_adapters: dict[str, str] = field(default_factory=dict)
    continent_adapters: dict[str, str] = field(default_factory=dict)
    adapter_source: str | None = None
    gate_factory: Callable[[], Any] | None = None
    # adapter name -> the seed ids its training rows came from (None: not recorded)
    adapter_seeds: dict[str, list[str] | None] = field(default_factory=dict)
    # True when targets are scored against their own Hofstede scores: the nearest-continent centroids
    # then leave the target country out (the gate's always do)
    leave_out_target: bool = False
    # (question prompt, country) -> Cultural Palette's answer, filled by the palette method's prepare step
    palette_answers: dict[tuple[str, str], Any] = field(default_factory=dict)
    # the command's engine actors (cultura.eval.runner.EnginePool): every job and the palette method use them
    engines: Any = None
    _gate: Any = field(default=None, init=False, repr=False)
    _decisions: dict[tuple[str, str], dict[str, float]] = field(default_factory=dict, init=False, repr=False)

    def gate_weights(self, question: str, country: str) -> dict[str, float]:
        """The gate's continent weights for a question and country (cached; zeros outside top-k)."""
        key = (question, country)
        if key not in self._decisions:
            if self._gate is None:
                if self.gate_factory is None:
                    raise NotApplicable("no Cultural MoE gate is available (cultura.palette.gate)")
                self._gate = self.gate_factory()
            decision = self._gate.weights(question, country)
            self._decisions[key] = {c: float(w) for c, w in decision.weights.items()}
        return self._decisions[key]

    def culture_adapter(self, target: Target) -> str:
        """The registered adapter for the target's culture, or NotApplicable naming what is missing."""
        return self.culture_adapter_of(target)[1]

    def culture_adapter_of(self, target: Target) -> tuple[str, str]:
        """(the culture key the adapter was trained for, the adapter's name) for the target, most
        specific key first; NotApplicable naming what is missing."""
        for key in target.adapter_keys:
            if key in self.culture_adapters:
                return key, self.culture_adapters[key]
        where = f" in {self.adapter_source}" if self.adapter_source else " (no --adapters folder given)"
        raise NotApplicable(f"no adapter for {' or '.join(target.adapter_keys)}{where}")

    def continent_adapter(self, continent: str) -> str | None:
        """The adapter of a continent agent, or None (the agent then runs on its persona alone)."""
        return self.continent_adapters.get(continent)


@dataclass(frozen=True)
class Method:
    """A named evaluation method; ``build(ctx, target, question)`` returns its Plan. ``prepare(ctx,
    items, config)``, when set, runs first over every (question prompt, target) pair."""

    name: str
    description: str
    build: Callable[[MethodContext, Target, str], Plan]
    prepare: Callable[[MethodContext, list[tuple[str, Target]], Any], None] | None = None
    paper: str | None = None  # the method's paper (a cultura.cards.PAPERS key); None for the plain model


def _user(question: str) -> dict[str, str]:
    return {"role": "user", "content": question}


def _persona_chat(system_prompt: str, question: str) -> tuple[dict[str, str], ...]:
    return ({"role": "system", "content": system_prompt}, _user(question))


def _base(ctx: MethodContext, target: Target, question: str) -> Plan:
    return Plan((Component("base", (_user(question),)),))


def _prompted(ctx: MethodContext, target: Target, question: str) -> Plan:
    if target.persona:  # a respondent described by demographics
        return Plan((Component(target.key, _persona_chat(target.persona, question)),))
    persona = culture_persona(target.culture)
    return Plan((Component(target.culture, _persona_chat(persona.system_prompt, question)),))


def needs_country(target: Target, method: str) -> None:
    """NotApplicable when the target is a respondent known by demographics, not a country or culture:
    ``method`` answers as a country (its adapter, continent, Hofstede scores)."""
    if not target.country:
        raise NotApplicable(f"{method} answers as a country or culture, and {target.key} is a respondent "
                            "described by demographics")


def _adapter(ctx: MethodContext, target: Target, question: str) -> Plan:
    needs_country(target, "adapter")
    culture, adapter = ctx.culture_adapter_of(target)  # asked exactly as its fine-tuning rows ask
    return Plan((Component(target.culture, tuple(chatbot_messages(culture, question)), adapter),))


def continent_component(ctx: MethodContext, continent: str, question: str, weight: float) -> Component:
    """A continent agent's chat (its persona, and its adapter when registered) with a weight."""
    persona = continent_persona(continent, ctx.continent_adapter(continent))
    return Component(continent, _persona_chat(persona.system_prompt, question), persona.adapter, weight)


def _continent_note(ctx: MethodContext, continents: Iterable[str]) -> str:
    missing = [c for c in continents if ctx.continent_adapter(c) is None]
    return f"continent agents without adapter (persona only): {', '.join(missing)}" if missing else ""


def _blend(ctx: MethodContext, question: str, weights: dict[str, float], gate: dict[str, float] | None) -> Plan:
    chosen = {c: w for c, w in weights.items() if w > 0}
    components = tuple(continent_component(ctx, c, question, w) for c, w in chosen.items())
    return Plan(components, gate, _continent_note(ctx, chosen))


def _home_continent(ctx: MethodContext, target: Target, question: str) -> Plan:
    needs_country(target, "home-continent")
    return _blend(ctx, question, {continent_of(target.country): 1.0}, None)


def needs_scores(country: str, method: str) -> None:
    """NotApplicable when Hofstede publishes no scores for the country: ``method`` reads them (the
    gate's proximity term, nearest-continent), so it cannot answer for that country."""
    if not has_scores(country):
        raise NotApplicable(f"{method} reads Hofstede scores, and Hofstede publishes none for {country}")


def _nearest_continent(ctx: MethodContext, target: Target, question: str) -> Plan:
    needs_country(target, "nearest-continent")
    needs_scores(target.country, "nearest-continent")
    return _blend(ctx, question, {nearest_continent(target.country, ctx.leave_out_target): 1.0}, None)


def _uniform_blend(ctx: MethodContext, target: Target, question: str) -> Plan:
    return _blend(ctx, question, {c: 1.0 / len(CONTINENTS) for c in CONTINENTS}, None)


def _gate_mixture(ctx: MethodContext, target: Target, question: str) -> Plan:
    needs_country(target, "gate-mixture")
    needs_scores(target.country, "the Cultural MoE gate")
    weights = ctx.gate_weights(question, target.country)
    return _blend(ctx, question, weights, weights)


def _palette_prepare(ctx: MethodContext, items: list[tuple[str, Target]], config: Any) -> None:
    """Run Cultural Palette (gate -> continent drafts -> Meta Agent, target country in the prompt) once
    for every distinct (question, country), all in one pass of the stages, its agents on the
    command's first engine actor (``ctx.engines``) when there is one; the agents are freed afterwards."""
    todo = list(dict.fromkeys((q, t.country) for q, t in items
                              if t.country and (q, t.country) not in ctx.palette_answers and has_scores(t.country)))
    if not todo:
        return
    engine = None
    if ctx.engines is not None:
        ctx.engines.start()
        engine = ctx.engines.names[0]
    with Palette(config, engine=engine) as palette:
        answers = palette.respond_many([q for q, _ in todo], [c for _, c in todo])
    ctx.palette_answers.update(zip(todo, answers))


def _palette(ctx: MethodContext, target: Target, question: str) -> Plan:
    needs_country(target, "palette")
    needs_scores(target.country, "Cultural Palette's gate")
    answer = ctx.palette_answers.get((question, target.country))
    if answer is None:
        raise NotApplicable("Cultural Palette did not answer this question (its prepare step did not run)")
    note = f"continents without adapter (persona only): {', '.join(answer.missing)}" if answer.missing else ""
    component = Component("palette", tuple(choice_messages(question, answer.text)))
    return Plan((component,), dict(answer.weights), note)


def nearest_continent(country: str, leave_out: bool = False) -> str:
    """The continent whose Hofstede centroid is closest to the country's scores (with ``leave_out``,
    centroids without the country: for scoring it against its own Hofstede scores).

    Uses the Cultural MoE gate's distance (missing dimensions skipped, rescaled to all six), so this
    baseline and the gate's proximity term agree.
    """
    distances = {c: hofstede_distance(country, c, leave_out) for c in CONTINENTS}
    return min((c for c in CONTINENTS if distances[c] is not None), key=lambda c: distances[c])


METHODS: dict[str, Method] = {m.name: m for m in (
    Method("base", "the model as it is, no persona", _base),
    Method("prompted", "the model prompted with the culture's (or country's) persona, or a survey respondent's "
           "demographics", _prompted),
    Method("adapter", "the culture's fine-tuned LoRA adapter, asked as its fine-tuning rows ask (CulturePark's "
           "chatbot prompt and the numbered question)", _adapter, paper="culturepark"),
    Method("home-continent", "the continent agent of the country's own continent", _home_continent, paper="palette"),
    Method("nearest-continent", "the continent agent whose Hofstede centroid is nearest the country",
           _nearest_continent, paper="palette"),
    Method("uniform-blend", "all five continent agents mixed with equal weights", _uniform_blend, paper="palette"),
    Method("gate-mixture", "the continent agents' option distributions mixed by the Cultural MoE gate's "
           "weights (top-k)", _gate_mixture, paper="palette"),
    Method("palette", "Cultural Palette as served: gate -> continent drafts -> Meta Agent answer (target "
           "country in the prompt); the options are scored after that answer", _palette, _palette_prepare,
           paper="palette"),
)}


def get_methods(names: str | Iterable[str]) -> list[Method]:
    """Resolve a comma-separated string (or list) of method names; ``all`` gives every method.

    Unknown names raise UnknownNameError listing the known methods; duplicates are dropped.
    """
    if isinstance(names, str):
        names = [n.strip() for n in names.split(",")]
    names = [n for n in names if n]
    if not names:
        raise CulturaError(f"no method given; known methods: {', '.join(METHODS)}")
    if names == ["all"]:
        return list(METHODS.values())
    resolved: list[Method] = []
    for name in names:
        if name not in METHODS:
            raise UnknownNameError("method", name, METHODS)
        if METHODS[name] not in resolved:
            resolved.append(METHODS[name])
    return resolved


def culture_target(name: str) -> Target:
    """A target for a CulturePark culture or any country: its primary country is the reference."""
    culture = get_culture(name)
    return Target(culture.key, culture.primary_country, culture.key, (culture.key,))


def country_target(name: str) -> Target:
    """A target for a country: its own persona; adapters of the country, then of its culture."""
    country = resolve_country(name)
    own = country_key(country)
    culture = culture_of_country(country).key
    keys = (own,) if culture == own else (own, culture)
    return Target(country, country, own, keys)


def respondent_target(key: str, description: str) -> Target:
    """A target for a survey respondent known by demographics, not by country (a WorldValuesBench
    participant): ``key`` is the group their rows are summarised by (the continent), and ``prompted``
    asks as :func:`cultura.personas.respondent_persona` of ``description``; the methods that answer as
    a country do not apply (:func:`needs_country`)."""
    if not key.strip():
        raise CulturaError("a respondent target needs a key (the group it is summarised by)")
    return Target(key.strip(), "", "", (), respondent_persona(description).system_prompt)


def resolve_targets(cultures: str | Sequence[str]) -> list[Target]:
    """``all`` (the eight CulturePark cultures) or culture keys / countries, comma-separated."""
    names = [c.strip() for c in cultures.split(",")] if isinstance(cultures, str) else list(cultures)
    names = [n for n in names if n]
    if names == ["all"]:
        names = list(CULTUREPARK_CULTURES)
    targets: list[Target] = []
    for name in names:
        target = culture_target(name)
        if target not in targets:
            targets.append(target)
    if not targets:
        raise CulturaError("no culture given; use --cultures all or e.g. --cultures german,korean")
    return targets
