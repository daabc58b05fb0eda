"""The `crawler` command: crawl, export, inspect and operate the archive."""

from __future__ import annotations

import contextlib
import sys
import tempfile
from datetime import UTC, datetime, timedelta
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
    err.print(f"[red]error:[/] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


def _sources(path: Path | None) -> SourcesFile:
    try:
        return load_sources(sources_path(path))
    except ConfigError as exc:
        raise fail(str(exc)) from None


def _check_sources(path: Path | None) -> None:
    """A --sources file given to a command that does not crawl is still checked."""
    if path is not None:
        _sources(path)


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
    run_id: Annotated[
        int | None, typer.Option("--run-id", hidden=True, help="The scheduler's crawl_runs row.")
    ] = None,
    parent_pid: Annotated[
        int | None, typer.Option("--parent-pid", hidden=True, help="The scheduler's pid.")
    ] = None,
) -> None:
    """Crawl sources once, with a live progress display and a summary at the end."""
    from crawler.progress import LiveBoard, summary_table
    from crawler.runner import RunSummary, crawl_settings, run_crawls
    from crawler.scheduler.display import format_time
    from crawler.scheduler.lease import CrawlLeases

    config = _sources(sources)
    if all_sources == bool(source):
        raise fail("name the sources to crawl, or give --all (not both)")
    try:
        chosen = config.enabled() if all_sources else config.select(source or [])
    except ConfigError as exc:
        raise fail(str(exc)) from None
    if not chosen:
        raise fail(f"{config.path}: no enabled source")
    _check_topics()  # the store pipeline reads the topics file: refuse a broken one up front
    if parent_pid is not None:
        from crawler.scheduler.child import die_with_parent

        die_with_parent(parent_pid)  # a scheduled run: stop when the scheduler dies
    if run_id is not None and len(chosen) != 1:
        raise fail("--run-id goes with exactly one source")
    archive = _archive(db)  # migrate (SQLite) or refuse before any spider starts
    archive.dispose()  # (used again, reconnecting, only for a manual crawl's leases)
    overrides: dict[str, Any] = {} if run_id is None else {"CRAWLER_RUN_ID": run_id}
    for pair in setting or []:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise fail(f"--set {pair!r}: expected NAME=VALUE")
        overrides[name.strip()] = value
    settings = crawl_settings(database_url(db), config.path, overrides=overrides)
    # A scheduled run's lease is its scheduler's; a manual crawl takes its sources' leases.
    leases = None
    if run_id is None:
        ttl = timedelta(seconds=settings.getfloat("CRAWLER_LEASE_TTL"))
        leases = CrawlLeases(archive, ttl)
        settings.set("CRAWLER_LEASE_HOLDER", leases.holder, priority="cmdline")
    try:
        busy = leases.acquire([s.name for s in chosen]) if leases is not None else {}
        for name, held in busy.items():
            run = f", run {held.run_id}" if held.run_id else ""
            err.print(
                f"[bold]{name}[/]: not crawled: running elsewhere (lease held by {held.holder}"
                f"{run} until {format_time(held.expires_at)})",
                highlight=False,
            )
        chosen = [s for s in chosen if s.name not in busy]
        board = LiveBoard(err, [s.name for s in chosen]) if progress and err.is_terminal else None
        if board is not None:
            settings.set("CRAWLER_PROGRESS_BOARD", board, priority="cmdline")
            settings.set("LOG_LEVEL", "WARNING", priority="cmdline")
        summaries: list[RunSummary] = []
        if chosen:
            with board if board is not None else contextlib.nullcontext():
                summaries = run_crawls(chosen, settings, refresh=refresh)
    finally:
        if leases is not None:
            leases.release()
        archive.dispose()
    if summaries:
        out.print(summary_table(summaries))
    for summary in summaries:
        if summary.error_log:
            first = summary.error_log.splitlines()[:5]
            err.print(f"[bold]{summary.source}[/]: " + "\n  ".join(first), highlight=False)
    if busy or any(s.status != "finished" for s in summaries):
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
    topic: Annotated[str | None, typer.Option(help="Only articles tagged with this topic.")] = None,
    db: DbOption = None,
    sources: SourcesOption = None,
) -> None:
    """Write the archive's articles, one per line (JSONL, CSV) or row (Parquet)."""
    _check_sources(sources)
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    from sqlalchemy import func, select

    from crawler.db.models import Article, Source
    from crawler.export import ArticleFilter, iter_records, write_csv, write_jsonl, write_parquet

    if format not in ("jsonl", "csv", "parquet"):
        raise fail(f"--format {format!r}: choose jsonl, csv or parquet")
    if format == "parquet" and output is None:
        raise fail("--format parquet needs -o FILE")
    filters = ArticleFilter(
        outlet, parse_when(since, "--since"), parse_when(until, "--until"), topic=topic
    )
    archive = _archive(db)
    _require_topic(archive, topic)
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
    except OSError as exc:
        raise fail(f"cannot write {output}: {exc.strerror or exc}") from None
    finally:
        archive.dispose()
    if output is not None:
        err.print(f"exported {count} articles to {output}")


