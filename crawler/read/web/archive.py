"""The archive opened read-only: nothing the web interface does can write to it."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import quote

from sqlalchemy import Engine, create_engine, event, inspect
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.orm import sessionmaker

from crawler.config import ConfigError
from crawler.db.session import SQLITE_BUSY_MS, current_revision, head_revision


def _sqlite_read_only(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA query_only=ON")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_MS}")
    cursor.close()


def read_only_engine(url: str) -> Engine:
    """An engine that cannot write: SQLite opened with mode=ro (and query_only), PostgreSQL
    sessions with default_transaction_read_only. A SQLite file that does not exist is an error,
    never created."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ConfigError(f"database URL {url!r} is not a SQLAlchemy URL") from None
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        database = parsed.database or ""
        if database in ("", ":memory:") or database.startswith("file:"):
            raise ConfigError(f"database URL {url!r}: the web interface needs an archive file")
        path = Path(database)
        if not path.is_file():
            raise ConfigError(f"no archive at {path} (database URL {url!r})")
        # mode=ro: SQLite refuses every write; the WAL's -shm file is still shared with writers,
        # so a running crawl's new articles show up at once.
        engine = create_engine(
            f"sqlite+pysqlite:///file:{quote(str(path.resolve()))}?mode=ro&uri=true",
            connect_args={"timeout": 30, "check_same_thread": False},
        )
        event.listen(engine, "connect", _sqlite_read_only)
        return engine
    if backend == "postgresql":
        if parsed.get_driver_name() in ("", "psycopg2"):
            parsed = parsed.set(drivername="postgresql+psycopg")
        return create_engine(
            parsed,
            pool_pre_ping=True,
            connect_args={"options": "-c default_transaction_read_only=on"},
        )
    raise ConfigError(f"database URL {url!r}: the web interface reads SQLite or PostgreSQL")


class ReadOnlyArchive:
    """A read-only engine and its session factory, on an archive whose schema is current."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = read_only_engine(url)
        self.dialect = self.engine.dialect.name
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)
        if not inspect(self.engine).has_table("alembic_version"):
            self.dispose()
            raise ConfigError(f"{self.shown_url} holds no archive; run `crawler db upgrade` first")
        current, head = current_revision(self.engine), head_revision(self.engine)
        if current != head:
            self.dispose()
            raise ConfigError(
                f"the archive at {self.shown_url} is at schema {current or 'none'}, not {head}; "
                "run `crawler db upgrade` first"
            )

    @property
    def shown_url(self) -> str:
        return make_url(self.url).render_as_string(hide_password=True)

    def dispose(self) -> None:
        self.engine.dispose()
