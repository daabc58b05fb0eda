"""What the query commands do, written without typer and SQLAlchemy.

Each function here is a query command's whole work once its options are parsed: typer's
commands (crawler/cli/query.py, schedule.py, sources.py, stories.py) call it, and so does
crawler/cli/quick.py, which parses the same options itself so that a query does not import
typer. The archive is read through crawler/db/reader.py; SQLAlchemy (crawler/db/session.py) is
imported only when that cannot open it: another form of URL, a file or schema to create or
migrate, or an archive that fails and whose error SQLAlchemy words.
"""

from __future__ import annotations

import json
import os
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from crawler.cli.output import (
    check_sources,
    err,
    fail,
    open_archive,
    out,
    parse_instant,
    parse_when,
    sources_file,
)
from crawler.config import ConfigError, database_url, load_sources, sources_path
from crawler.db.reader import Reader, Unreadable, sqlite_path


def open_reader(
    db: str | None,
    *,
    read_only: bool = True,
    outlet: str | list[str] | None = None,
    topic: str | None = None,
) -> Reader:
    """The archive the options name, read through its driver; through SQLAlchemy (which
    migrates it, or says in one line why it cannot be used) when the short way cannot open it.
    It must hold the `outlet`(s) and `topic` named, else the command fails naming them.

    A command that writes (not `read_only`) also needs an archive it can write to."""
    reader = _open_reader(db, read_only)
    require_known(reader, "outlet", "sources", outlet)
    require_known(reader, "topic", "topics", topic)
    return reader


def _open_reader(db: str | None, read_only: bool) -> Reader:
    url = database_url(db)
    path = sqlite_path(url)
    if not read_only and path is not None and not _writable(path):
        return _archive_reader(db, read_only)  # which says why, as every command does
    try:
        reader = Reader.connect(url)
    except Unreadable:
        return _archive_reader(db, read_only)
    if not read_only:
        try:
            refused = reader.write_refusal() is not None
        except Exception:
            refused = True
        if refused:
            reader.close()
            return _archive_reader(db, read_only)  # which says why, as every command does
    return reader


def _writable(path: Path) -> bool:
    """Whether a SQLite archive's file and its folder (its journal's) can be written."""
    return os.access(path, os.W_OK) and os.access(path.parent, os.W_OK)


def _archive_reader(db: str | None, read_only: bool) -> Reader:
    archive = open_archive(db, read_only=read_only)
    session = archive.sessions()

    def close() -> None:
        session.close()
        archive.dispose()

    try:
        return Reader.of(session, close)
    except BaseException:
        close()
        raise


def require_known(reader: Reader, kind: str, table: str, value: str | list[str] | None) -> None:
    """Fail naming `value` (or the first of several) when the archive holds no such outlet
    or topic (`table`: sources or topics)."""
    if not value:
        return
    names = reader.column(f"SELECT name FROM {table} ORDER BY name")
    for wanted in [value] if isinstance(value, str) else value:
        if wanted not in names:
            reader.close()
            known = ", ".join(names) or "none"
            raise fail(f"no {kind} {wanted!r} in the archive ({kind}s: {known})")