@app.command("sources")
def list_sources(
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON list.")] = False,
    db: DbOption = None,
    sources: SourcesOption = None,
) -> None:
    """The configured sources: schedule, next run, last run and the last new article."""
    import json

    from crawler.runner import last_runs
    from crawler.scheduler.display import format_time
    from crawler.scheduler.health import source_states
    from crawler.scheduler.jobs import schedule_description

    config = _sources(sources)
    archive = _archive(db)
    try:
        runs = last_runs(archive)
        with archive.sessions() as session:
            states = source_states(session, list(config.sources.values()), runs)
    finally:
        archive.dispose()
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


@db_app.command("upgrade")
def db_upgrade(
    revision: Annotated[str, typer.Argument(help="Target revision.")] = "head",
    db: DbOption = None,
    sources: SourcesOption = None,
) -> None:
    """Create or migrate the archive's schema (SQLite or PostgreSQL)."""
    _check_sources(sources)
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
    sources: SourcesOption = None,
) -> None:
    """Serve the bundled offline mirror of the outlets, crawl it and show what was archived."""
    _check_sources(sources)
    from crawler.demo import run_demo

    with tempfile.TemporaryDirectory(prefix="crawler-demo-") as tmp:
        url = db or f"sqlite:///{Path(tmp) / 'demo.db'}"
        try:
            code = run_demo(url, Path(tmp), out, err)
        except ConfigError as exc:
            raise fail(str(exc)) from None
    raise typer.Exit(code)


# --- scheduler commands (issue 4) ---


def _duration_option(value: str, option: str, *, zero: bool = False) -> timedelta:
    """A duration option such as '2m'; '0' too when `zero` is allowed."""
    from crawler.config import parse_duration

    if zero and value.strip() in ("0", "0s"):
        return timedelta(0)
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise fail(f"{option}: {exc}") from None


def _service_logging() -> None:
    """Timestamped (UTC) log lines on stderr, for a terminal or the journal alike."""
    import logging
    import os
    import time

    handler = logging.StreamHandler(sys.stderr)
    formatter = logging.Formatter(
        "%(asctime)sZ %(levelname)s %(message)s", datefmt="%Y-%m-%dT%H:%M:%S"
    )
    formatter.converter = time.gmtime
    handler.setFormatter(formatter)
    logging.basicConfig(
        level=os.environ.get("CRAWLER_LOG_LEVEL", "INFO").upper(), handlers=[handler], force=True
    )
    # the service logs what matters of APScheduler's events itself, in its own words
    logging.getLogger("apscheduler").setLevel(logging.ERROR)
    logging.getLogger("alembic").setLevel(logging.WARNING)


