"""The urdupoint spider: fields of saved pages, then whole crawls of its mirror."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from crawler.db.models import Snapshot
from crawler.db.session import Archive
from crawler.items import ArticleItem
from crawler.mirror import SITES_DIR, MirrorServer
from crawler.pipelines.clean import clean_article
from crawler.spiders.base import ListingEntry
from crawler.spiders.urdupoint import UrdupointSpider
from tests.conftest import crawl, crawl_runs, export_jsonl, write_sources
from tests.expected import assert_matches_expected, load_expected
from tests.pages import TEST_BASE, make_spider, page_response, page_text

KIM = "/en/world/kim-jong-un-meets-russian-defence-minist-1707439.html"
SHOIGU = "/en/world/russian-defence-minister-shoigu-arrives-1706918.html"
PARADE = "/en/world/south-korea-says-closely-monitoring-prep-1706345.html"
ARTICLES = (KIM, SHOIGU, PARADE)
LISTING, LISTING_2, FEED = "/en/news/world.html", "/en/news/world2.html", "/en/sitemap/news.rss"
BYLINE = (
    '<span class="article-date"><a href="/en/author/sumaira-fh.html" rel="author">'
    "Sumaira FH</a></span> "
)


@pytest.fixture
def spider() -> UrdupointSpider:
    made = make_spider(UrdupointSpider)
    assert isinstance(made, UrdupointSpider)
    return made


def article(spider: UrdupointSpider, path: str, body: str | None = None) -> ArticleItem:
    """The item the spider yields for a saved page, cleaned as the pipeline would."""
    response = page_response("urdupoint", path, body=body)
    items = list(spider.parse_article(response, ListingEntry(url=response.url)))
    assert len(items) == 1 and isinstance(items[0], ArticleItem)
    return clean_article(items[0])


def stats(spider: UrdupointSpider) -> dict[str, Any]:
    assert spider.crawler.stats is not None
    return spider.crawler.stats.get_stats()


# -- fields of saved pages ------------------------------------------------------------------


@pytest.mark.parametrize("path", ARTICLES)
def test_saved_page_fields_match_expected(spider, path):
    item = article(spider, path)
    want = {row["url"]: row for row in load_expected("urdupoint", TEST_BASE)}[TEST_BASE + path]
    assert item.url == TEST_BASE + path
    assert item.title == want["title"]
    assert item.summary == want["summary"]
    assert item.author == want["author"]
    assert item.published_at == datetime.fromisoformat(want["published_at"])
    assert item.published_at is not None and item.published_at.tzinfo == UTC
    assert item.body == want["body"]
    assert item.original_source is None and item.partial is False
    assert item.language == "en"
    assert item.declared_canonical == TEST_BASE + path
    for text in want["must_not_contain"]:
        assert not any(text in p for p in item.body), text
    assert not [k for k in stats(spider) if k.startswith("fallback/")]


def test_date_is_karachi_time_and_the_dateline_opens_the_body(spider):
    item = article(spider, KIM)
    assert item.published == datetime(2023, 7, 27, 10, 10)  # as shown: local time
    assert item.timezone == "Asia/Karachi"
    assert item.published_at == datetime(2023, 7, 27, 5, 10, tzinfo=UTC)
    assert item.body[0].startswith(
        "Seoul, (UrduPoint / Pakistan Point News - 27th Jul, 2023 ) :Kim Jong Un met"
    )
    # an afternoon time is read on the 12-hour clock
    assert article(spider, SHOIGU).published == datetime(2023, 7, 26, 18, 40)


def test_related_topics_and_recent_stories_are_not_body(spider):
    item = article(spider, KIM)
    assert len(item.body) == 9
    assert item.body[-1].endswith("KCNA added.")
    joined = "\n".join(item.body)
    for chrome in ("Related Topics", "Recent Stories", "Share", "Tweet", "minutes ago"):
        assert chrome not in joined


def test_article_without_byline_has_no_author_and_keeps_its_date(spider):
    # without a byline the "date | time" span is the second span.article-date, not the third
    text = page_text("urdupoint", KIM)
    assert BYLINE in text
    item = article(spider, KIM, body=text.replace(BYLINE, ""))
    assert item.author is None
    assert item.published == datetime(2023, 7, 27, 10, 10)
    assert item.title and item.summary and len(item.body) == 9


def test_unlinked_byline_is_still_the_author(spider):
    text = page_text("urdupoint", KIM).replace(
        BYLINE, '<span class="article-date">Staff Reporter</span> '
    )
    assert article(spider, KIM, body=text).author == "Staff Reporter"


def test_changed_layout_falls_back_to_metadata_and_generic_text(spider):
    text = page_text("urdupoint", KIM)
    for old, new in (
        ("main_bar fl news_article", "story"),
        ('class="detail_txt"', 'class="story-text"'),
        ('class="article-date"', 'class="meta"'),
    ):
        assert old in text
        text = text.replace(old, new)
    item = article(spider, KIM, body=text)
    assert item.title == "Kim Jong Un Meets Russian Defence Minister Sergei Shoigu In Pyongyang"
    assert item.published_at == datetime(2023, 7, 27, 5, 10, tzinfo=UTC)
    assert any("Korean War armistice" in p for p in item.body)
    assert stats(spider)["fallback/metadata/title"] == 1
    assert stats(spider)["fallback/metadata/published"] == 1
    assert stats(spider)["fallback/generic/body"] == 1


# -- discovery ----------------------------------------------------------------------------------


def test_listing_gives_its_articles_and_the_next_page(spider):
    out = list(spider.parse_listing(page_response("urdupoint", LISTING), page=1))
    articles = [r.url for r in out if r.callback == spider.parse_article]
    pages = [r for r in out if r.callback == spider.parse_listing]
    # the big item and the list items; not the Recent Stories of the side bar
    assert articles == [TEST_BASE + KIM, TEST_BASE + SHOIGU]
    assert [(r.url, r.cb_kwargs) for r in pages] == [(TEST_BASE + LISTING_2, {"page": 2})]


def test_last_listing_page_has_no_next_page(spider):
    out = list(spider.parse_listing(page_response("urdupoint", LISTING_2), page=2))
    assert [r.url for r in out] == [TEST_BASE + PARADE]


def test_feed_gives_every_article_with_its_time(spider):
    out = list(spider.parse_feed(page_response("urdupoint", FEED)))
    assert [r.url for r in out] == [TEST_BASE + p for p in ARTICLES]
    entry = out[0].cb_kwargs["entry"]
    assert entry.published == datetime(2023, 7, 27, 5, 10, tzinfo=UTC)


@pytest.mark.parametrize(
    ("path", "is_article"),
    [
        (KIM, True),
        ("/en/miscellaneous/24-killed-in-senegal-bus-crash-1725250.html", True),
        (LISTING, False),
        (LISTING_2, False),
        ("/en/news/world-2.html", False),
        ("/en/tags/north-korea.html", False),
        ("/en/author/sumaira-fh.html", False),
        ("/en/", False),
    ],
)
def test_article_path(path, is_article):
    assert bool(UrdupointSpider.article_path.search(path)) is is_article


# -- whole crawls of the mirror ---------------------------------------------------------------


@pytest.fixture
def urdupoint() -> Iterator[MirrorServer]:
    with MirrorServer(SITES_DIR / "urdupoint") as server:
        yield server


@pytest.fixture
def sources_file(tmp_path: Path, urdupoint: MirrorServer) -> Path:
    return write_sources(tmp_path / "sources.toml", {"urdupoint": urdupoint.base_url})


def disallowed() -> list[str]:
    robots = (SITES_DIR / "urdupoint" / "robots.txt").read_text(encoding="utf-8")
    return re.findall(r"^Disallow:\s*(\S+)", robots, flags=re.M)


# An article-shaped link under a path robots.txt disallows.
TRAP = "/en/search/north-korea-results-1700001.html"


def test_crawl_matches_expected_and_obeys_robots(db_url, urdupoint, sources_file):
    urdupoint.edit(
        LISTING,
        '<ul class="news_list">',
        f'<ul class="news_list">\n<li><a href="{TRAP}">Search results</a></li>',
    )
    result = crawl("urdupoint", db_url=db_url, sources_file=sources_file)
    assert result.returncode == 0, result.stdout + result.stderr
    records = export_jsonl(db_url)
    assert_matches_expected(records, "urdupoint", urdupoint.base_url)
    for record in records:
        assert record["version"] == 1 and record["language"] == "en"
        assert record["snapshot_sha256"] and len(record["snapshot_sha256"]) == 64
    paths = urdupoint.paths()
    assert paths[0] == "/robots.txt"
    assert {FEED, LISTING, LISTING_2} <= set(paths)
    rules = disallowed()
    assert rules == ["/en/search/", "/amp/"]
    assert TRAP not in paths
    assert not [p for p in paths if any(p.startswith(rule) for rule in rules)]
    # every article once; Recent Stories and tag links are not followed
    article_paths = [p for p in paths if UrdupointSpider.article_path.search(p)]
    assert sorted(article_paths) == sorted(ARTICLES)
    archive = Archive(db_url)
    with archive.sessions() as session:
        archived = session.scalars(select(Snapshot.final_url)).all()
    archive.dispose()
    # no listing page and no feed is archived
    assert sorted(archived) == sorted(urdupoint.url(p) for p in ARTICLES)
    (run,) = crawl_runs(db_url)
    assert run.status == "finished" and run.articles_new == 3
    # the refused link is not fetched, and politeness is not counted as an error
    assert run.errors == 0 and run.error_log is None
    assert run.stats is not None
    assert run.stats.get("robotstxt/forbidden") == 1
    assert run.stats.get("archive/requests_ignored") == 1
    assert not [k for k in run.stats if k.startswith(("fallback/", "charset/"))]


def test_second_crawl_adds_nothing_and_fetches_no_article(db_url, urdupoint, sources_file):
    assert crawl("urdupoint", db_url=db_url, sources_file=sources_file).returncode == 0
    first = export_jsonl(db_url)
    urdupoint.clear_requests()
    result = crawl("urdupoint", db_url=db_url, sources_file=sources_file)
    assert result.returncode == 0, result.stderr
    second = export_jsonl(db_url)
    assert [(r["id"], r["content_hash"], r["version"]) for r in second] == [
        (r["id"], r["content_hash"], r["version"]) for r in first
    ]
    paths = urdupoint.paths()
    assert not [p for p in paths if UrdupointSpider.article_path.search(p)]
    # the first listing page held only known articles: page 2 is not walked again
    assert LISTING in paths and LISTING_2 not in paths
    first_run, second_run = crawl_runs(db_url)
    assert (first_run.articles_new, second_run.articles_new) == (3, 0)
    assert second_run.status == "finished" and second_run.articles_skipped == 3
