"""Whole crawls of the kcna_watch mirror into the archive under test."""

from __future__ import annotations

import json

from sqlalchemy import func, select

from crawler.db.models import Article, ArticleVersion, CrawlRun, Snapshot
from crawler.db.queries import payload_bytes
from crawler.db.session import Archive
from crawler.mirror import SITES_DIR, MirrorServer
from tests.conftest import crawl, export_jsonl
from tests.expected import assert_matches_expected

KIM_CHAEK = (
    "/newstream/1732523411-283960/"
    "kim-chaek-university-of-technology-boosts-r-d-links-with-industry/"
)
RODONG = (
    "/newstream/1733392519-286102/"
    "rodong-sinmun-calls-for-thorough-preparations-for-next-years-farming/"
)
RECEPTION = (
    "/newstream/1732960512-284951/"
    "dprk-ministry-of-national-defence-hosts-reception-for-russian-military-delegation/"
)


def test_crawl_matches_expected_and_obeys_robots(db_url, kcna, sources_file):
    result = crawl("kcna_watch", db_url=db_url, sources_file=sources_file)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "kcna_watch" in result.stdout and "finished" in result.stdout
    records = export_jsonl(db_url)
    assert_matches_expected(records, "kcna_watch", kcna.base_url)
    paths = kcna.paths()
    assert paths[0] == "/robots.txt"
    assert "/newstream/feed/" in paths and "/newstream/page/2/" in paths
    # links under "More From" are not followed; every article page is fetched once
    article_paths = [p for p in paths if p.count("/") == 4 and p.startswith("/newstream/1")]
    assert len(article_paths) == len(set(article_paths)) == 4
    ua = kcna.requests[0].header("User-Agent")
    assert ua and ua.startswith("news-archive-crawler/")
    for record in records:
        assert record["version"] == 1
        assert record["snapshot_sha256"] and len(record["snapshot_sha256"]) == 64
        assert record["original_url"].startswith("http://www.")


def test_second_crawl_adds_nothing_and_fetches_no_article(db_url, kcna, sources_file):
    assert crawl("kcna_watch", db_url=db_url, sources_file=sources_file).returncode == 0
    first = export_jsonl(db_url)
    kcna.clear_requests()
    result = crawl("kcna_watch", db_url=db_url, sources_file=sources_file)
    assert result.returncode == 0, result.stderr
    second = export_jsonl(db_url)
    assert [r["id"] for r in second] == [r["id"] for r in first]
    assert [r["content_hash"] for r in second] == [r["content_hash"] for r in first]
    assert not [p for p in kcna.paths() if p.startswith("/newstream/17")]
    # the first listing page held only known articles: page 2 is not fetched again
    assert "/newstream/page/2/" not in kcna.paths()
    archive = Archive(db_url)
    with archive.sessions() as session:
        runs = session.scalars(select(CrawlRun).order_by(CrawlRun.id)).all()
        assert [r.status for r in runs] == ["finished", "finished"]
        assert (runs[0].articles_new, runs[1].articles_new, runs[1].articles_skipped) == (4, 0, 4)
    archive.dispose()


def test_edited_article_makes_version_two_and_keeps_version_one(db_url, kcna, sources_file):
    path = KIM_CHAEK
    assert crawl("kcna_watch", db_url=db_url, sources_file=sources_file).returncode == 0
    kcna.edit(path, "more than 30 units", "more than 40 units")
    kcna.clear_requests()
    result = crawl("kcna_watch", "--refresh", db_url=db_url, sources_file=sources_file)
    assert result.returncode == 0, result.stderr
    # known articles were asked for conditionally; only the edited one came back changed
    conditional = [r for r in kcna.requests if r.header("If-None-Match")]
    assert len(conditional) == 4
    archive = Archive(db_url)
    with archive.sessions() as session:
        article = session.scalar(select(Article).where(Article.url == kcna.url(path)))
        assert article is not None and article.version == 2
        assert "more than 40 units" in article.body
        versions = session.scalars(select(ArticleVersion)).all()
        assert [(v.article_id, v.version) for v in versions] == [(article.id, 1)]
        assert "more than 30 units" in versions[0].body
        run = session.scalars(select(CrawlRun).order_by(CrawlRun.id.desc())).first()
        assert (run.articles_new, run.articles_updated, run.articles_unchanged) == (0, 1, 3)
    archive.dispose()


