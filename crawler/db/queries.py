"""Reads and writes of the archive shared by the pipelines and the commands."""

from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, cast

from sqlalchemy import Select, Table, bindparam, func, insert, or_, select, update
from sqlalchemy.orm import Session

from crawler.db.models import Article, ArticleVersion, CrawlRun, Payload, Snapshot, utcnow
from crawler.db.payloads import pack, unpack
from crawler.items import ArticleItem, FetchedPage


class Outcome(StrEnum):
    NEW = "new"
    UPDATED = "updated"
    UNCHANGED = "unchanged"


@dataclass(frozen=True)
class StoredSnapshot:
    id: int
    sha256: str


# The statements that run for every fetched page or stored article are Core statements on the
# tables, built once: an ORM-enabled INSERT goes through the ORM's bulk-insert machinery, which
# measured (bench/throughput.py under cProfile) several times the cost of the INSERT itself.
_PAYLOADS = cast(Table, Payload.__table__)
_SNAPSHOTS = cast(Table, Snapshot.__table__)
_ARTICLES = cast(Table, Article.__table__)


@functools.cache  # built once, on first use: the query commands never import the dialects
def _payload_insert(dialect: str) -> Any:
    """INSERT of a payload that does nothing when the digest is already stored."""
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(_PAYLOADS).on_conflict_do_nothing()
    if dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        return sqlite_insert(_PAYLOADS).on_conflict_do_nothing()
    return None


_INSERT_SNAPSHOT = insert(_SNAPSHOTS).returning(_SNAPSHOTS.c.id)


def store_payload(session: Session, body: bytes, source_id: int) -> str:
    """Keep `body` once under its sha256 (compressed, crawler/db/payloads.py) and return the
    digest."""
    digest = hashlib.sha256(body).hexdigest()
    packed = pack(session, source_id, body)
    values = {
        "sha256": digest,
        "size": len(body),
        "content": packed.content,
        "dictionary_id": packed.dictionary_id,
    }
    statement = _payload_insert(session.get_bind().dialect.name)
    if statement is not None:
        session.execute(statement, values)
    elif session.get(Payload, digest) is None:  # other databases: look first
        session.execute(insert(_PAYLOADS), values)
    return digest


def store_snapshot(
    session: Session, source_id: int, run_id: int | None, page: FetchedPage
) -> StoredSnapshot:
    """One fetch of a page: its metadata as a row, its bytes once per distinct digest."""
    digest = store_payload(session, page.body, source_id)
    snapshot_id = session.execute(
        _INSERT_SNAPSHOT,
        {
            "source_id": source_id,
            "run_id": run_id,
            "requested_url": page.requested_url,
            "final_url": page.final_url,
            "status": page.status,
            "headers": page.headers,
            "fetched_at": page.fetched_at,
            "sha256": digest,
            "size": len(page.body),
        },
    ).scalar_one()
    return StoredSnapshot(snapshot_id, digest)


def payload_bytes(session: Session, sha256: str) -> bytes:
    """The exact bytes stored under a digest."""
    payload = session.get(Payload, sha256)
    if payload is None:
        raise KeyError(sha256)
    return unpack(session, payload.content, payload.dictionary_id)


def content_hash(item: ArticleItem) -> str:
    """A digest of everything a reader would call the article's content."""
    content = {
        "title": item.title,
        "author": item.author,
        "published_at": item.published_at.isoformat() if item.published_at else None,
        "summary": item.summary,
        "body": "\n\n".join(item.body),
        "original_source": item.original_source,
        "original_url": item.original_url,
        "partial": item.partial,
    }
    return hashlib.sha256(json.dumps(content, sort_keys=True).encode("utf-8")).hexdigest()


def find_article(
    session: Session, source_id: int, canonical_url: str, digest: str | None
) -> Article | None:
    """The archived article with this canonical URL, else one of the outlet with the same text."""
    found = _lookup(session, source_id, canonical_url, digest)
    return session.get(Article, found.id) if found is not None else None


# Built once: they run for every article a crawl stores. Two statements, not one with OR:
# each is a search of its own index, where an OR would scan the outlet's articles.
_LOOKUP_COLUMNS = (
    _ARTICLES.c.id,
    _ARTICLES.c.content_hash,
    _ARTICLES.c.version,
    _ARTICLES.c.last_seen_at,
    _ARTICLES.c.snapshot_id,
)
_BY_CANONICAL = select(*_LOOKUP_COLUMNS).where(
    _ARTICLES.c.source_id == bindparam("source_id"),
    _ARTICLES.c.canonical_url == bindparam("canonical_url"),
)
_BY_CONTENT = (
    select(*_LOOKUP_COLUMNS)
    .where(
        _ARTICLES.c.source_id == bindparam("source_id"),
        _ARTICLES.c.content_hash == bindparam("digest"),
    )
    .order_by(_ARTICLES.c.id)
    .limit(1)
)


def _lookup(session: Session, source_id: int, canonical_url: str, digest: str | None) -> Any:
    found = session.execute(
        _BY_CANONICAL, {"source_id": source_id, "canonical_url": canonical_url}
    ).first()
    if found is None and digest is not None:
        found = session.execute(_BY_CONTENT, {"source_id": source_id, "digest": digest}).first()
    return found


_INSERT_ARTICLE = insert(_ARTICLES).returning(_ARTICLES.c.id)
_TOUCH_ARTICLE = (
    update(_ARTICLES)
    .where(_ARTICLES.c.id == bindparam("article_id"))
    .values(last_seen_at=bindparam("last_seen_at"), snapshot_id=bindparam("snapshot_id"))
)