@app.command()
def schedule(
    grace_period: Annotated[
        str,
        typer.Option(
            help="On SIGTERM / Ctrl-C, how long running crawls may go on before they are stopped."
        ),
    ] = "2m",
    misfire_grace: Annotated[
        str,
        typer.Option(
            help="Runs missed while the service was down are caught up with one run "
            "at start-up when the last one was due at most this long ago."
        ),
    ] = "1h",
    retries: Annotated[
        int, typer.Option(min=0, help="How often a failed run is retried (0: never).")
    ] = 3,
    retry_delay: Annotated[
        str, typer.Option(help="Wait before the first retry; doubled for each further one.")
    ] = "5m",
    jitter: Annotated[
        str,
        typer.Option(help="Random delay of each run, at most a tenth of its interval (0: none)."),
    ] = "30s",
    lease_ttl: Annotated[
        str,
        typer.Option(
            help="A source's lease expires this long after its holder's last "
            "heartbeat (a dead scheduler's sources are taken over then)."
        ),
    ] = "2m",
    kill_after: Annotated[
        str, typer.Option(help="A crawl asked to stop is killed when still running this long.")
    ] = "15s",
    max_concurrent: Annotated[
        int, typer.Option(min=1, help="How many sources may run at the same time.")
    ] = 4,
    setting: Annotated[
        list[str] | None,
        typer.Option("--set", "-s", help="Scrapy setting NAME=VALUE for every crawl (repeatable)."),
    ] = None,
    db: DbOption = None,
    sources: SourcesOption = None,
) -> None:
    """Run the scheduler in the foreground: every enabled source on its interval or cron line.

    SIGHUP re-reads the sources file; SIGTERM or Ctrl-C stops taking new runs, lets running
    crawls finish within the grace period, then stops them.
    """
    from crawler.scheduler.service import SchedulerService, ServiceOptions

    config = _sources(sources)
    # the scheduler logs each run's start and summary; `-s LOG_LEVEL=INFO` for the crawls' own
    crawl_args = ["-s", "LOG_LEVEL=WARNING"]
    for pair in setting or []:
        name, sep, _ = pair.partition("=")
        if not sep or not name.strip():
            raise fail(f"--set {pair!r}: expected NAME=VALUE")
        crawl_args += ["-s", pair]
    options = ServiceOptions(
        db_url=database_url(db),
        sources_file=config.path.resolve(),
        grace_period=_duration_option(grace_period, "--grace-period", zero=True),
        misfire_grace=_duration_option(misfire_grace, "--misfire-grace"),
        retries=retries,
        retry_delay=_duration_option(retry_delay, "--retry-delay"),
        jitter=_duration_option(jitter, "--jitter", zero=True),
        lease_ttl=_duration_option(lease_ttl, "--lease-ttl"),
        kill_after=_duration_option(kill_after, "--kill-after", zero=True),
        max_concurrent=max_concurrent,
        crawl_args=tuple(crawl_args),
    )
    _archive(db).dispose()  # migrate (SQLite) or refuse an old schema before scheduling
    _service_logging()
    try:
        SchedulerService(options).serve()
    except ConfigError as exc:
        raise fail(str(exc)) from None


@app.command()
def runs(
    source: Annotated[str | None, typer.Option("--source", help="Only this source.")] = None,
    limit: Annotated[int, typer.Option(min=1, help="How many runs, newest first.")] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON list.")] = False,
    db: DbOption = None,
    sources: SourcesOption = None,
) -> None:
    """Recent crawl runs: status, duration, pages, new and updated articles, errors."""
    import json

    from crawler.scheduler.display import format_duration, format_time
    from crawler.scheduler.health import known_source_names, recent_runs

    archive = _archive(db)
    try:
        with archive.sessions() as session:
            records = recent_runs(session, source, limit)
            known = known_source_names(session)
    finally:
        archive.dispose()
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
        )
    out.print(table)


