"""``cultura chat``: one question to a cultural persona through the configured engine."""

from __future__ import annotations

import click

from cultura.commands.common import build_config, config_options, pop_config_args, repetition_penalty_option


@click.command()
@click.argument("question")
@click.option("--culture", default="german", show_default=True,
              help="CulturePark culture (arabic, bengali, chinese, german, korean, portuguese, spanish, "
                   "turkish) or any country in the Hofstede table.")
@click.option("--adapter", default=None, help="LoRA adapter: a registered name or an adapter folder.")
@click.option("--max-tokens", type=click.IntRange(1, 4096), default=160, show_default=True,
              help="Most tokens to generate.")
@click.option("--temperature", type=click.FloatRange(0, 5), default=0.0, show_default=True,
              help="Sampling temperature; 0 is greedy.")
@click.option("--seed", type=int, default=0, show_default=True, help="Sampling seed.")
@click.option("--language", default="auto", show_default=True,
              help="Language the persona answers in: a name (Japanese) or ISO 639 code (ja); auto is the "
                   "language of QUESTION.")
@repetition_penalty_option
@config_options
def chat(question: str, culture: str, adapter: str | None, max_tokens: int, temperature: float,
         seed: int, language: str, repetition_penalty: float | None, **kwargs) -> None:
    """Ask QUESTION to a persona of a culture and print the answer."""
    import time

    from cultura.api import create_engine
    from cultura.engines import ChatRequest
    from cultura.engines.base import run_sync
    from cultura.errors import CulturaError
    from cultura.language import answer_language
    from cultura.personas import culture_persona

    if not question.strip():
        raise CulturaError("the question is empty")
    config = build_config(**pop_config_args(kwargs), **{"sampling.repetition_penalty": repetition_penalty})
    if adapter:  # refuse a bad adapter before the model loads
        from cultura.registry import check_adapter_ref

        check_adapter_ref(adapter, config.engine)
    language = answer_language(language, question)
    persona = culture_persona(culture, language=language).with_adapter(adapter)
    request = ChatRequest(tuple(persona.messages(question)), config.sampling.params(
        max_tokens=max_tokens, temperature=temperature, seed=seed, language=language), persona.adapter)

    async def ask():
        engine = create_engine(config)
        try:
            start = time.perf_counter()
            [completion] = await engine.generate([request])
            return completion, time.perf_counter() - start
        finally:
            await engine.close()

    completion, seconds = run_sync(ask())
    click.echo(f"{persona.name} ({persona.country}, {config.engine.kind}:{config.engine.model}"
               f"{', adapter ' + adapter if adapter else ''}):")
    click.echo(completion.text)
    click.echo(f"[{completion.completion_tokens} tokens in {seconds:.1f} s, finish: {completion.finish_reason}]",
               err=True)
