"""``cultura demo``: the whole story on the embedded default, one command.

Generate dialogues for two cultures -> refine -> fine-tune one adapter per culture -> Hofstede
alignment before (base, prompted) and after (adapter) -> start the Serve app -> one Cultural Palette
question through the OpenAI client, with the gate's weights and each continent's draft -> shut down ->
one question answered by the base model and by a culture adapter, side by side. Every step is the
same API verb the subcommand a user would run calls (:mod:`cultura.api`), in this process so Ray
starts once, and prints what it prints.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

import click

from cultura.errors import CulturaError

MARKER = ".cultura-demo"
QUESTION = "What should I bring when visiting a friend's family for dinner?"
# Each culture adapter should train on at least MIN_TRAIN_ROWS rows (plus the held-out tenth). On
# the default model a dialogue yields about two distinct opinions and 40-60% of them pass
# verification: with 24 seeds German kept 15, so 32 seeds (28 with a German attitude, 23 Chinese)
# aim at about 20 per culture; k-means per seed question (the paper preset) with CLUSTERS_PER_SEED
# keeps each seed question's longest opinion (with every distinct opinion kept, the German adapter
# trained on 56 rows and the demo ran 2.5 minutes longer). The extraction's distinct opinions come
# in its first three lines (then it repeats itself), so EXTRACT_TOKENS suffices.
MIN_TRAIN_ROWS = 16
CLUSTERS_PER_SEED = 1
EXTRACT_TOKENS = 80
# The verification judge's labelled check: 10 items per label show the default model at chance as
# plainly as 20 do (README, bench/judge.py) and take half the time.
JUDGE_CHECK_ITEMS = 30
ANSWER_TOKENS = 48  # the Palette answer's length, and the side-by-side answers'
ADAPTER_QUESTION = "How important is family in your life?"  # asked of the base model and a culture adapter


@click.command()
@click.option("--out", default="runs/demo", show_default=True, type=click.Path(file_okay=False),
              help="Folder for every output of the demo (replaced if an earlier demo wrote it).")
@click.option("--cultures", default="german,chinese", show_default=True, help="Two or more cultures.")
@click.option("--seeds", "max_seeds", type=click.IntRange(1, 200), default=32, show_default=True,
              help="Seed questions per culture.")
@click.option("--rounds", type=click.IntRange(1, 20), default=2, show_default=True, help="Dialogue rounds.")
@click.option("--max-tokens", type=click.IntRange(8, 1024), default=32, show_default=True,
              help="Most tokens per dialogue utterance (short turns keep the demo near six minutes on 2 cores).")
@click.option("--country", default="Japan", show_default=True, help="Target country of the Palette question.")
@click.option("--port", type=click.IntRange(1024, 65535), default=8000, show_default=True,
              help="Port of the Serve app on 127.0.0.1.")
def demo(out: str, cultures: str, max_seeds: int, rounds: int, max_tokens: int, country: str, port: int) -> None:
    """Run generate, refine, finetune, eval, serve and one API call on the default model."""
    from cultura import api
    from cultura.commands import eval as eval_command, finetune as finetune_command
    from cultura.commands import generate as generate_command, refine as refine_command
    from cultura.commands.common import build_config
    from cultura.data.hofstede import resolve_country
    from cultura.data.cultures import culture_keys

    resolve_country(country)
    names = [c.strip() for c in cultures.split(",") if c.strip()]
    if len(culture_keys(names)) < 2:
        raise CulturaError(f"the demo needs two or more cultures, got {cultures!r}")
    config = build_config(None, **{"serve.port": port})
    root = Path(out)
    if root.exists() and any(root.iterdir()):
        if not (root / MARKER).exists():
            raise CulturaError(f"{root} holds files the demo did not write; choose another --out")
        shutil.rmtree(root)
    root.mkdir(parents=True)
    (root / MARKER).write_text("written by `cultura demo`; removed by the next demo run\n")
    gen, ref, adapters, report = root / "gen", root / "ref", root / "adapters", root / "reports" / "hofstede"
    started = time.perf_counter()
    timings: dict[str, float] = {}

    def step(title: str, call: str) -> float:
        click.secho(f"\n== {title}: {call}", bold=True)
        return time.perf_counter()

    t = step("generate", f"cultura.generate(out={str(gen)!r}, cultures={names}, max_seeds={max_seeds}, "
                         f"rounds={rounds}, per_seed=1, sampling={{'max_tokens': {max_tokens}}})")
    generated = api.generate(config, out=gen, cultures=names, max_seeds=max_seeds, rounds=rounds, per_seed=1,
                             sampling={"max_tokens": max_tokens}, progress=True)
    generate_command.echo_summary(generated, config.generate.format)
    if generated.failures:
        raise CulturaError(f"{len(generated.failures)} dialogues failed; the demo stops here")
    timings["generate"] = time.perf_counter() - t
    t = step("refine", f"cultura.refine(source={str(gen)!r}, out={str(ref)!r}, k={CLUSTERS_PER_SEED}, "
                       f"extract_max_tokens={EXTRACT_TOKENS}, judge_check={JUDGE_CHECK_ITEMS})")
    refine_command.echo_summary(api.refine(config, source=gen, out=ref, k=CLUSTERS_PER_SEED,
                                           extract_max_tokens=EXTRACT_TOKENS, judge_check=JUDGE_CHECK_ITEMS,
                                           progress=True))
    timings["refine"] = time.perf_counter() - t
    t = step("finetune", f"cultura.finetune(data={str(ref)!r}, out={str(adapters)!r}, per='culture')")
    trained = api.finetune(config, data=ref, out=adapters, per="culture", progress=True, echo=click.echo)
    finetune_command.echo_summary(trained)
    if trained.failures:
        raise CulturaError(f"{len(trained.failures)} adapter(s) failed; the demo stops here")
    timings["finetune"] = time.perf_counter() - t
    t = step("eval", f"cultura.evaluate(evaluation='hofstede', cultures={names}, "
                     f"methods='base,prompted,adapter', adapters={str(adapters)!r}, report={str(report)!r})")
    eval_command.echo_hofstede(api.evaluate(config, "hofstede", cultures=names, methods="base,prompted,adapter",
                                            adapters=str(adapters), report=report))
    timings["eval"] = time.perf_counter() - t
    click.secho(f"\n== serve: the Cultural Palette API on http://127.0.0.1:{port}/v1", bold=True)
    t = time.perf_counter()
    answer = _ask_palette(config, country, ANSWER_TOKENS)
    timings["serve"] = time.perf_counter() - t
    _echo_palette(answer, country)
    culture = names[0]
    click.secho(f"\n== base model and {culture} adapter, side by side (CulturePark's chatbot prompt)", bold=True)
    t = time.perf_counter()
    _echo_side_by_side(config, adapters, culture, ANSWER_TOKENS)
    timings["adapter"] = time.perf_counter() - t

    click.secho("\n== where everything went", bold=True)
    for label, path in [("dialogues", gen), ("fine-tuning sets", ref / "sft"), ("adapters", adapters),
                        ("Hofstede report", report / "report.md")]:
        click.echo(f"  {label:17} {path}")
    click.echo("  steps: " + ", ".join(f"{k} {v:.0f} s" for k, v in timings.items())
               + f"; total {time.perf_counter() - started:.0f} s")
    _smoke_run_note(adapters)


def _smoke_run_note(adapters: Path) -> None:
    """Say plainly what the demo's numbers are: a smoke run's, not evidence."""
    import textwrap

    from cultura.registry import load_registry

    entries = sorted(load_registry(adapters).items())
    trained = ", ".join(f"{name} on {e.train_rows} rows ({e.steps} steps)" for name, e in entries)
    note = (f"A smoke run: every stage ran end to end on the 135M default model (SmolLM2-135M-Instruct), "
            f"with a few seeds and short turns; adapters trained: {trained}. Its numbers (verification "
            "counts, Hofstede distances, the Palette answer) are not evidence that any method works; for "
            "that, run the stages with a real model (--model) on the full seed sets (README: A real model "
            "and a Ray cluster).")
    few = [name for name, e in entries if e.train_rows < MIN_TRAIN_ROWS]
    if few:
        note += (f" {', '.join(few)} trained on fewer than {MIN_TRAIN_ROWS} rows: fewer opinions passed "
                 "verification than planned (raise --seeds).")
    click.secho("\n== what this run shows", bold=True)
    click.echo(textwrap.fill(note, width=100, initial_indent="  ", subsequent_indent="  "))


def _first_line(text: str) -> str:
    """The first non-empty line of ``text`` ("(empty)" when there is none)."""
    return next((line.strip() for line in text.splitlines() if line.strip()), "(empty)")


def _echo_palette(answer: dict, country: str) -> None:
    """The Palette's question and blended answer, then what made it: the gate's weights (heaviest
    first) and each continent's draft, first line each."""
    click.echo(f"Q ({country}): {QUESTION}\nA: {answer['text']}")
    weights = sorted(answer["weights"].items(), key=lambda kv: -kv[1])
    click.echo("gate weights: " + ", ".join(f"{c} {w:.2f}" for c, w in weights))
    click.echo("continent drafts (first line each):")
    for continent, _ in weights:
        if continent in answer["drafts"]:
            click.echo(f"  {continent:8} {_first_line(answer['drafts'][continent])}")


