"""Reads and writes of the archive shared by the pipelines and the commands."""

from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, NamedTuple, cast

from sqlalchemy import (
    Integer,
    String,
    Table,
    bindparam,
    false,
    func,
    insert,
    literal_column,
    null,
    or_,
    select,
    true,
    union_all,
    update,
)
from sqlalchemy import cast as type_cast
from sqlalchemy.orm import Session

from crawler.db import direct
from crawler.db.models import (
    Article,
    ArticleUrl,
    ArticleVersion,
    Payload,
    Snapshot,
    SourceWalk,
    utcnow,
)
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
_SNAPSHOT_COLUMNS = (
    "source_id",
    "run_id",
    "requested_url",
    "final_url",
    "status",
    "headers",
    "fetched_at",
    "sha256",
    "size",
)


@functools.cache
def _insert_payload_and_snapshot() -> Any:
    """PostgreSQL: a page's payload (unless its digest is stored) and its snapshot in one
    statement, the payload's row written by a CTE. Its values are bound as `payload_*`; the
    snapshot's foreign key is checked at the statement's end, when the payload's row is there.
    One statement a page less than `store_payload` and `_INSERT_SNAPSHOT` one after the other."""
    payload = _payload_insert("postgresql").values(
        {
            column: bindparam(f"payload_{column}", type_=_PAYLOADS.c[column].type)
            for column in ("sha256", "size", "content", "dictionary_id")
        }
    )
    snapshot = insert(_SNAPSHOTS).values(
        {column: bindparam(column, type_=_SNAPSHOTS.c[column].type) for column in _SNAPSHOT_COLUMNS}
    )
    return snapshot.add_cte(payload.cte("payload")).returning(_SNAPSHOTS.c.id)


def _payload_values(session: Session, body: bytes, source_id: int) -> dict[str, Any]:
    """The row keeping `body` (compressed, crawler/db/payloads.py) under its sha256."""
    from crawler.db.payloads import pack  # zstd: for the crawl, not for the queries here

    packed = pack(session, source_id, body)
    return {
        "sha256": hashlib.sha256(body).hexdigest(),
        "size": len(body),
        "content": packed.content,
        "dictionary_id": packed.dictionary_id,
    }


def store_payload(session: Session, body: bytes, source_id: int) -> str:
    """Keep `body` once under its sha256 (compressed, crawler/db/payloads.py) and return the
    digest."""
    values = _payload_values(session, body, source_id)
    statement = _payload_insert(session.get_bind().dialect.name)
    if statement is not None:
        direct.execute(session, statement, values)
    elif session.get(Payload, values["sha256"]) is None:  # other databases: look first
        session.execute(insert(_PAYLOADS), values)
    return str(values["sha256"])


def store_snapshot(
    session: Session, source_id: int, run_id: int | None, page: FetchedPage
) -> StoredSnapshot:
    """One fetch of a page: its metadata as a row, its bytes once per distinct digest."""
    snapshot = {
        "source_id": source_id,
        "run_id": run_id,
        "requested_url": page.requested_url,
        "final_url": page.final_url,
        "status": page.status,
        "headers": page.headers,
        "fetched_at": page.fetched_at,
        "size": len(page.body),
    }
    if session.get_bind().dialect.name == "postgresql":
        payload = _payload_values(session, page.body, source_id)
        digest = payload["sha256"]
        [(snapshot_id,)] = direct.execute(
            session,
            _insert_payload_and_snapshot(),
            snapshot
            | {"sha256": digest}
            | {f"payload_{column}": value for column, value in payload.items()},
        )
    else:
        digest = store_payload(session, page.body, source_id)
        [(snapshot_id,)] = direct.execute(session, _INSERT_SNAPSHOT, snapshot | {"sha256": digest})
    return StoredSnapshot(snapshot_id, digest)


def payload_bytes(session: Session, sha256: str) -> bytes:
    """The exact bytes stored under a digest."""
    from crawler.db.payloads import unpack

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


