"""The archive writer's hot statements, run on the session's DB-API connection.

Every page a crawl stores runs the same dozen Core statements. Through `Session.execute` each
call builds an execution context, processes its parameters, wraps its cursor in a result and
checks the ORM's hooks: measured at about a third of the archive writer's CPU on SQLite, more
than the database's own work. Here a statement is compiled once per dialect and set of
columns, by SQLAlchemy (the SQL is the same), its parameters go through the same type
processors (`UTCDateTime`, JSON, ...), its rows through the same result processors, and a
database error comes out as the same `sqlalchemy.exc.DBAPIError` (a lost connection
invalidated), so callers and `crawler.db.errors` see no difference. It runs in the session's
own transaction, on its own connection.

Only statements the writer runs for every page go through here; a statement this cannot run as
SQLAlchemy would (an expanding IN, a column with a Python-side default missing from the
parameters) is refused when first prepared, naming it.

`ENABLED = False` sends every call through `Session.execute` instead: the tests store the same
pages both ways and compare the archives.
"""

from __future__ import annotations

import contextlib
import copy
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Connection, CursorResult
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session
from sqlalchemy.sql import Executable
from sqlalchemy.sql.elements import BindParameter

ENABLED = True

_Processor = Callable[[Any], Any]


@dataclass(frozen=True)
class _Prepared:
    sql: str
    # bind names in the order of the SQL's placeholders (positional paramstyles), else None
    positions: tuple[str, ...] | None
    # the defaults of binds not given (a LIMIT's value), and the type processors by bind name
    defaults: dict[str, Any]
    required: frozenset[str]
    processors: dict[str, _Processor]
    # per result column, or None when no column needs one
    results: tuple[_Processor | None, ...] | None
    # PostgreSQL's own $1, $2, ... placeholders, run through psycopg's RawCursor
    raw: bool = False
    # a SELECT, or a statement with RETURNING: its rows are fetched
    returns_rows: bool = False

    def values(self, params: Mapping[str, Any]) -> Any:
        missing = self.required.difference(params)
        if missing:
            raise KeyError(f"no value for {', '.join(sorted(missing))} in {self.sql!r}")
        bound = dict(self.defaults)
        bound.update(params)
        for name, process in self.processors.items():
            bound[name] = process(bound.get(name))
        if self.positions is None:
            return bound
        return tuple(bound[name] for name in self.positions)


_PREPARED: dict[tuple[int, str, tuple[str, ...]], tuple[Executable, _Prepared]] = {}
_LOCK = threading.Lock()
# by the dialect's id: (the dialect, its copy writing $n); the dialect is kept, so its id is
# not reused by another while its entry is here
_DOLLAR: dict[int, tuple[Dialect, Dialect]] = {}


def _compiling(dialect: Dialect) -> tuple[Dialect, bool]:
    """The dialect to compile with, and whether it writes PostgreSQL's $n placeholders.

    psycopg turns a query's %(name)s placeholders into $n at every execution, and caches that
    only for queries under 4 KB: the story candidates of SQLite's form (12 terms, 10 KB of SQL)
    were split by a regular expression for every page, 0.2 ms of it (PostgreSQL now runs a
    short form of that query, crawler/stories/index.py). Compiled to $n once here, a query goes
    to psycopg's RawCursor as it is, whatever its length."""
    if dialect.driver != "psycopg":
        return dialect, False
    found = _DOLLAR.get(id(dialect))
    if found is not None and found[0] is dialect:
        return found[1], True
    dollar = copy.copy(dialect)  # what it learnt from the server (version, ...) kept
    dollar.paramstyle = "numeric_dollar"
    dollar.positional = True
    with _LOCK:
        _DOLLAR[id(dialect)] = (dialect, dollar)
    return dollar, True


