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


def test_the_article_page_shows_copies_and_story_when_the_archive_has_them():
    """The sections for crawler/stories' `copies`, `story` and `reprint_of` (issue 12)."""
    from crawler.read.web.app import make_templates

    body = version("One.")
    article = {
        **body,
        "id": 7,
        "outlet": "urdupoint",
        "url": "http://u.test/7",
        "title": "Copy of a KCNA item",
        "published": None,
        "topics": [],
        "first_seen_at": None,
        "last_seen_at": None,
        "language": None,
        "versions": [body | {"first_seen_at": None, "superseded_at": None}],
        "snapshots": [],
        "reprint_of": 3,
        "similarity": 0.92,
        "copies": [
            {"id": 3, "outlet": "kcna_watch", "title": "The <original>", "url": "http://k.test/3",
             "published_at": "2024-07-01T00:00:00+00:00", "reprint_of": None, "similarity": None},
        ],
        "story": {
            "id": 5, "label": "Shoigu in Pyongyang", "article_count": 2, "outlet_count": 2,
            "first_published_at": "2024-07-01T00:00:00+00:00",
            "last_published_at": "2024-07-02T00:00:00+00:00",
            "articles": [
                {"id": 3, "outlet": "kcna_watch", "title": "The <original>",
                 "published_at": "2024-07-01T00:00:00+00:00"},
                {"id": 7, "outlet": "urdupoint", "title": "Copy of a KCNA item",
                 "published_at": "2024-07-02T00:00:00+00:00"},
            ],
        },
    }  # fmt: skip
    html = make_templates().get_template("article.html").render(article=article, changes=[])
    assert 'A copy of <a href="/articles/3">article #3</a> (92% the same text)' in html
    assert '<a href="/articles/3">The &lt;original&gt;</a>' in html
    assert "Story #5: Shoigu in Pyongyang" in html and "2 articles from 2 outlets" in html
    assert "<strong>Copy of a KCNA item</strong> (this article)" in html
    plain = (
        make_templates()
        .get_template("article.html")
        .render(
            article={
                k: v for k, v in article.items() if k not in ("reprint_of", "copies", "story")
            },
            changes=[],
        )
    )
    assert 'id="copies"' not in plain and 'id="story"' not in plain


def test_a_search_hit_says_how_many_copies_it_stands_for():
    """crawler/stories folds copies into one hit with their number (issue 12)."""
    from crawler.read.web.app import make_templates
    from crawler.read.web.queries import SearchPage

    hit = {"id": 3, "title": "Original", "outlet": "kcna_watch", "published": None,
           "snippet": "\ue000Shoigu\ue001 arrived"}  # fmt: skip
    page = SearchPage("Shoigu", 3, 0, [hit | {"copies": 2}], None, None)
    form = {"q": "Shoigu", "outlet": None, "topic": None, "since": None, "until": None}
    template = make_templates().get_template("search.html")
    html = template.render(page=page, form=form, outlets=[], topics=[], limit=20)
    assert "and 2 copies" in html and "<mark>Shoigu</mark> arrived" in html
    page = SearchPage("Shoigu", 1, 0, [hit], None, None)
    html = template.render(page=page, form=form, outlets=[], topics=[], limit=20)
    assert "cop" not in html.split('class="hits"')[1]


def test_a_publication_is_shown_as_precisely_as_its_outlet_gave_it():
    from crawler.read.web.app import published

    # a source whose time zone comes from the sources file, not a spider: the stored day
    assert published("2024-12-11T19:00:00+00:00", "example_news", "2024-12-12", "day") == (
        "2024-12-12"
    )
    # a time that falls on a local midnight is still a time when the outlet gave one
    assert published("2024-12-11T15:00:00+00:00", "kcna_watch", "2024-12-12", "time") == (
        "2024-12-12 00:00 (KST)"
    )
    # a record without precision (an old version's date): a local midnight is a day
    assert published("2024-12-11T15:00:00+00:00", "kcna_watch") == "2024-12-12"
    assert published("2024-07-19T11:59:00+00:00", "al_mayadeen") == "2024-07-19 14:59 (EEST)"
    assert published(None, "kcna_watch") == "-"
