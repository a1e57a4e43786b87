"""The Cultural MoE gate: how much each continent agent contributes to an answer.

Cultural Palette's gate weighs the continent agents by the cultural proximity of the target country
to each continent (Hofstede vectors) and the relevance of the prompt to each continent. Here, for a
prompt and an optional target country, each continent ``c`` scores

    score(c) = -alpha * d(country, c) + gamma * home(country, c) + beta * relevance(prompt, c)
    weights  = softmax(score / tau), then only the top-k continents are kept and renormalised.

- ``d(country, c)`` is the Euclidean distance between the country's six Hofstede scores and the
  continent's centroid (``continent_centroid``), both divided by 100 so that ``alpha`` is unit-free.
  The centroids always leave the target country out: the country's own scores never pull its
  continent towards it, and an evaluation against those scores is not circular.
  Dimensions missing on either side are skipped and the squared distance is rescaled by
  ``6 / shared_dimensions``, so a country with four published dimensions is not artificially close.
- ``home(country, c)`` is 1 for the target country's own continent and 0 for the others, weighted by
  ``gamma`` (``palette.home_weight``). Hofstede distance alone misplaces countries (Japan's scores sit
  nearer the European centroid than the Asian one; the United States' nearer Oceania's), so
  membership of a continent counts in its own right.
- ``relevance(prompt, c)`` is the cosine similarity of the prompt's embedding with an embedding of a
  short description of continent ``c``, plus ``mention_bonus`` when the prompt names a country or a
  region of ``c`` ("dinner in Japan", "in East Asia").
- With no country given, the first country named in the prompt is the target; with none named either,
  the proximity and home terms are dropped and the weights come from relevance alone.
- Top-k sparsity: only the ``top_k`` heaviest continents draft; the others get weight 0 and are not
  run at all, the compute saving that makes this a mixture of experts.

Pure Python and numpy; the embedder is injectable (a callable ``list[str] -> np.ndarray`` of
L2-normalised rows), by default :func:`cultura.embeddings.embed`, loaded on first use.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from cultura.choices import softmax
from cultura.data.hofstede import (
    CONTINENTS,
    DIMENSIONS,
    continent_centroid,
    continent_of,
    country_scores,
    find_countries_in_text,
    resolve_country,
)
from cultura.embeddings import embed
from cultura.errors import ConfigError, CulturaError

SCALE = 100.0  # Hofstede scores are on a 0..100 (occasionally up to ~120) scale

DESCRIPTIONS: dict[str, str] = {
    "Africa": ("Africa and African cultures: Nigeria, Kenya, Ghana, Ethiopia, Egypt, Morocco, South Africa, "
               "Tanzania, Senegal; extended family, elders, community, ubuntu, hospitality, Islam and "
               "Christianity, African traditions, food and daily life."),
    "America": ("The Americas: the United States, Canada, Mexico, Brazil, Argentina, Colombia, Peru, Chile, "
                "the Caribbean and Latin America; American, Latino and Hispanic culture, individualism, "
                "family, religion, food, holidays and daily life."),
    "Asia": ("Asia and Asian cultures: China, Japan, Korea, India, Indonesia, Vietnam, Thailand, the "
             "Philippines, Pakistan, the Middle East and Arab countries; filial piety, face, harmony, "
             "respect for elders, Confucian, Buddhist, Hindu and Islamic traditions, food and etiquette."),
    "Europe": ("Europe and European cultures: Germany, France, the United Kingdom, Italy, Spain, Poland, "
               "Sweden, the Netherlands, Greece, Russia; the European Union, secularism, punctuality, "
               "social welfare, Christian traditions, food and daily life."),
    "Oceania": ("Oceania: Australia, New Zealand, Fiji, Papua New Guinea, Samoa, Tonga and the Pacific "
                "islands; Aboriginal and Maori culture, mateship, egalitarian and laid-back manners, the "
                "outdoors, rugby, food and daily life."),
}

# Regions named in free text, beyond the countries of the Hofstede table.
REGIONS: dict[str, tuple[str, ...]] = {
    "Africa": ("Africa", "African", "Africans", "Sub-Saharan", "Maghreb", "Sahel", "Swahili"),
    "America": ("the Americas", "Latin America", "Latin American", "Latin Americans", "South America",
                "South American", "North America", "North American", "Central America", "Central American",
                "Caribbean", "Latino", "Latina", "Latinos", "Hispanic", "Native American"),
    "Asia": ("Asia", "Asian", "Asians", "Middle East", "Middle Eastern", "South Asia", "Southeast Asia",
             "East Asia", "Central Asia"),
    "Europe": ("Europe", "European", "Europeans", "European Union", "Scandinavia", "Scandinavian", "Nordic",
               "Balkans", "Balkan", "Eastern Europe", "Western Europe"),
    "Oceania": ("Oceania", "Pacific Islands", "Pacific Islander", "Pacific Islanders", "Polynesia",
                "Polynesian", "Melanesia", "Melanesian", "Micronesia", "Micronesian", "Aboriginal",
                "Maori", "Māori"),
}

Embedder = Callable[[list[str]], Any]


@dataclass(frozen=True)
class GateDecision:
    """The gate's answer for one prompt."""

    weights: dict[str, float]      # all five continents (CONTINENTS order), sum to 1, zeros outside top-k
    selected: tuple[str, ...]      # the top-k continents, heaviest first
    country: str | None            # given or detected (canonical Hofstede name)
    proximity: dict[str, float]    # -d(country, continent) terms, target left out (empty when no country)
    relevance: dict[str, float]    # prompt relevance per continent
    home: str | None = None        # the target country's own continent (None when no country)