@app.command()
def health(
    failures: Annotated[
        int,
        typer.Option(min=1, help="Unhealthy when this many most recent runs all failed."),
    ] = 3,
    as_json: Annotated[bool, typer.Option("--json", help="Print the problems as JSON.")] = False,
    db: DbOption = None,
    sources: SourcesOption = None,
) -> None:
    """Exit 1 naming every enabled source whose last runs failed or that went stale
    (no new article for longer than its stale_after); exit 0 when all are well."""
    import json

    from crawler.scheduler.health import health_problems

    config = _sources(sources)
    archive = _archive(db)
    try:
        with archive.sessions() as session:
            problems = health_problems(session, config.enabled(), failures)
    finally:
        archive.dispose()
    if as_json:
        listed = [{"source": p.source, "problem": p.message} for p in problems]
        sys.stdout.write(json.dumps(listed, indent=2) + "\n")
    elif problems:
        for problem in problems:
            out.print(f"[red]unhealthy[/] {problem.source}: {problem.message}", highlight=False)
    else:
        out.print(f"healthy: {len(config.enabled())} enabled source(s)", highlight=False)
    if problems:
        raise typer.Exit(1)


# --- query commands (issue 5) ---

warc_app = typer.Typer(
    help="Exchange the archive's raw pages with other web archives (WARC 1.1).",
    no_args_is_help=True,
)
app.add_typer(warc_app, name="warc")

# How the counters of `warc import` and `reparse` are shown.
OUTCOME_LABELS = {
    "new": "new articles",
    "updated": "new versions",
    "unchanged": "unchanged",
    "older": "older captures (snapshot kept, text not)",
    "invalid": "no title or body (not archived)",
}


def _bar(label: str, enabled: bool) -> Any:
    """A rich progress bar on stderr (a no-op when not enabled)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(
        TextColumn(label),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        disable=not enabled,
        transient=True,
    )


def _counts_table(title: str, counts: dict[str, int]) -> Table:
    table = Table(title=title, title_justify="left")
    table.add_column("outcome")
    table.add_column("count", justify="right")
    for key in (*OUTCOME_LABELS, *sorted(set(counts) - set(OUTCOME_LABELS))):
        if counts.get(key):
            label = OUTCOME_LABELS.get(key) or (key if "/" in key else f"skipped: {key}")
            table.add_row(label, str(counts[key]))
    return table


def _require_known(archive: Any, kind: str, column: Any, value: str | None) -> None:
    """Fail naming `value` when the archive holds no such outlet or topic."""
    if value is None:
        return
    from rich.markup import escape
    from sqlalchemy import select

    with archive.sessions() as session:
        names = list(session.scalars(select(column).order_by(column)))
    if value not in names:
        archive.dispose()
        known = ", ".join(names) or "none"
        raise fail(escape(f"no {kind} {value!r} in the archive ({kind}s: {known})"))


def _require_outlet(archive: Any, outlet: str | None) -> None:
    from crawler.db.models import Source

    _require_known(archive, "outlet", Source.name, outlet)


@app.command()
def show(
    ref: Annotated[str, typer.Argument(metavar="ID|URL", help="The article's id or URL.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the article as JSON.")] = False,
    db: DbOption = None,
    sources: SourcesOption = None,
) -> None:
    """One article: its metadata, every version with the changes between them, its snapshots."""
    _check_sources(sources)
    import json

    from crawler.show import article_history, find_article, print_history

    archive = _archive(db)
    try:
        with archive.sessions() as session:
            article = find_article(session, ref)
            history = article_history(session, article) if article is not None else None
    finally:
        archive.dispose()
    if history is None:
        if ref.strip().isdigit():
            raise fail(f"no article with id {ref.strip()}", 1)
        if ref.strip().lower().startswith(("http://", "https://")):
            raise fail(f"no article with URL {ref.strip()!r}", 1)
        raise fail(f"{ref!r} is neither an article id nor a URL", 1)
    if as_json:
        sys.stdout.write(json.dumps(history, ensure_ascii=False, indent=2) + "\n")
    else:
        print_history(out, history)


@warc_app.command("export")
def warc_export(
    output: Annotated[Path, typer.Option("-o", "--output", help="The file to write (.warc.gz).")],
    outlet: Annotated[str | None, typer.Option(help="Only this outlet.")] = None,
    since: Annotated[
        str | None, typer.Option(help="Only pages fetched on or after (ISO date).")
    ] = None,
    db: DbOption = None,
    sources: SourcesOption = None,
) -> None:
    """Write the stored raw pages as WARC 1.1 response records (gzip per record)."""
    _check_sources(sources)
    from sqlalchemy import func, select

    from crawler.db.models import Snapshot, Source
    from crawler.warc import SnapshotFilter, write_warc

    filters = SnapshotFilter(outlet, parse_when(since, "--since"))
    archive = _archive(db)
    _require_outlet(archive, outlet)
    partial = output.with_name(output.name + ".part")
    try:
        with archive.sessions() as session:
            total = session.scalar(
                filters.apply(
                    select(func.count(Snapshot.id)).join(Source, Source.id == Snapshot.source_id)
                )
            )
            with (
                _bar("writing WARC", err.is_terminal) as bar,
                partial.open("wb") as stream,
            ):
                task = bar.add_task("warc", total=total)
                count = write_warc(
                    session, filters, stream, lambda: bar.advance(task), filename=output.name
                )
        partial.replace(output)
    except OSError as exc:
        raise fail(f"cannot write {output}: {exc}") from None
    finally:
        archive.dispose()
        partial.unlink(missing_ok=True)
    err.print(f"wrote {count} pages to {output}", highlight=False)


@warc_app.command("import")
def warc_import(
    file: Annotated[Path, typer.Argument(help="A WARC file (.warc or .warc.gz).")],
    db: DbOption = None,
    sources: SourcesOption = None,
) -> None:
    """Re-archive the article pages of a WARC with the outlets' current parsing and cleaning."""
    from crawler.replay import Replayer, import_pages
    from crawler.warc import WarcError, read_warc

    config = _sources(sources)
    if not file.is_file():
        raise fail(f"{file}: no such file")
    try:
        replayer = Replayer(config)
    except ConfigError as exc:
        raise fail(str(exc)) from None
    archive = _archive(db)
    try:
        with file.open("rb") as stream, _bar("importing", err.is_terminal) as bar:
            task = bar.add_task("import", total=None)
            counts = import_pages(archive, replayer, read_warc(stream), lambda: bar.advance(task))
    except WarcError as exc:
        raise fail(f"{file}: {exc}") from None
    except OSError as exc:
        raise fail(f"cannot read {file}: {exc}") from None
    finally:
        archive.dispose()
    out.print(_counts_table(f"imported {file.name}", {**counts, **replayer.stats()}))


