"""Field-by-field tests of the kcna_watch spider on saved mirror pages."""

from __future__ import annotations

import gc
import weakref
from datetime import datetime

import pytest
from scrapy import Request

from crawler.items import ArticleItem
from crawler.spiders.base import ListingEntry
from crawler.spiders.kcna_watch import KcnaWatchSpider
from tests.pages import TEST_BASE, make_spider, mark_archived, page_response, page_text, parse_items

RECEPTION = (
    "/newstream/1732960512-284951/"
    "dprk-ministry-of-national-defence-hosts-reception-for-russian-military-delegation/"
)
FARMING = (
    "/newstream/1733392519-286102/"
    "rodong-sinmun-calls-for-thorough-preparations-for-next-years-farming/"
)


@pytest.fixture
def spider() -> KcnaWatchSpider:
    made = make_spider(KcnaWatchSpider)
    assert isinstance(made, KcnaWatchSpider)
    return made


def article(spider: KcnaWatchSpider, path: str, body: str | None = None) -> ArticleItem:
    items = parse_items(spider, page_response("kcna_watch", path, body=body))
    assert len(items) == 1 and isinstance(items[0], ArticleItem)
    return items[0]


def test_fields_of_a_full_article(spider):
    item = article(spider, RECEPTION)
    assert item.title == (
        "DPRK Ministry of National Defence hosts reception for Russian military delegation"
    )
    # the page's Date: is the publication day (local midnight); the URL stamp is ingest time
    assert item.published == datetime(2024, 11, 30)
    assert item.timezone == "Asia/Pyongyang"
    assert item.original_source == "Pyongyang Times"
    assert item.original_url == "http://www.pyongyangtimes.com.kp/?bbs=40224"
    assert item.partial is False
    assert item.author is None and item.summary is None
    assert item.language == "en"
    assert len(item.body) == 15
    assert item.body[0].startswith("The DPRK Ministry of National Defence gave a reception")
    assert (
        item.body[-1]
        == "The reception proceeded in an amicable atmosphere full of comradely feelings."
    )
    assert item.declared_canonical == TEST_BASE + RECEPTION
    assert item.page is not None and item.page.body.startswith(b"<!DOCTYPE html>")
    joined = "\n".join(item.body)
    for boilerplate in ("More From", "Read original version", "All rights reserved", "Date:"):
        assert boilerplate not in joined
    assert spider.crawler.stats.get_value("archive/articles_fetched") == 1
    assert not [k for k in spider.crawler.stats.get_stats() if k.startswith("fallback/")]


def test_subscriber_only_item_is_partial_without_the_notice(spider):
    item = article(spider, FARMING)
    assert item.partial is True
    assert item.original_source == "Rodong Sinmun"
    assert item.body == [
        "Rodong Sinmun, organ of the Central Committee of the Workers’ Party of Korea, carried "
        "an article calling on agricultural workers across the country to make thorough "
        "preparations for next year’s farming from now on."
    ]


def test_changed_layout_falls_back_to_metadata_and_generic_text(spider):
    html = (
        page_text("kcna_watch", RECEPTION)
        .replace('class="article-title"', 'class="headline"')
        .replace("article-content entry-content", "story")
        .replace('<time datetime="2024-11-30">30/11/2024</time>', "30/11/2024")
    )
    item = article(spider, RECEPTION, body=html)
    assert item.title == (
        "DPRK Ministry of National Defence hosts reception for Russian military delegation"
    )
    assert item.published is not None and item.published.date().isoformat() == "2024-11-30"
    assert any("reception proceeded in an amicable atmosphere" in p for p in item.body)
    stats = spider.crawler.stats.get_stats()
    assert stats["fallback/metadata/title"] == 1
    assert stats["fallback/metadata/published"] == 1
    assert stats["fallback/generic/body"] == 1


