"""Islam Times (English): news items with a story code; charset declarations not to be trusted."""

from __future__ import annotations

import re
from datetime import datetime

from scrapy.http import TextResponse

from crawler.extract import PageMetadata
from crawler.spiders.base import (
    ListingEntry,
    NewsSpider,
    paragraphs_of,
    parse_local_datetime,
    text_of,
)

# "Friday 19 July 2024 - 21:40"
DATE_FORMATS = ("%A %d %B %Y - %H:%M", "%d %B %Y - %H:%M", "%A %d %B %Y", "%d %B %Y")
_STORY_CODE = re.compile(r"Story Code\s*:?\s*(\d+)", re.I)
# `meta name=author` names the site's copyright, not a person.
_NOT_A_PERSON = re.compile(r"copyright|©|all rights|islam ?times|\.org\b", re.I)


class IslamTimesSpider(NewsSpider):
    name = "islam_times"
    timezone = "Asia/Tehran"
    feed_paths = ("/en/rss",)
    listing_paths = ("/en/news/",)
    listing_link_css = "div.news-item a"
    next_page_css = "div.pager a.next"
    article_path = re.compile(r"^/en/news/\d+/[^/]+$")

    def _parse_title(self, response: TextResponse) -> str | None:
        return text_of(response.css("h1.news-title"))

    def _parse_body(self, response: TextResponse) -> list[str]:
        return paragraphs_of(response.css("div.news-body p"))

    def _parse_published(self, response: TextResponse, entry: ListingEntry) -> datetime | None:
        return parse_local_datetime(text_of(response.css("div.news-date")), *DATE_FORMATS)

    def _parse_author(self, response: TextResponse) -> str | None:
        named = PageMetadata(response).meta("author")
        return None if not named or _NOT_A_PERSON.search(named) else named

    def _parse_outlet_article_id(self, response: TextResponse) -> str | None:
        found = _STORY_CODE.search(text_of(response.css("div.story-code")) or "")
        return found.group(1) if found else None
