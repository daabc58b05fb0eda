"""Figures about the archive: per outlet and per topic (`crawler stats`)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from crawler.db.reader import Reader
from crawler.scheduler.health import newest_runs

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


# Articles tagged with the topic :topic.
TAGGED = (
    "SELECT article_topics.article_id FROM article_topics"
    " JOIN topics ON topics.id = article_topics.topic_id WHERE topics.name = :topic"
)


def _day(reader: Reader, column: str) -> str:
    """The UTC calendar day of a timestamp column, as 'YYYY-MM-DD' text."""
    if reader.dialect == "postgresql":
        return f"to_char(timezone('UTC', {column}), 'YYYY-MM-DD')"
    return f"substr({column}, 1, 10)"  # SQLite keeps 'YYYY-MM-DD HH:MM:SS' in UTC


def collect_stats(
    db: Any,
    *,
    topic: str | None = None,
    now: datetime | None = None,
    fingerprints: dict[str, str] | None = None,
) -> ArchiveStats:
    """Every outlet's and topic's figures; `topic` narrows the outlets' figures to its articles.

    `db` is a Reader or a SQLAlchemy session. `fingerprints` (topic name -> fingerprint of the
    topics file) marks which topics' tags are up to date.
    """
    reader = Reader.of(db)
    today = (now or datetime.now(UTC)).astimezone(UTC).date()
    first_day = today - timedelta(days=DAYS - 1)
    days = [(first_day + timedelta(days=n)).isoformat() for n in range(DAYS)]
    outlets = {
        source_id: OutletStats(name, per_day=dict.fromkeys(days, 0))
        for source_id, name in reader.rows("SELECT id, name FROM sources ORDER BY name")
    }
    narrowed = f" AND id IN ({TAGGED})" if topic is not None else ""
    totals = reader.rows(
        "SELECT source_id, count(*), min(published_at) AS oldest_at,"
        f" max(published_at) AS newest_at FROM articles WHERE 1 = 1{narrowed}"
        " GROUP BY source_id",
        {"topic": topic},
    )
    for source_id, count, oldest, newest in totals:
        outlet = outlets[source_id]
        outlet.articles, outlet.oldest, outlet.newest = count, oldest, newest

    start = datetime.combine(first_day, time(), tzinfo=UTC)
    end = datetime.combine(today + timedelta(days=1), time(), tzinfo=UTC)
    day = _day(reader, "published_at")
    recent = reader.rows(
        f"SELECT source_id, {day} AS day, count(*) FROM articles"
        f" WHERE published_at >= :start AND published_at < :end{narrowed}"
        f" GROUP BY source_id, {day}",
        {"start": start, "end": end, "topic": topic},
    )
    for source_id, when, count in recent:
        outlets[source_id].per_day[str(when)] = count

    for run in newest_runs(reader).values():
        outlets[run.source_id].last_run = LastRun(
            run.started_at, run.finished_at, run.status, run.articles_new
        )

    tagged = reader.rows(
        "SELECT topics.name, count(article_topics.article_id) FROM topics"
        " LEFT OUTER JOIN article_topics ON article_topics.topic_id = topics.id"
        + (" WHERE topics.name = :topic" if topic is not None else "")
        + " GROUP BY topics.id, topics.name ORDER BY topics.name",
        {"topic": topic},
    )
    applied = dict(reader.rows("SELECT name, fingerprint FROM topics"))
    topics = []
    for name, count in tagged:
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
