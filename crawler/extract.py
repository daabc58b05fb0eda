"""What a page declares about itself (JSON-LD, OpenGraph, meta) and generic main-text extraction.

These are the fallbacks a spider uses when its outlet-specific selectors find nothing.
"""

from __future__ import annotations

import json
from datetime import datetime
from functools import cached_property
from typing import Any

from dateutil import parser as dateparser
from scrapy.http import TextResponse

from crawler.text import normalize_text

_ARTICLE_TYPES = {
    "NewsArticle",
    "Article",
    "ReportageNewsArticle",
    "BlogPosting",
    "OpinionNewsArticle",
}


def parse_datetime(value: str | None) -> datetime | None:
    """An ISO-8601 or RFC-2822 date; None when absent or unreadable."""
    if not value or not value.strip():
        return None
    try:
        return dateparser.parse(value.strip())
    except (ValueError, OverflowError):
        return None


def script_json(response: TextResponse, css: str) -> dict[str, Any]:
    """The JSON object in the first script matched by `css` (empty if absent or unreadable)."""
    raw = response.css(f"{css}::text").get()
    if not raw or not raw.strip():
        return {}
    try:
        data = json.loads(raw)
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _flatten_jsonld(data: Any) -> list[dict[str, Any]]:
    if isinstance(data, list):
        return [node for item in data for node in _flatten_jsonld(item)]
    if isinstance(data, dict):
        if "@graph" in data:
            return _flatten_jsonld(data["@graph"])
        return [data]
    return []


def _name_of(value: Any) -> str | None:
    if isinstance(value, list):
        names = [n for n in (_name_of(v) for v in value) if n]
        return ", ".join(names) or None
    if isinstance(value, dict):
        return normalize_text(value.get("name"))
    if isinstance(value, str):
        return normalize_text(value)
    return None


class PageMetadata:
    """Lazily read metadata of one response."""

    def __init__(self, response: TextResponse) -> None:
        self.response = response

    def meta(self, *names: str) -> str | None:
        """The first non-empty <meta property|name=...> content among `names`."""
        for name in names:
            value = self.response.xpath("//meta[@property=$n or @name=$n]/@content", n=name).get()
            if value and value.strip():
                return normalize_text(value)
        return None

    @cached_property
    def jsonld_article(self) -> dict[str, Any]:
        """The first JSON-LD node that describes an article (empty if none)."""
        for raw in self.response.xpath('//script[@type="application/ld+json"]/text()').getall():
            try:
                nodes = _flatten_jsonld(json.loads(raw))
            except ValueError:
                continue
            for node in nodes:
                kind = node.get("@type")
                kinds = set(kind) if isinstance(kind, list) else {kind}
                if kinds & _ARTICLE_TYPES:
                    return node
        return {}

    @property
    def title(self) -> str | None:
        return (
            normalize_text(self.jsonld_article.get("headline"))
            or self.meta("og:title", "twitter:title")
            or normalize_text(self.response.xpath("//title/text()").get())
        )

    @property
    def published(self) -> datetime | None:
        return parse_datetime(self.jsonld_article.get("datePublished")) or parse_datetime(
            self.meta("article:published_time", "pubdate", "date")
        )

    @property
    def author(self) -> str | None:
        return _name_of(self.jsonld_article.get("author")) or self.meta("article:author", "author")

    @property
    def summary(self) -> str | None:
        return normalize_text(self.jsonld_article.get("description")) or self.meta(
            "og:description", "description"
        )

    @property
    def canonical(self) -> str | None:
        href = self.response.xpath('//link[@rel="canonical"]/@href').get()
        return self.response.urljoin(href.strip()) if href and href.strip() else None

    @property
    def language(self) -> str | None:
        lang = self.response.xpath("/html/@lang").get() or self.meta("og:locale")
        if not lang:
            return None
        return lang.replace("_", "-").split("-")[0].lower() or None


def generic_paragraphs(response: TextResponse) -> list[str]:
    """The page's main text as paragraphs, found without any site knowledge (trafilatura)."""
    import trafilatura

    text = trafilatura.extract(
        response.text,
        url=response.url,
        include_comments=False,
        include_tables=False,
        include_images=False,
        favor_precision=True,
        deduplicate=True,
    )
    if not text:
        return []
    return [line for line in (normalize_text(p) for p in text.split("\n")) if line]
