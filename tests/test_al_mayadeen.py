"""The al_mayadeen spider: fields of saved pages, the fallbacks, and whole crawls of its mirror."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from scrapy.http import TextResponse
from scrapy.utils.test import get_crawler
from sqlalchemy import select
from twisted.python.failure import Failure

from crawler.db.models import CrawlRun, Snapshot
from crawler.db.session import Archive
from crawler.items import ArticleItem
from crawler.mirror import SITES_DIR, MirrorServer
from crawler.pipelines.clean import clean_article
from crawler.spiders.al_mayadeen import AlMayadeenSpider
from crawler.spiders.base import ListingEntry
from tests.conftest import crawl, export_jsonl, write_sources
from tests.expected import assert_matches_expected, load_expected
from tests.pages import TEST_SETTINGS, mark_archived, page_response

KIM = "/news/politics/kim-jong-un-hosts-russia-deputy-defense-minister-in-pyongyang"
SEOUL = "/news/politics/south-korea-summons-russian-envoy-over-pact-with-dprk"
TREATY = "/articles/opinion/a-treaty-that-redraws-the-map-of-northeast-asia"
SITEMAPS = (
    "/sitemaps/all.xml",
    "/sitemaps/all/sitemap-2024-7.xml",
    "/sitemaps/all/sitemap-2024-6.xml",
)
BASE = "https://english.almayadeen.net"

# Boilerplate of every page that a body must never hold.
PAGE_CHROME = (
    "BREAKING",
    "Related News",
    "Most Read",
    "Read Next",
    "All Rights Reserved",
    "Source: Agencies",
)


def expected_row(path: str) -> dict[str, Any]:
    rows = {row["url"]: row for row in load_expected("al_mayadeen", BASE)}
    return rows[BASE + path]


def changed_layout(text: str) -> str:
    """The page as a redesign might leave it: the outlet's own markup gone or renamed."""
    text = re.sub(r'<script id="tawsiyat-metadata".*?</script>', "", text, flags=re.S)
    for old, new in (
        ('class="p-content"', 'class="story-text"'),
        ('class="article-title"', 'class="headline"'),
        ('class="lg_para summary"', 'class="standfirst"'),
        ('class="article-info"', 'class="byline-info"'),
    ):
        assert old in text
        text = text.replace(old, new)
    return text


def tail_matches(body: list[str], paragraphs: list[str]) -> bool:
    """The article's paragraphs, in order, at the end of body."""
    return body[-len(paragraphs) :] == paragraphs


# -- fields of saved pages ------------------------------------------------------------------


@pytest.fixture
def spider() -> AlMayadeenSpider:
    crawler = get_crawler(AlMayadeenSpider, settings_dict=TEST_SETTINGS)
    made = AlMayadeenSpider.from_crawler(crawler)
    assert isinstance(made, AlMayadeenSpider)
    crawler.spider = made
    return made


def article(spider: AlMayadeenSpider, response: TextResponse) -> ArticleItem:
    """The item the spider yields for a page, cleaned as the pipeline would."""
    items = list(spider.parse_article(response, ListingEntry(url=response.url)))
    assert len(items) == 1 and isinstance(items[0], ArticleItem)
    return clean_article(items[0])


def stats(spider: AlMayadeenSpider) -> dict[str, Any]:
    assert spider.crawler.stats is not None
    return spider.crawler.stats.get_stats()


@pytest.mark.parametrize("path", [KIM, SEOUL, TREATY])
def test_saved_page_fields_match_expected(spider, path):
    item = article(spider, page_response("al_mayadeen", path, base=BASE))
    want = expected_row(path)
    assert item.url == BASE + path
    assert item.title == want["title"]
    assert item.published_at == datetime.fromisoformat(want["published_at"])
    assert item.published_at is not None and item.published_at.tzinfo == UTC
    assert item.author == want["author"]
    assert item.summary == want["summary"]
    assert item.body == want["body"]
    assert item.original_source is None and item.original_url is None
    assert item.partial is False
    assert item.language == "en"
    assert item.declared_canonical == BASE + path
    for text in want["must_not_contain"]:
        assert not any(text in p for p in item.body), text
    # nothing came from a fallback
    assert not [k for k in stats(spider) if k.startswith("fallback/")]


