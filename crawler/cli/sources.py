"""`crawler sources`: the sources file and each source's schedule and last run."""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from rich.table import Table

from crawler.cli.common import (
    DbOption,
    SourcesOption,
    app,
    open_archive,
    out,
    sources_file,
)


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

    config = sources_file(sources)
    archive = open_archive(db, read_only=True)
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
