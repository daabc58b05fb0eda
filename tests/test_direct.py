"""The writer's statements run on the DB-API connection (crawler/db/direct.py) store exactly what
`Session.execute` stores, and fail the same way."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import MetaData, Table, bindparam, insert, select
from sqlalchemy.exc import IntegrityError

from crawler.db import direct
from crawler.db.errors import fatal_reason
from crawler.db.models import Source
from crawler.db.session import Archive
from crawler.items import ArticleItem
from crawler.pipelines.clean import clean_article
from crawler.pipelines.deduplicate import dedup_keys
from crawler.stories.signing import text_signature
from tests.conftest import fresh_archive_url
from tests.test_archive_writer import article, page_store

# set by the clock when a row is written: differ between any two runs
NOW_COLUMNS = {
    "updated_at",
    "found_at",
    "first_seen_at",
    "last_seen_at",
    "created_at",
    "applied_at",
    "superseded_at",
}
FETCHED = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)


@pytest.fixture
def other_db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    yield from fresh_archive_url(request, tmp_path / "other.db")


def variant(number: int, **changes: Any) -> ArticleItem:
    """Article `number` of the test outlet (tests/test_archive_writer.py), fetched at a fixed
    time, with `changes` to what its spider read."""
    model = article(number)
    assert model.page is not None
    read = {
        "outlet": model.outlet,
        "url": model.url,
        "title": model.title,
        "body": model.body,
        "published": model.published,
        "page": dataclasses.replace(model.page, fetched_at=FETCHED),
    }
    item = ArticleItem(**(read | changes))
    clean_article(item)
    dedup_keys(item)
    return item


def pages() -> list[list[ArticleItem]]:
    """Batches covering every way the writer stores a page: new articles in and out of a story,
    a copy of another's text under its own address, the same page again (unchanged), a new
    version of an article. (An undated article's index rows take the time it was stored, which
    differs between the two archives: tests/test_stories.py stores one.)"""
    first = [variant(n) for n in range(6)]
    copy = variant(40, body=first[2].body)
    changed = variant(3, body=[*first[3].body, "A paragraph added the next day about the talks."])
    return [first[:4], [*first[4:], copy], [variant(1)], [changed]]


def store_all(db_url: str) -> None:
    store = page_store(db_url)
    try:
        for batch in pages():
            messages = [
                (n, None, item, text_signature(item.title or "", "\n\n".join(item.body)))
                for n, item in enumerate(batch)
            ]
            results = [stored for _, stored in store.store_batch(messages)]
            assert all(r.kind == "article" for r in results), results
    finally:
        store.close()


def archive_rows(db_url: str) -> dict[str, list[str]]:
    """Every table's rows (but the times set by the clock), in a stable order."""
    archive = Archive(db_url)
    try:
        metadata = MetaData()
        with archive.engine.connect() as connection:
            metadata.reflect(connection, only=lambda name, _: not name.startswith("articles_fts"))
            rows = {}
            for table in metadata.sorted_tables:
                columns = [
                    c for c in table.columns if c.name not in NOW_COLUMNS | {"search_vector"}
                ]
                found = connection.execute(select(*columns)).all()
                rows[table.name] = sorted(repr(tuple(row)) for row in found)
        return rows
    finally:
        archive.dispose()


def test_the_direct_statements_store_what_the_session_stores(db_url, other_db_url, monkeypatch):
    store_all(db_url)
    monkeypatch.setattr(direct, "ENABLED", False)
    store_all(other_db_url)
    direct_rows, session_rows = archive_rows(db_url), archive_rows(other_db_url)
    # the pages made what the test says: a copy group, a story, two versions of one article
    assert len(direct_rows["articles"]) == 7
    assert len(direct_rows["article_versions"]) == 1
    assert any("None, None, None" not in row for row in direct_rows["article_signatures"])
    assert direct_rows["stories"] and direct_rows["signature_bands"] and direct_rows["story_terms"]
    for table, rows in direct_rows.items():
        assert rows == session_rows[table], table


