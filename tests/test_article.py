"""Whole crawls of the generic_news mirror by the generic spider, with nothing but `base_url`."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from crawler.mirror import SITES_DIR, MirrorServer
from tests.conftest import FIXTURES, crawl, crawl_runs, export_jsonl

SITE = SITES_DIR / "generic_news"
EXPECTED = [
    json.loads(line)
    for line in (FIXTURES / "generic_news" / "expected.jsonl").read_text("utf-8").splitlines()
]
ARTICLE_PATHS = {e["url"].replace("{{BASE}}", "") for e in EXPECTED}
ROUTES = json.loads((SITE / "routes.json").read_text("utf-8"))
HOMEPAGE = (SITE / "index.html").read_text("utf-8")
FEED_LINK = '<link rel="alternate" type="application/rss+xml" title="News" href="/feed.xml">'
ROBOTS_WITHOUT_SITEMAP = "User-agent: *\nDisallow: /admin/\n"


@pytest.fixture
def site() -> Iterator[MirrorServer]:
    with MirrorServer(SITE) as server:
        yield server


def generic_sources(path: Path, base_url: str, **extra: str) -> Path:
    lines = ["# a site no spider knows", "[sources.world_desk]", 'spider = "article"']
    lines += [f'base_url = "{base_url}"', *(f"{k} = {v}" for k, v in extra.items())]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def archived_paths(db_url: str, base_url: str) -> set[str]:
    return {r["url"].removeprefix(base_url) for r in export_jsonl(db_url)}


def fetched_articles(site: MirrorServer) -> list[str]:
    return [p for p in site.paths() if p in ARTICLE_PATHS]


def test_sitemap_named_in_robots_finds_every_page_and_nothing_else(db_url, site, tmp_path):
    sources = generic_sources(tmp_path / "sources.toml", site.base_url)
    result = crawl("world_desk", db_url=db_url, sources_file=sources)
    assert result.returncode == 0, result.stdout + result.stderr
    records = export_jsonl(db_url)
    assert {r["url"].removeprefix(site.base_url) for r in records} == ARTICLE_PATHS
    assert {r["outlet"] for r in records} == {"world_desk"}
    assert all(r["title"] and r["body"] and r["snapshot_sha256"] for r in records)
    run = crawl_runs(db_url)[-1]
    assert run.status == "finished" and run.articles_new == len(ARTICLE_PATHS)
    assert run.stats["discovery/entry_points/robots_sitemaps"] == 1
    assert run.stats["discovery/found_by/sitemap"] == len(ARTICLE_PATHS)
    assert "discovery/entry_points/homepage_feeds" not in run.stats
    # the homepage and its feed are not needed once robots.txt named a sitemap
    assert "/" not in site.paths() and "/feed.xml" not in site.paths()
    assert sorted(fetched_articles(site)) == sorted(ARTICLE_PATHS)

    # a second crawl fetches no article: every one is known
    site.clear_requests()
    again = crawl("world_desk", db_url=db_url, sources_file=sources)
    assert again.returncode == 0, again.stderr
    assert fetched_articles(site) == []
    rerun = crawl_runs(db_url)[-1]
    assert rerun.articles_new == 0 and rerun.articles_skipped == len(ARTICLE_PATHS)
    assert len(export_jsonl(db_url)) == len(ARTICLE_PATHS)


def test_feed_linked_from_the_homepage(db_url, site, tmp_path):
    site.override("/robots.txt", ROBOTS_WITHOUT_SITEMAP, content_type="text/plain")
    sources = generic_sources(tmp_path / "sources.toml", site.base_url)
    result = crawl("world_desk", db_url=db_url, sources_file=sources)
    assert result.returncode == 0, result.stdout + result.stderr
    feed = (SITE / "feed.xml").read_text("utf-8")
    in_feed = {p for p in ARTICLE_PATHS if f"{{{{BASE}}}}{p}<" in feed}
    assert len(in_feed) == 30
    assert archived_paths(db_url, site.base_url) == in_feed
    run = crawl_runs(db_url)[-1]
    assert run.stats["discovery/entry_points/homepage_feeds"] == 1
    assert run.stats["discovery/found_by/feed"] == 30
    assert "/sitemap.xml" not in site.paths()


def test_homepage_links_when_the_site_names_no_feed_or_sitemap(db_url, site, tmp_path):
    site.override("/robots.txt", ROBOTS_WITHOUT_SITEMAP, content_type="text/plain")
    # a page linked from the homepage that is not an article: short, and declares nothing
    site.override("/desk/team-and-contacts", "<html><body><p>Our team.</p></body></html>")
    homepage = HOMEPAGE.replace(FEED_LINK, "").replace(
        '<a href="/about.html">About</a>', '<a href="/desk/team-and-contacts">Team</a>'
    )
    site.override("/", homepage)
    for path in ("/feed.xml", "/sitemap.xml"):
        site.fail(path, 404)
    sources = generic_sources(tmp_path / "sources.toml", site.base_url)
    result = crawl("world_desk", db_url=db_url, sources_file=sources)
    assert result.returncode == 0, result.stdout + result.stderr
    linked = {p for p in ARTICLE_PATHS if f'href="{p}"' in HOMEPAGE}
    assert len(linked) == 20
    assert archived_paths(db_url, site.base_url) == linked
    run = crawl_runs(db_url)[-1]
    assert run.stats["discovery/entry_points/homepage_links"] == 1
    assert run.stats["discovery/found_by/links"] == 20
    assert run.stats["discovery/not_article"] == 1
    assert "/desk/team-and-contacts" in site.paths()
    # the usual places were tried before settling for the homepage's links
    assert "/feed" in site.paths() and "/sitemap_index.xml" in site.paths()


def test_discovery_keys_replace_finding_entry_points(db_url, site, tmp_path):
    sources = generic_sources(
        tmp_path / "sources.toml",
        site.base_url,
        feeds='["/feed.xml"]',
        article_pattern='"^/(?:news|articles)/"',
    )
    result = crawl("world_desk", db_url=db_url, sources_file=sources)
    assert result.returncode == 0, result.stdout + result.stderr
    feed = (SITE / "feed.xml").read_text("utf-8")
    wanted = {
        p
        for p in ARTICLE_PATHS
        if f"{{{{BASE}}}}{p}<" in feed and p.startswith(("/news/", "/articles/"))
    }
    assert wanted and archived_paths(db_url, site.base_url) == wanted
    assert "/sitemap.xml" not in site.paths() and "/" not in site.paths()


def test_site_with_nothing_to_find_fails_the_run_with_the_reason(db_url, site, tmp_path):
    site.override("/robots.txt", ROBOTS_WITHOUT_SITEMAP, content_type="text/plain")
    site.override("/", "<html><body><p>Coming soon.</p></body></html>")
    for path in ("/feed.xml", "/sitemap.xml"):
        site.fail(path, 404)
    sources = generic_sources(tmp_path / "sources.toml", site.base_url)
    result = crawl("world_desk", db_url=db_url, sources_file=sources)
    assert result.returncode == 1
    run = crawl_runs(db_url)[-1]
    assert run.status == "failed"
    assert "no feed, sitemap or article link found" in (run.error_log or "")
    assert export_jsonl(db_url) == []


def test_sitemap_index_and_gzipped_news_sitemap(db_url, site, tmp_path):
    chosen = sorted(ARTICLE_PATHS)[:3]
    news = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9" '
        'xmlns:news="http://www.google.com/schemas/sitemap-news/0.9">'
        + "".join(
            f"<url><loc>{site.base_url}{path}</loc><news:news><news:publication_date>"
            "2019-11-20</news:publication_date></news:news></url>"
            for path in chosen
        )
        + "</urlset>"
    )
    site.override(
        "/news-sitemap.xml.gz", gzip.compress(news.encode()), content_type="application/x-gzip"
    )
    site.override(
        "/sitemap_index.xml",
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<sitemapindex xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">'
        "<sitemap><loc>{{BASE}}/news-sitemap.xml.gz</loc></sitemap></sitemapindex>",
        content_type="application/xml",
    )
    site.override(
        "/robots.txt",
        "User-agent: *\nSitemap: {{BASE}}/sitemap_index.xml\n",
        content_type="text/plain",
    )
    sources = generic_sources(tmp_path / "sources.toml", site.base_url)
    result = crawl("world_desk", db_url=db_url, sources_file=sources)
    assert result.returncode == 0, result.stdout + result.stderr
    assert archived_paths(db_url, site.base_url) == set(chosen)
    run = crawl_runs(db_url)[-1]
    assert run.stats["discovery/sitemap_gunzipped"] == 1
    assert run.stats["discovery/entry_points/robots_sitemaps"] == 1
    assert "/sitemap.xml" not in site.paths() and "/" not in site.paths()
