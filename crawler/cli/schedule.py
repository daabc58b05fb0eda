"""`crawler schedule`, `runs` and `health`: the service and what it did."""

from __future__ import annotations

import sys
from datetime import timedelta
from typing import Annotated

import typer

from crawler.cli.common import (
    DbOption,
    SourcesOption,
    app,
    fail,
    open_archive,
    out,
    sources_file,
)
from crawler.config import ConfigError, database_url


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
    verbose: Annotated[
        bool,
        typer.Option(
            "--verbose",
            "-v",
            help="The crawls' Scrapy log on stderr rather than in each run's log file.",
        ),
    ] = False,
    db: DbOption = None,
    sources: SourcesOption = None,
) -> None:
    """Run the scheduler in the foreground: every enabled source on its interval or cron line.

    SIGHUP re-reads the sources file; SIGTERM or Ctrl-C stops taking new runs, lets running
    crawls finish within the grace period, then stops them.
    """
    from crawler.scheduler.service import SchedulerService, ServiceOptions

    config = sources_file(sources)
    # the scheduler logs each run's start and end; the crawls' own log goes to a file per run
    # (run-N.log in the log folder), or with -v to stderr at WARNING (`-s LOG_LEVEL=INFO`)
    crawl_args = ["-v", "-s", "LOG_LEVEL=WARNING"] if verbose else []
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
    open_archive(db).dispose()  # migrate (SQLite) or refuse an old schema before scheduling
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
    from crawler.cli.querying import runs as run_list

    run_list(source, limit, as_json, db, sources)


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

    config = sources_file(sources)
    archive = open_archive(db, read_only=True)
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
