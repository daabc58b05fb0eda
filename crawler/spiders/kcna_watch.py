"""KCNA Watch newstream: items mirrored from DPRK state media, some for subscribers only."""

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


class KcnaWatchSpider(NewsSpider):
    name = "kcna_watch"
    timezone = "Asia/Pyongyang"
    feed_paths = ("/newstream/feed/",)
    listing_paths = ("/newstream/",)
    listing_link_css = "article.newstream-item h2.entry-title a"
    next_page_css = "a.next"
    article_path = re.compile(r"^/newstream/\d+-\d+/[^/]+/?$")

    def _parse_title(self, response: TextResponse) -> str | None:
        return text_of(response.css("h1.article-title"))

    def _parse_body(self, response: TextResponse) -> list[str]:
        # direct children only: the subscriber notice's own paragraphs are not the article
        return paragraphs_of(response.css("div.article-content > p"))

    def _parse_published(self, response: TextResponse, entry: ListingEntry) -> datetime | None:
        # the page's Date: is the publication day; the URL's timestamp is only the ingest time
        value = response.css("div.article-meta time::attr(datetime)").get()
        shown = response.css("div.article-meta time::text").get()
        return parse_local_datetime((value or "")[:10], "%Y-%m-%d") or parse_local_datetime(
            shown, "%d/%m/%Y"
        )

    def _parse_original_source(self, response: TextResponse) -> str | None:
        return text_of(response.css("div.article-meta .article-source"))

    def _parse_original_url(self, response: TextResponse) -> str | None:
        return response.css("div.article-meta a.article-original::attr(href)").get()

    def _parse_partial(self, response: TextResponse) -> bool:
        return bool(response.css("div.article-content div.paywall-notice"))
