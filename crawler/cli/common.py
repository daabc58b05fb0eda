"""What every `crawler` command shares: the app, its consoles, options and error helpers."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from crawler.cli.output import (
    SQLITE_SIDE_FILES,
    check_sources,
    check_topics,
    err,
    fail,
    marked,
    one_line,
    open_archive,
    out,
    parse_instant,
    parse_when,
    refuse_archive_as_output,
    shown_url,
    sources_file,
    sqlite_file,
    written_atomically,
)

if TYPE_CHECKING:
    from rich.table import Table

# The typer application and what its commands share; the consoles and the checks that need no
# typer live in crawler/cli/output.py and are imported from here too.
__all__ = [
    "OUTCOME_LABELS",
    "SQLITE_SIDE_FILES",
    "DbOption",
    "OutletsOption",
    "SourcesOption",
    "TopicsOption",
    "app",
    "check_sources",
    "check_topics",
    "counts_table",
    "err",
    "fail",
    "marked",
    "one_line",
    "open_archive",
    "out",
    "parse_instant",
    "parse_when",
    "progress_bar",
    "refuse_archive_as_output",
    "require_known",
    "require_outlet",
    "shown_url",
    "sources_file",
    "sqlite_file",
    "written_atomically",
]

app = typer.Typer(
    help="Archive news outlets: crawl them, keep every version, query the archive.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _print_version(value: bool) -> None:
    if value:
        from crawler import __version__

        print(f"crawler (news-archive-crawler) {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """Archive news outlets: crawl them, keep every version, query the archive."""


DbOption = Annotated[
    str | None,
    typer.Option(
        "--db",
        help="SQLAlchemy URL of the archive (env CRAWLER_DATABASE_URL; "
        "default: archive.db in the user data folder, e.g. ~/.local/share/news-archive-crawler).",
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


# How the counters of `warc import` and `reparse` are shown.
OUTCOME_LABELS = {
    "new": "new articles",
    "updated": "new versions",
    "unchanged": "unchanged",
    "older": "older captures (snapshot kept, text not)",
    "invalid": "no title or body (not archived)",
}


def progress_bar(label: str, enabled: bool) -> Any:
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


def counts_table(title: str, counts: dict[str, int]) -> Table:
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    table.add_column("outcome")
    table.add_column("count", justify="right")
    for key in (*OUTCOME_LABELS, *sorted(set(counts) - set(OUTCOME_LABELS))):
        if counts.get(key):
            label = OUTCOME_LABELS.get(key) or (key if "/" in key else f"skipped: {key}")
            table.add_row(label, str(counts[key]))
    return table


def require_known(archive: Any, kind: str, table: str, value: str | list[str] | None) -> None:
    """Fail naming `value` (or the first of several) when the archive holds no such outlet
    or topic (`table`: sources or topics), as the query commands check it."""
    from crawler.cli.querying import require_known as check
    from crawler.db.reader import Reader

    with archive.sessions() as session:
        try:
            check(Reader.of(session), kind, table, value)
        except SystemExit:
            archive.dispose()
            raise


OutletsOption = Annotated[
    list[str] | None,
    typer.Option("--outlet", help="Only this outlet (repeat for several).", show_default=False),
]


def require_outlet(archive: Any, outlet: str | list[str] | None) -> None:
    require_known(archive, "outlet", "sources", outlet)


TopicsOption = Annotated[
    Path | None,
    typer.Option(
        "--topics",
        help="Topics file (env CRAWLER_TOPICS; default: the bundled crawler/topics.toml).",
        show_default=False,
    ),
]
