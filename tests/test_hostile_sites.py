"""Whole crawls of a hostile kcna_watch mirror: what a site cannot make the crawl fetch or keep.

Another host is a second mirror on 127.0.0.2 (or another port of 127.0.0.1); every refused page
must appear in the run's error log with its URL and reason.
"""

from __future__ import annotations

import gzip
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from crawler.db.models import Article, CrawlRun, Snapshot
from crawler.db.session import Archive
from crawler.mirror import SITES_DIR, MirrorServer
from tests.conftest import crawl, crawl_runs, export_jsonl

KIM_CHAEK = (
    "/newstream/1732523411-283960/"
    "kim-chaek-university-of-technology-boosts-r-d-links-with-industry/"
)
RODONG = (
    "/newstream/1733392519-286102/"
    "rodong-sinmun-calls-for-thorough-preparations-for-next-years-farming/"
)
EXTRA = "/newstream/1732000000-283001/extra-item/"
LOOP_BACK = "/newstream/1732000000-283002/loop-back/"
ARTICLES_SERVED = 4


@pytest.fixture
def other_host() -> Iterator[MirrorServer]:
    """A second site on another loopback address: a host the source does not own."""
    with MirrorServer(SITES_DIR / "kcna_watch", host="127.0.0.2") as server:
        yield server


def sources(tmp_path: Path, kcna: MirrorServer, **keys: str) -> Path:
    """A sources file for the kcna mirror with extra keys given as TOML text."""
    lines = ["[sources.kcna_watch]", f'base_url = "{kcna.base_url}"', 'every = "1h"']
    lines += [f"{key} = {value}" for key, value in keys.items()]
    path = tmp_path / "sources.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def list_on_listing(kcna: MirrorServer, *urls: str) -> None:
    """Add article links to the first listing page."""
    items = "".join(
        f'<article class="newstream-item"><h2 class="entry-title"><a href="{url}">x</a></h2>'
        "</article>"
        for url in urls
    )
    kcna.edit("/newstream/", '<nav class="navigation pagination"', items + '<nav class="x"')


def last_run(db_url: str) -> CrawlRun:
    return crawl_runs(db_url)[-1]


def page_text(path: str) -> str:
    file = SITES_DIR / "kcna_watch" / path.strip("/") / "index.html"
    return file.read_text(encoding="utf-8")


def run_crawl(db_url: str, sources_file: Path) -> CrawlRun:
    result = crawl("kcna_watch", db_url=db_url, sources_file=sources_file)
    assert "Traceback" not in result.stderr, result.stderr
    return last_run(db_url)


# -- hosts and schemes --------------------------------------------------------------------------


def test_a_link_to_another_host_is_not_fetched_and_is_recorded(db_url, kcna, other_host, tmp_path):
    foreign = other_host.url(RODONG)
    other_port = f"http://127.0.0.1:{other_host.port}{KIM_CHAEK}"  # same address, other port
    list_on_listing(kcna, foreign, other_port)
    run = run_crawl(db_url, sources(tmp_path, kcna))
    assert other_host.requests == []  # not the page, not even its robots.txt
    assert run.status == "finished"
    assert f"{foreign}: not fetched: 127.0.0.2:{other_host.port} is not the source's site" in (
        run.error_log or ""
    )
    assert f"{other_port}: not fetched" in (run.error_log or "")
    assert run.stats["refused/offsite"] == 2
    urls = {r["url"] for r in export_jsonl(db_url)}
    assert len(urls) == ARTICLES_SERVED and all(u.startswith(kcna.base_url) for u in urls)


def test_a_feed_item_on_another_host_is_not_fetched(db_url, kcna, other_host, tmp_path):
    reception = "/newstream/1734001822-287305/"
    kcna.edit(
        "/newstream/feed/",
        f"<link>{{{{BASE}}}}{reception}",
        f"<link>{other_host.base_url}{reception}",
    )
    run = run_crawl(db_url, sources(tmp_path, kcna))
    assert other_host.requests == []
    assert f"{other_host.base_url}{reception}" in (run.error_log or "")
    assert run.stats["refused/offsite"] == 1
    assert len(export_jsonl(db_url)) == ARTICLES_SERVED  # the listing names it on the site


def test_a_host_the_source_declares_is_fetched(db_url, kcna, other_host, tmp_path):
    foreign = other_host.url(RODONG)
    list_on_listing(kcna, foreign)
    declared = sources(tmp_path, kcna, allowed_hosts=f'["127.0.0.2:{other_host.port}"]')
    run = run_crawl(db_url, declared)
    assert RODONG in other_host.paths()
    assert run.status == "finished" and not run.error_log
    archive = Archive(db_url)
    with archive.sessions() as session:
        assert session.scalar(select(Snapshot.id).where(Snapshot.requested_url == foreign))
    archive.dispose()


