"""`crawler export`: every format read back and compared field by field with the archive."""

from __future__ import annotations

import csv
import io
import json
import threading
import tracemalloc
from datetime import UTC, date, datetime, timedelta
from typing import Any

import psutil
import pyarrow.parquet as pq
import pytest
from sqlalchemy import insert, select
from sqlalchemy.orm import selectinload

from crawler.db.models import Article, Snapshot, Source
from crawler.db.queries import store_payload
from crawler.db.session import Archive
from crawler.read.export import EXPORT_FIELDS, ArticleFilter, iter_records, write_jsonl
from tests.conftest import run_cli

# The fields every export carries, in this order, and how each is read off the archive.
FIELDS = (
    "id",
    "outlet",
    "url",
    "canonical_url",
    "title",
    "author",
    "published_at",
    "published_date",
    "published_precision",
    "summary",
    "body",
    "original_source",
    "original_url",
    "outlet_article_id",
    "partial",
    "language",
    "first_seen_at",
    "last_seen_at",
    "version",
    "content_hash",
    "snapshot_sha256",
)
SEEN = datetime(2024, 12, 2, 8, 30, 15, 123456, tzinfo=UTC)


def _article(source_id: int, n: int, **fields: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "source_id": source_id,
        "url": f"https://example.org/news/{n}/?utm_source=feed",
        "canonical_url": f"https://example.org/news/{n}/",
        "title": f"Article {n}",
        "author": None,
        "published_at": None,
        "published_date": None,
        "published_precision": None,
        "language": "en",
        "summary": None,
        "body": f"Paragraph one of {n}.\n\nParagraph two.",
        "original_source": None,
        "original_url": None,
        "outlet_article_id": None,
        "partial": False,
        "content_hash": f"{n:064x}",
        "version": 1,
        "first_seen_at": SEEN,
        "last_seen_at": SEEN + timedelta(hours=n),
        "updated_at": SEEN,
        "snapshot_id": None,
    }
    values.update(fields)
    return values


def seed(archive: Archive) -> None:
    """Three articles of two outlets, with what CSV and JSON must survive."""
    with archive.transaction() as session:
        kcna = Source(name="kcna_watch", base_url="https://kcnawatch.org")
        urdu = Source(name="urdupoint", base_url="https://www.urdupoint.com")
        session.add_all([kcna, urdu])
        session.flush()
        body = b"<html><body>Kim Chaek</body></html>"
        digest = store_payload(session, body, kcna.id)
        snapshot = Snapshot(
            source_id=kcna.id,
            run_id=None,
            requested_url="https://kcnawatch.org/newstream/1-1/kim/",
            final_url="https://kcnawatch.org/newstream/1-1/kim/",
            status=200,
            headers={"Content-Type": ["text/html; charset=utf-8"]},
            fetched_at=SEEN,
            sha256=digest,
            size=len(body),
        )
        session.add(snapshot)
        session.flush()
        session.execute(
            insert(Article),
            [
                _article(
                    kcna.id,
                    1,
                    title='Kim Chaek University boosts "R&D", links, with industry',
                    body='First, with commas; and "quotes".\n\nSecond line\nwith a break.',
                    # a page that showed the day 30/11/2024 only: midnight in Pyongyang
                    published_at=datetime(2024, 11, 29, 15, 0, tzinfo=UTC),
                    published_date=date(2024, 11, 30),
                    published_precision="day",
                    original_source="Pyongyang Times",
                    original_url="http://www.pyongyangtimes.com.kp/?bbs=1",
                    snapshot_id=snapshot.id,
                    version=2,
                ),
                _article(
                    kcna.id,
                    2,
                    title="김정은 동지 — Ким Чен Ын",
                    author="KCNA",
                    summary="A summary, with a comma",
                    published_at=datetime(2024, 12, 1, 3, 0, tzinfo=UTC),
                    published_date=date(2024, 12, 1),
                    published_precision="time",
                    partial=True,
                    outlet_article_id="287305",
                ),
                _article(urdu.id, 3, title="Шойгу visits Pyongyang", language=None),
            ],
        )


