"""Which archive errors concern one page and which will recur for every page.

A full disk, a read-only or vanished database, a lost connection: storing the next page would
fail the same way, so the crawl stops at once (one line saying why) instead of fetching the
whole site for nothing. Anything else (a constraint, a trigger refusing one row, bad data) is
the page's own failure: that page is not archived, is fetched again by the next run, and the
crawl goes on.
"""

from __future__ import annotations

from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError, ProgrammingError

# SQLSTATE classes and codes of PostgreSQL errors that no other page can escape: connection
# exceptions, insufficient resources (disk full, out of memory), operator intervention
# (shutdown), read-only transaction, undefined database/table, system errors.
_FATAL_SQLSTATE_CLASSES = ("08", "53", "57", "58", "3D")
_FATAL_SQLSTATES = ("25006", "42P01")
# SQLite reports its errors by message only.
_FATAL_SQLITE = (
    "database or disk is full",
    "disk i/o error",
    "readonly database",
    "read-only",
    "unable to open database",
    "no such table",
    "file is not a database",
    "database disk image is malformed",
)


def fatal_reason(exc: BaseException) -> str | None:
    """One line saying why the archive cannot take any page, or None for a page's own failure."""
    if not isinstance(exc, DBAPIError):
        return None
    message = _first_line(exc)
    if exc.connection_invalidated:
        return f"the connection to the archive was lost: {message}"
    state = getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None)
    if isinstance(state, str):
        if state.startswith(_FATAL_SQLSTATE_CLASSES) or state in _FATAL_SQLSTATES:
            return f"the archive refuses writes: {message}"
        return None
    lowered = message.lower()
    if any(part in lowered for part in _FATAL_SQLITE):
        return f"the archive refuses writes: {message}"
    if isinstance(exc, InterfaceError | OperationalError | ProgrammingError) and (
        "closed" in lowered or "connect" in lowered
    ):
        return f"the connection to the archive was lost: {message}"
    return None


def one_line(exc: BaseException) -> str:
    """An exception as one line: its type and the first line of its message (no SQL, no data)."""
    if isinstance(exc, DBAPIError):
        return f"{type(exc.orig).__name__}: {_first_line(exc)}"
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")


def _first_line(exc: DBAPIError) -> str:
    text = str(exc.orig).strip().splitlines()
    return text[0] if text else type(exc.orig).__name__
