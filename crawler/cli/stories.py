"""`crawler stories` (one story across outlets), `stories rebuild` and `crawler changes`."""

from __future__ import annotations

import json
import sys
from datetime import date, datetime
from typing import Annotated, Any

import typer
from rich.text import Text

from crawler.cli.common import (
    DbOption,
    SourcesOption,
    app,
    check_sources,
    err,
    open_archive,
    out,
    parse_instant,
    parse_when,
    progress_bar,
    require_outlet,
    require_topic,
)
from crawler.config import parse_duration

stories_app = typer.Typer(
    help="Stories: articles of one or more outlets about the same event.",
    invoke_without_command=True,
)
app.add_typer(stories_app, name="stories")


def _back(value: str) -> datetime | None:
    """A duration (2d, 12h) as the moment that long ago; None for anything else."""
    try:
        back = parse_duration(value)
    except ValueError:
        return None
    from crawler.db.models import utcnow

    return utcnow() - back


def moment(value: str | None, option: str) -> date | datetime | None:
    """A --since/--until of stories: a duration back from now (2d, 12h), or as every command
    reads it (a local day, inclusive, or a timestamp)."""
    if value is None:
        return None
    return _back(value) or parse_when(value, option)


def instant(value: str, option: str) -> datetime:
    """--since of changes (when edits were made): a duration back from now, a timestamp, or a
    day from its start in UTC."""
    start = _back(value) or parse_instant(value, option)
    assert start is not None
    return start


def _day(value: Any) -> str:
    return value.strftime("%Y-%m-%d %H:%M") if value else "-"


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
    check_sources(sources)
    from crawler.stories.queries import StoryFilter, list_stories

    filters = StoryFilter(
        since=moment(since, "--since"),
        until=moment(until, "--until"),
        topic=topic,
        outlet=outlet,
        min_outlets=min_outlets,
    )
    archive = open_archive(db)
    require_outlet(archive, outlet)
    require_topic(archive, topic)
    try:
        with archive.sessions() as session:
            found = list_stories(session, filters, limit)
    finally:
        archive.dispose()
    if as_json:
        sys.stdout.write(json.dumps([s.as_dict() for s in found], ensure_ascii=False, indent=2))
        sys.stdout.write("\n")
        return
    if not found:
        err.print("no story matches", highlight=False)
        return
    for story in found:
        out.print(Text(f"#{story.id} ", style="dim").append(story.label, style="bold"))
        span = f"{_day(story.first_published_at)} .. {_day(story.last_published_at)} UTC"
        summary = (
            f"    {story.article_count} articles, {story.outlet_count} "
            f"outlet{'s' if story.outlet_count != 1 else ''} "
            f"({', '.join(story.outlets)}); first: {story.first_reporter}; {span}"
        )
        out.print(Text(summary, style="dim"), soft_wrap=True)
        for article in story.articles:
            copy = f" (copy of #{article.reprint_of})" if article.reprint_of else ""
            line = f"    {_day(article.published_at)}  {article.outlet:<16} #{article.id} "
            out.print(Text(line).append(article.title).append(copy, style="dim"), soft_wrap=True)


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
    check_sources(sources)
    from crawler.stories.changes import changes_since

    start = instant(since, "--since")
    archive = open_archive(db)
    require_outlet(archive, outlet)
    require_topic(archive, topic)
    try:
        with archive.sessions() as session:
            edits = changes_since(session, start, outlet, topic, limit)
    finally:
        archive.dispose()
    if as_json:
        sys.stdout.write(json.dumps([e.as_dict() for e in edits], ensure_ascii=False, indent=2))
        sys.stdout.write("\n")
        return
    if not edits:
        err.print(f"no article was edited since {start:%Y-%m-%d %H:%M} UTC", highlight=False)
        return
    styles = {"-": "red strike", "+": "green", "=": ""}
    for edit in edits:
        head = Text(f"{_day(edit.changed_at)}  {edit.outlet}  #{edit.article_id} ", style="dim")
        out.print(head.append(edit.title, style="bold"), soft_wrap=True)
        out.print(
            Text(f"    v{edit.from_version} -> v{edit.to_version}  {edit.url}", style="dim"),
            soft_wrap=True,
        )
        for change in edit.fields:
            line = Text(f"    {change.field}: ")
            for run in change.words:
                text = run.text
                if not out.is_terminal and run.op != "=":
                    text = f"[-{text}-]" if run.op == "-" else f"{{+{text}+}}"
                line.append(text + " ", style=styles[run.op])
            out.print(line, soft_wrap=True)
