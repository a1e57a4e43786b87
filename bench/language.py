"""Do the personas answer in the asker's language, without loops? Answers under each guard setting.

    python bench/language.py                       # every bundled culture, three questions, greedy
    python bench/language.py --show

Every bundled culture's chat persona answers three English questions and one Japanese question (as
``cultura chat`` asks them, language ``auto``) under three settings: no guard (no-repeat n-gram 0,
one candidate), the n-gram guard alone, and the configured guards (n-gram ban plus candidates
reranked by detected language). An answer is in the language when py3langid's most likely language
is the asked one; it loops when a run of 4 words occurs 3 times or more.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time

QUESTIONS = ["How should neighbours treat each other?",
             "What should I bring when visiting a friend's family for dinner?",
             "How important is family in your life?",
             "近所の人はお互いにどう接するべきですか？"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--max-tokens", type=int, default=160, help="as `cultura chat` (default 160)")
    parser.add_argument("--show", action="store_true", help="print every answer")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    from cultura.config import SamplingConfig, TransformersEngineConfig
    from cultura.data.cultures import CULTUREPARK_CULTURES
    from cultura.engines import create_engine
    from cultura.engines.base import ChatRequest
    from cultura.engines.repetition import most_repeated_span
    from cultura.language import answer_language, detect_language, language_code
    from cultura.personas import culture_persona

    config = SamplingConfig()
    settings = {"no guard": (0, 1), "n-gram ban": (config.no_repeat_ngram_size, 1),
                "n-gram ban + rerank": (config.no_repeat_ngram_size, config.language_candidates)}
    cases = [(c, q, answer_language("auto", q)) for c in CULTUREPARK_CULTURES for q in QUESTIONS]
    engine = create_engine(TransformersEngineConfig())

    async def answers(ngram: int, candidates: int) -> list:
        requests = [ChatRequest(tuple(culture_persona(c, language=lang).messages(q)), config.params(
            max_tokens=args.max_tokens, temperature=0.0, no_repeat_ngram_size=ngram, language=lang,
            language_candidates=candidates)) for c, q, lang in cases]
        return await engine.generate(requests)

    async def run_all() -> dict:
        try:
            out = {}
            for name, (ngram, candidates) in settings.items():
                start = time.perf_counter()
                out[name] = (await answers(ngram, candidates), time.perf_counter() - start)
            return out
        finally:
            await engine.close()

    results = asyncio.run(run_all())
    print(f"{'setting':22} {'in language':>12} {'English':>8} {'Japanese':>8} {'looping':>8} {'seconds':>8}")
    for name, (completions, seconds) in results.items():
        hits = [detect_language(c.text) == language_code(lang) for (_, _, lang), c in zip(cases, completions)]
        english = [h for (_, _, lang), h in zip(cases, hits) if lang == "English"]
        japanese = [h for (_, _, lang), h in zip(cases, hits) if lang == "Japanese"]
        looping = sum(most_repeated_span(c.text, 4) >= 3 for c in completions)
        print(f"{name:22} {sum(hits):>5} / {len(hits):<4} {sum(english):>3}/{len(english):<4} "
              f"{sum(japanese):>3}/{len(japanese):<4} {looping:>4}/{len(hits):<3} {seconds:>8.0f}")
        if args.show:
            for (c, q, _), done in zip(cases, completions):
                print(f"  --- {c}: {q}  [{detect_language(done.text)}]\n  {done.text[:300]!r}", file=sys.stderr)


if __name__ == "__main__":
    main()
