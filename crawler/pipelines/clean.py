"""Stage 1: normalise whitespace and Unicode, join the body, put dates in UTC."""

from __future__ import annotations

from typing import Any

from crawler.items import ArticleItem
from crawler.text import normalize_text, to_utc


def clean_article(item: ArticleItem) -> ArticleItem:
    """Normalise an article in place (shared with `crawler reparse`)."""
    item.title = normalize_text(item.title)
    item.author = normalize_text(item.author)
    item.summary = normalize_text(item.summary)
    item.original_source = normalize_text(item.original_source)
    item.original_url = normalize_text(item.original_url)
    item.outlet_article_id = normalize_text(item.outlet_article_id)
    item.language = normalize_text(item.language)
    item.body = [p for p in (normalize_text(p) for p in item.body) if p]
    item.published_at = to_utc(item.published, item.timezone)
    return item


class CleanPipeline:
    def process_item(self, item: Any) -> Any:
        return clean_article(item) if isinstance(item, ArticleItem) else item