def _echo_side_by_side(config: Any, adapters: Path, culture: str, max_tokens: int) -> None:
    """One question answered by the base model and by ``culture``'s adapter, both with the chat the
    adapter was trained in (:func:`~cultura.personas.chatbot_messages`), greedy."""
    from cultura.api import create_engine
    from cultura.engines import ChatRequest
    from cultura.engines.base import run_sync
    from cultura.personas import chatbot_messages
    from cultura.registry import load_registry

    entry = next(e for e in load_registry(adapters).values() if e.kind == "culture" and e.target == culture)
    messages = tuple(chatbot_messages(culture, ADAPTER_QUESTION))
    sampling = config.sampling.params(max_tokens=max_tokens, temperature=0.0, language="English")

    async def both() -> list:
        engine = create_engine(config)
        try:
            return await engine.generate([ChatRequest(messages, sampling), ChatRequest(messages, sampling, entry.path)])
        finally:
            await engine.close()

    base, tuned = run_sync(both())
    width = len(culture) + len(" adapter:")
    click.echo(f"Q: {ADAPTER_QUESTION}")
    click.echo(f"{'base model:':<{width}} {base.text}")
    click.echo(f"{culture + ' adapter:':<{width}} {tuned.text}")


def _ask_palette(config: Any, country: str, max_tokens: int) -> dict:
    """Start the Serve app, ask one Palette question with the OpenAI client (``POST /v1/palette``,
    which returns the drafts and gate weights beside the answer), then shut Serve down."""
    from openai import OpenAI
    from ray import serve

    from cultura.api import serve as start

    base_url = start(config)
    try:
        client = OpenAI(base_url=base_url, api_key="demo")
        details = client.post("/palette", cast_to=dict,
                              body={"prompt": QUESTION, "country": country, "max_tokens": max_tokens})
        return {"text": details["answer"], "weights": details.get("weights", {}), "drafts": details.get("drafts", {})}
    finally:
        serve.shutdown()
