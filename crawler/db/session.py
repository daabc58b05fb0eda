"""The one way to reach the archive: an engine and session factory made from a URL."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, inspect
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.orm import Session, sessionmaker

from crawler.config import ConfigError
from crawler.db.reader import MIGRATIONS_DIR, SQLITE_BUSY_MS, schema_head

__all__ = ["MIGRATIONS_DIR", "SQLITE_BUSY_MS", "Archive", "make_engine", "schema_head", "upgrade"]
# How long an upgrade waits for another process's upgrade (a large archive's can take minutes).
MIGRATION_WAIT_MS = 30 * 60_000
# The PostgreSQL advisory lock key of migrations: "crawler" in ASCII.
MIGRATION_LOCK = 0x6372_6177_6C65_72
# Parts of the schema that no model describes: the scheduler's job store (APScheduler's own
# definition) and the full-text index (SQLite's FTS5 tables, PostgreSQL's tsvector column and
# its index). Alembic's autogenerate must not propose dropping them.
UNMODELLED_TABLES = ("scheduler_jobs", "articles_fts")
UNMODELLED_OTHERS = ("search_vector", "ix_articles_search_vector")


def modelled(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
    """Alembic's include_object: False for a reflected part of the schema no model describes."""
    if not reflected or compare_to is not None or not name:
        return True
    if type_ == "table":
        return not name.startswith(UNMODELLED_TABLES)
    return name not in UNMODELLED_OTHERS


# The PostgreSQL driver of a crawl's own process. That process makes a few small statements (the
# sources' leases, its run's record, one look-up of known addresses a listing page), the archive
# writer all the rest through psycopg 3 (its pipeline mode and prepared statements); psycopg2 is
# the same libpq, but imported in 5-10 ms where psycopg 3 takes 55 (its asyncio, error classes
# and version look-ups), on the way to a crawl's first request: 0.790 against 0.848 s from
# launch to the first article request, 8 crawls each, alternated.
CRAWL_DRIVER = "psycopg2"


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets readers (the CLI) work while a crawl writes; NORMAL sync is safe with WAL.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_MS}")
    cursor.close()


