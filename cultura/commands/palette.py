"""``cultura palette`` (one blended answer) and ``cultura palette-data`` (Palette dataset synthesis)."""

from __future__ import annotations

import click

from cultura.commands.common import (build_config, config_options, echo_table, pop_config_args,
                                     repetition_penalty_option)


@click.command()
@click.argument("prompt")
@click.option("--country", default=None,
              help="Target country (name, alias or demonym, e.g. Japan, USA, Brazilian). Default: a country "
                   "named in the prompt, else relevance alone. With --gate-only also a comma-separated list "
                   "or a country set (palette18).")
@click.option("--gate-only", is_flag=True,
              help="Print the gate's decision (weights per continent, the continents that would draft) "
                   "without drafting: no Ray, no language model.")
@click.option("--blend", type=click.Choice(["aggregate", "select", "weighted-merge"]), default=None,
              help="aggregate: the Meta Agent blends the drafts (default); select: the top continent's draft; "
                   "weighted-merge: one answer from the continent adapters merged with the gate weights.")
@click.option("--top-k", type=int, default=None, help="Continents that draft (1-5; default 3).")
@click.option("--alpha", type=float, default=None, help="Gate weight of Hofstede proximity (default 1).")
@click.option("--beta", type=float, default=None, help="Gate weight of prompt relevance (default 1).")
@click.option("--tau", type=float, default=None, help="Gate temperature, > 0 (default 0.2; lower is sharper).")
@click.option("--max-tokens", type=int, default=None, help="Tokens per draft and per answer (default 128).")
@repetition_penalty_option
@click.option("--adapters", default=None, help="Adapter registry folder; its continent adapters are used.")
@click.option("--show-drafts", is_flag=True, help="Print each continent agent's draft too.")
@click.option("--language", default="auto", show_default=True,
              help="Language of the answer: a name (Japanese) or ISO 639 code (ja); auto is the language of PROMPT.")
@click.option("--json", "as_json", is_flag=True, help="Print the whole response as JSON.")
@config_options
def palette(prompt: str, country: str | None, gate_only: bool, show_drafts: bool, as_json: bool, language: str,
            **kwargs) -> None:
    """Answer PROMPT with Cultural Palette: continent agents blended by the Cultural MoE gate.

    Prints the answer, the gate weight per continent, and the stage timings. With --gate-only, only
    the gate's weights, for one country or many (--json: one JSON object per country and line).
    """
    import json

    from cultura.errors import CulturaError
    from cultura.eval.countries import resolve_countries
    from cultura.palette.gate import validate_prompt

    from cultura.language import answer_language

    validate_prompt(prompt)
    language = answer_language(language, prompt)  # an unknown language fails before any actor starts
    if country and "," in country and not gate_only:
        raise CulturaError("--country takes one country; a comma-separated list needs --gate-only")
    countries = resolve_countries(country) if country else [None]  # an unknown country fails before any actor starts
    if len(countries) > 1 and not gate_only:
        raise CulturaError(f"--country {country} names {len(countries)} countries; a country set needs --gate-only")
    config = build_config(**pop_config_args(kwargs), **{
        "palette.blend": kwargs["blend"], "palette.top_k": kwargs["top_k"], "palette.alpha": kwargs["alpha"],
        "palette.beta": kwargs["beta"], "palette.tau": kwargs["tau"], "palette.max_tokens": kwargs["max_tokens"],
        "palette.adapters": kwargs["adapters"], "sampling.repetition_penalty": kwargs["repetition_penalty"]})
    if gate_only:
        _print_gate(prompt, countries, config, as_json)
        return
    from cultura.palette import Palette

    with Palette(config) as pal:
        response = pal.respond(prompt, country, language=language)
    if as_json:
        click.echo(json.dumps(response.to_dict(), indent=2, ensure_ascii=False))
        return
    click.echo(response.text)
    click.echo()
    click.echo(f"country: {response.country or '(none: relevance only)'}    blend: {response.blend}")
    echo_table([{"continent": c, "weight": round(w, 3), "drafted": "yes" if c in response.drafts else "",
                 "adapter": "" if c in response.missing or c not in response.selected else "yes"}
                for c, w in sorted(response.weights.items(), key=lambda kv: -kv[1])])
    if response.missing:
        click.echo(f"no adapter for {', '.join(response.missing)}: the base model spoke with the continent persona")
    if show_drafts:
        for continent, draft in response.drafts.items():
            click.echo(f"\n--- {continent} draft (weight {response.weights[continent]:.3f})")
            click.echo(draft)
    click.echo("\ntimings: " + ", ".join(f"{k} {v:.2f}" for k, v in response.timings.items()))


