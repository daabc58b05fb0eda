"""`crawler topics`: tag the archive's articles with topics."""

from __future__ import annotations

import typer
from rich.table import Table

from crawler.cli.common import (
    DbOption,
    SourcesOption,
    TopicsOption,
    app,
    check_sources,
    err,
    fail,
    open_archive,
    out,
)
from crawler.config import ConfigError

topics_app = typer.Typer(help="Tag the archive's articles with topics.", no_args_is_help=True)
app.add_typer(topics_app, name="topics")


@topics_app.command("apply")
def topics_apply(
    topics: TopicsOption = None, db: DbOption = None, sources: SourcesOption = None
) -> None:
    """Re-tag every archived article with the topics file's topics (idempotent)."""
    check_sources(sources)
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
    from sqlalchemy import func, select

    from crawler.db.models import Article
    from crawler.topics import apply_topics, load_topics

    try:
        loaded = load_topics(topics)
    except ConfigError as exc:
        raise fail(str(exc)) from None
    archive = open_archive(db)
    try:
        with archive.sessions() as session:
            total = session.scalar(select(func.count(Article.id))) or 0
        with Progress(
            TextColumn("tagging"),
            BarColumn(),
            MofNCompleteColumn(),
            console=err,
            disable=not err.is_terminal,
            transient=True,
        ) as bar:
            task = bar.add_task("tagging", total=total)

            def advance(articles: int) -> None:
                bar.advance(task, articles)

            report = apply_topics(archive.sessions, loaded, progress=advance)
    finally:
        archive.dispose()
    table = Table(title=f"topics ({loaded.path})", title_justify="left")
    for column in ("topic", "articles", "added", "removed"):
        table.add_column(column, justify="left" if column == "topic" else "right")
    for name, counts in report.topics.items():
        table.add_row(name, str(counts.tagged), str(counts.added), str(counts.removed))
    for name, untagged in report.dropped.items():
        table.add_row(f"{name} (no longer in the file)", "0", "0", str(untagged))
    out.print(table)
    out.print(f"{report.articles} articles read")