def stats(topic: str | None, as_json: bool, db: str | None, sources: Path | None) -> None:
    """`crawler stats`."""
    check_sources(sources)
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from crawler.read.stats import collect_stats, day_label, sparkline
    from crawler.topics import load_topics

    try:
        fingerprints = {n: t.fingerprint for n, t in load_topics().topics.items()}
    except ConfigError as exc:
        err.print(escape(f"warning: {exc}"), highlight=False, soft_wrap=True)
        fingerprints = None
    reader = open_reader(db, topic=topic)
    try:
        figures = collect_stats(reader, topic=topic, fingerprints=fingerprints)
    finally:
        reader.close()
    if as_json:
        sys.stdout.write(json.dumps(figures.as_dict(), ensure_ascii=False, indent=2) + "\n")
        return
    days = f"articles per day {figures.days[0]} .. {figures.days[-1]}"
    title = f"outlets{f' (topic {topic})' if topic else ''}; {days}"
    table = Table(title=title, title_justify="left")
    for column in ("outlet", "articles", "oldest", "newest", "last 30 days", "last run"):
        table.add_column(column, justify="right" if column == "articles" else "left", no_wrap=True)
    for outlet in figures.outlets:
        run = outlet.last_run
        table.add_row(
            outlet.outlet,
            str(outlet.articles),
            day_label(outlet.oldest),
            day_label(outlet.newest),
            f"{sparkline(list(outlet.per_day.values()))} {outlet.recent}",
            f"{run.started_at:%Y-%m-%d %H:%M} {run.status}" if run else "never",
        )
    # A pipe gets the whole table rather than one cut to 80 columns.
    console = out if out.is_terminal else Console(width=max(out.width, 120), emoji=False)
    console.print(table)
    topics_table = Table(title="topics", title_justify="left")
    topics_table.add_column("topic")
    topics_table.add_column("articles", justify="right")
    for row in figures.topics:
        note = " (tags out of date: run `crawler topics apply`)" if row.up_to_date is False else ""
        topics_table.add_row(row.topic + note, str(row.articles))
    out.print(topics_table)


def runs(
    source: str | None, limit: int, as_json: bool, db: str | None, sources: Path | None
) -> None:
    """`crawler runs`."""
    from rich.table import Table

    from crawler.scheduler.display import format_duration, format_time
    from crawler.scheduler.health import known_source_names, recent_runs

    reader = open_reader(db)
    try:
        records = recent_runs(reader, source, limit)
        known = known_source_names(reader)
    finally:
        reader.close()
    if source is not None and not records and source not in known:
        try:
            configured = set(load_sources(sources_path(sources)).sources)
        except ConfigError:
            configured = set()
        if source not in configured:
            names = ", ".join(sorted(known | configured)) or "none"
            raise fail(f"no source named {source!r} (sources: {names})")
    if as_json:
        sys.stdout.write(json.dumps(records, indent=2, ensure_ascii=False) + "\n")
        return
    table = Table(title="crawl runs, newest first")
    for column in ("run", "source", "trigger", "started", "took", "status"):
        table.add_column(column)
    for column in ("pages", "new", "updated", "errors"):
        table.add_column(column, justify="right")
    table.add_column("walk")
    for record in records:
        took = record["duration_seconds"]
        table.add_row(
            str(record["id"]),
            record["source"],
            record["trigger"],
            format_time(datetime.fromisoformat(record["started_at"])),
            format_duration(timedelta(seconds=took)) if took is not None else "-",
            record["status"],
            str(record["pages"]),
            str(record["articles_new"]),
            str(record["articles_updated"]),
            str(record["errors"]),
            record["walk"] or "-",
        )
    out.print(table)


def list_sources(as_json: bool, db: str | None, sources: Path | None) -> None:
    """`crawler sources` without a subcommand."""
    from rich.table import Table

    from crawler.scheduler.display import format_time
    from crawler.scheduler.health import source_states
    from crawler.scheduler.jobs import schedule_description

    config = sources_file(sources)
    reader = open_reader(db)
    try:
        states = source_states(reader, list(config.sources.values()))
    finally:
        reader.close()
    if as_json:
        sys.stdout.write(json.dumps([state.record() for state in states], indent=2) + "\n")
        return
    table = Table(title=f"sources ({config.path})")
    for column in (
        "source",
        "enabled",
        "schedule",
        "next run",
        "last run",
        "status",
        "new",
        "last new article",
        "base_url",
    ):
        table.add_column(column)
    for state in states:
        source, run = state.source, state.last_run
        table.add_row(
            source.name,
            "yes" if source.enabled else "no",
            schedule_description(source),
            format_time(state.next_run) if source.enabled else "-",
            format_time(run.started_at) if run else "never",
            run.status if run else "-",
            str(run.articles_new) if run else "-",
            format_time(state.last_new_article),
            source.base_url,
        )
    out.print(table)


