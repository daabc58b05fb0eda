"""Streamed exports of the archive: one article per line (JSONL, CSV) or row (Parquet)."""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import IO, Any

from crawler.db.reader import Reader

EXPORT_FIELDS = (
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
    # crawler/stories: the earliest article of the same text, and the article's story
    "reprint_of",
    "story_id",
)
BATCH = 1000


def outlet_names(outlet: str | Sequence[str] | None) -> tuple[str, ...]:
    """One outlet, several, or none (every outlet) as a tuple of names."""
    if outlet is None:
        return ()
    return (outlet,) if isinstance(outlet, str) else tuple(outlet)


def parse_day_or_time(text: str) -> date | datetime:
    """A --since/--until value: a day (2024-07-19, read on the publication's own calendar) or
    a timestamp (2024-07-19T06:00, UTC when no offset is given); ValueError otherwise."""
    text = text.strip()
    if len(text) == 10:
        return date.fromisoformat(text)
    parsed = datetime.fromisoformat(text)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@dataclass(frozen=True)
class ArticleFilter:
    """Which articles: of these outlets, published within [since, until] (both inclusive; a
    `date` is the publication's local day, a `datetime` an instant), tagged with a topic."""

    outlet: str | Sequence[str] | None = None  # one outlet or several (any of them)
    since: date | datetime | None = None
    until: date | datetime | None = None
    topic: str | None = None
    story: int | None = None  # articles of this story (crawler/stories)

    def conditions(self) -> tuple[list[str], dict[str, Any]]:
        """The SQL conditions of matching articles (on `articles` joined with `sources`) and
        their parameters."""
        where: list[str] = []
        params: dict[str, Any] = {}
        if self.story is not None:
            where.append(
                "articles.id IN (SELECT article_id FROM article_signatures"
                " WHERE story_id = :filter_story)"
            )
            params["filter_story"] = self.story
        if self.outlet:
            where.append("sources.name IN :filter_outlets")
            params["filter_outlets"] = outlet_names(self.outlet)
        if self.topic:
            where.append(
                "articles.id IN (SELECT article_topics.article_id FROM article_topics"
                " JOIN topics ON topics.id = article_topics.topic_id"
                " WHERE topics.name = :filter_topic)"
            )
            params["filter_topic"] = self.topic
        for bound, operator in ((self.since, ">="), (self.until, "<=")):
            if bound is None:
                continue
            name = f"filter_{'since' if operator == '>=' else 'until'}"
            # an instant bounds the publication time; a day the publication's own day
            column = "published_at" if isinstance(bound, datetime) else "published_date"
            where.append(f"articles.{column} {operator} :{name}")
            params[name] = bound
        return where, params

    def sql(self) -> tuple[str, dict[str, Any]]:
        """`conditions()` as one clause to follow WHERE or AND ("1 = 1" when there is none)."""
        where, params = self.conditions()
        return " AND ".join(where) or "1 = 1", params

    def apply(self, statement: Any) -> Any:
        """A SQLAlchemy statement (Source joined) narrowed to matching articles: the same SQL,
        for the queries written with SQLAlchemy (crawler/read/warc.py, the web pages)."""
        where, params = self.conditions()
        if not where:
            return statement
        from sqlalchemy import Date, bindparam, text

        from crawler.db.models import UTCDateTime

        binds = [
            bindparam(
                name,
                value,
                expanding=isinstance(value, tuple),
                type_=UTCDateTime()
                if isinstance(value, datetime)
                else Date()
                if isinstance(value, date)
                else None,
            )
            for name, value in params.items()
        ]
        return statement.where(text(" AND ".join(where)).bindparams(*binds))


def _iso(value: date | None) -> str | None:
    return value.isoformat() if value else None


# The columns of an export, in the order of EXPORT_FIELDS.
EXPORT_COLUMNS = (
    "articles.id, sources.name, articles.url, articles.canonical_url, articles.title,"
    " articles.author, articles.published_at, articles.published_date,"
    " articles.published_precision, articles.summary, articles.body, articles.original_source,"
    " articles.original_url, articles.outlet_article_id, articles.partial, articles.language,"
    " articles.first_seen_at, articles.last_seen_at, articles.version, articles.content_hash,"
    " snapshots.sha256, article_signatures.reprint_of, article_signatures.story_id"
)


def count_articles(db: Any, filters: ArticleFilter) -> int:
    """How many articles match."""
    condition, params = filters.sql()
    return int(
        Reader.of(db).scalar(
            "SELECT count(articles.id) FROM articles"
            f" JOIN sources ON sources.id = articles.source_id WHERE {condition}",
            params,
        )
        or 0
    )


def iter_records(
    db: Any, filters: ArticleFilter, *, as_text: bool = True
) -> Generator[dict[str, Any], None, None]:
    """Every matching article as a plain dict, fetched in batches (constant memory); dates as
    ISO 8601 text when `as_text`, else as date and datetime values. `db`: a Reader or a
    SQLAlchemy session."""
    condition, params = filters.sql()
    rows = Reader.of(db).stream(
        f"SELECT {EXPORT_COLUMNS} FROM articles JOIN sources ON sources.id = articles.source_id"
        " LEFT OUTER JOIN snapshots ON snapshots.id = articles.snapshot_id"
        " LEFT OUTER JOIN article_signatures ON article_signatures.article_id = articles.id"
        f" WHERE {condition} ORDER BY articles.id",
        params,
        BATCH,
    )
    try:
        for row in rows:
            record = dict(zip(EXPORT_FIELDS, row, strict=True))
            record["partial"] = bool(record["partial"])  # SQLite keeps 0 or 1
            if as_text:
                for key in ("published_at", "first_seen_at", "last_seen_at", "published_date"):
                    record[key] = _iso(record[key])
            yield record
    finally:
        rows.close()  # the cursor, even when the records are not all read


def write_jsonl(records: Iterator[dict[str, Any]], out: IO[str], tick: Callable[[], None]) -> int:
    count = 0
    for record in records:
        out.write(json.dumps(record, ensure_ascii=False) + "\n")
        count += 1
        tick()
    return count


def write_csv(records: Iterator[dict[str, Any]], out: IO[str], tick: Callable[[], None]) -> int:
    writer = csv.DictWriter(out, fieldnames=EXPORT_FIELDS)
    writer.writeheader()
    count = 0
    for record in records:
        writer.writerow(record)
        count += 1
        tick()
    return count


def write_parquet(records: Iterator[dict[str, Any]], path: str, tick: Callable[[], None]) -> int:
    """Parquet written one row group per batch, so memory stays flat; the records' dates as
    values (`iter_records(..., as_text=False)`): instants are UTC timestamps, the day a date."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    instant = pa.timestamp("us", tz="UTC")
    types = {
        "id": pa.int64(),
        "version": pa.int64(),
        "reprint_of": pa.int64(),
        "story_id": pa.int64(),
        "partial": pa.bool_(),
        "published_at": instant,
        "published_date": pa.date32(),
        "first_seen_at": instant,
        "last_seen_at": instant,
    }
    schema = pa.schema([(name, types.get(name, pa.string())) for name in EXPORT_FIELDS])
    count = 0
    with pq.ParquetWriter(path, schema) as writer:
        batch: list[dict[str, Any]] = []
        for record in records:
            batch.append(record)
            count += 1
            tick()
            if len(batch) >= BATCH:  # one row group per batch fetched
                writer.write_table(pa.Table.from_pylist(batch, schema=schema))
                batch = []
        if batch or count == 0:
            writer.write_table(pa.Table.from_pylist(batch, schema=schema))
    return count
