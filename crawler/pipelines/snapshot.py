"""Stage 1: keep the exact response an article came from."""

from __future__ import annotations

from typing import Any

from scrapy.crawler import Crawler

from crawler.context import CrawlContext, crawl_context
from crawler.db.queries import StoredSnapshot, store_snapshot
from crawler.items import ArticleItem, FetchedPage


class SnapshotPipeline:
    def __init__(self, crawler: Crawler) -> None:
        self.crawler = crawler

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> SnapshotPipeline:
        return cls(crawler)

    async def process_item(self, item: Any) -> Any:
        if not isinstance(item, ArticleItem) or item.page is None:
            return item
        context = crawl_context(self.crawler)
        stored = await context.write(self._store, context, item.page)
        item.snapshot_id, item.snapshot_sha256 = stored.id, stored.sha256
        assert self.crawler.stats is not None
        self.crawler.stats.inc_value("archive/snapshots")
        self.crawler.stats.inc_value("archive/snapshot_bytes", len(item.page.body))
        item.page = None  # the bytes are archived; do not carry them down the pipeline
        return item

    @staticmethod
    def _store(context: CrawlContext, page: FetchedPage) -> StoredSnapshot:
        with context.archive.transaction() as session:
            return store_snapshot(session, context.source_id, context.run_id, page)