def test_snapshots_hold_the_exact_bytes_served(db_url, kcna, sources_file):
    assert crawl("kcna_watch", db_url=db_url, sources_file=sources_file).returncode == 0
    archive = Archive(db_url)
    with archive.sessions() as session:
        snapshots = session.scalars(select(Snapshot)).all()
        assert len(snapshots) == 4
        for snapshot in snapshots:
            path = snapshot.final_url.removeprefix(kcna.base_url)
            served = (SITES_DIR / "kcna_watch" / kcna_route_file(kcna, path)).read_text("utf-8")
            expected = served.replace("{{BASE}}", kcna.base_url).encode("utf-8")
            assert payload_bytes(session, snapshot.sha256) == expected
            assert snapshot.size == len(expected) and snapshot.status == 200
            assert any(k.lower() == "etag" for k in snapshot.headers)
        articles = session.scalar(select(func.count(Article.id)))
        assert articles == 4
    archive.dispose()


def kcna_route_file(server: MirrorServer, path: str) -> str:
    routes = json.loads((SITES_DIR / "kcna_watch" / "routes.json").read_text("utf-8"))
    return routes[path]["file"]


def test_a_500_on_one_article_is_recorded_and_the_crawl_completes(db_url, kcna, sources_file):
    broken = RODONG
    kcna.fail(broken, 500)
    result = crawl("kcna_watch", db_url=db_url, sources_file=sources_file)
    assert result.returncode == 0, result.stderr
    records = export_jsonl(db_url)
    assert len(records) == 3 and kcna.url(broken) not in {r["url"] for r in records}
    archive = Archive(db_url)
    with archive.sessions() as session:
        run = session.scalars(select(CrawlRun)).one()
        assert run.status == "finished" and run.errors == 1
        assert kcna.url(broken) in run.error_log and "HTTP 500" in run.error_log
    archive.dispose()


def test_a_truncated_response_archives_nothing_of_that_page(db_url, kcna, sources_file):
    cut = RECEPTION
    kcna.truncate(cut)
    result = crawl("kcna_watch", db_url=db_url, sources_file=sources_file)
    assert result.returncode == 0, result.stderr
    records = export_jsonl(db_url)
    assert kcna.url(cut) not in {r["url"] for r in records} and len(records) == 3
    archive = Archive(db_url)
    with archive.sessions() as session:
        run = session.scalars(select(CrawlRun)).one()
        assert run.errors == 1 and kcna.url(cut) in run.error_log
        assert session.scalar(select(func.count(Snapshot.id))) == 3
    archive.dispose()


UNTITLED = "/newstream/1732000000-283001/untitled-item/"
UNTITLED_PAGE = """<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"></head><body>
<main><article><div class="article-content entry-content"><p>A paragraph with no headline.</p>
</div></article></main></body></html>"""


def test_a_page_without_title_is_counted_and_not_stored(db_url, kcna, sources_file):
    kcna.override(UNTITLED, UNTITLED_PAGE, content_type="text/html; charset=utf-8")
    kcna.edit(
        "/newstream/page/2/",
        '<nav class="navigation pagination"',
        f'<article class="newstream-item"><h2 class="entry-title"><a href="{UNTITLED}"></a></h2>'
        '</article><nav class="navigation pagination"',
    )
    result = crawl("kcna_watch", db_url=db_url, sources_file=sources_file)
    assert result.returncode == 0, result.stderr
    assert UNTITLED in kcna.paths()
    assert len(export_jsonl(db_url)) == 4
    archive = Archive(db_url)
    with archive.sessions() as session:
        run = session.scalars(select(CrawlRun)).one()
        assert run.articles_invalid == 1 and run.articles_new == 4
        assert f"{kcna.url(UNTITLED)}: no title" in run.error_log
    archive.dispose()


ALIAS = "/newstream/1732523411-283960/kim-chaek-university-alias/"


def test_the_same_text_at_a_second_address_is_one_article_fetched_once(db_url, kcna, sources_file):
    # a second address serving the very same page, listed on the first listing page and
    # declaring itself canonical (so only the content hash can match it to KIM_CHAEK)
    page = kcna_route_file(kcna, KIM_CHAEK)
    text = (SITES_DIR / "kcna_watch" / page).read_text("utf-8").replace(KIM_CHAEK, ALIAS)
    kcna.override(ALIAS, text, content_type="text/html; charset=utf-8")
    kcna.edit(
        "/newstream/",
        '<nav class="navigation pagination"',
        f'<article class="newstream-item"><h2 class="entry-title"><a href="{ALIAS}">x</a></h2>'
        '</article><nav class="navigation pagination"',
    )
    assert crawl("kcna_watch", db_url=db_url, sources_file=sources_file).returncode == 0
    assert ALIAS in kcna.paths()
    records = export_jsonl(db_url)
    assert len(records) == 4  # the alias is the same article as KIM_CHAEK
    kcna.clear_requests()
    result = crawl("kcna_watch", db_url=db_url, sources_file=sources_file)
    assert result.returncode == 0, result.stderr
    assert ALIAS not in kcna.paths() and KIM_CHAEK not in kcna.paths()
    assert "/newstream/page/2/" not in kcna.paths()  # page 1 held only known addresses
