"""Personas: who an agent is (name, culture or continent, role) and the system prompt that says so.

The tiny default model drifts into broken German or Portuguese when asked to speak "as" a culture,
so every persona is told the language it answers in (English unless another is asked for), and
the engines check the answer's language (``sampling.language``, :mod:`cultura.engines.rerank`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from cultura.data.cultures import get_culture
from cultura.data.hofstede import CONTINENTS
from cultura.errors import CulturaError, UnknownNameError

CHATBOT_PROMPT = "You are {article} {display} chatbot that knows {display} very well."
CONTINENT_PERSONA = (
    "You are a knowledgeable assistant about {continent}, its cultures, history and nuances. "
    "You answer from the perspective of people in {continent}: their values, customs and everyday "
    "practice, noting where countries within {continent} differ."
)


def reply_in(language: str = "English") -> str:
    """The instruction every persona's system prompt ends with: ``Reply in <language> only.``"""
    return f"Reply in {language} only."


@dataclass(frozen=True)
class Persona:
    """An agent's identity. ``key`` is unique per agent (``delegate:german``, ``continent:Asia``)."""

    key: str
    name: str
    role: str  # main_contact | delegate | continent | meta | assistant | respondent
    system_prompt: str
    culture: str | None = None
    country: str | None = None
    adapter: str | None = None

    def with_adapter(self, adapter: str | None) -> Persona:
        """The same persona with a LoRA adapter applied to its engine calls."""
        return replace(self, adapter=adapter)

    def messages(self, user_text: str) -> list[dict[str, str]]:
        """A single-turn chat: this persona's system prompt and one user message."""
        return [{"role": "system", "content": self.system_prompt}, {"role": "user", "content": user_text}]


def culture_persona(culture: str, name_index: int = 0, language: str = "English", extra: str = "") -> Persona:
    """A cultural persona for a CulturePark culture key or any country in the Hofstede table.

    ``name_index`` picks among the culture's persona names (several delegates of one culture get
    different names); ``extra`` appends instructions such as self-calibration.
    """
    c = get_culture(culture)
    name = c.names[name_index % len(c.names)]
    # "You are <name> from <country>" alone made the 135M default answer in broken German or
    # Portuguese; of the wordings measured (bench/language.py), "always write in <language>, even
    # about <country>" kept the most persona answers in the language (22 of 24, before reranking).
    prompt = (f"You are {name}, a person from {c.primary_country} who shares the values and customs common in "
              f"{c.primary_country}. You always write in {language}, even about {c.primary_country}.")
    if extra:
        prompt = f"{prompt} {extra.strip()}"
    return Persona(key=f"delegate:{c.key}", name=name, role="delegate", system_prompt=prompt,
                   culture=c.key, country=c.primary_country)


def respondent_persona(description: str, language: str = "English") -> Persona:
    """A survey respondent known only by demographics (``description``: "a person living in Asia, in an
    urban area, whose level of education is tertiary"), answering as that person would, in ``language``.
    An empty description raises CulturaError."""
    if not description.strip():
        raise CulturaError("a respondent persona needs a description of the person")
    prompt = (f"You are {description.strip()}. You answer survey questions as this person would, from "
              f"their own life and views. You always write in {language}.")
    return Persona(key=f"respondent:{description.strip()}", name="respondent", role="respondent",
                   system_prompt=prompt)


def chatbot_prompt(culture: str) -> str:
    """CulturePark's fine-tuning system prompt: ``You are a German chatbot that knows German very
    well.`` (``an`` before a vowel; an unknown key is title-cased)."""
    try:
        display = get_culture(culture).display
    except CulturaError:
        display = culture.replace("_", " ").title()
    return CHATBOT_PROMPT.format(article="an" if display[:1].upper() in "AEIOU" else "a", display=display)


def chatbot_messages(culture: str, question: str) -> list[dict[str, str]]:
    """The chat a culture's fine-tuned model is asked in: CulturePark's system prompt and ``question``
    (a numbered multiple-choice question). The fine-tuning rows and the evaluation's ``adapter``
    method both build their chat here, so the adapter is evaluated in the form it was trained on."""
    return [{"role": "system", "content": chatbot_prompt(culture)}, {"role": "user", "content": question}]


def main_contact_persona(name: str = "Lily", description: str = "an English-speaking American", extra: str = "",
                         language: str = "English") -> Persona:
    """CulturePark's main contact: asks the delegates about their culture and compares views, in ``language``."""
    prompt = (
        f"You are {name}, {description}. You are curious about other cultures and talk with people "
        "from around the world about their views, asking follow-up questions and sharing your own "
        f"perspective. Keep each reply to a few sentences, in {language}."
    )
    if extra:
        prompt = f"{prompt} {extra.strip()}"
    return Persona(key=f"contact:{name.lower()}", name=name, role="main_contact", system_prompt=prompt)


def continent_persona(continent: str, adapter: str | None = None, language: str = "English") -> Persona:
    """A Cultural Palette continent agent (Africa, America, Asia, Europe, Oceania), answering in ``language``."""
    match = next((c for c in CONTINENTS if c.lower() == continent.lower()), None)
    if match is None:
        raise UnknownNameError("continent", continent, CONTINENTS)
    return Persona(key=f"continent:{match}", name=f"{match} agent", role="continent",
                   system_prompt=f"{CONTINENT_PERSONA.format(continent=match)} {reply_in(language)}", adapter=adapter)
