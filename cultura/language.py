"""Languages: the name an agent is told to answer in, and detecting the language of a text.

Detection is py3langid (a naive Bayes classifier over byte n-grams with a bundled model of 139
languages). Languages are named in English ("Japanese"), as the agents' prompts say them; a name or
an ISO 639 code is accepted wherever a language is asked for, and ``auto`` means the language of
the user's message. The names are ``data/files/languages.tsv``: one row per language the detector
knows, named as the ``langcodes`` package names them.
"""

from __future__ import annotations

import functools
from importlib import resources

from cultura.errors import CulturaError

AUTO = "auto"
DEFAULT = "English"  # what ``auto`` falls back to when a message has no detectable language


@functools.cache
def _names() -> dict[str, str]:
    """ISO 639 code -> English name of every language the detector knows."""
    # A resource lookup, not an import of cultura.data: the language table sits with the data files
    # but this module is below the data layer (the sampling settings check languages).
    rows = (resources.files("cultura.data") / "files" / "languages.tsv").read_text(encoding="utf-8").splitlines()[1:]
    return dict(row.split("\t", 1) for row in rows if row.strip())


@functools.cache
def _identifier():
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    return LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)


def language_code(language: str) -> str:
    """The ISO 639 code of ``language``, a name ("japanese", any case) or a code ("ja").

    Raises CulturaError naming close matches when the language is unknown.
    """
    names = _names()
    key = language.strip().lower()
    if key in names:
        return key
    for code, name in names.items():
        if name.lower() == key:
            return code
    import difflib

    close = difflib.get_close_matches(language.strip().title(), list(names.values()), n=3)
    hint = f"; did you mean {', '.join(close)}?" if close else f" (one of {len(names)}: English, Japanese, ...)"
    raise CulturaError(f"unknown language {language!r}{hint}")


def language_name(language: str) -> str:
    """The English name of ``language`` (a name or an ISO 639 code), as prompts say it."""
    return _names()[language_code(language)]


def detect_language(text: str) -> str | None:
    """The ISO 639 code of the language ``text`` is most likely in, or None when it has no letters."""
    if not any(ch.isalpha() for ch in text):
        return None
    code, _ = _identifier().classify(text)
    return code if code in _names() else None


def language_probability(text: str, language: str) -> float:
    """The detector's probability (0 to 1) that ``text`` is in ``language`` (a name or code)."""
    code = language_code(language)
    if not any(ch.isalpha() for ch in text):
        return 0.0
    return dict(_identifier().rank(text)).get(code, 0.0)


def is_in_language(text: str, language: str) -> bool:
    """True when the detector's most likely language of ``text`` is ``language`` (a name or code)."""
    return detect_language(text) == language_code(language)


def answer_language(requested: str | None, message: str) -> str:
    """The language to answer ``message`` in: ``requested`` (a name or code) by its English name, or,
    for ``auto`` (and None), the detected language of ``message`` (English when it has none).

    Raises CulturaError for an unknown language.
    """
    if requested is None or requested.strip().lower() == AUTO:
        code = detect_language(message)
        return _names()[code] if code else DEFAULT
    return language_name(requested)
