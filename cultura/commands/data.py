"""``cultura data``: show the bundled data (Hofstede scores, seeds, cultures, prompts); get a benchmark into the item schema."""

from __future__ import annotations

from pathlib import Path

import click

from cultura.commands.common import echo_table


@click.group()
def data() -> None:
    """Show what is bundled (Hofstede scores, CulturePark seeds, cultures, Palette prompts); get benchmarks."""


@data.command()
@click.argument("country", required=False)
@click.option("--continent", default=None, help="Only countries of this continent.")
def hofstede(country: str | None, continent: str | None) -> None:
    """Hofstede's six dimension scores for COUNTRY, or for every country (* = estimated)."""
    from cultura.data.hofstede import CONTINENTS, DIMENSIONS, load_table, resolve_country
    from cultura.errors import UnknownNameError

    table = load_table()
    if country:
        names = [resolve_country(country)]
    else:
        if continent and continent.title() not in CONTINENTS:
            raise UnknownNameError("continent", continent, CONTINENTS)
        names = [n for n, c in table.items() if not continent or c.continent == continent.title()]
    rows = []
    for name in names:
        c = table[name]
        rows.append({"country": name + ("*" if c.estimated else ""), "continent": c.continent}
                    | {d: c.scores[d] for d in DIMENSIONS})
    echo_table(rows)
    if not country:
        click.echo(f"{len(rows)} countries; * marks estimated scores; - marks a missing score")


@data.command()
@click.option("--source", type=click.Choice(["all", "wvs", "pew"]), default="all", show_default=True,
              help="Which bundled seed set.")
@click.option("--culture", default=None,
              help="Show this culture's attitude on each seed (its primary country's data) or a country's own.")
@click.option("--file", "path", default=None,
              help="Validate and show a seed file of your own (JSONL, CSV or GlobalOpinionQA CSV), or "
                   "'globalopinionqa' for the downloaded copy.")
@click.option("--split", type=click.Choice(["train", "eval"]), default=None,
              help="Only the seeds of this split (by a hash of the seed id): generation uses train, evaluation eval.")
@click.option("--eval-fraction", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=None,
              help="Share of seeds in the eval split (default from config: 0.2).")
def seeds(source: str, culture: str | None, path: str | None, split: str | None, eval_fraction: float | None) -> None:
    """List the seed questions and statements with how many countries have data on each.

    Each attitude of the bundled seeds carries its provenance: a survey and wave where it rests on a
    published figure, ``approximate`` where it was written from general knowledge (so evaluating on
    the bundled seeds is a smoke test; use GlobalOpinionQA for numbers).
    """
    from cultura.commands.common import build_config
    from cultura.data.cultures import get_culture
    from cultura.data.seed_files import read_seeds
    from cultura.data.seeds import seed_split, select_seeds

    key = get_culture(culture).key if culture else None
    fraction = eval_fraction or build_config(None).data.eval_fraction
    sources = ("wvs", "pew") if source == "all" else (source,)
    loaded = read_seeds(path or "bundled", sources=sources)
    items = select_seeds(loaded.seeds, split, fraction, [key] if key else None)
    rows = []
    for s in items:
        row = {"id": s.id, "split": seed_split(s.id, fraction), "topic": s.topic, "text": _clip(s.text, 60),
               "countries": len(s.attitudes)}
        if key:
            found = s.culture_attitude(key)
            row.update(attitude=found.answer if found else None, country=found.source if found else None,
                       provenance=_clip(found.provenance, 40) if found else None)
        rows.append(row)
    echo_table(rows)
    click.echo(f"{len(rows)} seeds" + (f" in the {split} split" if split else "")
               + f" (eval fraction {fraction}); all loaded: {loaded.summary()}")


@data.command()
def cultures() -> None:
    """The eight CulturePark cultures with their countries and persona names."""
    from cultura.data.cultures import CULTUREPARK_CULTURES, get_culture

    rows = []
    for key in CULTUREPARK_CULTURES:
        c = get_culture(key)
        rows.append({"culture": key, "countries": ", ".join(c.countries), "continent": c.continent,
                     "names": ", ".join(c.names)})
    echo_table(rows)
    click.echo("Any country in `cultura data hofstede` can also be named as a culture.")


@data.command()
@click.option("--file", "path", default=None, type=click.Path(dir_okay=False),
              help="Validate and show a prompt file of your own (JSONL/CSV, PRISM conversations JSONL).")
def prompts(path: str | None) -> None:
    """The PRISM-style open-ended prompts used by Cultural Palette."""
    from cultura.data.prompts import load_prompts

    items = load_prompts(path or "bundled")
    echo_table([{"id": p.id, "topic": p.topic, "text": _clip(p.text, 80)} for p in items])
    click.echo(f"{len(items)} prompts")


BENCHMARK_NAMES = ("globalopinionqa", "culturalbench", "blend", "normad", "cdeval", "worldvaluesbench", "culturebank")


@data.command()
@click.argument("name", type=click.Choice(BENCHMARK_NAMES, case_sensitive=False))
@click.option("--from", "source", default=None, type=click.Path(exists=True, path_type=Path),
              help="Read this file, or this folder laid out as the benchmark publishes it, instead of downloading.")
@click.option("--out", default=None, type=click.Path(file_okay=False, path_type=Path),
              help="Folder for items.parquet and its dataset card (default: $CULTURA_HOME/benchmarks/NAME).")
def get(name: str, source: Path | None, out: Path | None) -> None:
    """Get a benchmark into cultura's item schema: items.parquet plus a dataset card.

    Without --from it downloads the published files from the Hugging Face hub (needs the network
    once; WorldValuesBench is not on the hub, so it always takes --from a clone of its repository).
    The licence is printed first; GlobalOpinionQA is non-commercial and share-alike, BLEnD
    share-alike. globalopinionqa is also cached for `--questions globalopinionqa`.
    """
    from cultura.data.benchmarks.get import default_out, licence_notice, load, write_benchmark
    from cultura.data.benchmarks.registry import get_benchmark

    benchmark = get_benchmark(name)
    click.echo(licence_notice(benchmark) + ".")
    if source or benchmark.download:
        click.echo(f"Reading {source}" if source else f"Downloading from {benchmark.source}")
    loaded, read_from = load(benchmark, source)
    items, card = write_benchmark(benchmark, loaded, out or default_out(benchmark), read_from)
    countries = len({i.culture for i in loaded.items if i.culture})
    click.echo(f"{len(loaded.items)} items ({countries} countries or cultures) written to {items}\nCard: {card}")
    for note in loaded.notes:
        click.echo(f"note: {note}")


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"
