"""`crawler stories` (one story across outlets), `stories rebuild` and `crawler changes`."""

from __future__ import annotations

from typing import Annotated

import typer

from crawler.cli.common import (
    DbOption,
    SourcesOption,
    app,
    check_sources,
    err,
    open_archive,
    out,
    progress_bar,
)

stories_app = typer.Typer(
    help="Stories: articles of one or more outlets about the same event.",
    invoke_without_command=True,
)
app.add_typer(stories_app, name="stories")


@stories_app.callback()
def stories(
    ctx: typer.Context,
    since: Annotated[
        str | None, typer.Option(help="Stories reported on or after (ISO date, or 2d, 12h ago).")
    ] = None,
    until: Annotated[
        str | None,
        typer.Option(help="Stories begun on or before (a date, inclusive) or before (a time, 2d)."),
    ] = None,
    topic: Annotated[
        str | None, typer.Option(help="Stories with an article tagged with this topic.")
    ] = None,
    outlet: Annotated[str | None, typer.Option(help="Stories this outlet reported.")] = None,
    min_outlets: Annotated[
        int, typer.Option("--min-outlets", min=1, help="Stories reported by N outlets or more.")
    ] = 1,
    limit: Annotated[int, typer.Option(min=1, max=10000, help="At most this many stories.")] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="Print the stories as JSON.")] = False,
    db: DbOption = None,
    sources: SourcesOption = None,
) -> None:
    """Stories of two articles or more, newest first: outlets, articles, first reporter, span."""
    if ctx.invoked_subcommand is not None:
        return
    from crawler.cli.querying import stories as listed

    listed(since, until, topic, outlet, min_outlets, limit, as_json, db, sources)


@stories_app.command("rebuild")
def stories_rebuild(db: DbOption = None, sources: SourcesOption = None) -> None:
    """Recompute every article's signature, copies and story from the archived texts."""
    check_sources(sources)
    from sqlalchemy import func, select

    from crawler.db.models import Article, ArticleSignature, Story
    from crawler.stories import rebuild

    archive = open_archive(db)
    try:
        with archive.sessions() as session:
            total = session.scalar(select(func.count(Article.id))) or 0
        with progress_bar("indexing", err.is_terminal) as bar:
            task = bar.add_task("indexing", total=total)

            def advance() -> None:
                bar.advance(task)

            articles = rebuild(archive, tick=advance)
        with archive.sessions() as session:
            copies = session.scalar(
                select(func.count()).where(ArticleSignature.reprint_of.is_not(None))
            )
            stories_found = session.scalar(select(func.count(Story.id)))
    finally:
        archive.dispose()
    out.print(f"{articles} articles indexed: {copies} copies, {stories_found} stories")


@app.command("changes")
def changes(
    since: Annotated[
        str, typer.Option(help="Edits made since: a duration back from now (2d, 12h) or a date.")
    ] = "7d",
    outlet: Annotated[str | None, typer.Option(help="Only this outlet.")] = None,
    topic: Annotated[str | None, typer.Option(help="Only articles tagged with this topic.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=10000, help="At most this many edits.")] = 100,
    as_json: Annotated[bool, typer.Option("--json", help="Print the edits as JSON.")] = False,
    db: DbOption = None,
    sources: SourcesOption = None,
) -> None:
    """Every article edited since then, across outlets, with a word diff; newest first."""
    from crawler.cli.querying import changes as edits

    edits(since, outlet, topic, limit, as_json, db, sources)
