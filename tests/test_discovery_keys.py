"""The sources file's discovery keys: a hand-written spider's entry points replaced, and two
sources of one spider (the generic one) crawled side by side, each recorded as itself."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from crawler.mirror import SITES_DIR, MirrorServer
from tests.conftest import crawl, crawl_runs, export_jsonl, run_cli

URDUPOINT_ARTICLES = (
    "/en/world/kim-jong-un-meets-russian-defence-minist-1707439.html",
    "/en/world/russian-defence-minister-shoigu-arrives-1706918.html",
)
PAKISTAN_LISTING = (
    '<html><body><ul class="news_list">'
    + "".join(f'<li><a href="{path}">story</a></li>' for path in URDUPOINT_ARTICLES)
    + "</ul></body></html>"
)


@pytest.fixture
def urdupoint() -> Iterator[MirrorServer]:
    with MirrorServer(SITES_DIR / "urdupoint") as server:
        yield server


def test_listings_key_replaces_a_hand_written_spiders_listing(db_url, urdupoint, tmp_path):
    urdupoint.override("/en/news/pakistan.html", PAKISTAN_LISTING)
    sources = tmp_path / "sources.toml"
    sources.write_text(
        "[sources.urdupoint]\n"
        f'base_url = "{urdupoint.base_url}"\n'
        'listings = ["/en/news/pakistan.html"]   # the Pakistan section, not World\n'
        "feeds = []\n",
        encoding="utf-8",
    )
    result = crawl("urdupoint", db_url=db_url, sources_file=sources)
    assert result.returncode == 0, result.stdout + result.stderr
    paths = urdupoint.paths()
    assert "/en/news/pakistan.html" in paths
    assert "/en/news/world.html" not in paths and "/en/sitemap/news.rss" not in paths
    archived = {r["url"].removeprefix(urdupoint.base_url) for r in export_jsonl(db_url)}
    assert archived == set(URDUPOINT_ARTICLES)


def test_a_key_left_out_keeps_the_spiders_own_entry_points(db_url, urdupoint, tmp_path):
    urdupoint.override("/en/news/pakistan.html", PAKISTAN_LISTING)
    sources = tmp_path / "sources.toml"
    sources.write_text(
        f'[sources.urdupoint]\nbase_url = "{urdupoint.base_url}"\n'
        'listings = ["/en/news/pakistan.html"]\n',
        encoding="utf-8",
    )
    assert crawl("urdupoint", db_url=db_url, sources_file=sources).returncode == 0
    paths = urdupoint.paths()
    assert "/en/sitemap/news.rss" in paths and "/en/news/pakistan.html" in paths
    assert "/en/news/world.html" not in paths


def test_two_sources_of_the_generic_spider_are_two_outlets(db_url, tmp_path):
    site = SITES_DIR / "generic_news"
    with MirrorServer(site) as feed_site, MirrorServer(site) as home_site:
        sources = tmp_path / "sources.toml"
        sources.write_text(
            "[sources.desk_feed]\n"
            'spider = "article"\n'
            f'base_url = "{feed_site.base_url}"\n'
            'feeds = ["/feed.xml"]\n\n'
            "[sources.desk_home]\n"
            'spider = "article"\n'
            f'base_url = "{home_site.base_url}"\n'
            'listings = ["/"]\n',
            encoding="utf-8",
        )
        result = crawl("desk_feed", "desk_home", db_url=db_url, sources_file=sources)
        assert result.returncode == 0, result.stdout + result.stderr
    records = export_jsonl(db_url)
    by_outlet = {o: [r for r in records if r["outlet"] == o] for o in ("desk_feed", "desk_home")}
    assert len(by_outlet["desk_feed"]) == 30 and len(by_outlet["desk_home"]) == 20
    assert all(r["url"].startswith(feed_site.base_url) for r in by_outlet["desk_feed"])
    assert all(r["url"].startswith(home_site.base_url) for r in by_outlet["desk_home"])
    listed = run_cli("runs", "--json", db_url=db_url, sources=sources)
    assert listed.returncode == 0, listed.stderr
    runs = {run["source"]: run for run in json.loads(listed.stdout)}
    assert runs["desk_feed"]["articles_new"] == 30 and runs["desk_home"]["articles_new"] == 20
    assert {r["status"] for r in runs.values()} == {"finished"}
    stats = {run.id: run.stats for run in crawl_runs(db_url)}
    assert stats[runs["desk_feed"]["id"]]["discovery/found_by/feed"] == 30
    assert stats[runs["desk_home"]["id"]]["discovery/found_by/links"] == 20
