"""Per-crawl shared state: the archive connection, the source and the run being recorded.

Pipelines, extensions and spiders of one crawl reach the same `CrawlContext` through
`crawl_context(crawler)`; it is made when first asked for and disposed when the spider closes.
Nothing is parked on the spider.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass

from scrapy import signals
from scrapy.crawler import Crawler
from sqlalchemy import select

from crawler.config import SourceConfig, database_url, load_sources
from crawler.db.models import Source
from crawler.db.session import Archive

_CONTEXTS: weakref.WeakKeyDictionary[Crawler, CrawlContext] = weakref.WeakKeyDictionary()


@dataclass
class CrawlContext:
    archive: Archive
    source: SourceConfig
    source_id: int
    run_id: int | None = None

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


def _dispose(sender: Crawler, **_: object) -> None:
    # The signal manager of a crawler sends its signals with the crawler as sender.
    context = _CONTEXTS.pop(sender, None)
    if context is not None:
        context.close()
