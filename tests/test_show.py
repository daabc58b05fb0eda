"""`crawler show`: an article, its versions with their diff, and its snapshots."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import select

from crawler.db.models import Article, Snapshot
from crawler.db.session import Archive
from crawler.mirror import MirrorServer
from crawler.read.show import unified_diff, version_text
from tests.conftest import crawl, run_cli

KIM_CHAEK = (
    "/newstream/1732523411-283960/"
    "kim-chaek-university-of-technology-boosts-r-d-links-with-industry/"
)


@pytest.fixture
def edited(db_url: str, kcna: MirrorServer, sources_file: Path) -> int:
    """The archive after a crawl, an edit of one article and a refreshing crawl; its id."""
    assert crawl("kcna_watch", db_url=db_url, sources_file=sources_file).returncode == 0
    kcna.edit(KIM_CHAEK, "more than 30 units", "more than 40 units")
    kcna.edit(KIM_CHAEK, "helped to cut", "has helped to cut")
    result = crawl("kcna_watch", "--refresh", db_url=db_url, sources_file=sources_file)
    assert result.returncode == 0, result.stderr
    archive = Archive(db_url)
    with archive.sessions() as session:
        article_id = session.scalar(select(Article.id).where(Article.url == kcna.url(KIM_CHAEK)))
    archive.dispose()
    assert article_id is not None
    return article_id


def test_show_json_has_every_version_the_diff_and_the_snapshots(db_url, kcna, edited):
    result = run_cli("show", str(edited), "--json", db_url=db_url)
    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout)
    assert shown["id"] == edited and shown["outlet"] == "kcna_watch"
    assert shown["url"] == kcna.url(KIM_CHAEK) and shown["version"] == 2
    assert "more than 40 units" in shown["body"]
    first, second = shown["versions"]
    assert (first["version"], second["version"]) == (1, 2)
    assert "more than 30 units" in first["body"] and first["diff"] is None
    assert first["superseded_at"] == second["first_seen_at"] and second["superseded_at"] is None
    assert second["content_hash"] == shown["content_hash"] != first["content_hash"]
    diff = second["diff"].splitlines()
    assert diff[:2] == ["--- version 1", "+++ version 2"]
    removed = [line for line in diff if line.startswith("-") and not line.startswith("---")]
    added = [line for line in diff if line.startswith("+") and not line.startswith("+++")]
    assert len(removed) == len(added) == 2  # the two edited paragraphs, nothing else
    assert "more than 30 units" in removed[0] and "more than 40 units" in added[0]
    assert "helped to cut" in removed[1] and "has helped to cut" in added[1]

    archive = Archive(db_url)
    with archive.sessions() as session:
        stored = session.scalars(
            select(Snapshot).where(Snapshot.final_url == kcna.url(KIM_CHAEK)).order_by(Snapshot.id)
        ).all()
        article = session.get(Article, edited)
        assert article is not None
        versions = list(article.versions)
        assert [v.snapshot_id for v in versions] == [stored[0].id]
        assert article.snapshot_id == stored[1].id
    archive.dispose()
    assert [(s["id"], s["sha256"], s["size"], s["status"]) for s in shown["snapshots"]] == [
        (s.id, s.sha256, s.size, 200) for s in stored
    ]
    assert [s["fetched_at"] for s in shown["snapshots"]] == [
        s.fetched_at.isoformat() for s in stored
    ]
    assert first["snapshot_sha256"] == stored[0].sha256
    assert second["snapshot_sha256"] == stored[1].sha256


def test_show_by_url_prints_metadata_versions_diff_and_snapshots(db_url, kcna, edited):
    # the URL with a tracking parameter still names the article (through its canonical URL)
    result = run_cli("show", kcna.url(KIM_CHAEK) + "?utm_source=x", db_url=db_url)
    assert result.returncode == 0, result.stderr
    text = result.stdout
    assert "Kim Chaek University of Technology boosts R&D links with industry" in text
    assert "kcna_watch" in text and "Pyongyang Times" in text
    assert "versions (2)" in text and "snapshots (2)" in text
    assert "changes in version 2" in text
    assert "--- version 1" in text and "+++ version 2" in text
    assert "-This year the university has concluded cooperation agreements with more than 30" in (
        text
    )
    assert "+This year the university has concluded cooperation agreements with more than 40" in (
        text
    )
    assert text.count(" UTC  200  ") == 2


def test_an_article_never_edited_has_one_version_and_no_diff(db_url, kcna, edited):
    archive = Archive(db_url)
    with archive.sessions() as session:
        other = session.scalar(select(Article.id).where(Article.id != edited).limit(1))
    archive.dispose()
    result = run_cli("show", str(other), "--json", db_url=db_url)
    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout)
    assert len(shown["versions"]) == 1 and shown["versions"][0]["diff"] is None
    assert len(shown["snapshots"]) == 1


@pytest.mark.parametrize(
    ("ref", "message", "code"),
    [
        ("999999", "no article with id 999999", 1),
        ("https://example.org/nowhere/", "no article with URL 'https://example.org/nowhere/'", 1),
        ("kim-chaek", "'kim-chaek' is neither an article id nor a URL", 2),
        ("²", "'²' is neither an article id nor a URL", 2),
        (
            "1000000000000000000000000000000",
            "no article has id 1000000000000000000000000000000: ids go up to 9223372036854775807",
            2,
        ),
    ],
)
def test_show_names_the_input_when_nothing_matches(db_url, ref, message, code):
    result = run_cli("show", ref, db_url=db_url)
    assert result.returncode == code
    assert result.stderr == f"error: {message}\n"
    assert "Traceback" not in result.stderr and not result.stdout


def test_version_text_and_diff_of_metadata_changes():
    older = {
        "version": 1,
        "title": "Old title",
        "author": None,
        "published_at": "2024-11-29T15:00:00+00:00",
        "summary": None,
        "original_source": "KCNA",
        "original_url": None,
        "partial": True,
        "body": "First.\n\nSecond.",
    }
    newer = {**older, "version": 2, "title": "New title", "partial": False}
    assert version_text(older) == [
        "Title: Old title",
        "Author: -",
        "Published: 2024-11-29T15:00:00+00:00",
        "Summary: -",
        "Original source: KCNA",
        "Original URL: -",
        "Partial: yes",
        "",
        "First.",
        "",
        "Second.",
    ]
    diff = unified_diff(older, newer).splitlines()
    assert "-Title: Old title" in diff and "+Title: New title" in diff
    assert "-Partial: yes" in diff and "+Partial: no" in diff
    assert not [line for line in diff if line.startswith(("+First", "-First"))]