@app.command()
def reparse(
    outlet: Annotated[str | None, typer.Option(help="Only this outlet.")] = None,
    db: DbOption = None,
    sources: SourcesOption = None,
) -> None:
    """Parse and clean every stored article page again (nothing is fetched); a new version
    is recorded only where the text changed."""
    from crawler.replay import Replayer, count_articles
    from crawler.replay import reparse as reparse_archive

    config = _sources(sources)
    try:
        replayer = Replayer(config)
    except ConfigError as exc:
        raise fail(str(exc)) from None
    archive = _archive(db)
    _require_outlet(archive, outlet)
    try:
        total = count_articles(archive, outlet)
        with _bar("re-parsing", err.is_terminal) as bar:
            task = bar.add_task("reparse", total=total)
            counts = reparse_archive(archive, replayer, outlet, lambda: bar.advance(task))
    finally:
        archive.dispose()
    out.print(_counts_table("reparse", {**counts, **replayer.stats()}))


# search, stats and topics (issue 5)

topics_app = typer.Typer(help="Tag the archive's articles with topics.", no_args_is_help=True)
app.add_typer(topics_app, name="topics")

TopicsOption = Annotated[
    Path | None,
    typer.Option(
        "--topics",
        help="Topics file (env CRAWLER_TOPICS; default: the bundled crawler/topics.toml).",
        show_default=False,
    ),
]


def _check_topics() -> None:
    """Fail with the reason when the topics file (CRAWLER_TOPICS or bundled) is unusable."""
    from rich.markup import escape

    from crawler.topics import load_topics

    try:
        load_topics()
    except ConfigError as exc:
        raise fail(escape(str(exc))) from None


