"""The walk's decisions, page by page: where it stops, where it resumes, what it records.

The kcna_watch spider reads listing pages of a generated site (newest first, 50 a page) from
an archive of its own; every step is what a crawl would do with these responses."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from scrapy.http import HtmlResponse, Request
from sqlalchemy import create_engine

from crawler.context import crawl_context
from crawler.db.queries import WalkState, pending_urls, walk_states
from crawler.mirror.generated import GeneratedSite, generate_kcna_site
from crawler.spiders.base import NewsSpider
from crawler.spiders.kcna_watch import KcnaWatchSpider
from tests.pages import TEST_BASE, make_spider, mark_archived

LISTING = TEST_BASE + "/newstream/"


@pytest.fixture
def site(tmp_path: Path) -> GeneratedSite:
    return generate_kcna_site(tmp_path / "site", 250)  # five listing pages


def listing(site: GeneratedSite, request: Request) -> HtmlResponse:
    """The listing page `request` asks for, as the site serves it now."""
    page = request.cb_kwargs["page"] if request.url != LISTING else 1
    text = (site.folder / "pages" / f"listing{page}.html").read_text(encoding="utf-8")
    return HtmlResponse(url=request.url, body=text.encode(), encoding="utf-8", request=request)


def walk(spider: NewsSpider, site: GeneratedSite, archive: bool = True) -> list[int]:
    """One run's walk of the listing: the pages read; their articles archived if `archive`."""
    spider.walks.open()
    spider._requested.clear()
    request = spider.listing_request(LISTING, page=1)
    read = []
    while request is not None:
        read.append(request.meta["walk"].page)
        out = list(spider.parse_listing(listing(site, request), **request.cb_kwargs))
        if archive:
            mark_archived(spider, *(r.url for r in out if r.callback == spider.parse_article))
        pages = [r for r in out if r.callback == spider.parse_listing]
        request = pages[0] if pages else None
    return read


def report(spider: NewsSpider) -> str | None:
    return crawl_context(spider.crawler).walk_summary()


@pytest.fixture
def spider() -> NewsSpider:
    return make_spider(KcnaWatchSpider)


def test_a_first_walk_goes_to_the_end_and_the_next_stops_at_page_one(spider, site):
    assert walk(spider, site) == [1, 2, 3, 4, 5]
    assert report(spider) == "complete"
    assert walk(spider, site) == [1]
    assert report(spider) == "complete"


def test_an_archived_page_does_not_stop_a_walk_that_never_was_complete(spider, site):
    # page 2 archived by some other way in (a feed): the first walk still goes to the end
    mark_archived(spider, *(TEST_BASE + path for path in site.paths[50:100]))
    assert walk(spider, site) == [1, 2, 3, 4, 5]


def test_a_capped_walk_resumes_after_the_newest_pages(spider, site):
    spider.source = spider.source.__class__("kcna_watch", TEST_BASE, max_pages=2)
    assert walk(spider, site) == [1, 2]
    assert report(spider) == "stopped at page 2"
    site.add_articles(5)  # new on top: page 1 now shows them and 45 archived ones
    # page 1 (new), page 2 (archived): then on at page 3, where the last walk stopped
    assert walk(spider, site) == [1, 2]  # the cap: the jump waits for the next run
    assert walk(spider, site) == [1, 3]
    assert walk(spider, site) == [1, 4]
    assert walk(spider, site) == [1, 5]
    assert report(spider) == "stopped at page 5"
    assert walk(spider, site) == [1, 6]  # the listing's end
    assert report(spider) == "complete"
    assert walk(spider, site) == [1]


def test_a_walk_killed_in_its_newest_pages_resumes_there(spider, site):
    assert walk(spider, site) == [1, 2, 3, 4, 5]
    site.add_articles(120)  # pages 1-3 new (120 of them), then what the first walk covered
    spider.walks.open()
    spider._requested.clear()
    first = spider.listing_request(LISTING, page=1)
    out = list(spider.parse_listing(listing(site, first), **first.cb_kwargs))
    mark_archived(spider, *(r.url for r in out if r.callback == spider.parse_article))
    # the process dies here, with page 1 read and archived: the next run must read pages 2-3
    assert walk(spider, site) == [1, 2, 3, 4]  # page 1 archived: on at page 2; page 4 covered
    assert report(spider) == "complete"
    assert walk(spider, site) == [1]


