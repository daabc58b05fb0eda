"""`crawler reparse`: the current parsing and cleaning over the stored snapshots, no fetching."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from scrapy.http import TextResponse
from sqlalchemy import delete, func, select

import crawler.replay
from crawler.config import load_sources
from crawler.db.models import Article, ArticleTopic, ArticleVersion
from crawler.db.queries import content_hash
from crawler.db.session import Archive
from crawler.items import ArticleItem, FetchedPage
from crawler.mirror import MirrorServer
from crawler.replay import Replayer, reparse
from crawler.text import split_paragraphs
from tests.conftest import crawl, run_cli, write_sources

RECEPTION = (
    "/newstream/1732960512-284951/"
    "dprk-ministry-of-national-defence-hosts-reception-for-russian-military-delegation/"
)
RODONG = (
    "/newstream/1733392519-286102/"
    "rodong-sinmun-calls-for-thorough-preparations-for-next-years-farming/"
)
BOILERPLATE = "More From Pyongyang Times"


@pytest.fixture
def crawled(db_url: str, kcna: MirrorServer, sources_file: Path) -> str:
    result = crawl("kcna_watch", db_url=db_url, sources_file=sources_file)
    assert result.returncode == 0, result.stderr
    kcna.clear_requests()
    return db_url


def state(db_url: str) -> dict[str, dict[str, Any]]:
    """Each article's text and bookkeeping, by URL."""
    archive = Archive(db_url)
    with archive.sessions() as session:
        found = {
            a.url: {
                "id": a.id,
                "title": a.title,
                "body": a.body,
                "published_at": a.published_at,
                "content_hash": a.content_hash,
                "version": a.version,
                "snapshot_id": a.snapshot_id,
                "last_seen_at": a.last_seen_at,
                "updated_at": a.updated_at,
            }
            for a in session.scalars(select(Article))
        }
    archive.dispose()
    return found


def outcome_counts(stdout: str) -> dict[str, int]:
    counts = {}
    for line in stdout.splitlines():
        if line.startswith("│"):
            label, count = (cell.strip() for cell in line.strip("│").split("│"))
            counts[label] = int(count)
    return counts


def rehash(article: Article) -> str:
    """The content hash the pipelines give an article with these fields."""
    return content_hash(
        ArticleItem(
            outlet="kcna_watch",
            url=article.url,
            title=article.title,
            body=split_paragraphs(article.body),
            author=article.author,
            summary=article.summary,
            original_source=article.original_source,
            original_url=article.original_url,
            partial=article.partial,
            published_at=article.published_at,
        )
    )


def test_reparse_with_nothing_changed_records_no_version(crawled, kcna, sources_file):
    before = state(crawled)
    result = run_cli("reparse", db_url=crawled, sources=sources_file)
    assert result.returncode == 0, result.stderr
    assert outcome_counts(result.stdout) == {"unchanged": 4}
    assert state(crawled) == before
    assert kcna.requests == []  # nothing was fetched


def test_reparse_restores_what_an_older_cleaning_left_and_records_a_version(
    crawled, kcna, sources_file
):
    before = state(crawled)
    archive = Archive(crawled)
    with archive.transaction() as session:
        # as an older cleaning would have stored it: boilerplate kept, hash to match
        older = session.scalars(select(Article).where(Article.url == kcna.url(RECEPTION))).one()
        older.body = older.body + "\n\n" + BOILERPLATE
        older.content_hash = rehash(older)
        tagged = set(
            session.scalars(
                select(ArticleTopic.topic_id).where(ArticleTopic.article_id == older.id)
            )
        )
        assert tagged  # a DPRK-Russia story: the bundled topic tags it
        session.execute(delete(ArticleTopic).where(ArticleTopic.article_id == older.id))
        # edited by hand: the hash no longer says what the text is
        edited = session.scalars(select(Article).where(Article.url == kcna.url(RODONG))).one()
        edited.body = edited.body.replace("farming", "farmin g", 1)
    archive.dispose()

    result = run_cli("reparse", "--outlet", "kcna_watch", db_url=crawled, sources=sources_file)
    assert result.returncode == 0, result.stderr
    assert outcome_counts(result.stdout) == {"new versions": 2, "unchanged": 2}
    assert kcna.requests == []
    after = state(crawled)
    for url in (kcna.url(RECEPTION), kcna.url(RODONG)):
        was, now = before[url], after[url]
        assert (now["body"], now["title"], now["content_hash"]) == (
            was["body"],
            was["title"],
            was["content_hash"],
        )
        assert now["version"] == 2 and now["snapshot_id"] == was["snapshot_id"]
        assert now["published_at"] == was["published_at"]
        assert now["last_seen_at"] == was["last_seen_at"]  # not seen again: nothing fetched
        assert now["updated_at"] > was["updated_at"]
    archive = Archive(crawled)
    with archive.sessions() as session:
        versions = session.scalars(select(ArticleVersion).order_by(ArticleVersion.id)).all()
        assert [(v.article_id, v.version) for v in versions] == sorted(
            (before[url]["id"], 1) for url in (kcna.url(RECEPTION), kcna.url(RODONG))
        )
        kept = {v.article_id: v for v in versions}[before[kcna.url(RECEPTION)]["id"]]
        assert kept.body.endswith("\n\n" + BOILERPLATE)
        # the re-archived text is tagged with its topics again, as a crawl would tag it
        restored = set(
            session.scalars(
                select(ArticleTopic.topic_id).where(
                    ArticleTopic.article_id == before[kcna.url(RECEPTION)]["id"]
                )
            )
        )
        assert restored == tagged
    archive.dispose()

    shown = run_cli("show", str(before[kcna.url(RECEPTION)]["id"]), "--json", db_url=crawled)
    diff = json.loads(shown.stdout)["versions"][1]["diff"].splitlines()
    assert f"-{BOILERPLATE}" in diff

    again = run_cli("reparse", db_url=crawled, sources=sources_file)
    assert again.returncode == 0, again.stderr
    assert outcome_counts(again.stdout) == {"unchanged": 4}
    assert state(crawled) == after


