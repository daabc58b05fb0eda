"""The islam_times spider: fields of saved pages, then whole crawls of its mirror."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from scrapy import Request
from scrapy.http import HtmlResponse, TextResponse
from sqlalchemy import select

from crawler.db.models import Snapshot
from crawler.db.queries import payload_bytes
from crawler.db.session import Archive
from crawler.items import ArticleItem
from crawler.middlewares import CharsetMiddleware
from crawler.mirror import SITES_DIR, MirrorServer
from crawler.pipelines.clean import clean_article
from crawler.spiders.base import ListingEntry
from crawler.spiders.islam_times import IslamTimesSpider
from tests.conftest import crawl, crawl_runs, export_jsonl, write_sources
from tests.expected import assert_matches_expected, load_expected
from tests.pages import TEST_BASE, make_spider, page_response, page_text

LEBANON = "/en/news/1148702/lebanons-caretaker-pm-meets-french-envoy-on-border-escalation"
MOSCOW = "/en/news/1148653/moscow-pyongyang-discuss-military-ties-eye-new-era-of-ties"
TEHRAN = "/en/news/1148421/tehran-hosts-regional-meeting-on-water-security-and-drought"
ARTICLES = (LEBANON, MOSCOW, TEHRAN)
LISTING, LISTING_2, FEED = "/en/news/", "/en/news/?page=2", "/en/rss"
COPYRIGHT = '<meta name="author" content="copyright – islamtimes.org">'
SITE = SITES_DIR / "islam_times"


def route(path: str) -> dict[str, Any]:
    routes = json.loads((SITE / "routes.json").read_text(encoding="utf-8"))
    entry: dict[str, Any] = routes[path]
    return entry


def served_bytes(path: str, base: str) -> bytes:
    """The bytes the mirror sends for a route: its text in the route's encoding."""
    entry = route(path)
    text = (SITE / entry["file"]).read_text(encoding="utf-8").replace("{{BASE}}", base)
    charset = entry["content_type"].partition("charset=")[2] or "utf-8"
    return text.encode(entry.get("encoding") or charset)


def served_response(path: str) -> TextResponse:
    """A saved page exactly as served: its bytes and its (possibly wrong) Content-Type."""
    url = TEST_BASE + path
    return HtmlResponse(
        url=url,
        body=served_bytes(path, TEST_BASE),
        headers={"Content-Type": route(path)["content_type"]},
        request=Request(url),
    )


@pytest.fixture
def spider() -> IslamTimesSpider:
    made = make_spider(IslamTimesSpider)
    assert isinstance(made, IslamTimesSpider)
    return made


def article(
    spider: IslamTimesSpider, response: TextResponse, entry: ListingEntry | None = None
) -> ArticleItem:
    """The item the spider yields for a page, cleaned as the pipeline would."""
    items = list(spider.parse_article(response, entry or ListingEntry(url=response.url)))
    assert len(items) == 1 and isinstance(items[0], ArticleItem)
    return clean_article(items[0])


def stats(spider: IslamTimesSpider) -> dict[str, Any]:
    assert spider.crawler.stats is not None
    return spider.crawler.stats.get_stats()


def expected_row(path: str) -> dict[str, Any]:
    return {row["url"]: row for row in load_expected("islam_times", TEST_BASE)}[TEST_BASE + path]


# -- fields of saved pages ------------------------------------------------------------------


@pytest.mark.parametrize("path", ARTICLES)
def test_saved_page_fields_match_expected(spider, path):
    item = article(spider, page_response("islam_times", path))
    want = expected_row(path)
    assert item.url == TEST_BASE + path
    assert item.title == want["title"]
    assert item.published_at == datetime.fromisoformat(want["published_at"])
    assert item.published_at is not None and item.published_at.tzinfo == UTC
    assert item.author is None and want["author"] is None
    assert item.summary is None and want["summary"] is None
    assert item.body == want["body"]
    assert item.original_source is None and item.partial is False
    assert item.language == "en"
    assert item.declared_canonical == TEST_BASE + path
    for text in want["must_not_contain"]:
        assert not any(text in p for p in item.body), text
    assert not [k for k in stats(spider) if k.startswith("fallback/")]


def test_story_code_is_the_outlet_article_id_not_body(spider):
    item = article(spider, page_response("islam_times", MOSCOW))
    assert item.outlet_article_id == "1148653"
    assert not any("Story Code" in p or "1148653" in p for p in item.body)


def test_date_is_tehran_time(spider):
    item = article(spider, page_response("islam_times", MOSCOW))
    assert item.published == datetime(2024, 7, 19, 21, 40)  # "Friday 19 July 2024 - 21:40"
    assert item.timezone == "Asia/Tehran"
    assert item.published_at == datetime(2024, 7, 19, 18, 10, tzinfo=UTC)