def test_articles_found_and_not_archived_are_pending_for_the_next_run(spider, site):
    assert walk(spider, site, archive=False) == [1, 2, 3, 4, 5]
    pending = spider.walks.open()
    assert sorted(pending) == sorted(TEST_BASE + path for path in site.paths)


@contextmanager
def archive_locked(db_url: str) -> Iterator[None]:
    """Another connection holds the lock a walk's state needs, until the block ends."""
    engine = create_engine(db_url)
    try:
        with engine.connect() as connection:
            if engine.dialect.name == "sqlite":
                connection.exec_driver_sql("BEGIN IMMEDIATE")
            else:
                connection.begin()
                connection.exec_driver_sql("LOCK TABLE source_walks IN EXCLUSIVE MODE")
            yield
            connection.rollback()
    finally:
        engine.dispose()


def crawling_spider(db_url: str) -> NewsSpider:
    """A spider on the archive at `db_url` whose walks act as in a running crawl (their states
    saved on the saver's thread), opened."""
    spider = make_spider(KcnaWatchSpider, db_url=db_url)
    spider.walks._crawling = lambda: True  # type: ignore[method-assign]
    spider.walks.open()
    return spider


def test_a_crawl_reads_on_while_a_walked_pages_state_waits_for_the_archive(site, db_url):
    # On SQLite the archive writer holds the write lock most of a crawl: the reactor must not
    # wait for it (and the busy handler's sleeps) at every listing page. The state is saved on
    # a thread of its own, in order, and is in the archive once the crawl closes.
    spider = crawling_spider(db_url)
    crawler = spider.crawler
    request = spider.listing_request(LISTING, page=1)
    with archive_locked(db_url):
        started = time.monotonic()
        out = list(spider.parse_listing(listing(site, request), **request.cb_kwargs))
        assert time.monotonic() - started < 1.0
        assert [r.meta["walk"].page for r in out if r.callback == spider.parse_listing] == [2]
        time.sleep(0.3)
        assert saved_walks(spider) == {}  # still waiting for the lock
    spider.walks.close()
    states = saved_walks(spider)
    assert states[LISTING].next_page == 2 and not states[LISTING].complete
    context = crawl_context(crawler)
    with context.archive.transaction() as session:
        assert len(pending_urls(session, context.source_id, 5)) == 50  # its articles
    context.close()


def saved_walks(spider: NewsSpider) -> dict[str, WalkState]:
    context = crawl_context(spider.crawler)
    with context.archive.transaction() as session:
        return walk_states(session, context.source_id)


def test_after_a_walk_state_fails_to_save_no_later_page_moves_the_walk_on(
    site, db_url, monkeypatch
):
    # Page 1's pending addresses were not recorded: a later page's state saved would make the
    # next run resume past page 1's articles. Nothing more is saved; the failure is reported.
    import crawler.walk as walk_module

    spider = crawling_spider(db_url)
    crawler = spider.crawler
    real = walk_module.add_pending
    calls = []

    def failing_once(session, source_id, urls):
        calls.append(len(urls))
        if len(calls) == 1:
            raise ValueError("a row this archive refuses")
        real(session, source_id, urls)

    monkeypatch.setattr(walk_module, "add_pending", failing_once)
    request = spider.listing_request(LISTING, page=1)
    for _ in range(3):
        out = list(spider.parse_listing(listing(site, request), **request.cb_kwargs))
        request = next(r for r in out if r.callback == spider.parse_listing)
    spider.walks.close()
    assert calls == [50]  # the later pages' saves did not run
    assert saved_walks(spider) == {}
    assert crawler.stats.get_value("archive/errors") == 1
    crawl_context(crawler).close()