def test_reparse_applies_the_current_cleaning(crawled, sources_file, monkeypatch):
    """A change of the cleaning code makes a new version of every article it changes."""
    real_clean = crawler.replay.clean_article

    def stricter(item: ArticleItem) -> ArticleItem:
        item = real_clean(item)
        item.body = [p for p in item.body if "Pyongyang" not in p] or item.body
        return item

    before = state(crawled)
    archive = Archive(crawled)
    replayer = Replayer(load_sources(sources_file))
    try:
        monkeypatch.setattr(crawler.replay, "clean_article", stricter)
        counts = reparse(archive, replayer, "kcna_watch")
        changed = {url for url, a in before.items() if "Pyongyang" in a["body"]}
        assert changed and counts == {"updated": len(changed), "unchanged": 4 - len(changed)}
        after = state(crawled)
        for url in changed:
            assert "Pyongyang" not in after[url]["body"] and after[url]["version"] == 2
        monkeypatch.setattr(crawler.replay, "clean_article", real_clean)
        assert reparse(archive, replayer, "kcna_watch") == {
            "updated": len(changed),
            "unchanged": 4 - len(changed),
        }
        assert {url: a["body"] for url, a in state(crawled).items()} == {
            url: a["body"] for url, a in before.items()
        }
        with archive.sessions() as session:
            assert session.scalar(select(func.count(ArticleVersion.id))) == 2 * len(changed)
    finally:
        archive.dispose()


def test_reparse_keeps_the_stored_date_when_the_page_shows_none(crawled, sources_file, monkeypatch):
    """Outlets dated only by their listing (pyongyang_times) keep the date stored at crawl time."""
    real_clean = crawler.replay.clean_article

    def undated(item: ArticleItem) -> ArticleItem:
        item.published = None
        item = real_clean(item)
        assert item.published_at is None
        return item

    monkeypatch.setattr(crawler.replay, "clean_article", undated)
    before = state(crawled)
    archive = Archive(crawled)
    try:
        counts = reparse(archive, Replayer(load_sources(sources_file)))
    finally:
        archive.dispose()
    assert counts == {"unchanged": 4}
    assert state(crawled) == before


def test_reparse_of_an_unknown_outlet_is_a_clear_error(crawled, sources_file):
    result = run_cli("reparse", "--outlet", "nope", db_url=crawled, sources=sources_file)
    assert result.returncode == 2
    assert "no outlet 'nope' in the archive (outlets: kcna_watch)" in result.stderr


def test_a_replayed_page_is_read_in_the_charset_its_bytes_are_in(sources_file):
    """As in a crawl, a declared charset that misreads the bytes is overruled."""
    html = "<html><head><title>Ким Чен Ын — 김정은</title></head><body></body></html>"
    page = FetchedPage(
        requested_url="http://mirror.test/newstream/1-1/x/",
        final_url="http://mirror.test/newstream/1-1/x/",
        status=200,
        headers={"Content-Type": ["text/html; charset=iso-8859-1"], "Content-Length": ["9"]},
        body=html.encode("utf-8"),
        fetched_at=datetime(2024, 12, 1, tzinfo=UTC),
    )
    response = Replayer(load_sources(sources_file)).response("kcna_watch", page)
    assert isinstance(response, TextResponse)
    assert response.css("title::text").get() == "Ким Чен Ын — 김정은"
    assert "Content-Length" not in response.headers  # it described the bytes as sent


def test_pages_are_matched_to_the_source_on_their_host(tmp_path):
    sources = load_sources(
        write_sources(
            tmp_path / "sources.toml",
            {"kcna_watch": "https://kcnawatch.org", "urdupoint": "http://127.0.0.1:8081"},
        )
    )
    replayer = Replayer(sources)
    found = {
        url: (source.name if (source := replayer.source_for(url)) else None)
        for url in (
            "https://kcnawatch.org/newstream/1-1/x/",
            "https://www.kcnawatch.org:443/newstream/1-1/x/",
            "http://KCNAWATCH.org/newstream/",
            "http://127.0.0.1:8081/en/x.html",
            "http://127.0.0.1:8082/en/x.html",
            "https://example.org/",
        )
    }
    assert list(found.values()) == [
        "kcna_watch",
        "kcna_watch",
        "kcna_watch",  # http or https: the same site
        "urdupoint",
        None,
        None,
    ]