# Built once: it runs for every article a crawl stores. The article with the canonical URL,
# else the outlet's first with the same text: two branches of one statement (one round trip),
# not one WHERE with OR: each branch is a search of its own index, where an OR would scan the
# outlet's articles.
_LOOKUP_COLUMNS = (
    _ARTICLES.c.id,
    _ARTICLES.c.content_hash,
    _ARTICLES.c.version,
    _ARTICLES.c.last_seen_at,
    _ARTICLES.c.snapshot_id,
)
_BY_CANONICAL = select(*_LOOKUP_COLUMNS, literal_column("0").label("rank")).where(
    _ARTICLES.c.source_id == bindparam("source_id"),
    _ARTICLES.c.canonical_url == bindparam("canonical_url"),
)
_BY_CONTENT = (
    select(*_LOOKUP_COLUMNS, literal_column("1").label("rank"))
    .where(
        _ARTICLES.c.source_id == bindparam("source_id"),
        _ARTICLES.c.content_hash == bindparam("digest"),
    )
    .order_by(_ARTICLES.c.id)
    .limit(1)
    .subquery()
)
_LOOKUP = union_all(_BY_CANONICAL, select(_BY_CONTENT)).order_by(literal_column("rank")).limit(1)


class _Found(NamedTuple):
    id: int
    content_hash: str
    version: int
    last_seen_at: datetime
    snapshot_id: int | None
    rank: int


def _lookup(
    session: Session, source_id: int, canonical_url: str, digest: str | None
) -> _Found | None:
    rows = direct.execute(
        session,
        _LOOKUP,
        {"source_id": source_id, "canonical_url": canonical_url, "digest": digest},
    )
    return _Found(*rows[0]) if rows else None


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
    "published_date",
    "published_precision",
    "summary",
    "original_source",
    "original_url",
    "partial",
)


# The columns archive_article writes of a new article.
_NEW_ARTICLE_COLUMNS = (
    "source_id",
    "url",
    "canonical_url",
    "body",
    "language",
    "outlet_article_id",
    "content_hash",
    "version",
    "first_seen_at",
    "last_seen_at",
    "updated_at",
    "snapshot_id",
    *_CONTENT_FIELDS,
)


