"""The short way of reading the archive (crawler/db/reader.py): the query commands' own
connection (sqlite3, psycopg2) reads what a SQLAlchemy session's connection reads."""

from __future__ import annotations

from datetime import UTC, date, datetime

from crawler.db.reader import Reader
from crawler.db.session import Archive
from tests.test_search import add_article

ARTICLES = (
    "SELECT id, title, published_at, published_date, first_seen_at, partial"
    " FROM articles ORDER BY id"
)


def test_the_short_way_reads_what_a_sessions_connection_reads(db_url: str, archive: Archive):
    for n in range(5):
        add_article(
            archive, f"Article {n}", "Text.", published=datetime(2024, 7, 1 + n, 9, tzinfo=UTC)
        )
    short = Reader.connect(db_url)
    try:
        if short.dialect == "postgresql":  # the query commands' driver there
            assert type(short.connection).__module__.startswith("psycopg2")
        with archive.transaction() as session:
            through_session = Reader.of(session)
            expected = through_session.rows(ARTICLES)
            session_bytes = through_session.scalar("SELECT :data", {"data": b"\x00\xffzstd"})
        rows = short.rows(ARTICLES)
        streamed = list(short.stream(ARTICLES, batch=2))  # three fetches, the last one short
        short_bytes = short.scalar("SELECT :data", {"data": b"\x00\xffzstd"})
    finally:
        short.close()
    assert [row.title for row in rows] == [f"Article {n}" for n in range(5)]
    assert rows == expected
    assert streamed == expected
    first = rows[0]
    assert first.published_at == datetime(2024, 7, 1, 9, tzinfo=UTC)
    assert first.published_at.utcoffset().total_seconds() == 0
    assert first.published_date == date(2024, 7, 1)
    assert type(first.first_seen_at) is datetime and first.first_seen_at.tzinfo is not None
    assert (type(short_bytes), short_bytes) == (bytes, b"\x00\xffzstd")
    assert (type(session_bytes), session_bytes) == (bytes, b"\x00\xffzstd")


def test_a_stream_of_nothing_yields_nothing(db_url: str, archive: Archive):
    short = Reader.connect(db_url)
    try:
        assert list(short.stream("SELECT id FROM articles", batch=2)) == []
    finally:
        short.close()