def _require_topic(archive: Any, topic: str | None) -> None:
    from crawler.db.models import Topic

    _require_known(archive, "topic", Topic.name, topic)


def _marked(snippet: str, style: str | None) -> Any:
    """A snippet with its highlighted words styled (or in [brackets] when `style` is None)."""
    import re

    from rich.text import Text

    from crawler.search import MARK_END, MARK_START

    if style is None:
        return Text(snippet.replace(MARK_START, "[").replace(MARK_END, "]"))
    text = Text()
    for n, part in enumerate(re.split(f"[{MARK_START}{MARK_END}]", snippet)):
        text.append(part, style=style if n % 2 else None)
    return text


@app.command("search")
def search_command(
    query: Annotated[
        str,
        typer.Argument(
            help='SQLite: FTS5 syntax (words, "a phrase", AND, OR, NOT, NEAR(a b, 5), '
            'prefix*); PostgreSQL: web-search syntax (words, "a phrase", OR, -word, prefix*).'
        ),
    ],
    outlet: Annotated[str | None, typer.Option(help="Only this outlet.")] = None,
    since: Annotated[str | None, typer.Option(help="Published on or after (ISO date).")] = None,
    until: Annotated[str | None, typer.Option(help="Published before (ISO date).")] = None,
    topic: Annotated[str | None, typer.Option(help="Only articles tagged with this topic.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="At most this many hits.")] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="Print the hits as JSON.")] = False,
    db: DbOption = None,
    sources: SourcesOption = None,
) -> None:
    """Full-text search of titles and bodies: the best hits first, each with a snippet."""
    _check_sources(sources)
    import json

    from rich.markup import escape
    from rich.text import Text

    from crawler.export import ArticleFilter
    from crawler.search import SearchError, search
    from crawler.stats import day_label

    filters = ArticleFilter(
        outlet, parse_when(since, "--since"), parse_when(until, "--until"), topic=topic
    )
    archive = _archive(db)
    _require_topic(archive, topic)
    try:
        with archive.sessions() as session:
            hits = search(session, query, filters, limit)
    except SearchError as exc:
        raise fail(escape(str(exc))) from None
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
        out.print(Text(f"{position:>2}. ").append(hit.title, style="bold"), soft_wrap=True)
        where = f"{hit.outlet} · {day_label(hit.published_at)} · #{hit.id} · {hit.url}"
        out.print(Text("    " + where, style="dim"), soft_wrap=True)
        out.print(Text("    ").append_text(_marked(hit.snippet, style)), soft_wrap=True)


@app.command("stats")
def stats_command(
    topic: Annotated[str | None, typer.Option(help="Only articles tagged with this topic.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the figures as JSON.")] = False,
    db: DbOption = None,
    sources: SourcesOption = None,
) -> None:
    """Per outlet: articles, oldest and newest, articles per day (30 days), last run; per topic."""
    _check_sources(sources)
    import json

    from rich.markup import escape

    from crawler.stats import collect_stats, day_label, sparkline
    from crawler.topics import load_topics

    try:
        fingerprints = {n: t.fingerprint for n, t in load_topics().topics.items()}
    except ConfigError as exc:
        err.print(escape(f"warning: {exc}"), highlight=False, soft_wrap=True)
        fingerprints = None
    archive = _archive(db)
    _require_topic(archive, topic)
    try:
        with archive.sessions() as session:
            figures = collect_stats(session, topic=topic, fingerprints=fingerprints)
    finally:
        archive.dispose()
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


@topics_app.command("apply")
def topics_apply(
    topics: TopicsOption = None, db: DbOption = None, sources: SourcesOption = None
) -> None:
    """Re-tag every archived article with the topics file's topics (idempotent)."""
    _check_sources(sources)
    from rich.markup import escape
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
    from sqlalchemy import func, select

    from crawler.db.models import Article
    from crawler.topics import apply_topics, load_topics

    try:
        loaded = load_topics(topics)
    except ConfigError as exc:
        raise fail(escape(str(exc))) from None
    archive = _archive(db)
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


def main() -> None:
    app()


if __name__ == "__main__":
    main()
