"""Stage 1: normalise whitespace and Unicode, join the body, put dates in UTC (keeping the
local day of publication and whether a time was given)."""

from __future__ import annotations

from datetime import date, datetime, time
from typing import Any
from zoneinfo import ZoneInfo

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
    item.published_date, item.published_precision = local_day(item.published, item.timezone)
    return item


def local_day(published: datetime | None, timezone: str) -> tuple[date | None, str | None]:
    """The publication's calendar day where it was published, and its precision.

    A naive value is the outlet's local time; one of exactly midnight is a page that showed a
    date and no time ("day"): it is the day shown, not an instant (shown as the date, and
    `--since DAY` finds it on that day wherever the reader is)."""
    if published is None:
        return None, None
    if published.tzinfo is None:
        midnight = published.time() == time(0)
        return published.date(), "day" if midnight else "time"
    return published.astimezone(ZoneInfo(timezone)).date(), "time"


class CleanPipeline:
    def process_item(self, item: Any) -> Any:
        return clean_article(item) if isinstance(item, ArticleItem) else item