def test_news_page_ids_byline_and_credit_line(spider):
    item = article(spider, page_response("al_mayadeen", KIM, base=BASE))
    assert item.outlet_article_id == "1774562"
    # "By Al Mayadeen English" is the author; "Source: Agencies" is not an original source
    assert item.author == "Al Mayadeen English"
    assert item.original_source is None
    assert item.timezone == "Asia/Beirut"
    # the caption and the inset Related News box are not body; the box's neighbours are
    assert item.body[5].endswith('are “baseless."')
    assert item.body[6].startswith("Russia and the DPRK's Treaty on Comprehensive")
    assert not any("Krivoruchko, in North Korea, on July 19" in p for p in item.body)
    assert not any("Putin orders logistics centers" in p for p in item.body)
    # a non-breaking space at a paragraph's end is not kept
    assert item.body[3].endswith("in the event of an attack or a war.")


def test_articles_page_has_its_columnist_and_id(spider):
    item = article(spider, page_response("al_mayadeen", TREATY, base=BASE))
    assert item.outlet_article_id == "1775930"
    assert item.author == "Karim Haddad"
    assert len(item.body) == 5


def test_visible_date_is_read_in_beirut_time_when_the_metadata_json_is_missing(spider):
    response = page_response("al_mayadeen", KIM, base=BASE)
    text = re.sub(r'<script id="tawsiyat-metadata".*?</script>', "", response.text, flags=re.S)
    item = article(spider, response.replace(body=text.encode("utf-8")))
    # "19 Jul 2024 14:59" with no offset: Beirut summer time is UTC+3
    assert item.published_at == datetime(2024, 7, 19, 11, 59, tzinfo=UTC)
    assert item.title == "Kim Jong-un hosts Russia deputy defense minister in Pyongyang"
    assert item.author == "Al Mayadeen English"
    assert item.outlet_article_id == "1774562"
    assert not [k for k in stats(spider) if k.startswith("fallback/")]


def test_metadata_time_without_offset_is_beirut_time(spider):
    response = page_response("al_mayadeen", KIM, base=BASE)
    text = response.text.replace('"2024-07-19T11:59:00Z"', '"2024-07-19T14:59:00"')
    item = article(spider, response.replace(body=text.encode("utf-8")))
    assert item.published_at == datetime(2024, 7, 19, 11, 59, tzinfo=UTC)


def test_metadata_json_wins_over_the_visible_date(spider):
    response = page_response("al_mayadeen", SEOUL, base=BASE)
    text = response.text.replace("21 Jun 2024 13:40", "21 Jun 2024 23:59")
    item = article(spider, response.replace(body=text.encode("utf-8")))
    assert item.published_at == datetime(2024, 6, 21, 10, 40, tzinfo=UTC)


def test_unreadable_metadata_json_is_ignored(spider):
    response = page_response("al_mayadeen", TREATY, base=BASE)
    text = response.text.replace('{"postid": "1775930"', '{"postid": "1775930",,')
    item = article(spider, response.replace(body=text.encode("utf-8")))
    assert item.title == "A treaty that redraws the map of Northeast Asia"
    assert item.author == "Karim Haddad"
    assert item.outlet_article_id == "1775930"  # from the article element's data-postid
    assert item.published_at == datetime(2024, 7, 24, 13, 5, tzinfo=UTC)


def test_changed_layout_is_archived_through_the_fallbacks(spider):
    response = page_response("al_mayadeen", KIM, base=BASE)
    changed = response.replace(body=changed_layout(response.text).encode("utf-8"))
    item = article(spider, changed)
    want = expected_row(KIM)
    # JSON-LD stands in for the metadata JSON and the byline
    assert item.title == want["title"]
    assert item.published_at == datetime.fromisoformat(want["published_at"])
    assert item.author == want["author"]
    assert item.summary == want["summary"]
    # generic extraction finds the article's paragraphs and leaves the page's chrome out
    assert tail_matches(item.body, want["body"])
    for text in PAGE_CHROME:
        assert not any(text in p for p in item.body), text
    counted = stats(spider)
    for field in ("title", "published", "author", "summary"):
        assert counted[f"fallback/metadata/{field}"] == 1, field
    assert counted["fallback/generic/body"] == 1


def test_article_path_takes_news_and_articles_only():
    pattern = AlMayadeenSpider.article_path
    assert pattern.search(KIM) and pattern.search(TREATY)
    for path in ("/news", "/news/politics", "/videos/tv/some-clip", "/sitemaps/all.xml", "/rss"):
        assert not pattern.search(path), path


