"""`crawler crawl`, `demo` and `reparse`: the commands that fill the archive."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Annotated

import typer

from crawler.cli.common import (
    DbOption,
    SourcesOption,
    app,
    check_sources,
    counts_table,
    err,
    fail,
    open_archive,
    out,
    progress_bar,
    require_outlet,
    sources_file,
)
from crawler.config import ConfigError


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
    verbose: Annotated[
        bool,
        typer.Option(
            "--verbose",
            "-v",
            help="Scrapy's and Alembic's log on stderr rather than in the run's log file.",
        ),
    ] = False,
) -> None:
    """Crawl sources once, with a live progress display and a summary at the end.

    A line on stderr when each source starts and ends (and one per error); Scrapy's own log
    goes to a log file (named at the start) unless -v."""
    from crawler.cli.crawling import crawl as run

    run(
        source=source,
        all_sources=all_sources,
        refresh=refresh,
        progress=progress,
        setting=setting,
        db=db,
        sources=sources,
        run_id=run_id,
        parent_pid=parent_pid,
        verbose=verbose,
    )


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
