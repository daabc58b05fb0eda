"""Stage 3: the keys an article is archived under: its canonical URL and its content hash."""

from __future__ import annotations

from typing import Any

from scrapy.crawler import Crawler

from crawler.db.queries import content_hash
from crawler.items import ArticleItem
from crawler.urls import canonicalize, same_site


def dedup_keys(item: ArticleItem) -> tuple[str, bool]:
    """Set canonical_url and content_hash; True when a rel=canonical was honoured."""
    declared = item.declared_canonical
    honoured = bool(declared and same_site(declared, item.url))
    item.canonical_url = canonicalize(declared if honoured and declared else item.url)
    item.content_hash = content_hash(item)
    return item.canonical_url, honoured


class DeduplicatePipeline:
    def __init__(self, crawler: Crawler) -> None:
        self.crawler = crawler

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> DeduplicatePipeline:
        return cls(crawler)

    def process_item(self, item: Any) -> Any:
        if not isinstance(item, ArticleItem) or item.rejected:
            return item
        _, honoured = dedup_keys(item)
        if item.declared_canonical and not honoured:
            assert self.crawler.stats is not None
            self.crawler.stats.inc_value("archive/canonical_ignored")
        return item
