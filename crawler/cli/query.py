"""`crawler search`, `show`, `export` and `stats`: reading the archive."""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path
from typing import Annotated

import typer

from crawler.cli.common import (
    DbOption,
    OutletsOption,
    SourcesOption,
    app,
    check_sources,
    err,
    fail,
    marked,
    open_archive,
    out,
    parse_when,
    refuse_archive_as_output,
    require_outlet,
    require_topic,
    written_atomically,
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
    check_sources(sources)
    import json

    from crawler.read.show import (
        MAX_ID,
        article_history,
        find_article,
        is_article_id,
        print_history,
    )

    url = ref.strip().lower().startswith(("http://", "https://"))
    if is_article_id(ref) and int(ref) > MAX_ID:
        raise fail(f"no article has id {ref.strip()}: ids go up to {MAX_ID}")
    if not url and not is_article_id(ref):
        raise fail(f"{ref!r} is neither an article id nor a URL")
    archive = open_archive(db, read_only=True)
    try:
        with archive.sessions() as session:
            article = find_article(session, ref)
            history = article_history(session, article) if article is not None else None
    finally:
        archive.dispose()
    if history is None:
        if is_article_id(ref):
            raise fail(f"no article with id {ref.strip()}", 1)
        raise fail(f"no article with URL {ref.strip()!r}", 1)
    if as_json:
        sys.stdout.write(json.dumps(history, ensure_ascii=False, indent=2) + "\n")
    else:
        print_history(out, history)


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
    check_sources(sources)
    import json

    from rich.markup import escape
    from rich.text import Text

    from crawler.read.export import ArticleFilter
    from crawler.read.search import SearchError, search
    from crawler.read.terminal import printable, published_label

    filters = ArticleFilter(
        outlet, parse_when(since, "--since"), parse_when(until, "--until"), topic=topic
    )
    archive = open_archive(db, read_only=True)
    require_outlet(archive, outlet)
    require_topic(archive, topic)
    try:
        with archive.sessions() as session:
            hits = search(session, query, filters, limit, all_copies=all_copies)
    except SearchError as exc:
        raise fail(str(exc)) from None
    finally:
        archive.dispose()
    if as_json:
        sys.stdout.write(json.dumps([h.as_dict() for h in hits], ensure_ascii=False, indent=2))
        sys.stdout.write("\n")
        return
    if not hits:
        err.print(escape(f"no article matches {query!r}"), highlight=False)
        return
    style = "bold yellow" if out.is_terminal else None
    for position, hit in enumerate(hits, 1):
        title = printable(hit.title, lines=False)
        out.print(Text(f"{position:>2}. ").append(title, style="bold"), soft_wrap=True)
        when = published_label(hit.published_at, hit.published_date, hit.published_precision)
        where = f"{hit.outlet} · {when} · #{hit.id} · {hit.url}"
        if hit.copies and not all_copies:
            where += f" · +{hit.copies} {'copy' if hit.copies == 1 else 'copies'}"
        out.print(Text("    " + printable(where, lines=False), style="dim"), soft_wrap=True)
        snippet = marked(printable(hit.snippet, lines=False), style)
        out.print(Text("    ").append_text(snippet), soft_wrap=True)


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
    check_sources(sources)
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    from sqlalchemy import func, select

    from crawler.db.models import Article, Source
    from crawler.read.export import (
        ArticleFilter,
        iter_records,
        write_csv,
        write_jsonl,
        write_parquet,
    )

    if format not in ("jsonl", "csv", "parquet"):
        raise fail(f"--format {format!r}: choose jsonl, csv or parquet")
    if format == "parquet" and output is None:
        raise fail("--format parquet needs -o FILE")
    if output is not None:
        refuse_archive_as_output(output, db)
    filters = ArticleFilter(
        outlet, parse_when(since, "--since"), parse_when(until, "--until"), topic=topic
    )
    archive = open_archive(db, read_only=True)
    require_outlet(archive, outlet)
    require_topic(archive, topic)
    try:
        with (
            archive.sessions() as session,
            written_atomically(output) if output else contextlib.nullcontext() as partial,
        ):
            total = session.scalar(
                filters.apply(
                    select(func.count(Article.id)).join(Source, Source.id == Article.source_id)
                )
            )
            records = iter_records(session, filters, as_text=format != "parquet")
            show = output is not None and err.is_terminal
            with Progress(
                TextColumn("exporting"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=err,
                disable=not show,
            ) as bar:
                task = bar.add_task("export", total=total)

                def tick() -> None:
                    bar.advance(task)

                if format == "parquet":
                    assert partial is not None
                    count = write_parquet(records, str(partial), tick)
                else:
                    with (
                        partial.open("w", encoding="utf-8", newline="")
                        if partial
                        else contextlib.nullcontext(sys.stdout)
                    ) as stream:
                        writer = write_jsonl if format == "jsonl" else write_csv
                        count = writer(records, stream, tick)
    except BrokenPipeError:
        raise  # the reader (`| head`) has stopped reading: the command stops quietly
    except OSError as exc:
        raise fail(f"cannot write {output}: {exc.strerror or exc}") from None
    finally:
        archive.dispose()
    if output is not None:
        err.print(f"exported {count} articles to {output}")
