"""Per-crawl shared state: the archive connection, the source and the run being recorded.

Pipelines, extensions and spiders of one crawl reach the same `CrawlContext` through
`crawl_context(crawler)`; it is made when first asked for and disposed when the spider closes.
Nothing is parked on the spider.
"""

from __future__ import annotations

import logging
import weakref
from dataclasses import dataclass, field

from scrapy import signals
from scrapy.crawler import Crawler
from scrapy.utils.defer import deferred_from_coro
from sqlalchemy import select

from crawler.config import SourceConfig, database_url, load_sources
from crawler.db.models import Source
from crawler.db.session import Archive

_CONTEXTS: weakref.WeakKeyDictionary[Crawler, CrawlContext] = weakref.WeakKeyDictionary()
logger = logging.getLogger(__name__)

# The close reason of a crawl stopped because the archive cannot take any page.
ARCHIVE_FAILED = "archive_failed"


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

    def walk_summary(self) -> str | None:
        """The run's `walk`: "complete", or "stopped at page N" for the first unfinished one."""
        if not self.walks:
            return None
        unfinished = [state for state in self.walks.values() if state != "complete"]
        return unfinished[0] if unfinished else "complete"

    def close(self) -> None:
        self.archive.dispose()


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
        archive = Archive(database_url(crawler.settings.get("CRAWLER_DATABASE_URL")))
        context = CrawlContext(archive, source, ensure_source(archive, source))
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
    name = crawler.spider.name if crawler.spider is not None else "?"
    logger.error("%s: stopping the crawl: %s", name, reason)
    engine = crawler.engine
    if engine is not None and engine.spider is not None:
        deferred_from_coro(engine.close_spider_async(reason=ARCHIVE_FAILED))


def _dispose(sender: Crawler, **_: object) -> None:
    # The signal manager of a crawler sends its signals with the crawler as sender.
    context = _CONTEXTS.pop(sender, None)
    if context is not None:
        context.close()
