"""Saved mirror pages turned into Scrapy responses with their real URL (for field tests)."""

from __future__ import annotations

import json
from typing import Any

from scrapy import Request
from scrapy.http import HtmlResponse, Response, TextResponse
from scrapy.utils.test import get_crawler

from crawler.config import BUNDLED_SOURCES
from crawler.context import crawl_context
from crawler.db.queries import ARCHIVED, record_urls
from crawler.mirror import SITES_DIR
from crawler.spiders.base import ListingEntry, NewsSpider

TEST_BASE = "http://mirror.test"
TEST_SETTINGS = {"CRAWLER_SOURCES": str(BUNDLED_SOURCES), "CRAWLER_DATABASE_URL": "sqlite://"}


def page_text(spider_name: str, route_path: str, base: str = TEST_BASE) -> str:
    """The text a mirror route serves, with {{BASE}} replaced."""
    routes = json.loads((SITES_DIR / spider_name / "routes.json").read_text(encoding="utf-8"))
    path = SITES_DIR / spider_name / routes[route_path]["file"]
    return path.read_text(encoding="utf-8").replace("{{BASE}}", base)


def page_response(
    spider_name: str, route_path: str, base: str = TEST_BASE, body: str | None = None, **meta: Any
) -> TextResponse:
    """A response for a saved page as if fetched from `base + route_path`."""
    url = base + route_path
    text = page_text(spider_name, route_path, base) if body is None else body
    request = Request(url, meta=meta)
    return HtmlResponse(url=url, body=text.encode("utf-8"), encoding="utf-8", request=request)


def make_spider(
    spider_cls: type[NewsSpider], base: str = TEST_BASE, db_url: str | None = None
) -> NewsSpider:
    """A spider bound to a test crawler, its source pointed at `base`, its archive `db_url`."""
    # the bundled sources file, whatever CRAWLER_SOURCES the developer's shell has; an archive
    # of its own in memory unless given (made on first use: what is known, how far walks got)
    settings = TEST_SETTINGS | ({"CRAWLER_DATABASE_URL": db_url} if db_url else {})
    crawler = get_crawler(spider_cls, settings_dict=settings)
    spider = spider_cls.from_crawler(crawler, base_url=base)
    crawler.spider = spider
    assert crawler.stats is not None
    crawler.stats.open_spider()
    return spider


def mark_archived(spider: NewsSpider, *urls: str) -> None:
    """Make `urls` archived in the spider's archive (as a crawl that stored them would)."""
    context = crawl_context(spider.crawler)
    with context.archive.transaction() as session:
        record_urls(session, context.source_id, set(urls), ARCHIVED, None, None)


def parse_items(
    spider: NewsSpider, response: Response, entry: ListingEntry | None = None
) -> list[Any]:
    """Everything the spider's article callback yields for `response`."""
    return list(spider.parse_article(response, entry or ListingEntry(url=response.url)))
