"""UrduPoint English / Pakistan Point News: agency copy with a dateline, by section."""

from __future__ import annotations

import re
from datetime import datetime

from scrapy.http import TextResponse

from crawler.spiders.base import (
    ListingEntry,
    NewsSpider,
    paragraphs_of,
    parse_local_datetime,
    text_of,
)

# "July 27, 2023 | 10:10 AM"
DATE_FORMATS = ("%B %d, %Y | %I:%M %p", "%B %d, %Y")
# The article's own paragraphs end where the share buttons begin.
_BODY = (
    "//div[contains(concat(' ', normalize-space(@class), ' '), ' detail_txt ')]"
    "/p[not(preceding-sibling::div[contains(concat(' ', normalize-space(@class), ' '),"
    " ' social_sharer ')])]"
)


class UrdupointSpider(NewsSpider):
    name = "urdupoint"
    timezone = "Asia/Karachi"
    feed_paths = ("/en/sitemap/news.rss",)
    listing_paths = ("/en/news/world.html",)
    listing_link_css = "div.news_big_item a, ul.news_list li a"
    next_page_css = "div.pagination a.next"
    article_path = re.compile(r"^/en/(?!news/)[a-z-]+/[^/]+-\d+\.html$")

    def _parse_title(self, response: TextResponse) -> str | None:
        return text_of(response.css("div.news_article h1"))

    def _parse_summary(self, response: TextResponse) -> str | None:
        return text_of(response.css("div.news_article h2"))

    def _parse_body(self, response: TextResponse) -> list[str]:
        return paragraphs_of(response.xpath(_BODY))

    def _parse_author(self, response: TextResponse) -> str | None:
        # the byline is the span before "Published"; articles without one start at "Published"
        byline = text_of(response.css("span.article-date a[rel=author]"))
        if byline:
            return byline
        for span in response.css("div.news_article span.article-date"):
            shown = text_of(span)
            if shown == "Published":
                return None
            if shown and not parse_local_datetime(shown, *DATE_FORMATS):
                return shown
        return None

    def _parse_published(self, response: TextResponse, entry: ListingEntry) -> datetime | None:
        # which span.article-date holds "date | time" depends on whether a byline is shown
        for span in response.css("div.news_article span.article-date"):
            found = parse_local_datetime(text_of(span), *DATE_FORMATS)
            if found:
                return found
        return None
