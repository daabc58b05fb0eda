"""Streamed exports of the archive: one article per line (JSONL, CSV) or row (Parquet)."""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
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


@dataclass(frozen=True)
class ArticleFilter:
    outlet: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    topic: str | None = None

    def apply(self, statement: Any) -> Any:
        """The statement narrowed to matching articles (Source must be joined)."""
        if self.outlet:
            statement = statement.where(Source.name == self.outlet)
        if self.topic:
            tagged = (
                select(ArticleTopic.article_id)
                .join(Topic, Topic.id == ArticleTopic.topic_id)
                .where(Topic.name == self.topic)
            )
            statement = statement.where(Article.id.in_(tagged))
        if self.since:
            statement = statement.where(Article.published_at >= self.since)
        if self.until:
            statement = statement.where(Article.published_at < self.until)
        return statement


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def iter_records(session: Session, filters: ArticleFilter) -> Iterator[dict[str, Any]]:
    """Every matching article as a plain dict, fetched in batches (constant memory)."""
    statement = filters.apply(
        select(
            Article.id,
            Source.name,
            Article.url,
            Article.canonical_url,
            Article.title,
            Article.author,
            Article.published_at,
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
        for key in ("published_at", "first_seen_at", "last_seen_at"):
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
    """Parquet written one row group per batch, so memory stays flat."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pa.schema(
        [
            (
                name,
                pa.int64()
                if name in ("id", "version", "reprint_of", "story_id")
                else pa.bool_()
                if name == "partial"
                else pa.string(),
            )
            for name in EXPORT_FIELDS
        ]
    )
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