def archived(db_url: str) -> dict[int, dict[str, Any]]:
    """What the archive holds, by article id, computed without the export code."""
    archive = Archive(db_url)
    rows: dict[int, dict[str, Any]] = {}
    with archive.sessions() as session:
        articles = session.scalars(
            select(Article).options(selectinload(Article.source), selectinload(Article.snapshot))
        ).all()
        for a in articles:
            record = {name: getattr(a, name, None) for name in FIELDS}
            record["outlet"] = a.source.name
            record["snapshot_sha256"] = a.snapshot.sha256 if a.snapshot else None
            for key in ("published_at", "first_seen_at", "last_seen_at", "published_date"):
                record[key] = record[key].isoformat() if record[key] else None
            rows[a.id] = record
    archive.dispose()
    return rows


def as_csv(value: Any) -> str:
    return "" if value is None else str(value)


@pytest.fixture
def seeded(db_url: str) -> dict[int, dict[str, Any]]:
    archive = Archive(db_url)
    seed(archive)
    archive.dispose()
    return archived(db_url)


def test_the_export_carries_every_field():
    assert EXPORT_FIELDS[: len(FIELDS)] == FIELDS


def test_jsonl_read_back_equals_the_archive(db_url, seeded, tmp_path):
    result = run_cli("export", "--format", "jsonl", db_url=db_url)  # to stdout
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["id"] for r in records] == sorted(seeded)
    for record in records:
        want = seeded[record["id"]]
        for name in FIELDS:
            assert record[name] == want[name], (record["id"], name)
    assert records[1]["title"] == "김정은 동지 — Ким Чен Ын"
    assert records[0]["published_at"] == "2024-11-29T15:00:00+00:00"
    out = tmp_path / "articles.jsonl"
    result = run_cli("export", "--format", "jsonl", "-o", str(out), db_url=db_url)
    assert result.returncode == 0, result.stderr
    assert out.read_text(encoding="utf-8") == "".join(
        json.dumps(r, ensure_ascii=False) + "\n" for r in records
    )
    assert "exported 3 articles" in result.stderr


def test_csv_read_back_equals_the_archive(db_url, seeded, tmp_path):
    out = tmp_path / "articles.csv"
    result = run_cli("export", "--format", "csv", "-o", str(out), db_url=db_url)
    assert result.returncode == 0, result.stderr
    with out.open(encoding="utf-8", newline="") as stream:
        reader = csv.DictReader(stream)
        assert tuple(reader.fieldnames or ())[: len(FIELDS)] == FIELDS
        rows = list(reader)
    assert [int(r["id"]) for r in rows] == sorted(seeded)
    for row in rows:
        want = seeded[int(row["id"])]
        for name in FIELDS:
            assert row[name] == as_csv(want[name]), (row["id"], name)
    # a body's paragraph breaks and quotes survive the quoting
    assert rows[0]["body"] == 'First, with commas; and "quotes".\n\nSecond line\nwith a break.'


def test_parquet_read_back_equals_the_archive(db_url, seeded, tmp_path):
    out = tmp_path / "articles.parquet"
    result = run_cli("export", "--format", "parquet", "-o", str(out), db_url=db_url)
    assert result.returncode == 0, result.stderr
    table = pq.read_table(out)
    assert tuple(table.column_names)[: len(FIELDS)] == FIELDS
    assert str(table.schema.field("id").type) == "int64"
    assert str(table.schema.field("partial").type) == "bool"
    # instants are timestamps (UTC), the publication day a date: not text
    for name in ("published_at", "first_seen_at", "last_seen_at"):
        assert str(table.schema.field(name).type) == "timestamp[us, tz=UTC]", name
    assert str(table.schema.field("published_date").type) == "date32[day]"
    rows = table.to_pylist()
    assert [r["id"] for r in rows] == sorted(seeded)
    for row in rows:
        want = seeded[row["id"]]
        for name in FIELDS:
            value = row[name]
            if isinstance(value, date):
                assert isinstance(value, datetime) == name.endswith("_at"), name
                value = value.isoformat()
            assert value == want[name], (row["id"], name)