@dataclass
class ArticleRef:
    """Which article an item was archived as, and its version now."""

    id: int
    version: int
    last_seen_at: datetime


_CONTENT_FIELDS = (
    "title",
    "author",
    "published_at",
    "summary",
    "original_source",
    "original_url",
    "partial",
)


def archive_article(
    session: Session, source_id: int, item: ArticleItem, seen_at: datetime | None = None
) -> tuple[Outcome, ArticleRef]:
    """Insert a new article, or record that a known one was seen, or make a new version.

    `last_seen_at` never moves backwards (an older capture replayed from a WARC keeps it).
    New and unchanged articles, the common cases of every crawl, take Core statements only.
    """
    assert item.canonical_url and item.content_hash and item.title
    seen_at = seen_at or utcnow()
    body = "\n\n".join(item.body)
    current = _lookup(session, source_id, item.canonical_url, item.content_hash)
    if current is None:
        new_id = session.execute(
            _INSERT_ARTICLE,
            {
                "source_id": source_id,
                "url": item.url,
                "canonical_url": item.canonical_url,
                "body": body,
                "language": item.language,
                "outlet_article_id": item.outlet_article_id,
                "content_hash": item.content_hash,
                "version": 1,
                "first_seen_at": seen_at,
                "last_seen_at": seen_at,
                "updated_at": seen_at,
                "snapshot_id": item.snapshot_id,
                **{name: getattr(item, name) for name in _CONTENT_FIELDS},
            },
        ).scalar_one()
        return Outcome.NEW, ArticleRef(new_id, 1, seen_at)
    article_id = current.id
    last_seen = max(current.last_seen_at, seen_at)
    if current.content_hash == item.content_hash:
        # the newest snapshot showing this text (its validators serve the next --refresh)
        newest = item.snapshot_id if item.snapshot_id and seen_at >= current.last_seen_at else None
        session.execute(
            _TOUCH_ARTICLE,
            {
                "article_id": article_id,
                "last_seen_at": last_seen,
                "snapshot_id": newest or current.snapshot_id,
            },
        )
        return Outcome.UNCHANGED, ArticleRef(article_id, current.version, last_seen)
    article = session.get_one(Article, article_id)
    supersede(session, article, item, seen_at)
    article.last_seen_at = last_seen
    session.flush()
    return Outcome.UPDATED, ArticleRef(article.id, article.version, last_seen)


def supersede(session: Session, article: Article, item: ArticleItem, seen_at: datetime) -> None:
    """Keep the article's current text as a version and make the item's text current."""
    session.add(
        ArticleVersion(
            article_id=article.id,
            version=article.version,
            body=article.body,
            content_hash=article.content_hash,
            snapshot_id=article.snapshot_id,
            first_seen_at=article.updated_at,
            superseded_at=seen_at,
            **{name: getattr(article, name) for name in _CONTENT_FIELDS},
        )
    )
    for name in _CONTENT_FIELDS:
        setattr(article, name, getattr(item, name))
    article.body = "\n\n".join(item.body)
    article.url = item.url
    article.language = item.language or article.language
    article.outlet_article_id = item.outlet_article_id or article.outlet_article_id
    article.content_hash = item.content_hash or article.content_hash
    article.snapshot_id = item.snapshot_id
    article.version += 1
    article.updated_at = seen_at
    article.last_seen_at = max(article.last_seen_at, seen_at)
    session.flush()


def mark_seen(session: Session, source_id: int, url: str, seen_at: datetime | None = None) -> bool:
    """Record that a known article (answered 304) is still there; False when it is unknown."""
    result = session.execute(
        update(Article)
        .where(
            Article.source_id == source_id, or_(Article.url == url, Article.canonical_url == url)
        )
        .values(last_seen_at=seen_at or utcnow())
    )
    return bool(getattr(result, "rowcount", 0))


def known_urls(session: Session, source_id: int) -> set[str]:
    """Every URL the outlet's archived pages are known by: the articles' URLs and canonical
    URLs, and every URL an article page was snapshotted under (the same text found at a
    second address is one article, but its address is known too)."""
    rows = session.execute(
        select(Article.url, Article.canonical_url).where(Article.source_id == source_id)
    )
    known = {url for row in rows for url in row}
    snapshotted = session.execute(
        select(Snapshot.requested_url, Snapshot.final_url)
        .where(Snapshot.source_id == source_id)
        .distinct()
    )
    known.update(url for row in snapshotted for url in row)
    return known


def validators_by_url(session: Session, source_id: int) -> dict[str, dict[str, str]]:
    """ETag / Last-Modified of the newest snapshot behind each archived article."""
    statement: Select[Any] = (
        select(Article.url, Snapshot.headers)
        .join(Snapshot, Snapshot.id == Article.snapshot_id)
        .where(Article.source_id == source_id)
    )
    found: dict[str, dict[str, str]] = {}
    for url, headers in session.execute(statement):
        lowered = {k.lower(): v for k, v in (headers or {}).items()}
        validators = {}
        for header, request_header in (
            ("etag", "If-None-Match"),
            ("last-modified", "If-Modified-Since"),
        ):
            values = lowered.get(header)
            if values:
                validators[request_header] = values[0] if isinstance(values, list) else values
        if validators:
            found[url] = validators
    return found


def newest_runs(session: Session) -> dict[int, CrawlRun]:
    """The newest crawl run of every source that has one, by source id."""
    newest = select(func.max(CrawlRun.id)).group_by(CrawlRun.source_id)
    runs = session.scalars(select(CrawlRun).where(CrawlRun.id.in_(newest)))
    return {run.source_id: run for run in runs}