def test_a_redirect_off_site_is_not_followed_and_is_recorded(db_url, kcna, other_host, tmp_path):
    admin = other_host.url("/internal/admin")
    kcna.override(RODONG, "", status=302, headers={"Location": admin})
    run = run_crawl(db_url, sources(tmp_path, kcna))
    assert other_host.requests == []
    assert run.status == "finished" and run.errors == 1
    assert f"{kcna.url(RODONG)}: redirect from {kcna.url(RODONG)} to {admin} not followed" in (
        run.error_log or ""
    )
    assert kcna.url(RODONG) not in {r["url"] for r in export_jsonl(db_url)}


@pytest.mark.parametrize("target", ["file:///etc/passwd", "data:text/html,<h1>hi</h1>"])
def test_a_redirect_to_another_scheme_is_not_followed(db_url, kcna, tmp_path, target):
    kcna.override(RODONG, "", status=301, headers={"Location": target})
    run = run_crawl(db_url, sources(tmp_path, kcna))
    assert f"{kcna.url(RODONG)}: redirect to {target} not followed: only http and https" in (
        run.error_log or ""
    )
    assert run.stats["refused/scheme"] == 1
    assert len(export_jsonl(db_url)) == ARTICLES_SERVED - 1


def test_a_redirect_loop_is_recorded_not_dropped_as_a_duplicate(db_url, kcna, tmp_path):
    kcna.override(EXTRA, "", status=302, headers={"Location": kcna.url(LOOP_BACK)})
    kcna.override(LOOP_BACK, "", status=302, headers={"Location": kcna.url(EXTRA)})
    list_on_listing(kcna, kcna.url(EXTRA))
    run = run_crawl(db_url, sources(tmp_path, kcna))
    loop = f"{kcna.url(EXTRA)} -> {kcna.url(LOOP_BACK)} -> {kcna.url(EXTRA)}"
    assert f"{kcna.url(EXTRA)}: redirect loop: {loop}" in (run.error_log or "")
    assert run.stats["refused/redirect_loop"] == 1
    assert "dupefilter/filtered" not in run.stats
    assert kcna.paths().count(EXTRA) == 1 and kcna.paths().count(LOOP_BACK) == 1


# -- size ---------------------------------------------------------------------------------------


def test_a_gzip_bomb_stops_at_the_maximum_page_size_and_nothing_is_kept(db_url, kcna, tmp_path):
    page = page_text(RODONG).replace("{{BASE}}", kcna.base_url)
    padding = "<!-- " + " " * (8 * 1024 * 1024) + " -->"  # 8 MiB that gzip makes ~8 KiB
    bomb = gzip.compress(page.replace("</body>", padding + "</body>").encode(), 9)
    assert len(bomb) < 64 * 1024
    kcna.override(
        RODONG,
        bomb,
        content_type="text/html; charset=utf-8",
        headers={"Content-Encoding": "gzip"},
    )
    run = run_crawl(db_url, sources(tmp_path, kcna, max_page_size='"1MiB"'))
    assert run.status == "finished" and run.errors == 1
    assert (
        f"{kcna.url(RODONG)}: larger than the maximum page size (1048576 bytes) once decompressed"
        in (run.error_log or "")
    )
    assert "robots" not in (run.error_log or "") and run.stats["refused/too_large"] == 1
    # the decompressed bytes counted are the other pages', not 8 MiB of this one
    assert run.stats.get("httpcompression/response_bytes", 0) < 1024 * 1024
    archive = Archive(db_url)
    with archive.sessions() as session:
        fetched = session.scalars(select(Snapshot.final_url)).all()
        assert kcna.url(RODONG) not in fetched and len(fetched) == ARTICLES_SERVED - 1
    archive.dispose()


def test_a_plain_page_over_the_maximum_size_is_cut_off(db_url, kcna, tmp_path):
    page = page_text(RODONG).replace("</body>", "<!--" + "x" * 300_000 + "--></body>")
    kcna.override(RODONG, page, content_type="text/html; charset=utf-8")
    run = run_crawl(db_url, sources(tmp_path, kcna, max_page_size='"200KB"'))
    assert f"{kcna.url(RODONG)}: larger than the maximum page size (200000 bytes)" in (
        run.error_log or ""
    )
    assert len(export_jsonl(db_url)) == ARTICLES_SERVED - 1
    # the default bound (32 MiB) lets the same page through
    run = run_crawl(db_url, sources(tmp_path, kcna))
    assert not run.error_log and kcna.url(RODONG) in {r["url"] for r in export_jsonl(db_url)}


