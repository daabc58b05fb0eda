"""`crawler db`: the archive's schema."""

from __future__ import annotations

from typing import Annotated

import typer

from crawler.cli.common import (
    DbOption,
    SourcesOption,
    app,
    check_sources,
    fail,
    one_line,
    out,
    shown_url,
)
from crawler.config import ConfigError, database_url

db_app = typer.Typer(help="Manage the archive database.", no_args_is_help=True)
app.add_typer(db_app, name="db")


@db_app.command("upgrade")
def db_upgrade(
    revision: Annotated[str, typer.Argument(help="Target revision.")] = "head",
    db: DbOption = None,
    sources: SourcesOption = None,
) -> None:
    """Create or migrate the archive's schema (SQLite or PostgreSQL)."""
    check_sources(sources)
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
        raise fail(f"cannot migrate {shown_url(url)}: {one_line(exc)}") from None
    out.print(f"archive at revision {now}")