def _prepare(statement: Executable, dialect: Dialect, keys: tuple[str, ...]) -> _Prepared:
    cache_key = (id(statement), dialect.name, keys)
    found = _PREPARED.get(cache_key)
    if found is not None and found[0] is statement:
        return found[1]
    compiling, raw = _compiling(dialect)
    compiled = statement.compile(dialect=compiling, column_keys=list(keys))  # type: ignore[attr-defined]
    sql = compiled.string
    if "POSTCOMPILE" in sql or compiled.insert_prefetch or compiled.update_prefetch:
        raise ValueError(
            f"statement {sql!r} cannot run directly: it expands its parameters or computes"
            " a column's default in Python"
        )
    defaults: dict[str, Any] = {}
    required: set[str] = set()
    processors: dict[str, _Processor] = {}
    bind: BindParameter[Any]
    if getattr(compiled, "escaped_bind_names", None):
        raise ValueError(f"statement {sql!r} cannot run directly: a bind name needs escaping")
    for bind, name in compiled.bind_names.items():
        if bind.callable is not None:
            raise ValueError(f"statement {sql!r} cannot run directly: {name} is computed")
        if name in keys:
            pass
        elif bind.value is not None or not bind.required:
            defaults[name] = bind.value
        else:
            required.add(name)
        process = bind.type.dialect_impl(dialect).bind_processor(dialect)
        if process is not None:
            processors[name] = process
    results: tuple[_Processor | None, ...] | None = None
    columns = getattr(statement, "selected_columns", None)
    returning = getattr(statement, "_returning", ())
    if columns is None and returning:
        columns = returning
    if columns is not None:
        try:
            found_processors = tuple(
                column.type.dialect_impl(dialect).result_processor(dialect, None)
                for column in columns
            )
        except Exception as exc:  # one that needs the driver's type code (psycopg's Numeric)
            raise ValueError(
                f"statement {sql!r} cannot run directly: a column's type needs the driver's"
            ) from exc
        if any(p is not None for p in found_processors):
            results = found_processors
    prepared = _Prepared(
        sql,
        tuple(compiled.positiontup) if compiled.positional else None,
        defaults,
        frozenset(required),
        processors,
        results,
        raw,
        columns is not None,
    )
    with _LOCK:
        _PREPARED[cache_key] = (statement, prepared)
    return prepared


def _raw_cursor(connection: Connection, driver: Any) -> Any:
    """psycopg: the RawCursor of this DB-API connection, made once and kept in its pool
    record's `info` (making and closing one for every statement measured 5% of the archive
    writer's CPU); a new one when the record's connection was replaced."""
    info = connection.connection.info
    found = info.get("crawler.direct.cursor")
    if found is not None and found[0] is driver and not found[1].closed:
        return found[1]
    from psycopg import RawCursor

    cursor = RawCursor(driver)
    info["crawler.direct.cursor"] = (driver, cursor)
    return cursor


def _run(
    session: Session, statement: Executable, rows: Sequence[Mapping[str, Any]], many: bool
) -> list[tuple[Any, ...]]:
    connection: Connection = session.connection()
    dialect = connection.dialect
    prepared = _prepare(statement, dialect, tuple(sorted(rows[0])))
    values = [prepared.values(row) for row in rows]
    driver = connection.connection.driver_connection
    assert driver is not None
    cursor = None
    try:
        cursor = _raw_cursor(connection, driver) if prepared.raw else driver.cursor()
        if many:
            cursor.executemany(prepared.sql, values)
            return []
        cursor.execute(prepared.sql, values[0])
        # whether there are rows is known from the statement: its description (a column
        # object made for each) is not read
        if not prepared.returns_rows:
            return []
        found = cursor.fetchall()
    except dialect.loaded_dbapi.Error as exc:
        lost = dialect.is_disconnect(exc, driver, cursor)
        if lost:
            connection.invalidate(exc)
        raise DBAPIError.instance(
            prepared.sql,
            values if many else values[0],
            exc,
            dialect.loaded_dbapi.Error,
            connection_invalidated=lost,
            dialect=dialect,
        ) from exc
    finally:
        if cursor is not None and not prepared.raw:
            with contextlib.suppress(dialect.loaded_dbapi.Error):
                cursor.close()
    if prepared.results is None:
        return [tuple(row) for row in found]
    processors = prepared.results
    return [
        tuple(value if p is None else p(value) for p, value in zip(processors, row, strict=True))
        for row in found
    ]


def execute(
    session: Session, statement: Executable, params: Mapping[str, Any]
) -> list[tuple[Any, ...]]:
    """Run `statement` with `params` in the session's transaction: its rows (none for a
    statement that returns none)."""
    if not ENABLED:
        result = cast(CursorResult[Any], session.execute(statement, dict(params)))
        return [tuple(row) for row in result] if result.returns_rows else []
    return _run(session, statement, [params], False)


def execute_many(
    session: Session, statement: Executable, rows: Sequence[Mapping[str, Any]]
) -> None:
    """Run `statement` once for each of `rows` (all with the same keys), returning nothing."""
    if not rows:
        return
    if not ENABLED:
        session.execute(statement, [dict(row) for row in rows])
        return
    _run(session, statement, rows, True)
