"""The archive read through its database's own driver (sqlite3, psycopg2), without SQLAlchemy.

Importing SQLAlchemy and the models costs a query command three times the rest of its start-up,
so the read side's queries are plain SQL run by a `Reader`: opened from a URL by the query
commands (on PostgreSQL through psycopg2, whose import costs a third of psycopg 3's), or made
from a SQLAlchemy session (`Reader.of`, psycopg 3's connection there) by the web pages and the
tests, so that one query serves both. The SQL is written once for SQLite and PostgreSQL:
parameters are named (`:name`, written as `%(name)s` for both PostgreSQL drivers here), a list
or tuple parameter is expanded into `(:name_0, :name_1, ...)`, and the few statements that
differ ask `reader.dialect`. Instants and days are bound as SQLAlchemy stores them
(crawler/db/models.py: UTC text on SQLite), and a column named `*_at` comes back as an aware UTC
instant, one named `*_date` as a date.
"""

from __future__ import annotations

import functools
import itertools
import json
import re
from collections import namedtuple
from collections.abc import Callable, Generator, Mapping
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

MIGRATIONS_DIR = Path(__file__).resolve().parents[2] / "migrations"
# How long a SQLite statement waits for another connection's write lock.
SQLITE_BUSY_MS = 30_000

_PARAMETER = re.compile(r"(?<![:\w]):(\w+)")
_REVISION_LINE = re.compile(r"^(revision|down_revision)\b[^=]*=\s*(?:\"(\w+)\"|None)", re.M)
_SQLITE_URL = re.compile(r"sqlite(?:\+pysqlite)?://(?:/(?P<database>[^?]*))?(?:\?(?P<query>.*))?")
_POSTGRESQL_URL = re.compile(r"postgresql(?:\+psycopg2?)?://(?P<rest>.*)")


_STREAMS = itertools.count()


class Unreadable(Exception):
    """The archive cannot be read the short way (a URL or schema it leaves to SQLAlchemy)."""


@functools.cache
def schema_head() -> str | None:
    """The head revision read from the migration files' `revision` / `down_revision` lines,
    without importing Alembic and every migration; None when the history is not one plain
    chain, where Alembic must be asked."""
    revisions: set[str | None] = set()
    parents: set[str | None] = set()
    for path in MIGRATIONS_DIR.joinpath("versions").glob("*.py"):
        text = path.read_text("utf-8")
        found: dict[str, str | None] = {
            m.group(1): m.group(2) for m in _REVISION_LINE.finditer(text)
        }
        if "revision" not in found or "down_revision" not in found:
            return None
        revisions.add(found["revision"])
        parents.add(found["down_revision"])
    heads = revisions - parents
    return heads.pop() if len(heads) == 1 else None


def sqlite_path(url: str) -> Path | None:
    """The file of a plain SQLite URL (`sqlite:///archive.db`); None for any other URL."""
    match = _SQLITE_URL.fullmatch(url)
    if match is None or not match.group("database") or match.group("database") == ":memory:":
        return None
    if match.group("query") or "%" in match.group("database"):
        return None  # options (uri=true, ...) or escapes: SQLAlchemy reads them
    return Path(match.group("database"))


def instant(value: Any) -> datetime | None:
    """A stored instant as an aware UTC datetime (SQLite keeps 'YYYY-MM-DD HH:MM:SS.ffffff')."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def day(value: Any) -> date | None:
    """A stored day as a date."""
    if value is None or isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])


def stored_json(value: Any) -> Any:
    """A JSON column's value (SQLite hands back its text, psycopg the parsed value)."""
    return json.loads(value) if isinstance(value, str | bytes) else value


@functools.cache
def _row_type(names: tuple[str, ...]) -> Any:
    return namedtuple("Row", names, rename=True)


