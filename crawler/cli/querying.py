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
import sys
from datetime import datetime, timedelta
from pathlib import Path

from crawler.cli.output import check_sources, err, fail, open_archive, out, sources_file
from crawler.config import ConfigError, database_url, load_sources, sources_path
from crawler.db.reader import Reader, Unreadable


def open_reader(db: str | None, *, read_only: bool = True) -> Reader:
    """The archive the options name, read through its driver; through SQLAlchemy (which
    migrates it, or says in one line why it cannot be used) when the short way cannot open it.

    A command that writes (not `read_only`) also needs an archive it can write to."""
    try:
        reader = Reader.connect(database_url(db))
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


def require_outlet(reader: Reader, outlet: str | list[str] | None) -> None:
    require_known(reader, "outlet", "sources", outlet)


def require_topic(reader: Reader, topic: str | None) -> None:
    require_known(reader, "topic", "topics", topic)


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
    reader = open_reader(db)
    require_topic(reader, topic)
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
    console = out if out.is_terminal else Console(width=max(out.width, 120))
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