def test_a_database_error_comes_out_as_sqlalchemys_and_nothing_is_kept(db_url):
    archive = Archive(db_url)
    sources = Source.__table__
    assert isinstance(sources, Table)
    try:
        with pytest.raises(IntegrityError) as raised, archive.transaction() as session:
            values = {"name": "twice", "base_url": "http://twice.test", "created_at": FETCHED}
            direct.execute(session, insert(sources), values)
            direct.execute(session, insert(sources), values)
        assert fatal_reason(raised.value) is None  # one page's failure, not the archive's
        with archive.sessions() as session:
            assert session.scalars(select(Source.name)).all() == []
    finally:
        archive.dispose()


def test_statements_run_after_a_failed_one_and_on_a_replaced_connection(db_url):
    # On PostgreSQL the statements share one cursor per connection, kept with the pool's
    # record of it: a failed statement leaves it usable, and a replaced connection gets its own
    archive = Archive(db_url)
    sources = Source.__table__
    assert isinstance(sources, Table)
    values = {"name": "once", "base_url": "http://once.test", "created_at": FETCHED}
    names = select(sources.c.name).order_by(sources.c.name)

    def cursor(session: Any) -> object:
        return session.connection().connection.info.get("crawler.direct.cursor")

    try:
        with archive.transaction() as session:
            direct.execute(session, insert(sources), values)
            first = cursor(session)
        with pytest.raises(IntegrityError), archive.transaction() as session:
            direct.execute(session, insert(sources), values)
        with archive.transaction() as session:
            assert direct.execute(session, names, {}) == [("once",)]
            direct.execute(session, insert(sources), values | {"name": "twice"})
            again = cursor(session)
        archive.dispose()  # the pool's connections closed: the next one is new
        with archive.transaction() as session:
            assert direct.execute(session, names, {}) == [("once",), ("twice",)]
            replaced = cursor(session)
        if archive.dialect == "postgresql":
            assert first is not None and again is first
            assert replaced is not None and replaced[0] is not first[0]
        else:  # sqlite3's cursors are made for each statement
            assert first is again is replaced is None
    finally:
        archive.dispose()


def test_a_statement_direct_cannot_run_as_sqlalchemy_would_is_refused_naming_it(db_url):
    archive = Archive(db_url)
    sources = Source.__table__
    assert isinstance(sources, Table)
    try:
        with archive.transaction() as session:
            expanding = select(sources.c.id).where(
                sources.c.name.in_(bindparam("names", expanding=True))
            )
            with pytest.raises(ValueError, match="cannot run directly"):
                direct.execute(session, expanding, {"names": ["a"]})
            # `created_at` left to its Python-side default
            with pytest.raises(ValueError, match="cannot run directly"):
                direct.execute(session, insert(sources), {"name": "a", "base_url": "http://a"})
            named = select(sources.c.id).where(sources.c.name == bindparam("wanted"))
            with pytest.raises(KeyError, match="no value for wanted"):
                direct.execute(session, named, {})
            assert direct.execute(session, named, {"wanted": "nobody"}) == []
    finally:
        archive.dispose()


def test_postgresql_gets_its_own_placeholders_once_compiled(db_url):
    # psycopg rewrites %(name)s placeholders at every execution of a query over 4 KB (the story
    # candidates): on PostgreSQL the statements are compiled to $1, $2, ... and run as they are
    from crawler.stories.index import _story_candidates, numbered_keys

    archive = Archive(db_url)
    try:
        with archive.transaction() as session:
            dialect = session.connection().dialect
            statement = _story_candidates(12)
            when = datetime(2024, 11, 5, tzinfo=UTC)
            params = numbered_keys(range(12)) | {
                "when": when,
                "start": when,
                "end": when,
                "article_id": 1,
            }
            assert direct.execute(session, statement, params) == []
            prepared = direct._prepare(statement, dialect, tuple(sorted(params)))
            if archive.dialect == "postgresql":
                assert prepared.raw and "$12" in prepared.sql and "%(" not in prepared.sql
                assert len(prepared.sql) > 4096  # past psycopg's own cache of conversions
                assert prepared.positions is not None and len(set(prepared.positions)) == len(
                    prepared.positions
                )
            else:
                assert not prepared.raw and "?" in prepared.sql
    finally:
        archive.dispose()
