"""Opinion extraction: what the delegates said -> a prompt -> a list of self-contained opinions.

An *extraction unit* is one dialogue and one delegate culture: in ``cross`` mode the delegate's turns,
in ``in`` mode both delegates' turns (one culture), in ``multi`` mode one unit per delegate culture.
The model is asked for a numbered list of opinions, each a full first-person sentence as the delegate
would say it ("I think ..."), the form CulturePark fine-tunes on; :func:`parse_opinions` reads
whatever comes back (numbered, bulleted or plain lines, chatter around the list, nothing at all).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

EXTRACT_SYSTEM = (
    "You list the opinions a person expresses in a text. Each opinion is one full sentence in the first "
    "person, as the person would say it, that makes sense on its own. You answer with a numbered list only."
)
# One worked example: small models follow a shown format far better than a described one.
EXAMPLE_USER = ('Country: Italy\nTopic: "How important is work in your life?"\n'
                'Text: "Work matters to me, sure, but my evenings with friends matter more. We work to live."\n'
                "Opinions:")
EXAMPLE_ANSWER = ("1. I think work matters, but my time with friends matters more.\n"
                  "2. I work in order to live, not live in order to work.")

_MARKER = re.compile(  # "1." "2)" "(3)" "4:" | "-" "*" "•" ... followed by a space | "a)" "b." followed by a space
    r"^\s*(?:\(?\d{1,3}\s*[.):\]]\s*|[-*+\u2022\u00b7\u2023\u25aa\u25cf\u2013\u2014]\s+|\(?[a-hA-H][.)]\s+)")
_LABEL = re.compile(r"^\s*(?:opinion|statement|point|item)\s*\d*\s*[:.)-]\s*", re.IGNORECASE)
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[\"'(\[]?[A-Z])")
_NON_OPINIONS = re.compile(
    r"\b(?:(?:the\s+)?(?:text|person|speaker|conversation|dialogue|passage)\s+(?:does\s+not|doesn't|did\s+not|"
    r"didn't)\s+(?:contain|express|mention|include|state|give|share|say)|no\s+(?:clear\s+|explicit\s+)?opinions?\b|"
    r"there\s+(?:are|is)\s+no\s+(?:clear\s+|explicit\s+)?opinions?|not\s+possible\s+to\s+(?:extract|identify)|"
    r"(?:cannot|can't|can\s+not|unable\s+to)\s+(?:extract|identify|find|determine)|as\s+an\s+ai\b|"
    r"i'?m\s+not\s+sure\s+what\s+to\s+say)",
    re.IGNORECASE)
_EMPTY_ANSWERS = {"none", "none.", "n/a", "na", "nothing", "no opinions", "no opinions.", "-", "no", "no."}


def delegate_text(turns: Sequence[Mapping[str, Any]], culture: str | None = None) -> str:
    """The delegates' utterances of a dialogue (of one ``culture`` when given), one per line.

    The main contact's turns are left out: only what the cultural delegates said counts.
    """
    lines = []
    for turn in turns:
        if turn.get("role") != "delegate":
            continue
        if culture is not None and turn.get("culture") not in (None, culture):
            continue
        text = " ".join(str(turn.get("text") or "").split())
        if text:
            lines.append(text)
    return "\n".join(lines)


def extraction_messages(country: str, topic: str, text: str, max_chars: int = 4000) -> list[dict[str, str]]:
    """The chat asking for the opinions in ``text`` (a delegate from ``country`` on ``topic``).

    Text longer than ``max_chars`` keeps its end (the latest rounds carry the settled views).
    """
    if len(text) > max_chars:
        text = text[-max_chars:]
    return [
        {"role": "system", "content": EXTRACT_SYSTEM},
        {"role": "user", "content": EXAMPLE_USER},
        {"role": "assistant", "content": EXAMPLE_ANSWER},
        {"role": "user", "content": f'Country: {country}\nTopic: "{topic}"\nText: "{text}"\nOpinions:'},
    ]


def word_count(text: str) -> int:
    """Number of words (runs of letters or digits) in ``text``."""
    return len(re.findall(r"[^\W_]+(?:'[^\W_]+)?", text))


def is_non_opinion(text: str) -> bool:
    """True for statements about the text rather than opinions ("The text does not contain ...")."""
    return bool(_NON_OPINIONS.search(text)) or text.strip().lower() in _EMPTY_ANSWERS


def _clean(item: str) -> str:
    item = _LABEL.sub("", item)
    item = item.replace("**", "").replace("__", "").strip().strip("*_").strip()
    while len(item) >= 2 and item[0] in "\"'\u201c\u2018`" and item[-1] in "\"'\u201d\u2019`":
        item = item[1:-1].strip()
    item = item.strip("\"'\u201c\u201d` ").strip()
    return " ".join(item.split())


def _is_chatter(line: str) -> bool:
    """A heading or aside around a list: ends with a colon, or is a known empty answer."""
    stripped = line.strip()
    return stripped.endswith(":") or stripped.lower().rstrip("!.") in {"sure", "okay", "ok", "certainly", "here you go"}


def candidate_items(answer: str) -> list[str]:
    """Split a raw answer into candidate items.

    When some lines carry list markers (``1.``, ``2)``, ``-``, ``*``, ``•``, ``a)``), only those
    lines count and the rest is chatter; otherwise each plain line is split into sentences.
    """
    lines = [line for line in (answer or "").replace("\r", "\n").split("\n") if line.strip()]
    marked = [line for line in lines if _MARKER.match(line)]
    if marked:
        # a second marker is stripped too ("1. - opinion", "- 1) opinion")
        return [_MARKER.sub("", _MARKER.sub("", line, count=1), count=1) for line in marked]
    items = []
    for line in lines:
        if _is_chatter(line):
            continue
        items.extend(s for s in _SENTENCE_END.split(line.strip()) if s.strip())
    return items


def parse_opinions(answer: str, min_words: int = 5, truncated: bool = False) -> tuple[list[str], list[tuple[str, str]]]:
    """Read the opinions out of a model's answer.

    Returns ``(opinions, rejected)``: ``rejected`` pairs each dropped item with why ("short",
    "non-opinion", "duplicate", "cut off"). ``truncated`` says the answer hit its token limit, so a
    last item without closing punctuation is cut off mid-sentence and dropped.
    """
    items = [_clean(i) for i in candidate_items(answer)]
    items = [i for i in items if i]
    opinions: list[str] = []
    rejected: list[tuple[str, str]] = []
    seen: set[str] = set()
    for n, item in enumerate(items):
        key = re.sub(r"\W+", " ", item.lower()).strip()
        if truncated and n == len(items) - 1 and not item.endswith((".", "!", "?", '"', "'")):
            rejected.append((item, "cut off"))
        elif is_non_opinion(item):
            rejected.append((item, "non-opinion"))
        elif word_count(item) < min_words:
            rejected.append((item, "short"))
        elif key in seen:
            rejected.append((item, "duplicate"))
        else:
            seen.add(key)
            opinions.append(item)
    return opinions, rejected
