"""Answers in the asker's language and without loops, on the real default model, for every bundled persona."""

from __future__ import annotations

import asyncio

import pytest

from cultura.config import SamplingConfig, TransformersEngineConfig
from cultura.data.cultures import CULTUREPARK_CULTURES
from cultura.engines import ChatRequest, create_engine
from cultura.engines.repetition import most_repeated_span, repeated_ngram_bans
from cultura.errors import CulturaError
from cultura.language import answer_language, detect_language, language_code
from cultura.personas import culture_persona

QUESTIONS = ["How should neighbours treat each other?",
             "What should I bring when visiting a friend's family for dinner?",
             "How important is family in your life?"]
JAPANESE = "近所の人はお互いにどう接するべきですか？"
TOKENS = 64  # long enough for a loop to show (a 4-word run three times), short enough for 24 answers


@pytest.fixture(scope="module")
def engine():
    eng = create_engine(TransformersEngineConfig())
    yield eng
    asyncio.run(eng.close())


def persona_requests(questions, sampling=None):
    """One chat request per bundled culture and question, asked as ``cultura chat`` asks (language auto)."""
    sampling = sampling or SamplingConfig()
    cases = [(c, q) for c in CULTUREPARK_CULTURES for q in questions]
    requests = []
    for culture, question in cases:
        language = answer_language("auto", question)
        requests.append(ChatRequest(tuple(culture_persona(culture, language=language).messages(question)),
                                    sampling.params(max_tokens=TOKENS, temperature=0.0, language=language)))
    return cases, requests


def test_every_persona_answers_english_questions_in_english_without_loops(engine):
    cases, requests = persona_requests(QUESTIONS)
    completions = asyncio.run(engine.generate(requests))
    wrong = [(c, q, detect_language(done.text), done.text) for (c, q), done in zip(cases, completions)
             if detect_language(done.text) != "en"]
    assert not wrong, wrong
    looping = [(c, q, done.text) for (c, q), done in zip(cases, completions) if most_repeated_span(done.text, 4) >= 3]
    assert not looping, looping


def test_a_japanese_question_gets_a_japanese_answer(engine):
    cases, requests = persona_requests([JAPANESE])
    completions = asyncio.run(engine.generate(requests[:3]))
    assert [detect_language(c.text) for c in completions] == ["ja"] * 3, [c.text for c in completions]


def test_without_the_guards_the_default_model_strays_and_loops(engine):
    """The guards are what holds: with them off, some persona answers leave English or loop."""
    cases, requests = persona_requests(QUESTIONS, SamplingConfig(no_repeat_ngram_size=0, language_candidates=1))
    completions = asyncio.run(engine.generate(requests))
    strays = sum(detect_language(c.text) != "en" for c in completions)
    loops = sum(most_repeated_span(c.text, 4) >= 3 for c in completions)
    assert strays + loops > 0


def repeated_runs(engine, text: str, size: int = 3) -> int:
    """How many runs of ``size`` tokens of ``text`` repeat an earlier one."""
    ids = engine.tokenizer(text, add_special_tokens=False)["input_ids"]
    runs = [tuple(ids[i:i + size]) for i in range(len(ids) - size + 1)]
    return len(runs) - len(set(runs))


def test_the_ngram_guard_bans_every_repeated_token_run(engine):
    chat = culture_persona("bengali").messages("How important is family in your life?")  # loops unguarded
    free, guarded = asyncio.run(engine.generate([ChatRequest.of(chat, max_tokens=96, no_repeat_ngram_size=n)
                                                 for n in (0, 3)]))
    assert repeated_runs(engine, free.text) > 0, free.text
    assert repeated_runs(engine, guarded.text) == 0, guarded.text


def test_repeated_ngram_bans():
    assert repeated_ngram_bans([1, 2, 3, 1, 2], 3) == [3]
    assert repeated_ngram_bans([1, 2, 3, 1, 2], 0) == []
    assert repeated_ngram_bans([5, 6, 5], 2) == [6]
    assert repeated_ngram_bans([1], 3) == []


def test_answer_language():
    assert answer_language("auto", "How should neighbours treat each other?") == "English"
    assert answer_language(None, JAPANESE) == "Japanese"
    assert answer_language("auto", "1234 ?!") == "English"  # nothing to detect: the default
    assert answer_language("ja", "Hello") == "Japanese"
    assert answer_language("german", "Hello") == "German"
    assert language_code("Bengali") == "bn"
    with pytest.raises(CulturaError, match="Japanese"):
        answer_language("Japanse", "Hello")


def test_an_unknown_language_is_a_clear_error():
    from cultura.sampling import sampling_problem

    with pytest.raises(CulturaError, match="sampling.language"):
        SamplingConfig().params(language="Klingonese")
    assert sampling_problem(SamplingConfig().params(language="English")) is None
    with pytest.raises(CulturaError, match="no_repeat_ngram_size"):
        SamplingConfig().params(no_repeat_ngram_size=-1)


def test_an_answer_out_of_its_language_is_reasked_and_counted(engine, ray_session):
    """An English question answered in English when Finnish is asked: re-asked with 2 more candidates, and
    both counts reach Ray's Prometheus export (a re-ask is otherwise invisible: only the answer kept is returned).
    Finnish: no other test asks for it, so no other re-ask can land in these counts while Ray exports them."""
    import time

    from cultura.metrics import scrape_local, total

    def counts():
        samples = scrape_local()
        return (total(samples, "engine_language_reasks", language="Finnish"),
                total(samples, "engine_language_candidates", language="Finnish"))

    before = counts()
    request = ChatRequest.of([{"role": "user", "content": "What colour is the sky? Answer in one word."}],
                             max_tokens=8, language="Finnish", language_candidates=3)
    plain = asyncio.run(engine.generate([ChatRequest.of(request.messages, max_tokens=8)]))[0]
    assert detect_language(plain.text) != "fi", plain.text  # the model's own answer is out of the language
    asyncio.run(engine.generate([request]))
    deadline = time.monotonic() + 40  # Ray exports every few seconds
    while counts() != (before[0] + 1, before[1] + 2) and time.monotonic() < deadline:
        time.sleep(2)
    reasks, candidates = counts()
    assert (reasks - before[0], candidates - before[1]) == (1, 2)