def test_sitemaps_are_walked_newest_month_first_one_after_the_other(spider):
    index = page_response("al_mayadeen", "/sitemaps/all.xml", base=BASE)
    [july_request] = spider.parse_sitemap(index)
    assert july_request.url == BASE + SITEMAPS[1]
    assert july_request.cb_kwargs == {"older": (BASE + SITEMAPS[2],)}
    july = page_response("al_mayadeen", SITEMAPS[1], base=BASE, **july_request.meta)
    requests = list(spider.parse_sitemap(july, **july_request.cb_kwargs))
    assert [r.url for r in requests] == [BASE + TREATY, BASE + KIM, BASE + SITEMAPS[2]]
    assert [r.callback for r in requests] == [spider.parse_article] * 2 + [spider.parse_sitemap]
    june = page_response("al_mayadeen", SITEMAPS[2], base=BASE)
    assert [r.url for r in spider.parse_sitemap(june, older=())] == [BASE + SEOUL]


def walk_sitemap(spider: AlMayadeenSpider, path: str, request: Any) -> list[Any]:
    """What the spider asks for after reading the sitemap at path, fetched for `request`."""
    response = page_response("al_mayadeen", path, base=BASE, **request.meta)
    return list(spider.parse_sitemap(response, **request.cb_kwargs))


def test_a_sitemap_of_known_articles_ends_a_walk_only_after_a_complete_one(spider):
    mark_archived(spider, BASE + TREATY, BASE + KIM)
    index = page_response("al_mayadeen", "/sitemaps/all.xml", base=BASE)
    [july_request] = spider.parse_sitemap(index)
    # no walk of this index was ever complete: the archived month does not stop it
    [june_request] = walk_sitemap(spider, SITEMAPS[1], july_request)
    assert june_request.url == BASE + SITEMAPS[2]
    assert [r.url for r in walk_sitemap(spider, SITEMAPS[2], june_request)] == [BASE + SEOUL]
    # the walk reached the index's end: the next one stops at the first archived month
    spider.walks.open()
    assert walk_sitemap(spider, SITEMAPS[1], july_request) == []
    assert stats(spider)["discovery/stopped_at_known_page"] == 1
    assert stats(spider)["archive/articles_skipped"] == 2


def test_max_pages_limits_the_monthly_sitemaps(spider):
    spider.source = replace(spider.source, max_pages=1)
    index = page_response("al_mayadeen", "/sitemaps/all.xml", base=BASE)
    [july_request] = spider.parse_sitemap(index)
    assert july_request.url == BASE + SITEMAPS[1]
    assert [r.url for r in walk_sitemap(spider, SITEMAPS[1], july_request)] == [
        BASE + TREATY,
        BASE + KIM,
    ]
    assert stats(spider)["discovery/max_pages_reached"] == 1


def test_a_sitemap_that_cannot_be_read_is_reported_and_the_next_one_is_walked(spider):
    july = page_response("al_mayadeen", SITEMAPS[1], base=BASE)
    broken = july.replace(body=b"<html><body>Service unavailable</body></html>")
    requests = list(spider.parse_sitemap(broken, older=(BASE + SITEMAPS[2],)))
    assert [r.url for r in requests] == [BASE + SITEMAPS[2]]
    assert stats(spider)["archive/errors"] == 1
    failed = spider.sitemap_request(BASE + SITEMAPS[1], (BASE + SITEMAPS[2],))
    failure = Failure(ConnectionRefusedError("refused"))
    failure.request = failed  # type: ignore[attr-defined]
    assert [r.url for r in spider.on_sitemap_error(failure)] == [BASE + SITEMAPS[2]]
    assert stats(spider)["archive/errors"] == 2


# -- whole crawls of the mirror ---------------------------------------------------------------


@pytest.fixture
def mayadeen() -> Iterator[MirrorServer]:
    with MirrorServer(SITES_DIR / "al_mayadeen") as server:
        yield server


@pytest.fixture
def sources_file(tmp_path: Path, mayadeen: MirrorServer) -> Path:
    return write_sources(tmp_path / "sources.toml", {"al_mayadeen": mayadeen.base_url})


def route_text(path: str) -> str:
    """The template text the mirror serves at path ({{BASE}} still in it)."""
    site = SITES_DIR / "al_mayadeen"
    routes = json.loads((site / "routes.json").read_text(encoding="utf-8"))
    return (site / routes[path]["file"]).read_text(encoding="utf-8")


def disallowed() -> list[str]:
    robots = (SITES_DIR / "al_mayadeen" / "robots.txt").read_text(encoding="utf-8")
    return re.findall(r"^Disallow:\s*(\S+)", robots, flags=re.M)


def last_run(db_url: str) -> CrawlRun:
    archive = Archive(db_url)
    try:
        with archive.sessions() as session:
            run = session.scalars(select(CrawlRun).order_by(CrawlRun.id.desc())).first()
            assert run is not None
            session.expunge(run)
            return run
    finally:
        archive.dispose()


