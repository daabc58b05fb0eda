"""The `crawler` command: crawl, export, inspect and operate the archive."""

from __future__ import annotations

import contextlib
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from crawler.config import ConfigError, SourcesFile, database_url, load_sources, sources_path

app = typer.Typer(
    help="Archive news outlets: crawl them, keep every version, query the archive.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="Manage the archive database.", no_args_is_help=True)
app.add_typer(db_app, name="db")

out = Console()
err = Console(stderr=True)

DbOption = Annotated[
    str | None,
    typer.Option(
        "--db",
        help="SQLAlchemy URL of the archive (env CRAWLER_DATABASE_URL; "
        "default sqlite:///data/archive.db).",
        show_default=False,
    ),
]
SourcesOption = Annotated[
    Path | None,
    typer.Option(
        "--sources",
        help="Sources file (env CRAWLER_SOURCES; default: the bundled crawler/sources.toml).",
        show_default=False,
    ),
]


def fail(message: str, code: int = 2) -> typer.Exit:
    err.print(f"[red]error:[/] {message}", highlight=False)
    return typer.Exit(code)


def _sources(path: Path | None) -> SourcesFile:
    try:
        return load_sources(sources_path(path))
    except ConfigError as exc:
        raise fail(str(exc)) from None


def _archive(db: str | None, migrate: bool | None = None) -> Any:
    from crawler.db.session import Archive

    try:
        return Archive(database_url(db), migrate=migrate)
    except ConfigError as exc:
        raise fail(str(exc)) from None
    except Exception as exc:  # a server that is down, a file that is not a database, ...
        raise fail(f"cannot open the archive {database_url(db)!r}: {exc}") from None


def parse_when(value: str | None, option: str) -> datetime | None:
    """A --since/--until value: an ISO date or date-time (UTC when no offset is given)."""
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise fail(f"{option} {value!r} is not a date like 2024-07-19") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@app.command()
def crawl(
    source: Annotated[list[str] | None, typer.Argument(help="Sources to crawl.")] = None,
    all_sources: Annotated[bool, typer.Option("--all", help="Crawl every enabled source.")] = False,
    refresh: Annotated[
        bool, typer.Option("--refresh", help="Re-fetch known articles (conditionally).")
    ] = False,
    progress: Annotated[bool, typer.Option(help="Live progress display.")] = True,
    setting: Annotated[
        list[str] | None,
        typer.Option("--set", "-s", help="Scrapy setting NAME=VALUE (repeatable)."),
    ] = None,
    db: DbOption = None,
    sources: SourcesOption = None,
) -> None:
    """Crawl sources once, with a live progress display and a summary at the end."""
    from crawler.progress import LiveBoard, summary_table
    from crawler.runner import crawl_settings, run_crawls

    config = _sources(sources)
    if all_sources == bool(source):
        raise fail("name the sources to crawl, or give --all (not both)")
    try:
        chosen = config.enabled() if all_sources else config.select(source or [])
    except ConfigError as exc:
        raise fail(str(exc)) from None
    if not chosen:
        raise fail(f"{config.path}: no enabled source")
    archive = _archive(db)  # migrate (SQLite) or refuse before any spider starts
    archive.dispose()
    overrides: dict[str, Any] = {}
    for pair in setting or []:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise fail(f"--set {pair!r}: expected NAME=VALUE")
        overrides[name.strip()] = value
    live = progress and err.is_terminal
    board = LiveBoard(err, [s.name for s in chosen]) if live else None
    if board is not None:
        overrides["CRAWLER_PROGRESS_BOARD"] = board
        overrides["LOG_LEVEL"] = "WARNING"
    settings = crawl_settings(database_url(db), config.path, overrides=overrides)
    with board if board is not None else contextlib.nullcontext():
        summaries = run_crawls(chosen, settings, refresh=refresh)
    out.print(summary_table(summaries))
    for summary in summaries:
        if summary.error_log:
            first = summary.error_log.splitlines()[:5]
            err.print(f"[bold]{summary.source}[/]: " + "\n  ".join(first), highlight=False)
    if any(s.status != "finished" for s in summaries):
        raise typer.Exit(1)


@app.command()
def export(
    format: Annotated[str, typer.Option("--format", "-f", help="jsonl, csv or parquet.")] = "jsonl",
    output: Annotated[
        Path | None, typer.Option("-o", "--output", help="File (default stdout).")
    ] = None,
    outlet: Annotated[str | None, typer.Option(help="Only this outlet.")] = None,
    since: Annotated[str | None, typer.Option(help="Published on or after (ISO date).")] = None,
    until: Annotated[str | None, typer.Option(help="Published before (ISO date).")] = None,
    db: DbOption = None,
) -> None:
    """Write the archive's articles, one per line (JSONL, CSV) or row (Parquet)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    from sqlalchemy import func, select

    from crawler.db.models import Article, Source
    from crawler.export import ArticleFilter, iter_records, write_csv, write_jsonl, write_parquet

    if format not in ("jsonl", "csv", "parquet"):
        raise fail(f"--format {format!r}: choose jsonl, csv or parquet")
    if format == "parquet" and output is None:
        raise fail("--format parquet needs -o FILE")
    filters = ArticleFilter(outlet, parse_when(since, "--since"), parse_when(until, "--until"))
    archive = _archive(db)
    try:
        with archive.sessions() as session:
            total = session.scalar(
                filters.apply(
                    select(func.count(Article.id)).join(Source, Source.id == Article.source_id)
                )
            )
            records = iter_records(session, filters)
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
                    assert output is not None
                    count = write_parquet(records, str(output), tick)
                else:
                    with (
                        output.open("w", encoding="utf-8", newline="")
                        if output
                        else contextlib.nullcontext(sys.stdout)
                    ) as stream:
                        writer = write_jsonl if format == "jsonl" else write_csv
                        count = writer(records, stream, tick)
    finally:
        archive.dispose()
    if output is not None:
        err.print(f"exported {count} articles to {output}")


@app.command("sources")
def list_sources(db: DbOption = None, sources: SourcesOption = None) -> None:
    """The configured sources with their last run."""
    from crawler.runner import last_runs

    config = _sources(sources)
    archive = _archive(db)
    try:
        runs = last_runs(archive)
    finally:
        archive.dispose()
    table = Table(title=f"sources ({config.path})")
    for column in ("source", "enabled", "base_url", "every", "last run", "status", "new"):
        table.add_column(column)
    for source in config.sources.values():
        run = runs.get(source.name)
        table.add_row(
            source.name,
            "yes" if source.enabled else "no",
            source.base_url,
            source.cron or str(source.every),
            run.started_at.strftime("%Y-%m-%d %H:%M UTC") if run else "never",
            run.status if run else "-",
            str(run.articles_new) if run else "-",
        )
    out.print(table)


@db_app.command("upgrade")
def db_upgrade(
    revision: Annotated[str, typer.Argument(help="Target revision.")] = "head",
    db: DbOption = None,
) -> None:
    """Create or migrate the archive's schema (SQLite or PostgreSQL)."""
    from crawler.db.session import current_revision, make_engine, upgrade

    url = database_url(db)
    try:
        engine = make_engine(url)
        upgrade(engine, revision)
        now = current_revision(engine)
        engine.dispose()
    except ConfigError as exc:
        raise fail(str(exc)) from None
    except Exception as exc:
        raise fail(f"cannot migrate {url!r}: {exc}") from None
    out.print(f"archive at revision {now}")


@app.command()
def demo(
    db: Annotated[
        str | None,
        typer.Option("--db", help="Archive URL (default: a fresh temporary SQLite file)."),
    ] = None,
) -> None:
    """Serve the bundled offline mirror of the outlets, crawl it and show what was archived."""
    from crawler.demo import run_demo

    with tempfile.TemporaryDirectory(prefix="crawler-demo-") as tmp:
        url = db or f"sqlite:///{Path(tmp) / 'demo.db'}"
        code = run_demo(url, Path(tmp), out, err)
    raise typer.Exit(code)


# --- scheduler commands (issue 4) ---


# --- query commands (issue 5) ---


def main() -> None:
    app()


if __name__ == "__main__":
    main()
