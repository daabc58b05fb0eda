"""Stage 1: keep the exact response an article came from."""

from __future__ import annotations

from typing import Any

from scrapy.crawler import Crawler

from crawler.context import crawl_context
from crawler.db.queries import store_snapshot
from crawler.items import ArticleItem


class SnapshotPipeline:
    def __init__(self, crawler: Crawler) -> None:
        self.crawler = crawler

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> SnapshotPipeline:
        return cls(crawler)

    def process_item(self, item: Any) -> Any:
        if not isinstance(item, ArticleItem) or item.page is None:
            return item
        context = crawl_context(self.crawler)
        # Written on the reactor thread: measured, a writer thread lost more to GIL hand-overs
        # than it gained (bench/throughput.py).
        with context.archive.transaction() as session:
            stored = store_snapshot(session, context.source_id, context.run_id, item.page)
        item.snapshot_id, item.snapshot_sha256 = stored.id, stored.sha256
        assert self.crawler.stats is not None
        self.crawler.stats.inc_value("archive/snapshots")
        self.crawler.stats.inc_value("archive/snapshot_bytes", len(item.page.body))
        item.page = None  # the bytes are archived; do not carry them down the pipeline
        return item
