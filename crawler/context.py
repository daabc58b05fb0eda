"""Per-crawl shared state: the archive connection, the source and the run being recorded.

Pipelines, extensions and spiders of one crawl reach the same `CrawlContext` through
`crawl_context(crawler)`; it is made when first asked for and disposed when the spider closes.
Nothing is parked on the spider.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import weakref
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from scrapy import signals
from scrapy.crawler import Crawler
from scrapy.utils.defer import deferred_from_coro
from sqlalchemy import select
from sqlalchemy.engine import make_url

from crawler.config import SourceConfig, database_url, load_sources
from crawler.db.models import Source
from crawler.db.session import Archive

_CONTEXTS: weakref.WeakKeyDictionary[Crawler, CrawlContext] = weakref.WeakKeyDictionary()
# Archives the crawl command already opened (and whose schema it checked), by URL: the crawls it
# runs take them instead of opening the same archive again (an engine, its first connection and
# the dialect's first queries, and the schema check: about 30 ms of a crawl's start-up on
# PostgreSQL).
_OPENED: dict[str, Archive] = {}
logger = logging.getLogger(__name__)


@contextlib.contextmanager
def sharing(archive: Archive) -> Iterator[None]:
    """While in this block, the crawls of this process use `archive` (by its URL) rather than
    open their own."""
    _OPENED[archive.url] = archive
    try:
        yield
    finally:
        if _OPENED.get(archive.url) is archive:
            del _OPENED[archive.url]


def archive_for(url: str) -> Archive:
    """The archive at `url`: the one the command shared, else one opened now (PostgreSQL
    through the crawl's light driver, crawler.db.session.CRAWL_DRIVER). Disposing it closes its
    idle connections only; it connects again when used."""
    found = _OPENED.get(url)
    return found if found is not None else Archive(url, light=True)


# The close reason of a crawl stopped because the archive cannot take any page.
ARCHIVE_FAILED = "archive_failed"
# Room kept beside a SQLite archive while a crawl writes to it, given back when the disk is full
# so that the run can still be closed and the lease released.
RESERVE_BYTES = 1 << 20


@dataclass
class CrawlContext:
    archive: Archive
    source: SourceConfig
    source_id: int
    run_id: int | None = None
    # why the archive cannot take pages any more (the crawl is stopping), else None
    failure: str | None = None
    # how far each discovery walk got: entry URL -> "complete" / "stopped at page N"
    walks: dict[str, str] = field(default_factory=dict)
    reserve: Path | None = None

    def walk_summary(self) -> str | None:
        """The run's `walk`: "complete", or "stopped at page N" for the first unfinished one."""
        if not self.walks:
            return None
        unfinished = [state for state in self.walks.values() if state != "complete"]
        return unfinished[0] if unfinished else "complete"

    def close(self) -> None:
        self.give_reserve_back()
        self.archive.dispose()

    def give_reserve_back(self) -> None:
        if self.reserve is not None:
            with contextlib.suppress(OSError):
                self.reserve.unlink()
            self.reserve = None


def keep_reserve(archive: Archive, source: str) -> Path | None:
    """On a SQLite archive, a file of RESERVE_BYTES beside it (None when there is no room or the
    archive is not a file); those of crawls that died are removed."""
    url = make_url(archive.url)
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return None
    database = Path(url.database)
    for stale in database.parent.glob(f"{database.name}.reserve-*"):
        pid = re.match(r"\d+", stale.name.removeprefix(f"{database.name}.reserve-"))
        if pid and not _alive(int(pid.group())):
            with contextlib.suppress(OSError):
                stale.unlink()
    reserve = database.with_name(f"{database.name}.reserve-{os.getpid()}-{source}")
    try:
        reserve.write_bytes(bytes(RESERVE_BYTES))
    except OSError:
        with contextlib.suppress(OSError):
            reserve.unlink()
        return None
    return reserve


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def source_config(crawler: Crawler, name: str) -> SourceConfig:
    """The spider's own table of the sources file named by the settings."""
    sources = load_sources(crawler.settings.get("CRAWLER_SOURCES"))
    return sources.select([name])[0]


def ensure_source(archive: Archive, source: SourceConfig) -> int:
    """The id of the source's row, created or its base_url brought up to date."""
    with archive.transaction() as session:
        row = session.scalar(select(Source).where(Source.name == source.name))
        if row is None:
            row = Source(name=source.name, base_url=source.base_url)
            session.add(row)
            session.flush()
        elif row.base_url != source.base_url:
            row.base_url = source.base_url
        return row.id


def crawl_context(crawler: Crawler) -> CrawlContext:
    """The crawl's context, made on first use (needs crawler.spider to be set)."""
    context = _CONTEXTS.get(crawler)
    if context is None:
        assert crawler.spider is not None, "the crawl context needs an open spider"
        source = getattr(crawler.spider, "source", None) or source_config(
            crawler, crawler.spider.name
        )
        archive = archive_for(database_url(crawler.settings.get("CRAWLER_DATABASE_URL")))
        context = CrawlContext(archive, source, ensure_source(archive, source))
        context.reserve = keep_reserve(archive, source.name)
        _CONTEXTS[crawler] = context
        crawler.signals.connect(_dispose, signal=signals.engine_stopped, weak=False)
    return context


def stop_on_archive_failure(crawler: Crawler, reason: str) -> None:
    """Stop the crawl at once, in one log line, because no page can be archived any more (a full
    disk, a read-only or vanished database, a lost connection); its run is closed as failed."""
    context = crawl_context(crawler)
    if context.failure is not None:
        return
    context.failure = reason
    context.give_reserve_back()  # room to close the run and give the lease back
    name = context.source.name
    logger.error("%s: stopping the crawl: %s", name, reason)
    engine = crawler.engine
    if engine is not None and engine.spider is not None:
        deferred_from_coro(engine.close_spider_async(reason=ARCHIVE_FAILED))


def _dispose(sender: Crawler, **_: object) -> None:
    # The signal manager of a crawler sends its signals with the crawler as sender.
    context = _CONTEXTS.pop(sender, None)
    if context is not None:
        context.close()