def export(
    format: str,
    output: Path | None,
    outlet: list[str] | None,
    since: str | None,
    until: str | None,
    topic: str | None,
    db: str | None,
    sources: Path | None,
) -> None:
    """`crawler export`."""
    check_sources(sources)
    import contextlib

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from crawler.cli.output import refuse_archive_as_output, written_atomically
    from crawler.read.export import (
        ArticleFilter,
        count_articles,
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
    reader = open_reader(db, outlet=outlet, topic=topic)
    records = None
    try:
        with written_atomically(output) if output else contextlib.nullcontext() as partial:
            total = count_articles(reader, filters)
            records = iter_records(reader, filters, as_text=format != "parquet")
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
        if records is not None:
            records.close()  # its cursor, while the connection is open (a reader that stopped)
        reader.close()
    if output is not None:
        err.print(f"exported {count} articles to {output}")


def _back(value: str) -> datetime | None:
    """A duration (2d, 12h) as the moment that long ago; None for anything else."""
    from crawler.config import parse_duration

    try:
        back = parse_duration(value)
    except ValueError:
        return None
    return datetime.now(UTC) - back


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


def stories(
    since: str | None,
    until: str | None,
    topic: str | None,
    outlet: str | None,
    min_outlets: int,
    limit: int,
    as_json: bool,
    db: str | None,
    sources: Path | None,
) -> None:
    """`crawler stories` without a subcommand."""
    check_sources(sources)
    from rich.text import Text

    from crawler.stories.queries import StoryFilter, list_stories

    filters = StoryFilter(
        since=moment(since, "--since"),
        until=moment(until, "--until"),
        topic=topic,
        outlet=outlet,
        min_outlets=min_outlets,
    )
    reader = open_reader(db, read_only=False, outlet=outlet, topic=topic)
    try:
        found = list_stories(reader, filters, limit)
    finally:
        reader.close()
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


def changes(
    since: str,
    outlet: str | None,
    topic: str | None,
    limit: int,
    as_json: bool,
    db: str | None,
    sources: Path | None,
) -> None:
    """`crawler changes`."""
    check_sources(sources)
    from rich.text import Text

    from crawler.stories.changes import changes_since

    start = instant(since, "--since")
    reader = open_reader(db, read_only=False, outlet=outlet, topic=topic)
    try:
        edits = changes_since(reader, start, outlet, topic, limit)
    finally:
        reader.close()
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


def search(
    query: str,
    outlet: list[str] | None,
    since: str | None,
    until: str | None,
    topic: str | None,
    limit: int,
    as_json: bool,
    all_copies: bool,
    db: str | None,
    sources: Path | None,
) -> None:
    """`crawler search`."""
    check_sources(sources)
    from rich.markup import escape
    from rich.text import Text

    from crawler.cli.output import marked
    from crawler.read.export import ArticleFilter
    from crawler.read.search import SearchError
    from crawler.read.search import search as ranked
    from crawler.read.terminal import printable, published_label

    filters = ArticleFilter(
        outlet, parse_when(since, "--since"), parse_when(until, "--until"), topic=topic
    )
    reader = open_reader(db, outlet=outlet, topic=topic)
    try:
        hits = ranked(reader, query, filters, limit, all_copies=all_copies)
    except SearchError as exc:
        raise fail(str(exc)) from None
    finally:
        reader.close()
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


def show(ref: str, as_json: bool, db: str | None, sources: Path | None) -> None:
    """`crawler show`."""
    check_sources(sources)
    from crawler.read.show import MAX_ID, article_history, find_article_id, is_article_id

    url = ref.strip().lower().startswith(("http://", "https://"))
    if is_article_id(ref) and int(ref) > MAX_ID:
        raise fail(f"no article has id {ref.strip()}: ids go up to {MAX_ID}")
    if not url and not is_article_id(ref):
        raise fail(f"{ref!r} is neither an article id nor a URL")
    reader = open_reader(db)
    try:
        found = find_article_id(reader, ref)
        history = article_history(reader, found) if found is not None else None
    finally:
        reader.close()
    if history is None:
        if is_article_id(ref):
            raise fail(f"no article with id {ref.strip()}", 1)
        raise fail(f"no article with URL {ref.strip()!r}", 1)
    if as_json:
        sys.stdout.write(json.dumps(history, ensure_ascii=False, indent=2) + "\n")
    else:
        from crawler.read.show import print_history

        print_history(out, history)
