"""The article page's word diff between versions, and the web's read-only archive."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from crawler.config import ConfigError
from crawler.read.web.archive import ReadOnlyArchive
from crawler.read.web.diff import Block, Segment, version_diff, word_diff


def version(body: str, **fields: object) -> dict[str, object]:
    base: dict[str, object] = {
        "version": 1,
        "title": "Title",
        "author": None,
        "published_at": "2024-07-01T00:00:00+00:00",
        "summary": None,
        "original_source": None,
        "original_url": None,
        "partial": False,
        "body": body,
    }
    return base | fields


def test_word_diff_marks_only_the_changed_words():
    assert word_diff("more than 30 units.", "more than 40 units.") == (
        Segment("same", "more than "),
        Segment("del", "30"),
        Segment("ins", "40"),
        Segment("same", " units."),
    )
    assert word_diff("a b", "a b") == (Segment("same", "a b"),)
    assert word_diff("", "new") == (Segment("ins", "new"),)


def test_version_diff_gives_changed_fields_and_passages_between_unchanged_paragraphs():
    older = version("One.\n\nTwo was here.\n\nThree.\n\nFour.")
    newer = version("One.\n\nTwo is here.\n\nThree.\n\nFour.\n\nFive.", title="New title")
    change = version_diff(older, newer)
    assert [(f.label, f.segments) for f in change.fields] == [
        ("Title", (Segment("del", "Title"), Segment("ins", "New title")))
    ]
    assert change.body == (
        Block(unchanged=1),
        Block(0, (Segment("same", "Two "), Segment("del", "was"), Segment("ins", "is"),
                  Segment("same", " here."))),
        Block(unchanged=2),
        Block(0, (Segment("ins", "Five."),)),
    )  # fmt: skip
    assert not change.empty
    assert version_diff(older, dict(older)).empty


def test_the_web_archive_cannot_write(db_url):
    archive = ReadOnlyArchive(db_url)
    try:
        with archive.sessions() as session, pytest.raises(DBAPIError, match=r"read.only|readonly"):
            session.execute(
                text("INSERT INTO sources (name, base_url, created_at) VALUES ('x', 'y', :now)"),
                {"now": "2024-07-01 00:00:00"},
            )
    finally:
        archive.dispose()


def test_the_web_archive_needs_a_current_schema(empty_db_url, tmp_path):
    with pytest.raises(ConfigError, match=r"holds no archive|no archive at"):
        ReadOnlyArchive(empty_db_url)
    with pytest.raises(ConfigError, match="no archive at"):
        ReadOnlyArchive(f"sqlite:///{tmp_path / 'missing.db'}")
    assert not (tmp_path / "missing.db").exists()