def test_listing_yields_article_requests_and_the_next_page(spider):
    response = page_response("kcna_watch", "/newstream/")
    out = list(spider.parse_listing(response, page=1))
    articles = [r for r in out if r.callback == spider.parse_article]
    pages = [r for r in out if r.callback == spider.parse_listing]
    assert len(articles) == 3 and all(isinstance(r, Request) for r in out)
    assert TEST_BASE + RECEPTION in {r.url for r in articles}
    assert [r.url for r in pages] == [TEST_BASE + "/newstream/page/2/"]
    assert pages[0].cb_kwargs == {"page": 2}


def test_article_requests_share_one_callback(spider):
    # Scrapy reads a callback's source (a generator returning a value earns a warning) once
    # per callable it still holds: a bound method made per request was read for every page.
    listed = list(spider.parse_listing(page_response("kcna_watch", "/newstream/"), page=1))
    later, _, _ = spider.discover([ListingEntry(url=TEST_BASE + "/newstream/1-2/later/")])
    requests = [r for r in [*listed, *later] if r.callback == spider.parse_article]
    assert len(requests) == 4
    assert len({id(r.callback) for r in requests}) == 1
    assert len({id(r.errback) for r in requests}) == 1
    assert requests[0].errback == spider.on_error


def test_a_read_page_is_freed_once_read(spider):
    # A response and its cached selector refer to each other: unless the spider lets go, the
    # parsed tree waits for the cyclic collector (in a crawl, 60 MB of pages at a time). And the
    # response lives on, in Scrapy's scraper slot, until the archive writer stored its page: the
    # tree is freed once the spider has read it, with the response still alive.
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        article = page_response("kcna_watch", RECEPTION)
        listing = page_response("kcna_watch", "/newstream/")
        trees = [weakref.ref(r.selector.root) for r in (article, listing)]
        selectors = [weakref.ref(r.selector) for r in (article, listing)]
        items = parse_items(spider, article)
        assert items and items[0].title
        assert list(spider.parse_listing(listing, page=1))
        assert [ref() for ref in trees + selectors] == [None] * 4
        # read again, the page is parsed again
        assert article.css("title::text").get()
    finally:
        if was_enabled:
            gc.enable()


def test_listing_stops_at_max_pages(spider):
    spider.source = spider.source.__class__(name="kcna_watch", base_url=TEST_BASE, max_pages=1)
    out = list(spider.parse_listing(page_response("kcna_watch", "/newstream/"), page=1))
    assert not [r for r in out if r.callback == spider.parse_listing]
    assert spider.crawler.stats.get_value("discovery/max_pages_reached") == 1


def test_malformed_feed_still_gives_its_items(spider):
    response = page_response("kcna_watch", "/newstream/feed/")
    out = list(spider.parse_feed(response))
    assert len(out) == 4
    assert {r.cb_kwargs["entry"].title for r in out} >= {
        "Kim Chaek University of Technology boosts R&D links with industry"
    }
    assert spider.crawler.stats.get_value("discovery/feed_malformed") == 1


def test_feed_that_feedparser_cannot_read_falls_back_to_its_links(spider):
    broken = f"<rss><channel><item><title>x</title><link>{TEST_BASE + RECEPTION}</link></item><item"
    response = page_response("kcna_watch", "/newstream/feed/", body=broken)
    out = list(spider.parse_feed(response))
    assert [r.url for r in out] == [TEST_BASE + RECEPTION]


def test_known_articles_are_skipped_unless_refreshing(spider):
    mark_archived(spider, TEST_BASE + RECEPTION)
    entries = [ListingEntry(TEST_BASE + RECEPTION), ListingEntry(TEST_BASE + FARMING)]
    requests, fresh, articles = spider.discover(entries)
    assert [r.url for r in requests] == [TEST_BASE + FARMING]
    assert (fresh, articles) == ([TEST_BASE + FARMING], 2)
    assert spider.crawler.stats.get_value("archive/articles_skipped") == 1


def test_links_that_are_not_articles_are_ignored(spider):
    entries = [
        ListingEntry(TEST_BASE + "/newstream/?source=kcna"),
        ListingEntry(TEST_BASE + "/about/"),
    ]
    assert spider.article_requests(entries) == []