def _print_gate(prompt: str, countries: list[str | None], config, as_json: bool) -> None:
    """The gate's decision for ``prompt`` and each country: a table, or one JSON object per line."""
    import json

    from cultura.data.hofstede import CONTINENTS
    from cultura.eval.context import gate_factory

    decisions = gate_factory(config)().weights_many([prompt] * len(countries), countries)
    if as_json:
        for d in decisions:
            click.echo(json.dumps({"country": d.country, "weights": {c: round(w, 4) for c, w in d.weights.items()},
                                   "selected": list(d.selected),
                                   "proximity": {c: round(v, 4) for c, v in d.proximity.items()},
                                   "relevance": {c: round(v, 4) for c, v in d.relevance.items()}},
                                  ensure_ascii=False))
        return
    echo_table([{"country": d.country or "(none: relevance only)", **{c: round(d.weights[c], 3) for c in CONTINENTS},
                 "drafting": ", ".join(d.selected)} for d in decisions])


@click.command("palette-data")
@click.option("--prompts", default="bundled", show_default=True,
              help="'bundled' (PRISM-style prompts), a PRISM conversations JSONL, or a JSONL/CSV of prompts "
                   "(a path or a URI).")
@click.option("--out", required=True,
              help="Output folder: palette.parquet, palette.jsonl, manifest.json; a local folder or a URI "
                   "(s3://, gs://, file://).")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Use only the first N prompts.")
@click.option("--samples", type=click.IntRange(min=1), default=None,
              help="Responses sampled per prompt and continent (default 2).")
@click.option("--max-distance", type=float, default=None,
              help="Drop a continent's best sample whose Hofstede distance (scores / 100, 0 to 2.45) "
                   "exceeds this (default 1.5).")
@click.option("--max-tokens", type=int, default=None, help="Tokens per response (default 128).")
@click.option("--workers", type=int, default=None, help="Ray Data actors (default 1).")
@click.option("--batch-size", type=int, default=None, help="Prompts per batch (default 16).")
@click.option("--overwrite", is_flag=True, help="Replace a dataset already in --out.")
@config_options
def palette_data(prompts: str, out: str, limit: int | None, samples: int | None, overwrite: bool, **kwargs) -> None:
    """Synthesize a Palette dataset: every continent answers every prompt, a judge rates the answers on
    Hofstede's six dimensions, and per continent the answer closest to its centroid is chosen.

    Rows: query, continent, response (chosen), rejected_response (the other continents' chosen answers),
    plus the judge's ratings as audit columns.
    """
    from cultura.api import synthesize_palette

    config = build_config(**pop_config_args(kwargs), **{
        "palette.max_distance": kwargs["max_distance"], "palette.max_tokens": kwargs["max_tokens"],
        "palette.workers": kwargs["workers"], "palette.batch_size": kwargs["batch_size"]})
    s = synthesize_palette(config, out=out, prompts=prompts, limit=limit, samples=samples, overwrite=overwrite,
                           progress=True)
    click.echo(f"prompts           {s.prompts}")
    click.echo(f"samples judged    {s.samples} (ratings read {s.ratings_read} of {s.samples * 6})")
    click.echo(f"rows              {s.rows} (dropped: {s.dropped_far} too far, {s.dropped_unrated} unrated, "
               f"{s.dropped_alone} without a rejected pair)")
    click.echo(f"time              {s.seconds:.1f} s")
    click.echo(f"output            {', '.join(str(f) for f in s.files)}")
