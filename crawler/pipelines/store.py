"""Stage 5: one transaction per article: new, seen again, or a new version, with its topics."""

from __future__ import annotations

import logging
from typing import Any

from scrapy.crawler import Crawler

from crawler.context import CrawlContext, crawl_context
from crawler.db.queries import ArticleRef, Outcome, archive_article, mark_seen
from crawler.items import ArticleItem, NotModifiedItem
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
        outcome, article, matched = self._store(context, item)
        for name in matched:
            stats.inc_value(f"archive/topic/{name}")
        stats.inc_value(f"archive/articles_{outcome.value}")
        logger.debug(
            "%s article %s (v%d): %s", outcome.value, article.id, article.version, item.url
        )
        return item

    def _store(
        self, context: CrawlContext, item: ArticleItem
    ) -> tuple[Outcome, ArticleRef, set[str]]:
        """The article and its topics in one transaction."""
        matched: set[str] = set()
        # Any error rolls the whole article back; what was archived before stays as it was.
        with context.archive.transaction() as session:
            outcome, article = archive_article(session, context.source_id, item)
            if outcome is not Outcome.UNCHANGED and self.tagger is not None:
                matched = self.tagger.tag(session, article.id, item, outcome is Outcome.NEW)
            if outcome is not Outcome.UNCHANGED:
                index_article(session, article.id, self.crawler.settings.get("CRAWLER_TOPICS"))
        return outcome, article, matched