@pytest.mark.parametrize(
    ("meta", "author"),
    [
        (COPYRIGHT, None),
        # the same line as a media monitor recorded it, misread
        ('<meta name="author" content="copyright â islamtimes.org">', None),
        ('<meta name="author" content="© Islam Times">', None),
        ("", None),
        ('<meta name="author" content="Maha Hussaini">', "Maha Hussaini"),
    ],
)
def test_meta_author_counts_only_when_it_names_a_person(spider, meta, author):
    text = page_text("islam_times", MOSCOW)
    assert COPYRIGHT in text
    response = page_response("islam_times", MOSCOW, body=text.replace(COPYRIGHT, meta))
    assert article(spider, response).author == author


def test_page_sent_with_a_wrong_charset_is_read_from_its_bytes(spider):
    served = served_response(LEBANON)
    assert served.headers.get("Content-Type") == b"text/html; charset=iso-8859-1"
    # read as declared, the title is mojibake
    assert "â€™" in (served.css("h1.news-title::text").get() or "")
    middleware = CharsetMiddleware.from_crawler(spider.crawler)
    fixed = middleware.process_response(Request(served.url), served)
    assert isinstance(fixed, TextResponse)
    item = article(spider, fixed)
    want = expected_row(LEBANON)
    assert (
        item.title
        == want["title"]
        == "Lebanon’s Caretaker PM Meets French Envoy on “Border Escalation”"
    )
    assert item.body == want["body"]
    assert item.page is not None and item.page.body == served.body  # the bytes as served
    assert item.page.headers["Content-Type"] == ["text/html; charset=iso-8859-1"]
    assert stats(spider)["charset/overruled"] == 1


def test_pages_with_a_right_charset_are_left_alone(spider):
    middleware = CharsetMiddleware.from_crawler(spider.crawler)
    for path in (MOSCOW, TEHRAN, LISTING):
        served = served_response(path)
        assert middleware.process_response(Request(served.url), served) is served
    assert "charset/overruled" not in stats(spider)


def test_changed_layout_falls_back_to_metadata_feed_date_and_generic_text(spider):
    text = page_text("islam_times", MOSCOW)
    for old, new in (
        ('class="news-title"', 'class="headline"'),
        ('class="news-body"', 'class="story"'),
        ('<div class="news-date">Friday 19 July 2024 - 21:40</div>', ""),
    ):
        assert old in text
        text = text.replace(old, new)
    entry = ListingEntry(
        url=TEST_BASE + MOSCOW, published=datetime(2024, 7, 19, 18, 10, tzinfo=UTC)
    )
    item = article(spider, page_response("islam_times", MOSCOW, body=text), entry)
    assert item.title == "Moscow, Pyongyang Discuss Military Ties, Eye New Era of Ties"
    assert item.published_at == datetime(2024, 7, 19, 18, 10, tzinfo=UTC)
    assert any("Tuman River" in p for p in item.body)
    assert stats(spider)["fallback/metadata/title"] == 1
    assert stats(spider)["fallback/metadata/published"] == 1
    assert stats(spider)["fallback/generic/body"] == 1


# -- discovery ----------------------------------------------------------------------------------


def test_listing_gives_its_articles_and_the_next_page(spider):
    out = list(spider.parse_listing(page_response("islam_times", LISTING), page=1))
    articles = [r.url for r in out if r.callback == spider.parse_article]
    pages = [r for r in out if r.callback == spider.parse_listing]
    # the news items only: Featured Stories links are not followed
    assert articles == [TEST_BASE + LEBANON, TEST_BASE + MOSCOW]
    assert [(r.url, r.cb_kwargs) for r in pages] == [(TEST_BASE + LISTING_2, {"page": 2})]


def test_last_listing_page_has_no_next_page(spider):
    out = list(spider.parse_listing(page_response("islam_times", LISTING_2), page=2))
    assert [r.url for r in out] == [TEST_BASE + TEHRAN]


def test_feed_gives_every_article_with_its_time(spider):
    out = list(spider.parse_feed(page_response("islam_times", FEED)))
    assert [r.url for r in out] == [TEST_BASE + p for p in ARTICLES]
    entry = out[1].cb_kwargs["entry"]
    assert entry.published == datetime(2024, 7, 19, 18, 10, tzinfo=UTC)


@pytest.mark.parametrize(
    ("path", "is_article"),
    [
        (MOSCOW, True),
        ("/en/news/1156494/china-urges-world-states-to-resist-us-economic-coercion", True),
        (LISTING, False),
        (LISTING_2, False),
        ("/en/comment/1148653", False),
        ("/en/rss", False),
        ("/en/news/1148653/", False),
    ],
)
def test_article_path(path, is_article):
    assert bool(IslamTimesSpider.article_path.search(path)) is is_article