def make_engine(url: str, *, pre_ping: bool = True, light: bool = False) -> Engine:
    """An engine for any SQLAlchemy URL; a SQLite file's folder is created on demand.

    `pre_ping`: a PostgreSQL connection taken from the pool is checked first (a round trip),
    so that one the server dropped while it lay idle is replaced instead of failing.

    `light`: PostgreSQL is reached through psycopg2 whatever driver the URL names (see
    `CRAWL_DRIVER`); otherwise through psycopg 3, the archive's driver."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ConfigError(f"database URL {url!r} is not a SQLAlchemy URL") from None
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(parsed, connect_args={"timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    if parsed.get_backend_name() == "postgresql":
        from crawler.db.models import use_postgresql

        use_postgresql()
        if light:
            parsed = parsed.set(drivername=f"postgresql+{CRAWL_DRIVER}")
        elif parsed.get_driver_name() in ("", "psycopg2"):
            # psycopg (3) is the archive's driver; psycopg2 is the light one
            parsed = parsed.set(drivername="postgresql+psycopg")
    return create_engine(parsed, pool_pre_ping=pre_ping)


def alembic_config(engine: Engine) -> Any:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["engine"] = engine
    return config


def _unique_columns(connection: Connection, table: str) -> set[str]:
    """The columns of a table that are unique on their own: a one-column primary key, or the
    column of a full unique index."""
    info = connection.exec_driver_sql(f'PRAGMA table_info("{table}")').all()
    primary = [row.name for row in info if row.pk]
    unique = set(primary) if len(primary) == 1 else set()
    for index in connection.exec_driver_sql(f'PRAGMA index_list("{table}")'):
        if index.unique and not index.partial:
            columns = connection.exec_driver_sql(f'PRAGMA index_info("{index.name}")').all()
            if len(columns) == 1 and columns[0].name is not None:
                unique.add(columns[0].name)
    return unique


def broken_foreign_keys(connection: Connection, limit: int = 5) -> list[tuple[str, str, Any]]:
    """(table, column, value) of up to `limit` references to no row, on SQLite: what
    `PRAGMA foreign_key_check` finds, found in an order a large archive can afford.

    The pragma walks each referencing table in its own key's order and looks every row's
    parent up: on an archive of 1,000,000 articles, 33 million lookups at random places of
    `articles` (measured over 10 minutes). Here each referencing column's distinct values are
    read in order, through its index, and the parents looked up in that order.
    """
    broken: list[tuple[str, str, Any]] = []
    tables = connection.exec_driver_sql(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
    ).scalars()
    for table in list(tables):
        keys: dict[int, list[Any]] = {}
        for row in connection.exec_driver_sql(f'PRAGMA foreign_key_list("{table}")'):
            keys.setdefault(row.id, []).append(row._mapping)
        if any(
            len(columns) > 1
            or columns[0]["to"] is None
            or columns[0]["to"] not in _unique_columns(connection, columns[0]["table"])
            for columns in keys.values()
        ):
            # a key of several columns, the parent's unnamed primary key, or a parent column
            # that is not unique (which the pragma reports as an error): the pragma's way
            broken += [
                (table, "", row[1])
                for row in connection.exec_driver_sql(f'PRAGMA foreign_key_check("{table}")')
            ]
            continue
        for (reference,) in keys.values():
            column, parent, key = reference["from"], reference["table"], reference["to"]
            broken += [
                (table, column, value)
                for (value,) in connection.exec_driver_sql(
                    f'SELECT value FROM (SELECT DISTINCT "{column}" AS value FROM "{table}"'
                    f' WHERE "{column}" IS NOT NULL) WHERE NOT EXISTS'
                    f' (SELECT 1 FROM "{parent}" WHERE "{key}" = value) LIMIT {limit}'
                )
            ]
    return broken[:limit]


@contextmanager
def migration_transaction(engine: Engine) -> Iterator[Connection]:
    """One transaction for a whole upgrade, holding the archive's migration lock.

    Processes started together on a fresh archive (two schedulers, a scheduler and a manual
    crawl) would otherwise each find the schema missing and race to create it. The lock is
    SQLite's write lock taken at BEGIN IMMEDIATE (pysqlite has not begun a transaction before
    that: it only does before DML), or a transaction-scoped PostgreSQL advisory lock under READ
    COMMITTED; whoever waited then reads the version its predecessor committed and finds nothing
    left to do. On SQLite, foreign keys are off while migrating (batch operations recreate
    tables; with them on, dropping `articles` would cascade) and checked before the commit.
    """
    with engine.connect() as connection:
        sqlite = connection.dialect.name == "sqlite"
        if sqlite:
            # both are no-ops inside a transaction, so they come first
            connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
            connection.exec_driver_sql(f"PRAGMA busy_timeout={MIGRATION_WAIT_MS}")
            connection.commit()
        elif connection.dialect.name == "postgresql":
            connection.execution_options(isolation_level="READ COMMITTED")
        try:
            with connection.begin():
                if sqlite:
                    connection.exec_driver_sql("BEGIN IMMEDIATE")
                elif connection.dialect.name == "postgresql":
                    connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK})")
                yield connection
                if sqlite:
                    broken = broken_foreign_keys(connection)
                    if broken:
                        raise RuntimeError(f"the migration broke foreign keys: {broken[:5]}")
        finally:
            if sqlite:
                connection.exec_driver_sql("PRAGMA foreign_keys=ON")
                connection.exec_driver_sql(f"PRAGMA busy_timeout={SQLITE_BUSY_MS}")
                connection.commit()


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the schema to `revision` (one Alembic history for SQLite and PostgreSQL)."""
    from alembic import command

    command.upgrade(alembic_config(engine), revision)


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def head_revision(engine: Engine) -> str | None:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config(engine)).get_current_head()


def stored_revision(engine: Engine) -> str | None:
    """The revision an archive is at, read directly (None: no schema)."""
    with engine.connect() as connection:
        if connection.dialect.name == "postgresql":
            # the table as the query below finds it, on the search path; SQLAlchemy's
            # inspector compiles its catalogue query first (4 ms of every command's start-up)
            found = connection.exec_driver_sql(
                "SELECT to_regclass('alembic_version') IS NOT NULL"
            ).scalar()
        else:
            found = inspect(connection).has_table("alembic_version")
        if not found:
            return None
        rows = connection.exec_driver_sql("SELECT version_num FROM alembic_version").all()
    return rows[0][0] if len(rows) == 1 else None


class Archive:
    """An engine plus its session factory; `dispose()` when done."""

    def __init__(
        self, url: str, *, migrate: bool | None = None, pre_ping: bool = True, light: bool = False
    ) -> None:
        self.url = url
        self.engine = make_engine(url, pre_ping=pre_ping, light=light)
        self.dialect = self.engine.dialect.name
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._ensure_schema(migrate)

    def _ensure_schema(self, migrate: bool | None) -> None:
        # A fresh or older SQLite file is migrated on first use; PostgreSQL only on request
        # (`crawler db upgrade`), so a shared server is never altered behind its operator's back.
        current = stored_revision(self.engine)
        if current is not None and current == schema_head():
            return
        auto = self.dialect == "sqlite" if migrate is None else migrate
        fresh = not inspect(self.engine).has_table("alembic_version")
        current = None if fresh else current_revision(self.engine)
        if current == head_revision(self.engine):
            return
        if auto:
            upgrade(self.engine)
            return
        raise ConfigError(
            f"the archive at {self.engine.url.render_as_string(hide_password=True)} is at "
            f"schema {current or 'none'}; run `crawler db upgrade` first"
        )

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """One unit of work: committed on success, rolled back on any error."""
        with self.sessions() as session, session.begin():
            yield session

    def dispose(self) -> None:
        self.engine.dispose()
