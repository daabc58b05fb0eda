"""`crawler crawl`'s work, without typer: crawler/cli/quick.py calls `crawl` here with the
options it parsed, and the typer command in crawler/cli/crawl.py calls it with typer's (importing
typer cost a crawl 14 ms of start-up)."""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

from crawler.cli.output import check_topics, err, fail, open_archive, out, sources_file
from crawler.config import ConfigError, database_url, log_dir, run_log_file

# Errors of a run printed at its end (every one is in the run's error log: `crawler runs`).
MAX_ERROR_LINES = 5


def crawl_log_file(run_id: int | None, sources: list[str]) -> Path:
    """Where a crawl's Scrapy log goes (in `log_dir()`): a scheduled run's file is named after
    its run, a manual crawl's after its sources and time."""
    import os
    from datetime import UTC, datetime

    folder = log_dir()
    folder.mkdir(parents=True, exist_ok=True)
    if run_id is not None:
        return run_log_file(run_id)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    named = "+".join(sources) if len(sources) <= 3 else f"{len(sources)}-sources"
    return folder / f"crawl-{named}-{stamp}-{os.getpid()}.log"


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """No garbage collection while a crawl starts; as it was, after.

    Start-up makes objects that live as long as the process (modules, classes, settings, the
    archive's models), yet the collector went through them about 90 times before the first
    article request. Paused, a crawl on PostgreSQL reached it 24 and 38 ms sooner (launch to
    first article request: 0.789 against 0.765 s, and 0.794 against 0.756 s; 10 crawls each,
    alternated, in two sets). The crawls switch it back on (crawler.runner.crawl_gc) once those
    objects are set apart from it. What start-up left as cyclic garbage is set apart with them
    and kept: 224 objects on an archive at its head, 7,548 when a fresh SQLite file was first
    migrated (Alembic's), counted by a collection at the crawls' start."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


@collector_paused()
def crawl(
    source: list[str] | None = None,
    all_sources: bool = False,
    refresh: bool = False,
    progress: bool = True,
    setting: list[str] | None = None,
    db: str | None = None,
    sources: Path | None = None,
    run_id: int | None = None,
    parent_pid: int | None = None,
    verbose: bool = False,
) -> None:
    """Crawl sources once, with a live progress display and a summary at the end.

    A line on stderr when each source starts and ends (and one per error); Scrapy's own log
    goes to a log file (named at the start) unless -v."""
    # Scrapy's TLS context factory before the archive's modules: the module makes two
    # deprecated aliases, and making each calls `inspect.stack()`, whose first call looks at
    # every module loaded and at the source of every frame on the stack. Imported here, before
    # SQLAlchemy, the models and the database driver, and outside the engine's deep stack, it
    # takes 40 ms less of a crawl's start-up (measured alternately with the import left to the
    # engine: launch to first article request, 8 crawls each).
    import scrapy.core.downloader.contextfactory  # noqa: F401

    from crawler.context import sharing
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
    # migrate (SQLite) or refuse before any spider starts; PostgreSQL through the light driver
    archive = open_archive(db, light=True)
    overrides: dict[str, Any] = {} if run_id is None else {"CRAWLER_RUN_ID": run_id}
    for pair in setting or []:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise fail(f"--set {pair!r}: expected NAME=VALUE")
        overrides[name.strip()] = value
    settings = crawl_settings(database_url(db), config.path, overrides=overrides)
    log_file = None
    if not verbose and "LOG_FILE" not in overrides:
        log_file = crawl_log_file(run_id, [s.name for s in chosen])
        settings.set("LOG_FILE", str(log_file), priority="cmdline")
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
        if board is not None and log_file is None:
            settings.set("LOG_LEVEL", "WARNING", priority="cmdline")
        if run_id is None:  # a scheduled run's start and end are the scheduler's to say
            where = f" (log: {log_file})" if log_file else ""
            for source_config in chosen:
                err.print(
                    f"{source_config.name}: crawl started{where}", highlight=False, soft_wrap=True
                )
        summaries: list[RunSummary] = []
        if chosen:
            # the crawls use the archive just opened (crawler.context.archive_for)
            with sharing(archive), board if board is not None else contextlib.nullcontext():
                summaries = run_crawls(chosen, settings, refresh=refresh, board=board)
    finally:
        if leases is not None:
            leases.release()
        archive.dispose()
    if summaries:
        out.print(summary_table(summaries))
    if run_id is None:
        for summary in summaries:
            err.print(f"{summary.source}: {summary.line()}", highlight=False, soft_wrap=True)
            for line in (summary.error_log or "").splitlines()[:MAX_ERROR_LINES]:
                err.print(f"{summary.source}: {line}", highlight=False, soft_wrap=True)
    if busy or any(s.status != "finished" for s in summaries):
        raise SystemExit(1)  # (not typer.Exit: crawler/cli/quick.py calls this without typer)