def test_filters_by_outlet_and_publication_date(db_url, seeded):
    def ids(*args: str) -> list[int]:
        result = run_cli("export", *args, db_url=db_url)
        assert result.returncode == 0, result.stderr
        return [json.loads(line)["id"] for line in result.stdout.splitlines()]

    by_title = {r["title"]: r["id"] for r in seeded.values()}
    kim, korean, shoigu = (
        by_title['Kim Chaek University boosts "R&D", links, with industry'],
        by_title["김정은 동지 — Ким Чен Ын"],
        by_title["Шойгу visits Pyongyang"],
    )
    assert ids("--outlet", "kcna_watch") == [kim, korean]
    assert ids("--outlet", "urdupoint") == [shoigu]
    assert ids("--since", "2024-12-01") == [korean]
    # a day is the publication's own day, both ends inclusive
    assert ids("--until", "2024-12-01") == [kim, korean]
    assert ids("--until", "2024-11-30") == [kim]
    assert ids("--since", "2024-11-30", "--until", "2024-11-30") == [kim]
    assert ids("--since", "2024-11-29", "--until", "2024-11-29") == []
    # a time is an instant (UTC unless an offset is given), inclusive too
    assert ids("--since", "2024-11-29T15:00:00+00:00", "--until", "2024-11-30") == [kim]
    assert ids("--until", "2024-12-01T03:00") == [kim, korean]
    assert ids("--until", "2024-12-01T02:59:59") == [kim]
    assert ids("--since", "2024-12-01T12:00:00+09:00") == [korean]
    assert ids("--outlet", "kcna_watch", "--since", "2025-01-01") == []


def test_bad_options_are_clear_errors(db_url, tmp_path):
    result = run_cli("export", "--format", "xml", db_url=db_url)
    assert result.returncode == 2 and "--format 'xml'" in result.stderr
    result = run_cli("export", "--format", "parquet", db_url=db_url)
    assert result.returncode == 2 and "needs -o FILE" in result.stderr
    result = run_cli("export", "--since", "yesterday", db_url=db_url)
    assert result.returncode == 2 and "--since 'yesterday'" in result.stderr


def _bulk(db_url: str, count: int, body_size: int, first: int = 0) -> None:
    archive = Archive(db_url)
    with archive.transaction() as session:
        source_id = session.scalar(select(Source.id).where(Source.name == "bulk"))
        if source_id is None:
            source = Source(name="bulk", base_url="https://bulk.example")
            session.add(source)
            session.flush()
            source_id = source.id
        filler = "x" * body_size
        for start in range(first, first + count, 500):
            session.execute(
                insert(Article),
                [
                    _article(source_id, n, body=f"{n} {filler}")
                    for n in range(start, min(start + 500, first + count))
                ],
            )
    archive.dispose()


def test_parquet_is_written_one_row_group_per_batch(db_url, tmp_path):
    _bulk(db_url, 2500, 100)
    out = tmp_path / "bulk.parquet"
    result = run_cli("export", "--format", "parquet", "-o", str(out), db_url=db_url)
    assert result.returncode == 0, result.stderr
    meta = pq.ParquetFile(out).metadata
    assert meta.num_rows == 2500
    assert [meta.row_group(i).num_rows for i in range(meta.num_row_groups)] == [1000, 1000, 500]
    assert pq.read_table(out, columns=["body"]).column("body")[2499].as_py().startswith("2499 ")


class Discard(io.StringIO):
    """Counts what is written and keeps none of it."""

    written = 0

    def write(self, text: str) -> int:
        self.written += len(text)
        return len(text)


def _export_peak(db_url: str) -> tuple[int, int, int]:
    """(articles, peak bytes allocated by Python, peak growth of the process's resident memory)
    of a JSONL export of the whole archive: the second misses what a driver holds in C (a
    PostgreSQL result received whole), the third sees it."""
    archive = Archive(db_url)
    sink = Discard()
    process = psutil.Process()
    baseline = process.memory_info().rss
    resident = [baseline]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.005):
            resident.append(process.memory_info().rss)

    sampler = threading.Thread(target=sample)
    try:
        with archive.sessions() as session:
            sampler.start()
            tracemalloc.start()
            count = write_jsonl(iter_records(session, ArticleFilter()), sink, lambda: None)
            _, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
    finally:
        done.set()
        if sampler.is_alive():
            sampler.join()
        archive.dispose()
    assert sink.written > count * 10_000
    return count, peak, max(resident) - baseline


def test_export_memory_stays_flat_as_the_archive_grows(db_url):
    _bulk(db_url, 2000, 10_000)
    small = _export_peak(db_url)
    _bulk(db_url, 4000, 10_000, first=2000)  # three times the text: 60 MB
    large = _export_peak(db_url)
    assert (small[0], large[0]) == (2000, 6000)
    # held at once: about a batch of rows, however many articles are exported
    assert large[1] < 1.3 * small[1], f"peak {small[1] / 1e6:.0f} MB -> {large[1] / 1e6:.0f} MB"
    assert large[1] < 40_000_000
    # nor does the driver receive the whole result at once (60 MB of text)
    assert large[2] < 30_000_000, f"resident memory grew {large[2] / 1e6:.0f} MB"
