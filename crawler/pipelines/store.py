"""Stage 4: each page whole or not at all: its snapshot, the article (new, seen again, or a
new version) with its topics and story index, and its URLs made known.

The storing itself runs in the archive writer (crawler/db/writer.py), a process of its own, so
that it takes the machine's other core while this one fetches and parses; this stage hands each
page over and turns what came of it into the crawl's stats, log lines and dropped items.

A URL is known (not fetched again) only once its page's transaction committed: a page whose article
failed to store is fetched again by the next run. A page the validate stage turned down keeps its
snapshot and its URL is recorded as rejected. An error that will recur for every page (a full
disk, a read-only or vanished database, a lost connection, the writer gone) stops the crawl at
once.
"""

from __future__ import annotations

import logging
from typing import Any

from scrapy.crawler import Crawler
from scrapy.exceptions import DropItem

from crawler.context import crawl_context, stop_on_archive_failure
from crawler.db.writer import ArchiveWriter, Stored, WriterConfig
from crawler.items import ArticleItem, NotModifiedItem
from crawler.signals import page_error
from crawler.stories.signing import text_signature
from crawler.topics import TopicTagger

logger = logging.getLogger(__name__)


class StorePipeline:
    def __init__(self, crawler: Crawler) -> None:
        self.crawler = crawler
        self.config: WriterConfig | None = None
        self.writer: ArchiveWriter | None = None
        self.vectors = False

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> StorePipeline:
        return cls(crawler)

    async def open_spider(self) -> None:
        """Check the topics file (CRAWLER_TOPICS) and give its topics their rows, here so that a
        bad file stops the crawl before it starts; then start the writer (its imports take the
        other core while the crawl starts, and an archive that cannot take a page stops the
        crawl with its first pages)."""
        topics = self.crawler.settings.get("CRAWLER_TOPICS")
        context = crawl_context(self.crawler)
        with context.archive.transaction() as session:
            TopicTagger(topics).open(session)
        self.config = WriterConfig(context.archive.url, context.source_id, topics)
        self.writer = ArchiveWriter(self.config, self._writer_lost)
        # On SQLite the writer computes the term vector, which shares the story index's work
        # between the two processes about evenly; on PostgreSQL the writer also waits on the
        # server for each statement, and the crawl's core has time to spare.
        self.vectors = context.archive.dialect == "postgresql"

    def _writer_lost(self, reason: str) -> None:
        stop_on_archive_failure(self.crawler, reason)

    async def close_spider(self) -> None:
        if self.writer is not None:
            status = await self.writer.close()
            if status != 0:
                logger.warning("the archive writer exited with status %s", status)

    async def process_item(self, item: Any) -> Any:
        if not isinstance(item, ArticleItem | NotModifiedItem):
            return item
        context = crawl_context(self.crawler)
        if context.failure is not None:
            # the crawl is stopping: pages still in flight are fetched again by the next run
            raise DropItem(f"not archived: {item.url}: the crawl is stopping", log_level="DEBUG")
        signature = None
        if isinstance(item, ArticleItem) and not item.rejected and item.title:
            # the parts of the story index that need the text only, on this process's core: the
            # MinHash, and on PostgreSQL the term vector (bench/throughput.py)
            body = "\n\n".join(item.body)
            assert self.config is not None
            signature = text_signature(item.title, body, self.config.topics, vector=self.vectors)
        assert self.writer is not None
        stored = await self.writer.store(context.run_id, item, signature)
        return self._account(item, stored)

    def _account(self, item: ArticleItem | NotModifiedItem, stored: Stored) -> Any:
        stats = self._stats()
        if stored.kind == "fatal":
            assert stored.problem is not None
            stop_on_archive_failure(self.crawler, stored.problem)
            raise DropItem(f"not archived: {item.url}: {stored.problem}", log_level="DEBUG")
        if stored.kind == "failed":
            logger.error("cannot archive %s: %s", item.url, stored.problem)
            self.crawler.signals.send_catch_log(page_error, url=item.url, reason=stored.problem)
            stats.inc_value("archive/store_errors")
            raise DropItem(f"not archived: {item.url}: {stored.problem}", log_level="DEBUG")
        if isinstance(item, NotModifiedItem):
            stats.inc_value("archive/articles_unchanged")
            return item
        if item.page is not None:
            stats.inc_value("archive/snapshots")
            stats.inc_value("archive/snapshot_bytes", stored.snapshot_bytes)
            item.page = None  # the bytes are archived; do not carry them further
        item.snapshot_id, item.snapshot_sha256 = stored.snapshot_id, stored.snapshot_sha256
        if stored.kind == "rejected":
            # one line with the URL and the reason (Scrapy's own would add the item)
            logger.warning("not archived: %s has %s", item.url, item.rejected)
            raise DropItem(f"not archived: {item.url} has {item.rejected}", log_level="DEBUG")
        for name in stored.matched:
            stats.inc_value(f"archive/topic/{name}")
        stats.inc_value(f"archive/articles_{stored.outcome}")
        logger.debug(
            "%s article %s (v%d): %s", stored.outcome, stored.article_id, stored.version, item.url
        )
        return item

    def _stats(self) -> Any:
        assert self.crawler.stats is not None
        return self.crawler.stats
