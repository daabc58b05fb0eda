"""Figures about the archive: per outlet and per topic (`crawler stats`)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from crawler.db.models import Article, ArticleTopic, Source, Topic, utcnow
from crawler.db.queries import newest_runs

DAYS = 30


@dataclass(frozen=True)
class LastRun:
    started_at: datetime
    finished_at: datetime | None
    status: str
    articles_new: int


@dataclass
class OutletStats:
    outlet: str
    articles: int = 0
    oldest: datetime | None = None
    newest: datetime | None = None
    per_day: dict[str, int] = field(default_factory=dict)  # ISO date -> articles, oldest first
    last_run: LastRun | None = None

    @property
    def recent(self) -> int:
        """Articles published in the days of `per_day`."""
        return sum(self.per_day.values())


@dataclass(frozen=True)
class TopicStats:
    topic: str
    articles: int
    up_to_date: bool | None = None  # None: the topic is not in the topics file read


@dataclass
class ArchiveStats:
    days: list[str]
    outlets: list[OutletStats]
    topics: list[TopicStats]
    topic: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready record of every figure."""

        def iso(value: datetime | None) -> str | None:
            return value.isoformat() if value else None

        return {
            "topic": self.topic,
            "days": self.days,
            "outlets": [
                {
                    "outlet": o.outlet,
                    "articles": o.articles,
                    "oldest": iso(o.oldest),
                    "newest": iso(o.newest),
                    "last_30_days": o.recent,
                    "per_day": o.per_day,
                    "last_run": None
                    if o.last_run is None
                    else {
                        "started_at": iso(o.last_run.started_at),
                        "finished_at": iso(o.last_run.finished_at),
                        "status": o.last_run.status,
                        "articles_new": o.last_run.articles_new,
                    },
                }
                for o in self.outlets
            ],
            "topics": [
                {"topic": t.topic, "articles": t.articles, "up_to_date": t.up_to_date}
                for t in self.topics
            ],
        }


def _day(session: Session, column: Any) -> Any:
    """The UTC calendar day of a timestamp column, as 'YYYY-MM-DD' text."""
    if session.get_bind().dialect.name == "postgresql":
        return func.to_char(func.timezone("UTC", column), "YYYY-MM-DD")
    return func.substr(column, 1, 10)  # SQLite keeps 'YYYY-MM-DD HH:MM:SS' in UTC


def collect_stats(
    session: Session,
    *,
    topic: str | None = None,
    now: datetime | None = None,
    fingerprints: dict[str, str] | None = None,
) -> ArchiveStats:
    """Every outlet's and topic's figures; `topic` narrows the outlets' figures to its articles.

    `fingerprints` (topic name -> fingerprint of the topics file) marks which topics' tags are
    up to date.
    """
    today = (now or utcnow()).astimezone(UTC).date()
    first_day = today - timedelta(days=DAYS - 1)
    days = [(first_day + timedelta(days=n)).isoformat() for n in range(DAYS)]
    outlets = {
        source_id: OutletStats(name, per_day=dict.fromkeys(days, 0))
        for source_id, name in session.execute(select(Source.id, Source.name).order_by(Source.name))
    }

    def narrowed(statement: Any) -> Any:
        if topic is None:
            return statement
        return statement.where(
            Article.id.in_(
                select(ArticleTopic.article_id)
                .join(Topic, Topic.id == ArticleTopic.topic_id)
                .where(Topic.name == topic)
            )
        )

    totals = narrowed(
        select(
            Article.source_id,
            func.count(),
            func.min(Article.published_at),
            func.max(Article.published_at),
        ).group_by(Article.source_id)
    )
    for source_id, count, oldest, newest in session.execute(totals):
        outlet = outlets[source_id]
        outlet.articles, outlet.oldest, outlet.newest = count, oldest, newest

    start = datetime.combine(first_day, time(), tzinfo=UTC)
    end = datetime.combine(today + timedelta(days=1), time(), tzinfo=UTC)
    day = _day(session, Article.published_at)
    recent = narrowed(
        select(Article.source_id, day, func.count())
        .where(Article.published_at >= start, Article.published_at < end)
        .group_by(Article.source_id, day)
    )
    for source_id, when, count in session.execute(recent):
        outlets[source_id].per_day[str(when)] = count

    for run in newest_runs(session).values():
        outlets[run.source_id].last_run = LastRun(
            run.started_at, run.finished_at, run.status, run.articles_new
        )

    tagged = (
        select(Topic.name, func.count(ArticleTopic.article_id))
        .outerjoin(ArticleTopic, ArticleTopic.topic_id == Topic.id)
        .group_by(Topic.id, Topic.name)
        .order_by(Topic.name)
    )
    if topic is not None:
        tagged = tagged.where(Topic.name == topic)
    applied = {name: fp for name, fp in session.execute(select(Topic.name, Topic.fingerprint))}
    topics = []
    for name, count in session.execute(tagged):
        known = fingerprints is not None and name in fingerprints
        # Tags are up to date when the archive was last re-tagged with the topic as it is now.
        fresh = applied.get(name) == fingerprints[name] if fingerprints and known else None
        topics.append(TopicStats(name, count, fresh))
    return ArchiveStats(days=days, outlets=list(outlets.values()), topics=topics, topic=topic)


def sparkline(counts: list[int]) -> str:
    """Counts as a row of block characters, the highest as a full block."""
    blocks = "▁▂▃▄▅▆▇█"
    peak = max(counts, default=0)
    return "".join("·" if c <= 0 else blocks[math.ceil(c * 8 / peak) - 1] for c in counts)


def day_label(value: date | datetime | None) -> str:
    return value.strftime("%Y-%m-%d") if value else "-"