# -- whole crawls of the mirror ---------------------------------------------------------------


@pytest.fixture
def islam_times() -> Iterator[MirrorServer]:
    with MirrorServer(SITE) as server:
        yield server


@pytest.fixture
def sources_file(tmp_path: Path, islam_times: MirrorServer) -> Path:
    return write_sources(tmp_path / "sources.toml", {"islam_times": islam_times.base_url})


def disallowed() -> list[str]:
    robots = (SITE / "robots.txt").read_text(encoding="utf-8")
    return re.findall(r"^Disallow:\s*(\S+)", robots, flags=re.M)


def test_crawl_matches_expected_and_obeys_robots(db_url, islam_times, sources_file):
    result = crawl("islam_times", db_url=db_url, sources_file=sources_file)
    assert result.returncode == 0, result.stdout + result.stderr
    records = export_jsonl(db_url)
    assert_matches_expected(records, "islam_times", islam_times.base_url)
    ids = {r["url"]: r["outlet_article_id"] for r in records}
    assert ids == {islam_times.url(p): p.split("/")[3] for p in ARTICLES}
    for record in records:
        assert record["version"] == 1 and record["language"] == "en"
        for mojibake in ("â€", "Ã", "Â"):
            assert mojibake not in record["title"] + record["body"]
    paths = islam_times.paths()
    assert paths[0] == "/robots.txt"
    assert {FEED, LISTING, LISTING_2} <= set(paths)
    rules = disallowed()
    assert rules == ["/en/search", "/en/comment/"]
    assert not [p for p in paths if any(p.startswith(rule) for rule in rules)]
    # every article once; Featured Stories are not followed
    article_paths = [p for p in paths if IslamTimesSpider.article_path.search(p)]
    assert sorted(article_paths) == sorted(ARTICLES)
    (run,) = crawl_runs(db_url)
    assert run.status == "finished" and run.errors == 0 and run.articles_new == 3
    assert run.stats is not None and run.stats["charset/overruled"] == 1
    assert not [k for k in run.stats if k.startswith("fallback/")]


def test_snapshots_keep_the_bytes_and_the_wrong_header_as_served(db_url, islam_times, sources_file):
    assert crawl("islam_times", db_url=db_url, sources_file=sources_file).returncode == 0
    archive = Archive(db_url)
    with archive.sessions() as session:
        snapshots = {s.final_url: s for s in session.scalars(select(Snapshot)).all()}
        # no listing page and no feed is archived
        assert sorted(snapshots) == sorted(islam_times.url(p) for p in ARTICLES)
        for path in ARTICLES:
            snapshot = snapshots[islam_times.url(path)]
            assert payload_bytes(session, snapshot.sha256) == served_bytes(
                path, islam_times.base_url
            )
        headers = {k.lower(): v for k, v in snapshots[islam_times.url(LEBANON)].headers.items()}
        assert headers["content-type"] == ["text/html; charset=iso-8859-1"]
    archive.dispose()


def test_an_article_robots_txt_disallows_is_not_fetched(db_url, islam_times, sources_file):
    robots = (SITE / "robots.txt").read_text(encoding="utf-8") + "Disallow: /en/news/1148421/\n"
    islam_times.override("/robots.txt", robots)
    result = crawl("islam_times", db_url=db_url, sources_file=sources_file)
    assert result.returncode == 0, result.stdout + result.stderr
    assert TEHRAN not in islam_times.paths()
    assert sorted(r["url"] for r in export_jsonl(db_url)) == sorted(
        islam_times.url(p) for p in (LEBANON, MOSCOW)
    )
    (run,) = crawl_runs(db_url)
    assert run.stats is not None and run.stats["robotstxt/forbidden"] >= 1


def test_second_crawl_adds_nothing_and_fetches_no_article(db_url, islam_times, sources_file):
    assert crawl("islam_times", db_url=db_url, sources_file=sources_file).returncode == 0
    first = export_jsonl(db_url)
    islam_times.clear_requests()
    result = crawl("islam_times", db_url=db_url, sources_file=sources_file)
    assert result.returncode == 0, result.stderr
    second = export_jsonl(db_url)
    assert [(r["id"], r["content_hash"], r["version"]) for r in second] == [
        (r["id"], r["content_hash"], r["version"]) for r in first
    ]
    paths = islam_times.paths()
    assert not [p for p in paths if IslamTimesSpider.article_path.search(p)]
    assert LISTING in paths and LISTING_2 not in paths
    first_run, second_run = crawl_runs(db_url)
    assert (first_run.articles_new, second_run.articles_new) == (3, 0)
    assert second_run.status == "finished" and second_run.articles_skipped == 3
