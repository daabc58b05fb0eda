"""Streamed exports of the archive: one article per line (JSONL, CSV) or row (Parquet)."""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import IO, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from crawler.db.models import Article, ArticleSignature, ArticleTopic, Snapshot, Source, Topic

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

    def apply(self, statement: Any) -> Any:
        """The statement narrowed to matching articles (Source must be joined)."""
        if self.story is not None:
            members = select(ArticleSignature.article_id).where(
                ArticleSignature.story_id == self.story
            )
            statement = statement.where(Article.id.in_(members))
        if self.outlet:
            statement = statement.where(Source.name.in_(outlet_names(self.outlet)))
        if self.topic:
            tagged = (
                select(ArticleTopic.article_id)
                .join(Topic, Topic.id == ArticleTopic.topic_id)
                .where(Topic.name == self.topic)
            )
            statement = statement.where(Article.id.in_(tagged))
        if isinstance(self.since, datetime):
            statement = statement.where(Article.published_at >= self.since)
        elif self.since is not None:
            statement = statement.where(Article.published_date >= self.since)
        if isinstance(self.until, datetime):
            statement = statement.where(Article.published_at <= self.until)
        elif self.until is not None:
            statement = statement.where(Article.published_date <= self.until)
        return statement


def _iso(value: date | None) -> str | None:
    return value.isoformat() if value else None


def iter_records(
    session: Session, filters: ArticleFilter, *, as_text: bool = True
) -> Iterator[dict[str, Any]]:
    """Every matching article as a plain dict, fetched in batches (constant memory); dates as
    ISO 8601 text when `as_text`, else as date and datetime values."""
    statement = filters.apply(
        select(
            Article.id,
            Source.name,
            Article.url,
            Article.canonical_url,
            Article.title,
            Article.author,
            Article.published_at,
            Article.published_date,
            Article.published_precision,
            Article.summary,
            Article.body,
            Article.original_source,
            Article.original_url,
            Article.outlet_article_id,
            Article.partial,
            Article.language,
            Article.first_seen_at,
            Article.last_seen_at,
            Article.version,
            Article.content_hash,
            Snapshot.sha256,
            ArticleSignature.reprint_of,
            ArticleSignature.story_id,
        )
        .join(Source, Source.id == Article.source_id)
        .outerjoin(Snapshot, Snapshot.id == Article.snapshot_id)
        .outerjoin(ArticleSignature, ArticleSignature.article_id == Article.id)
        .order_by(Article.id)
    ).execution_options(yield_per=BATCH)
    for row in session.execute(statement):
        record = dict(zip(EXPORT_FIELDS, row, strict=True))
        if as_text:
            for key in ("published_at", "first_seen_at", "last_seen_at", "published_date"):
                record[key] = _iso(record[key])
        yield record


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
