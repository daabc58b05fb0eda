"""`crawler search`, `show`, `export` and `stats`: reading the archive."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from crawler.cli.common import (
    DbOption,
    OutletsOption,
    SourcesOption,
    app,
)

SINCE_HELP = (
    "Published on or after: a day (2024-12-12, the publication's own date) or a time "
    "(2024-12-12T06:00, UTC unless an offset is given)."
)
UNTIL_HELP = "Published on or before: a day (inclusive) or a time, as for --since."


@app.command()
def show(
    ref: Annotated[str, typer.Argument(metavar="ID|URL", help="The article's id or URL.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the article as JSON.")] = False,
    db: DbOption = None,
    sources: SourcesOption = None,
) -> None:
    """One article: its metadata, every version with the changes between them, its snapshots."""
    from crawler.cli.querying import show as show_article

    show_article(ref, as_json, db, sources)


@app.command("search")
def search_command(
    query: Annotated[
        str,
        typer.Argument(
            help='SQLite: FTS5 syntax (words, "a phrase", AND, OR, NOT, NEAR(a b, 5), '
            'prefix*); PostgreSQL: web-search syntax (words, "a phrase", OR, -word, prefix*).'
        ),
    ],
    outlet: OutletsOption = None,
    since: Annotated[str | None, typer.Option(help=SINCE_HELP, show_default=False)] = None,
    until: Annotated[str | None, typer.Option(help=UNTIL_HELP, show_default=False)] = None,
    topic: Annotated[str | None, typer.Option(help="Only articles tagged with this topic.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="At most this many hits.")] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="Print the hits as JSON.")] = False,
    all_copies: Annotated[
        bool, typer.Option("--all-copies", help="Every copy of a text as a hit of its own.")
    ] = False,
    db: DbOption = None,
    sources: SourcesOption = None,
) -> None:
    """Full-text search of titles and bodies: the best hits first, each with a snippet."""
    from crawler.cli.querying import search

    search(query, outlet, since, until, topic, limit, as_json, all_copies, db, sources)


@app.command("stats")
def stats_command(
    topic: Annotated[str | None, typer.Option(help="Only articles tagged with this topic.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the figures as JSON.")] = False,
    db: DbOption = None,
    sources: SourcesOption = None,
) -> None:
    """Per outlet: articles, oldest and newest, articles per day (30 days), last run; per topic."""
    from crawler.cli.querying import stats

    stats(topic, as_json, db, sources)


@app.command()
def export(
    format: Annotated[str, typer.Option("--format", "-f", help="jsonl, csv or parquet.")] = "jsonl",
    output: Annotated[
        Path | None, typer.Option("-o", "--output", help="File (default stdout).")
    ] = None,
    outlet: OutletsOption = None,
    since: Annotated[str | None, typer.Option(help=SINCE_HELP, show_default=False)] = None,
    until: Annotated[str | None, typer.Option(help=UNTIL_HELP, show_default=False)] = None,
    topic: Annotated[str | None, typer.Option(help="Only articles tagged with this topic.")] = None,
    db: DbOption = None,
    sources: SourcesOption = None,
) -> None:
    """Write the archive's articles, one per line (JSONL, CSV) or row (Parquet)."""
    from crawler.cli.querying import export as export_articles

    export_articles(format, output, outlet, since, until, topic, db, sources)
