"""Stage 4: one transaction per page: its snapshot, the article (new, seen again, or a new
version) with its topics, and its URLs made known.

A URL is known (not fetched again) only once this transaction committed: a page whose article
failed to store is fetched again by the next run. A page the validate stage turned down keeps its
snapshot and its URL is recorded as rejected. An error that will recur for every page (a full
disk, a read-only or vanished database, a lost connection) stops the crawl at once.
"""

from __future__ import annotations

import logging
from typing import Any

from scrapy.crawler import Crawler
from scrapy.exceptions import DropItem

from crawler.context import CrawlContext, crawl_context, stop_on_archive_failure
from crawler.db.errors import fatal_reason, one_line
from crawler.db.queries import (
    ARCHIVED,
    REJECTED,
    ArticleRef,
    Outcome,
    archive_article,
    mark_seen,
    record_urls,
    store_snapshot,
)
from crawler.items import ArticleItem, NotModifiedItem
from crawler.signals import page_error
from crawler.stories import index_article
from crawler.topics import TopicTagger

logger = logging.getLogger(__name__)


class StorePipeline:
    def __init__(self, crawler: Crawler) -> None:
        self.crawler = crawler
        self.tagger: TopicTagger | None = None

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> StorePipeline:
        return cls(crawler)

    def open_spider(self) -> None:
        """Read the topics file (CRAWLER_TOPICS) once per crawl; make sure its topics have rows."""
        self.tagger = TopicTagger(self.crawler.settings.get("CRAWLER_TOPICS"))
        with crawl_context(self.crawler).archive.transaction() as session:
            self.tagger.open(session)

    def process_item(self, item: Any) -> Any:
        if not isinstance(item, ArticleItem | NotModifiedItem):
            return item
        context = crawl_context(self.crawler)
        if context.failure is not None:
            # the crawl is stopping: pages still in flight are fetched again by the next run
            raise DropItem(f"not archived: {item.url}: the crawl is stopping", log_level="DEBUG")
        try:
            return self._store(context, item)
        except DropItem:
            raise
        except Exception as exc:
            reason = fatal_reason(exc)
            if reason is not None:
                stop_on_archive_failure(self.crawler, reason)
                raise DropItem(f"not archived: {item.url}: {reason}", log_level="DEBUG") from None
            # this page's own failure: one line, never the page's text; fetched again next run
            problem = f"not stored: {one_line(exc)}"
            logger.error("cannot archive %s: %s", item.url, problem)
            self.crawler.signals.send_catch_log(page_error, url=item.url, reason=problem)
            self._stats().inc_value("archive/store_errors")
            raise DropItem(f"not archived: {item.url}: {problem}", log_level="DEBUG") from None

    def _store(self, context: CrawlContext, item: ArticleItem | NotModifiedItem) -> Any:
        stats = self._stats()
        if isinstance(item, NotModifiedItem):
            with context.archive.transaction() as session:
                mark_seen(session, context.source_id, item.url, article_id=item.article_id)
            stats.inc_value("archive/articles_unchanged")
            return item
        page = item.page
        matched: set[str] = set()
        # Written on the reactor thread: measured, a writer thread lost more to GIL hand-overs
        # than it gained (bench/throughput.py). Any error rolls the whole page back: snapshot,
        # article, topics and known URLs are stored together or not at all.
        with context.archive.transaction() as session:
            urls = {item.url, item.canonical_url or ""}
            if page is not None:
                stored = store_snapshot(session, context.source_id, context.run_id, page)
                item.snapshot_id, item.snapshot_sha256 = stored.id, stored.sha256
                urls |= {page.requested_url, page.final_url}
            if item.rejected:
                record_urls(session, context.source_id, urls, REJECTED, None, item.snapshot_id)
            else:
                outcome, article = archive_article(session, context.source_id, item)
                if outcome is not Outcome.UNCHANGED and self.tagger is not None:
                    matched = self.tagger.tag(session, article.id, item, outcome is Outcome.NEW)
                if outcome is not Outcome.UNCHANGED:
                    # copies and stories kept in step, in the same transaction
                    index_article(session, article.id, self.crawler.settings.get("CRAWLER_TOPICS"))
                record_urls(
                    session, context.source_id, urls, ARCHIVED, article.id, item.snapshot_id
                )
        if page is not None:
            stats.inc_value("archive/snapshots")
            stats.inc_value("archive/snapshot_bytes", len(page.body))
            item.page = None  # the bytes are archived; do not carry them further
        if item.rejected:
            raise DropItem(f"not archived: {item.url} has {item.rejected}")
        self._count(outcome, article, matched, item)
        return item

    def _count(self, outcome: Outcome, article: ArticleRef, matched: set[str], item: Any) -> None:
        stats = self._stats()
        for name in matched:
            stats.inc_value(f"archive/topic/{name}")
        stats.inc_value(f"archive/articles_{outcome.value}")
        logger.debug(
            "%s article %s (v%d): %s", outcome.value, article.id, article.version, item.url
        )

    def _stats(self) -> Any:
        assert self.crawler.stats is not None
        return self.crawler.stats
