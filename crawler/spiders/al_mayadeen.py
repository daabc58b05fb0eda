"""Al Mayadeen English: news and opinion pages found through the monthly sitemaps."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from scrapy.http import TextResponse

from crawler.extract import parse_datetime, script_json
from crawler.spiders.base import (
    ListingEntry,
    NewsSpider,
    paragraphs_of,
    parse_local_datetime,
    text_of,
)
from crawler.text import normalize_text

# The CMS describes each article in a JSON script of its own.
TAWSIYAT_CSS = 'script#tawsiyat-metadata[type="text/tawsiyat"]'
DATE_FORMAT = "%d %b %Y %H:%M"


class AlMayadeenSpider(NewsSpider):
    name = "al_mayadeen"
    timezone = "Asia/Beirut"
    # The RSS feed answers 403 and /news loads more by JavaScript: the sitemaps list everything.
    sitemap_paths = ("/sitemaps/all.xml",)
    article_path = re.compile(r"^/(news|articles)/[^/?#]+/[^/?#]+/?$")
    metadata_fallbacks = ("title", "published", "author", "summary")

    def _tawsiyat(self, response: TextResponse) -> dict[str, Any]:
        """The page's own metadata JSON (postid, title, published_time, author, ...)."""
        return script_json(response, TAWSIYAT_CSS)

    def _tawsiyat_text(self, response: TextResponse, key: str) -> str | None:
        value = self._tawsiyat(response).get(key)
        return normalize_text(str(value)) if value is not None else None

    def _parse_title(self, response: TextResponse) -> str | None:
        return self._tawsiyat_text(response, "title") or text_of(
            response.css("article h1.article-title")
        )

    def _parse_body(self, response: TextResponse) -> list[str]:
        # direct children only: the "Related News" box inside the body holds paragraphs too
        return paragraphs_of(response.css("div.p-content > p"))

    def _parse_published(self, response: TextResponse, entry: ListingEntry) -> datetime | None:
        published = parse_datetime(self._tawsiyat_text(response, "published_time"))
        if published:
            return published
        # "19 Jul 2024 14:59", Beirut time
        return parse_local_datetime(text_of(response.css("ul.article-info li.date")), DATE_FORMAT)

    def _parse_author(self, response: TextResponse) -> str | None:
        byline = text_of(response.css("ul.article-info li.author"))
        if byline:
            byline = re.sub(r"^By\s+", "", byline)
        # "Source: Agencies" beside it is a credit line, not a publisher the article came from
        return self._tawsiyat_text(response, "author") or byline or None

    def _parse_summary(self, response: TextResponse) -> str | None:
        return text_of(response.css("p.lg_para.summary")) or self._tawsiyat_text(
            response, "description"
        )

    def _parse_language(self, response: TextResponse) -> str | None:
        return self._tawsiyat_text(response, "lang")

    def _parse_outlet_article_id(self, response: TextResponse) -> str | None:
        return (
            self._tawsiyat_text(response, "postid")
            or response.css("article[data-postid]::attr(data-postid)").get()
        )