def test_crawl_matches_expected_and_obeys_robots(db_url, mayadeen, sources_file):
    result = crawl("al_mayadeen", db_url=db_url, sources_file=sources_file)
    assert result.returncode == 0, result.stdout + result.stderr
    records = export_jsonl(db_url)
    assert_matches_expected(records, "al_mayadeen", mayadeen.base_url)
    for record in records:
        assert record["version"] == 1
        assert record["original_source"] is None
    # only article pages are archived: no sitemap, no listing, no error page
    assert sorted(r["url"] for r in records) == sorted(
        mayadeen.url(p) for p in (KIM, SEOUL, TREATY)
    )
    paths = mayadeen.paths()
    assert paths[0] == "/robots.txt"
    for path in SITEMAPS:
        assert path in paths
    assert "/rss" not in paths and "/news" not in paths
    rules = disallowed()
    assert rules == ["/api/", "/search"]
    assert not [p for p in paths if any(p.startswith(rule) for rule in rules)]
    # Related News links inside the bodies are not followed
    assert sorted(p for p in paths if p.startswith(("/news/", "/articles/"))) == sorted(
        [KIM, SEOUL, TREATY]
    )
    archive = Archive(db_url)
    with archive.sessions() as session:
        snapshots = session.scalars(select(Snapshot.final_url)).all()
        assert sorted(snapshots) == sorted(mayadeen.url(p) for p in (KIM, SEOUL, TREATY))
    archive.dispose()
    run = last_run(db_url)
    assert run.status == "finished" and run.errors == 0 and run.articles_new == 3
    assert run.stats is not None
    assert not [k for k in run.stats if k.startswith("fallback/")]


def test_second_crawl_adds_nothing_and_fetches_no_article(db_url, mayadeen, sources_file):
    assert crawl("al_mayadeen", db_url=db_url, sources_file=sources_file).returncode == 0
    first = export_jsonl(db_url)
    mayadeen.clear_requests()
    result = crawl("al_mayadeen", db_url=db_url, sources_file=sources_file)
    assert result.returncode == 0, result.stderr
    second = export_jsonl(db_url)
    assert [(r["id"], r["content_hash"]) for r in second] == [
        (r["id"], r["content_hash"]) for r in first
    ]
    assert not [p for p in mayadeen.paths() if p.startswith(("/news/", "/articles/"))]
    run = last_run(db_url)
    # the newest month held only known articles: the older month is not fetched again
    assert SITEMAPS[1] in mayadeen.paths() and SITEMAPS[2] not in mayadeen.paths()
    assert (run.status, run.articles_new, run.articles_skipped) == ("finished", 0, 2)
    assert run.stats is not None and run.stats["discovery/stopped_at_known_page"] == 1


def test_crawl_of_a_changed_layout_archives_through_the_fallbacks(db_url, mayadeen, sources_file):
    mayadeen.override(KIM, changed_layout(route_text(KIM)))
    result = crawl("al_mayadeen", db_url=db_url, sources_file=sources_file)
    assert result.returncode == 0, result.stdout + result.stderr
    records = {r["url"]: r for r in export_jsonl(db_url)}
    assert len(records) == 3
    want = expected_row(KIM)
    record = records[mayadeen.url(KIM)]
    assert record["title"] == want["title"]
    assert datetime.fromisoformat(record["published_at"]) == datetime.fromisoformat(
        want["published_at"]
    )
    assert record["author"] == want["author"]
    assert record["summary"] == want["summary"]
    assert tail_matches(record["body"].split("\n\n"), want["body"])
    for text in PAGE_CHROME:
        assert text not in record["body"], text
    run = last_run(db_url)
    assert run.status == "finished" and run.articles_new == 3
    assert run.stats is not None
    for field in ("title", "published", "author", "summary"):
        assert run.stats[f"fallback/metadata/{field}"] == 1, field
    assert run.stats["fallback/generic/body"] == 1


def test_a_failing_monthly_sitemap_is_recorded_and_the_older_month_still_crawled(
    db_url, mayadeen, sources_file
):
    mayadeen.fail(SITEMAPS[1], 500)
    result = crawl("al_mayadeen", db_url=db_url, sources_file=sources_file)
    assert result.returncode == 0, result.stdout + result.stderr
    assert [r["url"] for r in export_jsonl(db_url)] == [mayadeen.url(SEOUL)]
    run = last_run(db_url)
    assert run.status == "finished" and run.errors == 1 and run.articles_new == 1
    assert run.error_log is not None
    assert f"{mayadeen.url(SITEMAPS[1])}: HTTP 500" in run.error_log
