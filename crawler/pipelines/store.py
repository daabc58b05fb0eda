"""Stage 5: one transaction per article: new, seen again, or a new version."""

from __future__ import annotations

import logging
from typing import Any

from scrapy.crawler import Crawler

from crawler.context import crawl_context
from crawler.db.queries import archive_article, mark_seen
from crawler.items import ArticleItem, NotModifiedItem

logger = logging.getLogger(__name__)


class StorePipeline:
    def __init__(self, crawler: Crawler) -> None:
        self.crawler = crawler

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> StorePipeline:
        return cls(crawler)

    def process_item(self, item: Any) -> Any:
        stats = self.crawler.stats
        assert stats is not None
        context = crawl_context(self.crawler)
        if isinstance(item, NotModifiedItem):
            with context.archive.transaction() as session:
                mark_seen(session, context.source_id, item.url)
            stats.inc_value("archive/articles_unchanged")
            return item
        if not isinstance(item, ArticleItem):
            return item
        # Any error rolls the whole article back; what was archived before stays as it was.
        with context.archive.transaction() as session:
            outcome, article = archive_article(session, context.source_id, item)
            article_id, version = article.id, article.version
        stats.inc_value(f"archive/articles_{outcome.value}")
        logger.debug("%s article %s (v%d): %s", outcome.value, article_id, version, item.url)
        return item