def vector_distance(a: dict[str, float | None], b: dict[str, float | None]) -> float | None:
    """Euclidean distance of two Hofstede vectors (0-100 scores) divided by 100.

    Dimensions missing (None or absent) on either side are skipped and the squared distance is
    rescaled to all six dimensions; ``None`` when the two share no dimension.
    """
    shared = [d for d in DIMENSIONS if a.get(d) is not None and b.get(d) is not None]
    if not shared:
        return None
    squared = sum(((a[d] - b[d]) / SCALE) ** 2 for d in shared)
    return math.sqrt(squared * len(DIMENSIONS) / len(shared))


def hofstede_distance(country: str, continent: str, leave_out: bool = False) -> float | None:
    """:func:`vector_distance` between a country's Hofstede scores and a continent's centroid; with
    ``leave_out`` the centroid leaves the country out (an evaluation against its own scores)."""
    return vector_distance(country_scores(country), continent_centroid(continent, country if leave_out else None))


def _region_pattern(continent: str) -> re.Pattern:
    names = sorted(REGIONS[continent], key=len, reverse=True)
    return re.compile(r"(?<![\w])(?:" + "|".join(re.escape(n) for n in names) + r")(?![\w])")


_REGION_PATTERNS = {c: _region_pattern(c) for c in CONTINENTS}


def mentioned_continents(text: str) -> set[str]:
    """Continents whose countries (any alias or demonym) or regions the text names."""
    found = {continent_of(country) for country in find_countries_in_text(text)}
    found.update(c for c, pattern in _REGION_PATTERNS.items() if pattern.search(text))
    return found


def _default_embedder(texts: list[str]) -> Any:
    return embed(texts)


