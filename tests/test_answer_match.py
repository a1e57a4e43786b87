"""Short answers against accepted answers: BLEnD's soft exact match, normalised the same on both sides."""

from __future__ import annotations

import pytest

from cultura.eval.answer_match import matches, normalise


@pytest.mark.parametrize(("response", "accepted", "language", "expected"), [
    ("Dumplings.", ["dumpling"], "en", True),            # case, punctuation, plural
    ("They eat at the school cafeteria", ["school cafeteria"], "en", True),
    ("The cafeteria", ["school cafeteria"], "en", False),  # the whole answer, not part of it
    ("I'd say rice", ["rice cake"], "en", False),
    ("ricecake", ["rice"], "en", False),                   # words match whole
    ("Boxes of tea", ["box"], "en", True),
    ("8 hours", ["8"], "en", True),
    ("18 hours", ["8"], "en", False),
    ("학생식당에서 먹어요", ["학생식당"], "ko", False),        # a spaced language: whole words only
    ("학생식당 에서", ["학생식당"], "ko", True),
    ("他们吃饺子。", ["饺子"], "zh", True),                   # no spaces between words: characters
    ("ＣＡＦＥＴＥＲＩＡ", ["cafeteria"], "en", True),         # NFKC folds full-width letters
    ("anything", ["!!"], "en", False),                     # an answer of punctuation matches nothing
])
def test_matches(response, accepted, language, expected):
    assert matches(response, accepted, language) is expected


def test_normalise_drops_articles_only_in_english():
    assert normalise("The Beatles!", "en") == ["beatle"]
    assert normalise("The Beatles!", "de") == ["the", "beatles"]
