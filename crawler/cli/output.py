"""What the `crawler` commands print and how they fail, without typer: the consoles, one-line
errors, and the checks of options that every command shares (crawler/cli/quick.py runs the
query commands through these without importing typer)."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from rich.console import Console

from crawler.config import ConfigError, SourcesFile, database_url, load_sources, sources_path

# No ":name:" emoji codes: what the commands print is an outlet's text, URLs and paths, as
# written (and a crawl's first line no longer loads rich's table of codes: 2.5 ms of start-up).
out = Console(emoji=False)
err = Console(stderr=True, emoji=False)


def fail(message: str, code: int = 2) -> SystemExit:
    """Print `message` as one error line (as written: no markup) and give the exit to raise."""
    from rich.text import Text

    err.print(Text.assemble(("error:", "red"), " ", message), highlight=False, soft_wrap=True)
    return SystemExit(code)


def sources_file(path: Path | None) -> SourcesFile:
    try:
        return load_sources(sources_path(path))
    except ConfigError as exc:
        raise fail(str(exc)) from None


def check_topics() -> None:
    """Fail with the reason when the topics file (CRAWLER_TOPICS or bundled) is unusable."""
    from crawler.topics import load_topics

    try:
        load_topics()
    except ConfigError as exc:
        raise fail(str(exc)) from None


def check_sources(path: Path | None) -> None:
    """A --sources file given to a command that does not crawl is still checked."""
    if path is not None:
        sources_file(path)


_PASSWORD_IN_URL = re.compile(r"(//[^:/@\s]*:)[^@/\s]*@")


def shown_url(url: str) -> str:
    """A database URL as it may be printed: its password hidden (as SQLAlchemy renders it)."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not a URL SQLAlchemy reads: hide what looks like a password anyway
        return _PASSWORD_IN_URL.sub(r"\1***@", url)


def one_line(exc: BaseException) -> str:
    """An error's message on one line, without SQLAlchemy's link to its documentation."""
    orig = getattr(exc, "orig", None)  # the driver's own message says what went wrong
    text = str(orig if orig is not None else exc).split("(Background on this error at:")[0]
    return " ".join(line.strip() for line in text.splitlines() if line.strip())


def sqlite_file(url: str) -> Path | None:
    """The file of a SQLite archive URL (None for another database or an in-memory one)."""
    from sqlalchemy.engine import make_url

    try:
        parsed = make_url(url)
    except Exception:
        return None
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    if parsed.query.get("uri") == "true" and parsed.database.startswith("file:"):
        from urllib.parse import urlsplit  # sqlite:///file:PATH?mode=ro&uri=true

        return Path(urlsplit(parsed.database).path)
    return Path(parsed.database)


def open_archive(
    db: str | None, migrate: bool | None = None, *, read_only: bool = False, light: bool = False
) -> Any:
    """The archive the options name; a one-line error (exit 2) when it cannot be used.

    A command that only reads (`read_only`) refuses a SQLite file that does not exist rather
    than creating an empty archive; one that writes refuses a file it cannot write. `light`:
    PostgreSQL through the crawl's light driver (crawler.db.session.CRAWL_DRIVER)."""
    from crawler.db.session import Archive

    url = database_url(db)
    shown = shown_url(url)
    path = sqlite_file(url)
    if path is not None and read_only and not path.exists():
        raise fail(
            f"no archive at {path} (crawl into it first, or name another with --db or "
            "CRAWLER_DATABASE_URL)"
        )
    if path is not None and not read_only and path.exists():
        folder = path.parent
        if not os.access(path, os.W_OK) or not os.access(folder, os.W_OK):
            where = path if not os.access(path, os.W_OK) else folder
            raise fail(f"cannot write to the archive {path}: {where} is read-only")
    try:
        archive = Archive(url, migrate=migrate, light=light)
    except ConfigError as exc:
        raise fail(str(exc).replace(url, shown)) from None
    except Exception as exc:  # a server that is down, a file that is not a database, ...
        raise fail(
            f"cannot open the archive {shown}: {one_line(exc).replace(url, shown)}"
        ) from None
    if not read_only:
        try:
            refusal = write_refusal(archive)
        except Exception as exc:
            refusal = one_line(exc)
        if refusal is not None:
            archive.dispose()
            raise fail(f"cannot write to the archive {shown}: {refusal}")
    return archive


def write_refusal(archive: Any) -> str | None:
    """Why the archive cannot be written to (a read-only file or session), else None.

    Asked before a crawl starts, so that it fails in one line rather than in its first write."""
    with archive.engine.connect() as connection:
        if archive.dialect == "sqlite":
            # setting the header's user version to what it is writes nothing new, but is a write
            version = int(connection.exec_driver_sql("PRAGMA user_version").scalar() or 0)
            connection.exec_driver_sql(f"PRAGMA user_version = {version}")
            connection.commit()
        elif (
            archive.dialect == "postgresql"
            and connection.exec_driver_sql("SHOW transaction_read_only").scalar() == "on"
        ):
            return "the database session is read-only"
    return None


def refuse_archive_as_output(output: Path, db: str | None) -> None:
    """Fail when `-o` names the archive's own file (or its journal): writing there destroys it."""
    path = sqlite_file(database_url(db))
    if path is None:
        return
    target = output.resolve()
    own = [path.resolve(), *(path.resolve().with_name(path.name + x) for x in SQLITE_SIDE_FILES)]
    if target in own or (output.exists() and path.exists() and os.path.samefile(output, path)):
        raise fail(f"-o {output}: that is the archive itself ({path}); write to another file")


SQLITE_SIDE_FILES = ("-wal", "-shm", "-journal")


@contextmanager
def written_atomically(target: Path) -> Iterator[Path]:
    """A temporary file beside `target`, renamed to it once the block succeeds (else removed):
    an export that fails half-way leaves `target` as it was."""
    partial = target.with_name(f".{target.name}.{os.getpid()}.part")
    try:
        yield partial
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)


def parse_when(value: str | None, option: str) -> date | datetime | None:
    """A --since/--until value: a day (2024-07-19, read on the publication's own calendar) or
    a full timestamp (2024-07-19T06:00, UTC when no offset is given)."""
    if value is None:
        return None
    from crawler.read.export import parse_day_or_time

    try:
        return parse_day_or_time(value)
    except ValueError:
        raise fail(
            f"{option} {value!r} is not a date like 2024-07-19 or a time like 2024-07-19T06:00"
        ) from None


def parse_instant(value: str | None, option: str) -> datetime | None:
    """A --since/--until value as an instant: a day is its start, in UTC."""
    parsed = parse_when(value, option)
    if parsed is None or isinstance(parsed, datetime):
        return parsed
    return datetime.combine(parsed, datetime.min.time(), tzinfo=UTC)


def marked(snippet: str, style: str | None) -> Any:
    """A snippet with its highlighted words styled (or in [brackets] when `style` is None)."""
    import re

    from rich.text import Text

    from crawler.read.search import MARK_END, MARK_START

    if style is None:
        return Text(snippet.replace(MARK_START, "[").replace(MARK_END, "]"))
    text = Text()
    for n, part in enumerate(re.split(f"[{MARK_START}{MARK_END}]", snippet)):
        text.append(part, style=style if n % 2 else None)
    return text
