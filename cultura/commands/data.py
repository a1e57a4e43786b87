"""``cultura data``: show the bundled data (Hofstede scores, seeds, cultures, prompts)."""

from __future__ import annotations

import click

from cultura.commands.common import echo_table


@click.group()
def data() -> None:
    """Show what is bundled: Hofstede scores, CulturePark seeds, cultures, Palette prompts."""


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
@click.option("--culture", default=None, help="Show this culture's attitude on each seed.")
@click.option("--file", "path", default=None, type=click.Path(dir_okay=False),
              help="Validate and show a seed file of your own (JSONL, CSV or GlobalOpinionQA CSV).")
def seeds(source: str, culture: str | None, path: str | None) -> None:
    """List the CulturePark seed questions and statements (WVS and Pew style)."""
    from cultura.data.cultures import get_culture
    from cultura.data.seeds import load_seeds

    key = get_culture(culture).key if culture else None
    sources = ("wvs", "pew") if source == "all" else (source,)
    items = load_seeds(path or "bundled", cultures=[key] if key else None, sources=sources)
    rows = []
    for s in items:
        row = {"id": s.id, "topic": s.topic, "text": _clip(s.text, 70), "cultures": len(s.attitudes)}
        if key:
            row["attitude"] = s.attitude(key)
        rows.append(row)
    echo_table(rows)
    click.echo(f"{len(rows)} seeds")


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


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"