@functools.cache
def _lookup_or_insert() -> Any:
    """PostgreSQL: `_LOOKUP`, and the article inserted when it finds none, in one statement
    (one round trip a new article less): the found article's row, else the new one's id, with
    whether it was inserted."""
    found = _LOOKUP.cte("found")
    values = select(
        *(bindparam(name, type_=_ARTICLES.c[name].type) for name in _NEW_ARTICLE_COLUMNS)
    ).where(~select(found.c.id).exists())
    new = (
        insert(_ARTICLES)
        .from_select(list(_NEW_ARTICLE_COLUMNS), values)
        .returning(_ARTICLES.c.id)
        .cte("new")
    )
    return union_all(
        select(*found.c, false().label("inserted")),
        select(
            new.c.id,
            type_cast(null(), String),
            type_cast(null(), Integer),
            type_cast(null(), _ARTICLES.c.last_seen_at.type),
            type_cast(null(), Integer),
            type_cast(null(), Integer),
            true(),
        ),
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
    new = {
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
    }
    current: _Found | None
    if session.get_bind().dialect.name == "postgresql":
        [(*row, inserted)] = direct.execute(
            session, _lookup_or_insert(), new | {"digest": item.content_hash}
        )
        if inserted:
            return Outcome.NEW, ArticleRef(row[0], 1, seen_at)
        current = _Found(*row)
    else:
        current = _lookup(session, source_id, item.canonical_url, item.content_hash)
    if current is None:
        [(new_id,)] = direct.execute(session, _INSERT_ARTICLE, new)
        return Outcome.NEW, ArticleRef(new_id, 1, seen_at)
    article_id = current.id
    last_seen = max(current.last_seen_at, seen_at)
    if current.content_hash == item.content_hash:
        # the newest snapshot showing this text (its validators serve the next --refresh)
        newest = item.snapshot_id if item.snapshot_id and seen_at >= current.last_seen_at else None
        direct.execute(
            session,
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


def mark_seen(
    session: Session,
    source_id: int,
    url: str,
    seen_at: datetime | None = None,
    article_id: int | None = None,
) -> bool:
    """Record that a known article (answered 304) is still there; False when it is unknown.

    By its id when the caller knows it (the --refresh path: one indexed row), else by the
    address it came from (articles are indexed by (source_id, url)).
    """
    where = (
        [Article.id == article_id]
        if article_id is not None
        else [Article.source_id == source_id, or_(Article.url == url, Article.canonical_url == url)]
    )
    result = session.execute(update(Article).where(*where).values(last_seen_at=seen_at or utcnow()))
    return bool(getattr(result, "rowcount", 0))


# -- article URLs: pending, archived, rejected ---------------------------------------------------

PENDING = "pending"
ARCHIVED = "archived"
REJECTED = "rejected"
_ARTICLE_URLS = cast(Table, ArticleUrl.__table__)


@dataclass(frozen=True)
class KnownUrl:
    """An address archived (or rejected) already, with what a conditional re-fetch needs."""

    url: str
    article_id: int | None
    validators: dict[str, str]


def _dialect_insert(session: Session) -> Any:
    if session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert


def known_among(
    session: Session, source_id: int, urls: list[str], with_validators: bool = False
) -> dict[str, KnownUrl]:
    """Which of `urls` are known (archived or rejected): one indexed query for a whole listing,
    feed or sitemap page, instead of every URL of the outlet held in memory."""
    if not urls:
        return {}
    columns: list[Any] = [_ARTICLE_URLS.c.url, _ARTICLE_URLS.c.article_id]
    statement = select(*columns).where(
        _ARTICLE_URLS.c.source_id == source_id,
        _ARTICLE_URLS.c.url.in_(sorted(set(urls))),
        _ARTICLE_URLS.c.state != PENDING,
    )
    if with_validators:
        statement = statement.add_columns(_SNAPSHOTS.c.headers).outerjoin(
            _SNAPSHOTS, _SNAPSHOTS.c.id == _ARTICLE_URLS.c.snapshot_id
        )
    found: dict[str, KnownUrl] = {}
    for row in session.execute(statement):
        headers = row[2] if with_validators else None
        found[row[0]] = KnownUrl(row[0], row[1], _validators(headers))
    return found


def _validators(headers: dict[str, Any] | None) -> dict[str, str]:
    """If-None-Match / If-Modified-Since from a snapshot's ETag / Last-Modified."""
    lowered = {k.lower(): v for k, v in (headers or {}).items()}
    validators = {}
    for header, request_header in (
        ("etag", "If-None-Match"),
        ("last-modified", "If-Modified-Since"),
    ):
        values = lowered.get(header)
        if values:
            validators[request_header] = values[0] if isinstance(values, list) else values
    return validators


def add_pending(session: Session, source_id: int, urls: list[str]) -> None:
    """Remember addresses a walk found and that are not archived yet (kept if already there)."""
    if not urls:
        return
    now = utcnow()
    rows = [
        {
            "source_id": source_id,
            "url": url,
            "state": PENDING,
            "attempts": 0,
            "found_at": now,
            "updated_at": now,
        }
        for url in sorted(set(urls))
    ]
    insert_into = _dialect_insert(session)
    session.execute(insert_into(_ARTICLE_URLS).on_conflict_do_nothing(), rows)


def record_urls(
    session: Session,
    source_id: int,
    urls: set[str],
    state: str,
    article_id: int | None,
    snapshot_id: int | None,
) -> None:
    """Make addresses known: `archived` as article `article_id` or `rejected`, with the snapshot
    just fetched there (its validators serve the next --refresh). Runs in the page's transaction."""
    now = utcnow()
    rows = [
        {
            "source_id": source_id,
            "url": url,
            "state": state,
            "article_id": article_id,
            "snapshot_id": snapshot_id,
            "attempts": 0,
            "found_at": now,
            "updated_at": now,
        }
        for url in sorted(u for u in urls if u)
    ]
    if not rows:
        return
    if session.get_bind().dialect.name == "postgresql":
        # one statement, the addresses bound as an array: an executemany of one to four rows
        # (psycopg pipelines it) measured a tenth of the archive writer's time
        urls_array = [row.pop("url") for row in rows]
        direct.execute(session, _record_urls_array(), rows[0] | {"urls": urls_array})
        return
    direct.execute_many(session, _record_urls_upsert(), rows)


def _updating_url(statement: Any) -> Any:
    """record_urls' INSERT, an address already known taking the new state, article and
    snapshot."""
    return statement.on_conflict_do_update(
        index_elements=[_ARTICLE_URLS.c.source_id, _ARTICLE_URLS.c.url],
        set_={
            "state": statement.excluded.state,
            "article_id": statement.excluded.article_id,
            "snapshot_id": statement.excluded.snapshot_id,
            "updated_at": statement.excluded.updated_at,
        },
    )


@functools.cache
def _record_urls_array() -> Any:
    """PostgreSQL: record_urls' INSERT of every address in `urls` (an array), the other
    columns the same for each."""
    from sqlalchemy.dialects.postgresql import ARRAY
    from sqlalchemy.dialects.postgresql import insert as pg_insert

    columns = ("source_id", "state", "article_id", "snapshot_id", "attempts", "found_at")
    url = func.unnest(bindparam("urls", type_=ARRAY(String))).table_valued("url").alias("url")
    return _updating_url(
        pg_insert(_ARTICLE_URLS).from_select(
            ["url", *columns, "updated_at"],
            select(
                url.c.url,
                *(bindparam(name, type_=_ARTICLE_URLS.c[name].type) for name in columns),
                bindparam("updated_at", type_=_ARTICLE_URLS.c.updated_at.type),
            ),
        )
    )


@functools.cache
def _record_urls_upsert() -> Any:
    """SQLite: record_urls' INSERT, a row each, built once: built for every page, its
    `excluded` alias (a reference cycle of about a hundred objects) was garbage to collect."""
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return _updating_url(sqlite_insert(_ARTICLE_URLS))


def pending_urls(session: Session, source_id: int, max_attempts: int) -> list[str]:
    """The source's pending addresses not given up on yet, oldest first."""
    return list(
        session.scalars(
            select(_ARTICLE_URLS.c.url)
            .where(
                _ARTICLE_URLS.c.source_id == source_id,
                _ARTICLE_URLS.c.state == PENDING,
                _ARTICLE_URLS.c.attempts < max_attempts,
            )
            .order_by(_ARTICLE_URLS.c.found_at)
        )
    )


def count_attempts(session: Session, source_id: int, urls: list[str]) -> None:
    """One more attempt at each of these pending addresses (they are being fetched)."""
    for start in range(0, len(urls), 500):
        session.execute(
            update(_ARTICLE_URLS)
            .where(
                _ARTICLE_URLS.c.source_id == source_id,
                _ARTICLE_URLS.c.state == PENDING,
                _ARTICLE_URLS.c.url.in_(urls[start : start + 500]),
            )
            .values(attempts=_ARTICLE_URLS.c.attempts + 1)
        )


# -- discovery walks -------------------------------------------------------------------------------


@dataclass(frozen=True)
class WalkState:
    """How far the last walk of an entry point got (see models.SourceWalk)."""

    complete: bool
    covered: bool
    next_url: str | None
    next_page: int | None


def walk_states(session: Session, source_id: int) -> dict[str, WalkState]:
    rows = session.scalars(select(SourceWalk).where(SourceWalk.source_id == source_id))
    return {
        row.entry_url: WalkState(row.complete, row.covered, row.next_url, row.next_page)
        for row in rows
    }


def save_walk(
    session: Session,
    source_id: int,
    entry_url: str,
    state: WalkState,
    pages: int,
    run_id: int | None,
) -> None:
    row = session.get(SourceWalk, (source_id, entry_url))
    if row is None:
        row = SourceWalk(source_id=source_id, entry_url=entry_url)
        session.add(row)
    row.complete = state.complete
    row.covered = state.covered
    row.next_url = state.next_url
    row.next_page = state.next_page
    row.pages = pages
    row.run_id = run_id
    row.updated_at = utcnow()