# -- what the bytes are -------------------------------------------------------------------------


def test_a_png_served_as_html_is_not_an_article(db_url, kcna, tmp_path):
    png = (SITES_DIR / "kcna_watch" / "static" / "placeholder.png").read_bytes()
    kcna.override(RODONG, png, content_type="text/html; charset=utf-8")
    run = run_crawl(db_url, sources(tmp_path, kcna))
    assert run.status == "finished" and run.stats["refused/not_text"] == 1
    assert (
        f"{kcna.url(RODONG)}: not text: the bytes are a PNG image, though served as "
        "text/html; charset=utf-8" in (run.error_log or "")
    )
    records = export_jsonl(db_url)
    assert len(records) == ARTICLES_SERVED - 1
    assert not any("\ufffd" in (r["body"] or "") for r in records)


def test_a_cp1252_page_declared_utf8_is_read_right_and_counted(db_url, kcna, tmp_path):
    text = "Kim Chaek’s “industry links” — café"
    page = page_text(KIM_CHAEK).replace(
        '<h1 class="article-title">Kim Chaek University of Technology boosts R&amp;D links with '
        "industry</h1>",
        f'<h1 class="article-title">{text}</h1>',
    )
    assert text in page
    kcna.override(KIM_CHAEK, page.encode("cp1252"), content_type="text/html; charset=utf-8")
    run = run_crawl(db_url, sources(tmp_path, kcna))
    assert run.status == "finished" and run.stats["charset/overruled"] == 1
    titles = {r["url"]: r["title"] for r in export_jsonl(db_url)}
    assert titles[kcna.url(KIM_CHAEK)] == text


# -- Retry-After --------------------------------------------------------------------------------


def test_retry_after_is_waited_for(db_url, kcna, tmp_path):
    kcna.fail(RODONG, 503, times=1, headers={"Retry-After": "2"})
    run = run_crawl(db_url, sources(tmp_path, kcna))
    asked = [r for r in kcna.requests if r.path == RODONG]
    assert [r.status for r in asked] == [503, 200]
    assert asked[1].time - asked[0].time >= 2.0
    assert run.status == "finished" and not run.error_log
    assert run.stats["retry/retry_after_waits"] == 1
    assert kcna.url(RODONG) in {r["url"] for r in export_jsonl(db_url)}


def test_a_retry_after_longer_than_the_longest_wait_is_recorded_not_retried(db_url, kcna, tmp_path):
    kcna.fail(RODONG, 429, headers={"Retry-After": "3600"})
    run = run_crawl(db_url, sources(tmp_path, kcna))
    assert [r.status for r in kcna.requests if r.path == RODONG] == [429]
    assert (
        f"{kcna.url(RODONG)}: HTTP 429, Retry-After 3600 s is longer than the longest wait "
        "(CRAWLER_RETRY_AFTER_MAX = 60 s): not retried" in (run.error_log or "")
    )


# -- terminal escapes ---------------------------------------------------------------------------

ESCAPES = {
    "clear screen": "\x1b[2J\x1b[H",
    "window title": "\x1b]0;owned\x07",
    "link": "\x1b]8;;http://evil.example/\x1b\\",
}


def test_terminal_escapes_in_page_text_are_stripped_when_cleaned(db_url, kcna, tmp_path):
    clear, title, link = ESCAPES.values()
    page = page_text(KIM_CHAEK)
    page = page.replace("Kim Chaek University of Technology boosts", f"{clear}Kim{title} Chaek")
    page = page.replace(
        "<p>Kim Chaek University of Technology is stepping up",
        f"<p>{link}Kim Chaek\x1b]8;;\x1b\\ University of\x07 Technology\x00 is stepping up",
    )
    kcna.override(KIM_CHAEK, page, content_type="text/html; charset=utf-8")
    run_crawl(db_url, sources(tmp_path, kcna))
    archive = Archive(db_url)
    with archive.sessions() as session:
        article = session.scalar(select(Article).where(Article.url == kcna.url(KIM_CHAEK)))
        assert article is not None
        assert article.title == "Kim Chaek R&D links with industry"
        assert article.body.startswith("Kim Chaek University of Technology is stepping up")
        stored = f"{article.title}{article.body}{article.summary or ''}"
        assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]", stored)
        assert "owned" not in stored and "evil.example" not in stored
    archive.dispose()