def _psycopg2_connection(url: str) -> Any:
    """A psycopg2 connection to `url` (libpq reads it, its query's options included); bytea
    read as bytes, as psycopg 3 (the archive's driver elsewhere) reads it.

    The short way reads PostgreSQL through psycopg2: the same libpq, but its import costs a
    query command about 30 ms against psycopg 3's 90-130 ms (its asyncio, typing_extensions,
    error classes and two `importlib.metadata` look-ups of its own version)."""
    import psycopg2
    import psycopg2.extensions

    try:
        connection = psycopg2.connect(url)
    except (psycopg2.Error, UnicodeDecodeError) as exc:  # (a server's message in its locale)
        raise Unreadable(str(exc)) from None
    as_bytes = psycopg2.extensions.new_type(
        psycopg2.BINARY.values,
        "BYTEA_AS_BYTES",
        lambda value, cursor: None if value is None else bytes(psycopg2.BINARY(value, cursor)),
    )
    psycopg2.extensions.register_type(as_bytes, connection)
    return connection


class Reader:
    """Plain SQL on one open DB-API connection of the archive; `close()` when done."""

    def __init__(
        self, connection: Any, dialect: str, closing: Callable[[], None] | None = None
    ) -> None:
        self.connection = connection
        self.dialect = dialect
        self._closing = closing  # what `close()` does: None for a session's connection

    @classmethod
    def of(cls, db: Reader | Any, closing: Callable[[], None] | None = None) -> Reader:
        """A reader of `db`: itself, or the connection of a SQLAlchemy session (its transaction;
        `closing` is what `close()` does then)."""
        if isinstance(db, Reader):
            return db
        db.flush()  # what the session holds unwritten, as its own queries would see it
        connection = db.connection()
        return cls(connection.connection.driver_connection, connection.dialect.name, closing)

    @classmethod
    def connect(cls, url: str) -> Reader:
        """The archive at `url` opened for reading, its schema at the head revision; Unreadable
        when that takes SQLAlchemy (another URL form, a missing file, another revision)."""
        path = sqlite_path(url)
        if path is not None:
            if not path.is_file():
                raise Unreadable(f"no SQLite file at {path}")
            import sqlite3

            connection: Any = sqlite3.connect(path, timeout=SQLITE_BUSY_MS / 1000)
            connection.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_MS}")
            reader = cls(connection, "sqlite", connection.close)
        else:
            match = _POSTGRESQL_URL.fullmatch(url)
            if match is None:
                raise Unreadable(f"not a URL read the short way: {url}")
            connection = _psycopg2_connection(f"postgresql://{match.group('rest')}")
            reader = cls(connection, "postgresql", connection.close)
        try:
            revision = reader.stored_revision()
        except Exception:
            reader.close()
            raise Unreadable(f"cannot read the schema revision of {url}") from None
        if revision is None or revision != schema_head():
            reader.close()
            raise Unreadable(f"the archive is at schema {revision}")
        return reader

    def close(self) -> None:
        closing, self._closing = self._closing, None
        if closing is not None:
            closing()

    def _prepared(self, sql: str, params: Mapping[str, Any] | None) -> tuple[str, dict[str, Any]]:
        """The statement and its parameters as the driver takes them."""
        values: dict[str, Any] = {}
        expanded: dict[str, str] = {}
        for name, value in (params or {}).items():
            if isinstance(value, list | tuple | set | frozenset):
                names = [f"{name}_{n}" for n in range(len(value))]
                for each, item in zip(names, value, strict=True):
                    values[each] = self._bound(item)
                # an empty list matches nothing: (NULL) is never equal to anything
                listed = ", ".join(f":{each}" for each in names)
                expanded[name] = f"({listed})" if names else "(NULL)"
            else:
                values[name] = self._bound(value)
        if expanded:
            sql = _PARAMETER.sub(lambda m: expanded.get(m.group(1), m.group()), sql)
        if self.dialect == "postgresql":
            sql = _PARAMETER.sub(
                lambda m: f"%({m.group(1)})s" if m.group(1) in values else m.group(),
                sql.replace("%", "%%"),
            )
        return sql, values

    def _bound(self, value: Any) -> Any:
        if self.dialect != "sqlite":
            return value
        if isinstance(value, datetime):
            if value.tzinfo is None:
                raise ValueError(f"naive datetime {value!r} cannot be compared; give it a zone")
            return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
        if isinstance(value, date):
            return value.isoformat()
        return value

    def _execute(self, sql: str, params: Mapping[str, Any] | None) -> Any:
        statement, values = self._prepared(sql, params)
        cursor = self.connection.cursor()
        cursor.execute(statement, values)
        return cursor

    def _converter(self, cursor: Any) -> Any:
        names = tuple(column[0] for column in cursor.description)
        row_type = _row_type(names)
        converters = [
            instant if name.endswith("_at") else day if name.endswith("_date") else None
            for name in names
        ]
        if not any(converters):
            return lambda row: row_type._make(row)
        pairs = list(enumerate(converters))

        def convert(row: Any) -> Any:
            return row_type._make(
                [value if c is None else c(value) for (_, c), value in zip(pairs, row, strict=True)]
            )

        return convert

    def rows(self, sql: str, params: Mapping[str, Any] | None = None) -> list[Any]:
        """Every row of a query, each a named tuple (columns `*_at` and `*_date` converted)."""
        cursor = self._execute(sql, params)
        try:
            convert = self._converter(cursor)
            return [convert(row) for row in cursor.fetchall()]
        finally:
            cursor.close()

    def stream(
        self, sql: str, params: Mapping[str, Any] | None = None, batch: int = 1000
    ) -> Generator[Any, None, None]:
        """The rows of a query fetched `batch` at a time (constant memory): on PostgreSQL
        through a server-side cursor (psycopg's default cursor receives the whole result)."""
        if self.dialect == "postgresql":
            statement, values = self._prepared(sql, params)
            cursor = self.connection.cursor(name=f"stream_{next(_STREAMS)}")
            cursor.execute(statement, values)
        else:
            cursor = self._execute(sql, params)
        try:
            chunk = cursor.fetchmany(batch)
            # psycopg2's server-side cursor describes its columns only once it has fetched
            convert = self._converter(cursor)
            while chunk:
                yield from (convert(row) for row in chunk)
                chunk = cursor.fetchmany(batch)
        finally:
            cursor.close()

    def first(self, sql: str, params: Mapping[str, Any] | None = None) -> Any:
        found = self.rows(sql, params)
        return found[0] if found else None

    def scalar(self, sql: str, params: Mapping[str, Any] | None = None) -> Any:
        row = self.first(sql, params)
        return row[0] if row is not None else None

    def column(self, sql: str, params: Mapping[str, Any] | None = None) -> list[Any]:
        return [row[0] for row in self.rows(sql, params)]

    def has_table(self, name: str) -> bool:
        if self.dialect == "sqlite":
            sql = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = :name"
        else:
            sql = (
                "SELECT 1 FROM pg_catalog.pg_tables WHERE tablename = :name"
                " AND schemaname = ANY(current_schemas(false))"
            )
        return self.first(sql, {"name": name}) is not None

    def stored_revision(self) -> str | None:
        """The revision the archive is at (None: no schema)."""
        if not self.has_table("alembic_version"):
            return None
        found = self.column("SELECT version_num FROM alembic_version")
        return found[0] if len(found) == 1 else None

    def write_refusal(self) -> str | None:
        """Why the archive cannot be written to (a read-only file or session), else None."""
        if self.dialect == "sqlite":
            # setting the header's user version to what it is writes nothing new, but is a write
            version = int(self.scalar("PRAGMA user_version") or 0)
            self.connection.execute(f"PRAGMA user_version = {version}")
            self.connection.commit()
        elif self.scalar("SHOW transaction_read_only") == "on":
            return "the database session is read-only"
        return None
