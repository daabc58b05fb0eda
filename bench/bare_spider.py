"""The baseline of bench/throughput.py: a bare Scrapy spider, no project code or settings.

It walks a kcna_watch-style newstream listing, parses each article's title, date, source and
paragraphs with the selectors of crawler/spiders/kcna_watch.py and yields dicts to no pipeline.
Only what makes the two crawls comparable is set: the concurrency, no delay, no AutoThrottle,
robots.txt obeyed, the asyncio reactor (Scrapy's default); everything else is Scrapy's default.

    python bench/bare_spider.py BASE_URL [--concurrency 16]
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from typing import Any

import scrapy
from scrapy.crawler import CrawlerProcess
from scrapy.http import Response


def text_of(selection: Any) -> str:
    return " ".join(" ".join(selection.xpath(".//text()").getall()).split())


class BareNewstreamSpider(scrapy.Spider):
    name = "bare_newstream"

    def __init__(self, base_url: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.base_url = base_url.rstrip("/")

    async def start(self) -> Any:
        yield scrapy.Request(self.base_url + "/newstream/", callback=self.parse_listing)

    def parse_listing(self, response: Response) -> Iterator[scrapy.Request]:
        for href in response.css("article.newstream-item h2.entry-title a::attr(href)").getall():
            yield response.follow(href, callback=self.parse_article)
        following = response.css("a.next::attr(href)").get()
        if following:
            yield response.follow(following, callback=self.parse_listing, priority=10)

    def parse_article(self, response: Response) -> Iterator[dict[str, Any]]:
        paragraphs = [text_of(p) for p in response.css("div.article-content > p")]
        yield {
            "url": response.url,
            "title": text_of(response.css("h1.article-title")),
            "published": response.css("div.article-meta time::attr(datetime)").get(),
            "original_source": text_of(response.css("div.article-meta .article-source")),
            "original_url": response.css("div.article-meta a.article-original::attr(href)").get(),
            "partial": bool(response.css("div.article-content div.paywall-notice")),
            "body": [p for p in paragraphs if p],
        }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("base_url")
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    process = CrawlerProcess(
        {
            "CONCURRENT_REQUESTS": args.concurrency,
            "CONCURRENT_REQUESTS_PER_DOMAIN": args.concurrency,
            "DOWNLOAD_DELAY": 0,
            "AUTOTHROTTLE_ENABLED": False,
            "ROBOTSTXT_OBEY": True,
            "LOG_LEVEL": "WARNING",
        }
    )
    process.crawl(BareNewstreamSpider, base_url=args.base_url)
    process.start()
    return 0


if __name__ == "__main__":
    sys.exit(main())