class CulturalGate:
    """Weights over the five continents for a prompt and an optional target country (see module doc)."""

    def __init__(self, alpha: float = 1.0, beta: float = 1.0, tau: float = 1.0, top_k: int = 3,
                 embedder: Embedder | None = None, mention_bonus: float = 0.5, home_weight: float = 0.0):
        for name, value in (("alpha", alpha), ("beta", beta), ("mention_bonus", mention_bonus),
                            ("home_weight", home_weight)):
            if not math.isfinite(value) or value < 0:
                raise ConfigError(f"palette.{name}: must be a finite number >= 0, got {value!r}")
        if not math.isfinite(tau) or tau <= 0:
            raise ConfigError(f"palette.tau: the gate temperature must be > 0, got {tau!r}")
        if not isinstance(top_k, int) or not 1 <= top_k <= len(CONTINENTS):
            raise ConfigError(f"palette.top_k: must be an integer in 1..{len(CONTINENTS)}, got {top_k!r}")
        self.alpha, self.beta, self.tau, self.top_k = float(alpha), float(beta), float(tau), top_k
        self.mention_bonus, self.home_weight = float(mention_bonus), float(home_weight)
        self._embedder = embedder or _default_embedder
        self._descriptions = None  # (5, d) array, embedded on first use

    @classmethod
    def from_config(cls, palette_config: Any, embedder: Embedder | None = None) -> CulturalGate:
        """The gate of a ``PaletteConfig`` (alpha, beta, tau, top_k, mention_bonus, home_weight)."""
        p = palette_config
        return cls(alpha=p.alpha, beta=p.beta, tau=p.tau, top_k=p.top_k, embedder=embedder,
                   mention_bonus=p.mention_bonus, home_weight=p.home_weight)

    def _description_vectors(self) -> Any:
        import numpy as np

        if self._descriptions is None:
            self._descriptions = np.asarray(self._embedder([DESCRIPTIONS[c] for c in CONTINENTS]), dtype=np.float64)
        return self._descriptions

    def proximity(self, country: str) -> dict[str, float]:
        """The ``-d(country, continent)`` term per continent (continents sharing no dimension omitted),
        to centroids that leave the country out."""
        terms = {}
        for continent in CONTINENTS:
            distance = hofstede_distance(country, continent, leave_out=True)
            if distance is not None:
                terms[continent] = -distance
        return terms

    def weights(self, prompt: str, country: str | None = None) -> GateDecision:
        """The gate's decision for one prompt; ``country`` is a name, alias or demonym, or None."""
        return self.weights_many([prompt], [country])[0]

    def weights_many(self, prompts: Sequence[str], countries: Sequence[str | None] | None = None) -> list[GateDecision]:
        """Decisions for many prompts at once (one embedding call for all of them)."""
        import numpy as np

        countries = list(countries) if countries is not None else [None] * len(prompts)
        if len(countries) != len(prompts):
            raise CulturaError(f"{len(prompts)} prompts but {len(countries)} countries")
        texts = [validate_prompt(p) for p in prompts]
        targets = [resolve_country(c) if c not in (None, "") else None for c in countries]
        if not texts:
            return []
        vectors = np.asarray(self._embedder(texts), dtype=np.float64)
        similarity = vectors @ self._description_vectors().T  # rows are L2-normalised: cosine
        return [self._decide(text, target, similarity[i]) for i, (text, target) in enumerate(zip(texts, targets))]

    def _decide(self, prompt: str, country: str | None, similarity: Any) -> GateDecision:
        named = mentioned_continents(prompt)
        if country is None:
            detected = find_countries_in_text(prompt)
            country = detected[0] if detected else None
        relevance = {c: float(similarity[i]) + (self.mention_bonus if c in named else 0.0)
                     for i, c in enumerate(CONTINENTS)}
        proximity = self.proximity(country) if country else {}
        home = continent_of(country) if country else None
        scores = [(self.alpha * proximity.get(c, 0.0) + self.home_weight * (c == home) + self.beta * relevance[c])
                  / self.tau for c in CONTINENTS]
        full = dict(zip(CONTINENTS, softmax(scores)))
        order = sorted(CONTINENTS, key=lambda c: (-full[c], CONTINENTS.index(c)))
        selected = tuple(order[:self.top_k])
        kept = sum(full[c] for c in selected)
        weights = {c: (full[c] / kept if c in selected else 0.0) for c in CONTINENTS}
        return GateDecision(weights=weights, selected=selected, country=country, proximity=proximity,
                            relevance=relevance, home=home)


def validate_prompt(prompt: Any) -> str:
    """Return the prompt stripped; an empty or non-text prompt is a CulturaError."""
    if not isinstance(prompt, str) or not prompt.strip():
        raise CulturaError("the prompt is empty: give a question or request to answer")
    return prompt.strip()
