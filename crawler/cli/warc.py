"""`crawler warc export|import`: the raw pages in and out as WARC 1.1."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from crawler.cli.common import (
    DbOption,
    OutletsOption,
    SourcesOption,
    app,
    check_sources,
    counts_table,
    err,
    fail,
    open_archive,
    out,
    parse_instant,
    progress_bar,
    refuse_archive_as_output,
    require_outlet,
    sources_file,
    written_atomically,
)
from crawler.config import ConfigError

warc_app = typer.Typer(
    help="Exchange the archive's raw pages with other web archives (WARC 1.1).",
    no_args_is_help=True,
)
app.add_typer(warc_app, name="warc")


@warc_app.command("export")
def warc_export(
    output: Annotated[Path, typer.Option("-o", "--output", help="The file to write (.warc.gz).")],
    outlet: OutletsOption = None,
    since: Annotated[
        str | None, typer.Option(help="Only pages fetched on or after (ISO date).")
    ] = None,
    db: DbOption = None,
    sources: SourcesOption = None,
) -> None:
    """Write the stored raw pages as WARC 1.1 response records (gzip per record)."""
    check_sources(sources)
    from sqlalchemy import func, select

    from crawler.db.models import Snapshot, Source
    from crawler.read.warc import SnapshotFilter, write_warc

    refuse_archive_as_output(output, db)
    filters = SnapshotFilter(outlet, parse_instant(since, "--since"))
    archive = open_archive(db, read_only=True)
    require_outlet(archive, outlet)
    try:
        with archive.sessions() as session, written_atomically(output) as partial:
            total = session.scalar(
                filters.apply(
                    select(func.count(Snapshot.id)).join(Source, Source.id == Snapshot.source_id)
                )
            )
            with (
                progress_bar("writing WARC", err.is_terminal) as bar,
                partial.open("wb") as stream,
            ):
                task = bar.add_task("warc", total=total)
                count = write_warc(
                    session, filters, stream, lambda: bar.advance(task), filename=output.name
                )
    except OSError as exc:
        raise fail(f"cannot write {output}: {exc.strerror or exc}") from None
    finally:
        archive.dispose()
    err.print(f"wrote {count} pages to {output}", highlight=False)


@warc_app.command("import")
def warc_import(
    file: Annotated[Path, typer.Argument(help="A WARC file (.warc or .warc.gz).")],
    db: DbOption = None,
    sources: SourcesOption = None,
) -> None:
    """Re-archive the article pages of a WARC with the outlets' current parsing and cleaning."""
    from crawler.read.warc import WarcError, WarcReader
    from crawler.replay import Replayer, import_pages

    config = sources_file(sources)
    if not file.is_file():
        raise fail(f"{file}: no such file")
    try:
        replayer = Replayer(config)
    except ConfigError as exc:
        raise fail(str(exc)) from None
    archive = open_archive(db)
    try:
        with file.open("rb") as stream, progress_bar("importing", err.is_terminal) as bar:
            task = bar.add_task("import", total=None)
            reader = WarcReader(stream)
            counts = import_pages(archive, replayer, reader, lambda: bar.advance(task))
    except WarcError as exc:
        raise fail(f"{file}: {exc}") from None
    except OSError as exc:
        raise fail(f"cannot read {file}: {exc.strerror or exc}") from None
    finally:
        archive.dispose()
    if counts:
        out.print(counts_table(f"imported {file.name}", {**counts, **replayer.stats()}))
    read = f"{reader.records} whole WARC record{'s' if reader.records != 1 else ''} read"
    if reader.ended_early is not None:
        raise fail(f"{file}: the file ended early, {reader.ended_early}; {read} before it", 1)
    if reader.records == 0:
        empty = file.stat().st_size == 0
        raise fail(f"{file}: {'the file is empty' if empty else 'no WARC record in it'}", 1)
