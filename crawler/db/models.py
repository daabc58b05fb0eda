"""SQLAlchemy 2 typed models of the archive."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


class UTCDateTime(TypeDecorator[datetime]):
    """An aware UTC instant on every database (SQLite keeps no offset, so add it back)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r} cannot be stored; give it a time zone")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


naming_convention = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=naming_convention)
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSON()}


class Source(Base):
    __tablename__ = "sources"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    base_url: Mapped[str] = mapped_column(String(2000))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class CrawlRun(Base):
    __tablename__ = "crawl_runs"

    id: Mapped[int] = mapped_column(primary_key=True)
    source_id: Mapped[int] = mapped_column(ForeignKey("sources.id"), index=True)
    started_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    finished_at: Mapped[datetime | None]
    # running, finished, failed, timed_out, interrupted
    status: Mapped[str] = mapped_column(String(20), default="running")
    trigger: Mapped[str] = mapped_column(String(20), default="manual")
    pages: Mapped[int] = mapped_column(default=0)
    articles_new: Mapped[int] = mapped_column(default=0)
    articles_updated: Mapped[int] = mapped_column(default=0)
    articles_unchanged: Mapped[int] = mapped_column(default=0)
    articles_skipped: Mapped[int] = mapped_column(default=0)
    articles_invalid: Mapped[int] = mapped_column(default=0)
    errors: Mapped[int] = mapped_column(default=0)
    error_log: Mapped[str | None] = mapped_column(Text)
    stats: Mapped[dict[str, Any] | None]
    # how far the run's discovery walks got: "complete" or "stopped at page N" (see SourceWalk)
    walk: Mapped[str | None] = mapped_column(String(200))

    source: Mapped[Source] = relationship()


