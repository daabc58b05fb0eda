"""`crawler crawl`, `demo` and `reparse`: the commands that fill the archive."""

from __future__ import annotations

import contextlib
import tempfile
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any

import typer

from crawler.cli.common import (
    DbOption,
    SourcesOption,
    app,
    check_sources,
    check_topics,
    counts_table,
    err,
    fail,
    open_archive,
    out,
    progress_bar,
    require_outlet,
    sources_file,
)
from crawler.config import ConfigError, database_url


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

    config = sources_file(sources)
    if all_sources == bool(source):
        raise fail("name the sources to crawl, or give --all (not both)")
    try:
        chosen = config.enabled() if all_sources else config.select(source or [])
    except ConfigError as exc:
        raise fail(str(exc)) from None
    if not chosen:
        raise fail(f"{config.path}: no enabled source")
    check_topics()  # the store pipeline reads the topics file: refuse a broken one up front
    if parent_pid is not None:
        from crawler.scheduler.child import die_with_parent

        die_with_parent(parent_pid)  # a scheduled run: stop when the scheduler dies
    if run_id is not None and len(chosen) != 1:
        raise fail("--run-id goes with exactly one source")
    archive = open_archive(db)  # migrate (SQLite) or refuse before any spider starts
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
            settings.set("LOG_LEVEL", "WARNING", priority="cmdline")
        summaries: list[RunSummary] = []
        if chosen:
            with board if board is not None else contextlib.nullcontext():
                summaries = run_crawls(chosen, settings, refresh=refresh, board=board)
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
def demo(
    db: Annotated[
        str | None,
        typer.Option(
            "--db",
            help="Archive URL (default: demo.db in the user data folder, made afresh each time).",
            show_default=False,
        ),
    ] = None,
    sources: SourcesOption = None,
) -> None:
    """Serve the bundled offline mirror of the outlets, crawl it and show what was archived."""
    check_sources(sources)
    from crawler.demo import fresh_demo_archive, next_commands, run_demo

    url = db or fresh_demo_archive()
    with tempfile.TemporaryDirectory(prefix="crawler-demo-") as tmp:
        try:
            code = run_demo(url, Path(tmp), out, err)
        except ConfigError as exc:
            raise fail(str(exc)) from None
    out.print(next_commands(url, default=db is None), highlight=False, soft_wrap=True)
    raise typer.Exit(code)


# --- scheduler commands (issue 4) ---


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

    config = sources_file(sources)
    try:
        replayer = Replayer(config)
    except ConfigError as exc:
        raise fail(str(exc)) from None
    archive = open_archive(db)
    require_outlet(archive, outlet)
    try:
        total = count_articles(archive, outlet)
        with progress_bar("re-parsing", err.is_terminal) as bar:
            task = bar.add_task("reparse", total=total)
            counts = reparse_archive(archive, replayer, outlet, lambda: bar.advance(task))
    finally:
        archive.dispose()
    out.print(counts_table("reparse", {**counts, **replayer.stats()}))


# search, stats and topics (issue 5)
