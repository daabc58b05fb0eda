"""Stage 2: an article without a title or a body is not archived; it is counted and logged.

It is not dropped here: the store stage keeps its snapshot and records its URL as rejected (a
known URL, not fetched again), in one transaction."""

from __future__ import annotations

from typing import Any

from scrapy.crawler import Crawler

from crawler.items import ArticleItem
from crawler.signals import page_error


def missing_fields(item: ArticleItem) -> list[str]:
    """The required fields an article lacks (shared with `crawler warc import` and `reparse`)."""
    return [name for name in ("title", "body") if not getattr(item, name)]


class ValidatePipeline:
    def __init__(self, crawler: Crawler) -> None:
        self.crawler = crawler

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> ValidatePipeline:
        return cls(crawler)

    def process_item(self, item: Any) -> Any:
        if not isinstance(item, ArticleItem):
            return item
        missing = missing_fields(item)
        if missing:
            reason = f"no {' and no '.join(missing)}"
            assert self.crawler.stats is not None
            self.crawler.stats.inc_value("archive/articles_invalid")
            self.crawler.signals.send_catch_log(page_error, url=item.url, reason=reason)
            item.rejected = reason
        return item