class CompressionDictionary(Base):
    """An outlet's zstd dictionary (its first pages, as raw content), stored zstd-compressed;
    see crawler/db/payloads.py."""

    __tablename__ = "compression_dictionaries"

    id: Mapped[int] = mapped_column(primary_key=True)
    source_id: Mapped[int] = mapped_column(ForeignKey("sources.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    size: Mapped[int]
    content: Mapped[bytes] = mapped_column(LargeBinary)


class Payload(Base):
    """The exact bytes of a response, zstd-compressed (against `dictionary_id` when set); one row
    per distinct sha256."""

    __tablename__ = "payloads"

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    size: Mapped[int]
    content: Mapped[bytes] = mapped_column(LargeBinary)
    dictionary_id: Mapped[int | None] = mapped_column(ForeignKey("compression_dictionaries.id"))


class Snapshot(Base):
    """One fetch of an article page."""

    __tablename__ = "snapshots"

    id: Mapped[int] = mapped_column(primary_key=True)
    source_id: Mapped[int] = mapped_column(ForeignKey("sources.id"), index=True)
    run_id: Mapped[int | None] = mapped_column(ForeignKey("crawl_runs.id"), index=True)
    requested_url: Mapped[str] = mapped_column(Text)
    final_url: Mapped[str] = mapped_column(Text, index=True)
    status: Mapped[int]
    headers: Mapped[dict[str, Any]]
    fetched_at: Mapped[datetime] = mapped_column(default=utcnow)
    sha256: Mapped[str] = mapped_column(ForeignKey("payloads.sha256"), index=True)
    size: Mapped[int]

    payload: Mapped[Payload] = relationship()


class Article(Base):
    __tablename__ = "articles"
    __table_args__ = (
        UniqueConstraint("source_id", "canonical_url", name="uq_articles_source_canonical"),
        Index("ix_articles_source_content_hash", "source_id", "content_hash"),
        # per-outlet counts and newest/oldest dates (`crawler stats`) read this index only
        Index("ix_articles_source_published", "source_id", "published_at"),
        # `crawler show URL` and the --refresh path find an article by the address it came from
        Index("ix_articles_source_url", "source_id", "url"),
    )
    # The full-text index is not modelled: SQLite keeps it in the FTS5 table `articles_fts`,
    # PostgreSQL in the trigger-maintained column `search_vector` (migration 0003).

    id: Mapped[int] = mapped_column(primary_key=True)
    source_id: Mapped[int] = mapped_column(ForeignKey("sources.id"))
    url: Mapped[str] = mapped_column(Text)
    canonical_url: Mapped[str] = mapped_column(String(2000))
    title: Mapped[str] = mapped_column(Text)
    author: Mapped[str | None] = mapped_column(Text)
    published_at: Mapped[datetime | None] = mapped_column(index=True)
    # the publication's own calendar day (in the outlet's time zone) and whether the outlet
    # gave a time of day ("time") or only the day ("day"): --since/--until read the day
    published_date: Mapped[date | None] = mapped_column(index=True)
    published_precision: Mapped[str | None] = mapped_column(String(8))
    language: Mapped[str | None] = mapped_column(String(20))
    summary: Mapped[str | None] = mapped_column(Text)
    body: Mapped[str] = mapped_column(Text)
    original_source: Mapped[str | None] = mapped_column(Text)
    original_url: Mapped[str | None] = mapped_column(Text)
    outlet_article_id: Mapped[str | None] = mapped_column(String(100))
    partial: Mapped[bool] = mapped_column(Boolean, default=False)
    content_hash: Mapped[str] = mapped_column(String(64))
    version: Mapped[int] = mapped_column(Integer, default=1)
    first_seen_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    snapshot_id: Mapped[int | None] = mapped_column(ForeignKey("snapshots.id"))

    source: Mapped[Source] = relationship()
    snapshot: Mapped[Snapshot | None] = relationship()
    versions: Mapped[list[ArticleVersion]] = relationship(
        back_populates="article", order_by="ArticleVersion.version"
    )


class ArticleVersion(Base):
    """An earlier text of an article, kept when its content changed."""

    __tablename__ = "article_versions"
    __table_args__ = (UniqueConstraint("article_id", "version", name="uq_article_versions"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    article_id: Mapped[int] = mapped_column(ForeignKey("articles.id", ondelete="CASCADE"))
    version: Mapped[int]
    title: Mapped[str] = mapped_column(Text)
    author: Mapped[str | None] = mapped_column(Text)
    published_at: Mapped[datetime | None]
    published_date: Mapped[date | None]
    published_precision: Mapped[str | None] = mapped_column(String(8))
    summary: Mapped[str | None] = mapped_column(Text)
    body: Mapped[str] = mapped_column(Text)
    original_source: Mapped[str | None] = mapped_column(Text)
    original_url: Mapped[str | None] = mapped_column(Text)
    partial: Mapped[bool] = mapped_column(Boolean, default=False)
    content_hash: Mapped[str] = mapped_column(String(64))
    snapshot_id: Mapped[int | None] = mapped_column(ForeignKey("snapshots.id"))
    first_seen_at: Mapped[datetime]
    # `crawler changes` reads the edits of a period by this index
    superseded_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)

    article: Mapped[Article] = relationship(back_populates="versions")


class ArticleUrl(Base):
    """An article address of a source and where it stands.

    `pending`: found by a walk (feed, listing, sitemap) and not archived yet; the next run
    fetches it first. `archived`: an article was stored from it, in the same transaction as its
    snapshot (`article_id` is that article, `snapshot_id` the newest snapshot fetched there).
    `rejected`: fetched and deliberately not archived (no title or no body). A URL is *known*,
    and not fetched again, only when archived or rejected.
    """

    __tablename__ = "article_urls"
    __table_args__ = (Index("ix_article_urls_source_state", "source_id", "state"),)

    source_id: Mapped[int] = mapped_column(ForeignKey("sources.id"), primary_key=True)
    url: Mapped[str] = mapped_column(Text, primary_key=True)
    state: Mapped[str] = mapped_column(String(10))
    article_id: Mapped[int | None] = mapped_column(ForeignKey("articles.id", ondelete="SET NULL"))
    snapshot_id: Mapped[int | None] = mapped_column(ForeignKey("snapshots.id"))
    # runs that took it from the pending list without archiving it
    attempts: Mapped[int] = mapped_column(default=0)
    found_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class SourceWalk(Base):
    """How far the last walk of one discovery entry point (a paginated listing's first page, a
    sitemap index) got.

    `complete`: it reached the listing's end, or a page archived already where an earlier
    complete walk began, so everything the entry point lists is archived or pending. Otherwise
    the next run resumes at `next_url` (page `next_page`) once it has walked the newest pages;
    `covered` says whether a page there that is archived already ends the walk (an earlier
    complete walk covered what follows) or whether it goes on to the listing's end.
    """

    __tablename__ = "source_walks"

    source_id: Mapped[int] = mapped_column(ForeignKey("sources.id"), primary_key=True)
    entry_url: Mapped[str] = mapped_column(Text, primary_key=True)
    complete: Mapped[bool] = mapped_column(Boolean, default=False)
    covered: Mapped[bool] = mapped_column(Boolean, default=False)
    next_url: Mapped[str | None] = mapped_column(Text)
    next_page: Mapped[int | None]
    pages: Mapped[int] = mapped_column(default=0)
    run_id: Mapped[int | None] = mapped_column(ForeignKey("crawl_runs.id"))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class SourceLease(Base):
    """Held while a source runs; expired when its holder died without releasing it."""

    __tablename__ = "source_leases"

    source_name: Mapped[str] = mapped_column(String(100), primary_key=True)
    holder: Mapped[str] = mapped_column(String(200))
    acquired_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    # the run the lease covers, finalized by whoever takes an expired lease over
    run_id: Mapped[int | None] = mapped_column(ForeignKey("crawl_runs.id"))


class Topic(Base):
    """A topic of the topics file; `fingerprint` is its definition when the whole archive was
    last tagged with it (`crawler topics apply`), None when it never was."""

    __tablename__ = "topics"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    fingerprint: Mapped[str | None] = mapped_column(String(64))
    applied_at: Mapped[datetime | None]


class ArticleTopic(Base):
    """An article tagged with a topic."""

    __tablename__ = "article_topics"
    __table_args__ = (Index("ix_article_topics_topic_article", "topic_id", "article_id"),)

    article_id: Mapped[int] = mapped_column(
        ForeignKey("articles.id", ondelete="CASCADE"), primary_key=True
    )
    topic_id: Mapped[int] = mapped_column(
        ForeignKey("topics.id", ondelete="CASCADE"), primary_key=True
    )


class Story(Base):
    """Articles of several outlets (or one) about the same event within a few days."""

    __tablename__ = "stories"

    id: Mapped[int] = mapped_column(primary_key=True)
    label: Mapped[str] = mapped_column(Text)
    first_published_at: Mapped[datetime]
    last_published_at: Mapped[datetime] = mapped_column(index=True)
    article_count: Mapped[int]
    outlet_count: Mapped[int]
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


# Partial indexes and their predicate. PostgreSQL's name for the predicate (`postgresql_where`)
# is given only when a PostgreSQL engine is made (`use_postgresql`): naming it here made
# SQLAlchemy import its PostgreSQL dialect in every process, on SQLite too (50 ms of a crawl's
# start-up, and of its archive writer's).
_PARTIAL_INDEXES: list[tuple[Index, str]] = []


def _partial_index(name: str, column: str, predicate: str) -> Index:
    index = Index(name, column, sqlite_where=text(predicate))
    _PARTIAL_INDEXES.append((index, predicate))
    return index


def use_postgresql() -> None:
    """Give the partial indexes their predicate for PostgreSQL (idempotent)."""
    for index, predicate in _PARTIAL_INDEXES:
        if index.dialect_options["postgresql"]["where"] is None:
            index.dialect_kwargs["postgresql_where"] = text(predicate)


class ArticleSignature(Base):
    """An article's similarity signature (MinHash of its body's word shingles), its term vector
    for story clustering, and what they link it to: the text it copies, the story it is in."""

    __tablename__ = "article_signatures"
    # Most articles copy nothing and are in no story: partial indexes hold only the others, so
    # that a lookup stays an index search even where the planner's statistics see mostly NULLs.
    __table_args__ = (
        _partial_index("ix_article_signatures_reprint_of", "reprint_of", "reprint_of IS NOT NULL"),
        _partial_index("ix_article_signatures_story_id", "story_id", "story_id IS NOT NULL"),
    )

    article_id: Mapped[int] = mapped_column(
        ForeignKey("articles.id", ondelete="CASCADE"), primary_key=True
    )
    source_id: Mapped[int] = mapped_column(ForeignKey("sources.id"))
    # the article's publication time, else when it was first seen: its place in time
    published_at: Mapped[datetime] = mapped_column(index=True)
    minhash: Mapped[bytes] = mapped_column(LargeBinary)
    shingles: Mapped[int]
    terms: Mapped[dict[str, Any]]
    # the earliest article of the same or nearly the same text (None: this is the first)
    reprint_of: Mapped[int | None] = mapped_column(ForeignKey("articles.id", ondelete="SET NULL"))
    similarity: Mapped[float | None] = mapped_column(Float)
    story_id: Mapped[int | None] = mapped_column(ForeignKey("stories.id", ondelete="SET NULL"))


class SignatureBand(Base):
    """The LSH index: one row per band of an article's MinHash; equal keys are candidates.

    On SQLite a row lives in its key's B-tree only (WITHOUT ROWID): no rowid table besides."""

    __tablename__ = "signature_bands"
    __table_args__ = {"sqlite_with_rowid": False}

    band_key: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    # no foreign key (checked for each of an article's 21 rows): written only with the
    # article's signature, which has one, and deleted with it by a trigger (revision 0011)
    article_id: Mapped[int] = mapped_column(primary_key=True, index=True)


class StoryTerm(Base):
    """An article's most telling terms by time: articles near in time sharing them are
    candidates for the same story. WITHOUT ROWID on SQLite, as `signature_bands`."""

    __tablename__ = "story_terms"
    __table_args__ = {"sqlite_with_rowid": False}

    term_key: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    published_at: Mapped[datetime] = mapped_column(primary_key=True)
    # no foreign key, as `signature_bands`
    article_id: Mapped[int] = mapped_column(primary_key=True, index=True)
