"""What the commands and web pages read: stories, a story's articles, an article's copies.

Every function takes a Reader (crawler/db/reader.py) or an open SQLAlchemy session and returns
plain dataclasses with an `as_dict()` ready for JSON, so a command and a page show the same thing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from crawler.db.reader import Reader


def _iso(value: date | None) -> str | None:
    return value.isoformat() if value else None


@dataclass(frozen=True)
class LinkedArticle:
    """An article as a story or a list of copies shows it."""

    id: int
    url: str
    outlet: str
    title: str
    published_at: datetime | None
    reprint_of: int | None
    similarity: float | None
    story_id: int | None
    published_date: date | None = None  # the publication's local day
    published_precision: str | None = None  # 'day': the outlet gave only the day

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "url": self.url,
            "outlet": self.outlet,
            "title": self.title,
            "published_at": _iso(self.published_at),
            "published_date": _iso(self.published_date),
            "published_precision": self.published_precision,
            "reprint_of": self.reprint_of,
            "similarity": self.similarity,
            "story_id": self.story_id,
        }


@dataclass(frozen=True)
class StorySummary:
    id: int
    label: str
    first_published_at: datetime
    last_published_at: datetime
    article_count: int
    outlet_count: int
    articles: list[LinkedArticle] = field(default_factory=list)

    @property
    def outlets(self) -> list[str]:
        """The story's outlets, the first to report it first."""
        return list(dict.fromkeys(a.outlet for a in self.articles))

    @property
    def first_reporter(self) -> str | None:
        return self.articles[0].outlet if self.articles else None

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "label": self.label,
            "first_published_at": _iso(self.first_published_at),
            "last_published_at": _iso(self.last_published_at),
            "article_count": self.article_count,
            "outlet_count": self.outlet_count,
            "outlets": self.outlets,
            "first_reporter": self.first_reporter,
            "articles": [a.as_dict() for a in self.articles],
        }


# No local day starts more than 14 hours before its UTC namesake nor ends more than 12 after.
_EARLIEST_ZONE, _LATEST_ZONE = timedelta(hours=14), timedelta(hours=12)


@dataclass(frozen=True)
class StoryFilter:
    """Which stories: reported on or after `since`, begun before `until` (a `date` is a local
    day, inclusive, as an article's publication day: a story with an article on it or after,
    on it or before; a `datetime` an instant), with an article of the topic or outlet."""

    since: date | datetime | None = None
    until: date | datetime | None = None
    topic: str | None = None
    outlet: str | None = None
    min_outlets: int = 1

    def conditions(self) -> tuple[list[str], dict[str, Any]]:
        """The SQL conditions of matching stories (on `stories`) and their parameters."""
        where: list[str] = []
        params: dict[str, Any] = {}
        if isinstance(self.since, datetime):
            where.append("stories.last_published_at >= :story_since")
            params["story_since"] = self.since
        elif self.since is not None:
            start = datetime.combine(self.since, time(), tzinfo=UTC)
            where.append("stories.last_published_at >= :story_since_early")
            where.append(
                _member_published(
                    "articles.published_date >= :story_since_day",
                    "article_signatures.published_at >= :story_since_start",
                )
            )
            params |= {
                "story_since_early": start - _EARLIEST_ZONE,
                "story_since_day": self.since,
                "story_since_start": start,
            }
        if isinstance(self.until, datetime):
            where.append("stories.first_published_at < :story_until")
            params["story_until"] = self.until
        elif self.until is not None:
            end = datetime.combine(self.until + timedelta(days=1), time(), tzinfo=UTC)
            where.append("stories.first_published_at < :story_until_late")
            where.append(
                _member_published(
                    "articles.published_date <= :story_until_day",
                    "article_signatures.published_at < :story_until_end",
                )
            )
            params |= {
                "story_until_late": end + _LATEST_ZONE,
                "story_until_day": self.until,
                "story_until_end": end,
            }
        if self.min_outlets > 1:
            where.append("stories.outlet_count >= :story_min_outlets")
            params["story_min_outlets"] = self.min_outlets
        if self.outlet:
            where.append(
                "EXISTS (SELECT 1 FROM article_signatures, sources"
                " WHERE article_signatures.story_id = stories.id"
                " AND article_signatures.source_id = sources.id AND sources.name = :story_outlet)"
            )
            params["story_outlet"] = self.outlet
        if self.topic:
            where.append(
                "EXISTS (SELECT 1 FROM article_signatures, article_topics, topics"
                " WHERE article_signatures.story_id = stories.id"
                " AND article_topics.article_id = article_signatures.article_id"
                " AND article_topics.topic_id = topics.id AND topics.name = :story_topic)"
            )
            params["story_topic"] = self.topic
        return where, params


def _member_published(on_day: str, otherwise: str) -> str:
    """The story has an article whose publication day meets `on_day`, or, for one without a
    local day (no publication date: placed by when it was seen), whose place in time meets
    `otherwise`."""
    return (
        "EXISTS (SELECT 1 FROM article_signatures, articles"
        " WHERE article_signatures.story_id = stories.id"
        " AND articles.id = article_signatures.article_id"
        f" AND ({on_day} OR (articles.published_date IS NULL AND {otherwise})))"
    )


_LINKED = (
    "SELECT articles.id, articles.url, sources.name, articles.title, articles.published_at,"
    " article_signatures.reprint_of, article_signatures.similarity, article_signatures.story_id,"
    " articles.published_date, articles.published_precision"
    " FROM articles JOIN article_signatures ON article_signatures.article_id = articles.id"
    " JOIN sources ON sources.id = articles.source_id WHERE {condition}"
    # earliest first, as copies are ordered: an article naming another source comes after
    " ORDER BY article_signatures.published_at, articles.original_source IS NOT NULL,"
    " articles.id"
)


def _linked(reader: Reader, condition: str, params: dict[str, Any]) -> list[LinkedArticle]:
    rows = reader.rows(_LINKED.format(condition=condition), params)
    return [
        LinkedArticle(
            id=row.id,
            url=row.url,
            outlet=row.name,
            title=row.title,
            published_at=row.published_at,
            reprint_of=row.reprint_of,
            similarity=row.similarity,
            story_id=row.story_id,
            published_date=row.published_date,
            published_precision=row.published_precision,
        )
        for row in rows
    ]


_STORY = (
    "SELECT stories.id, stories.label, stories.first_published_at, stories.last_published_at,"
    " stories.article_count, stories.outlet_count FROM stories"
)


def list_stories(
    db: Any, filters: StoryFilter | None = None, limit: int = 50
) -> list[StorySummary]:
    """Stories newest first (by their latest article), each with its articles, earliest first."""
    reader = Reader.of(db)
    where, params = (filters or StoryFilter()).conditions()
    stories = reader.rows(
        f"{_STORY} WHERE {' AND '.join(where) or '1 = 1'}"
        " ORDER BY stories.last_published_at DESC, stories.id DESC LIMIT :limit",
        params | {"limit": limit},
    )
    if not stories:
        return []
    members: dict[int, list[LinkedArticle]] = {s.id: [] for s in stories}
    ids = {"ids": list(members)}
    for article in _linked(reader, "article_signatures.story_id IN :ids", ids):
        assert article.story_id is not None
        members[article.story_id].append(article)
    return [_summary(story, members[story.id]) for story in stories]


def _summary(story: Any, articles: list[LinkedArticle]) -> StorySummary:
    return StorySummary(
        id=story.id,
        label=story.label,
        first_published_at=story.first_published_at,
        last_published_at=story.last_published_at,
        article_count=story.article_count,
        outlet_count=story.outlet_count,
        articles=articles,
    )


def get_story(db: Any, story_id: int) -> StorySummary | None:
    """One story with its articles, earliest first; None when there is no such story."""
    reader = Reader.of(db)
    story = reader.first(f"{_STORY} WHERE stories.id = :id", {"id": story_id})
    if story is None:
        return None
    articles = _linked(reader, "article_signatures.story_id = :id", {"id": story_id})
    return _summary(story, articles)


def _signature(reader: Reader, column: str, article_id: int) -> Any:
    return reader.scalar(
        f"SELECT {column} FROM article_signatures WHERE article_id = :id", {"id": article_id}
    )


def story_of(db: Any, article_id: int) -> StorySummary | None:
    """The story the article belongs to, if any."""
    reader = Reader.of(db)
    story_id = _signature(reader, "story_id", article_id)
    return get_story(reader, story_id) if story_id is not None else None


def article_copies(db: Any, article_id: int) -> list[LinkedArticle]:
    """Every other article of the same text (the original first), the article itself left out."""
    reader = Reader.of(db)
    root = _signature(reader, "reprint_of", article_id) or article_id
    # two indexed lookups (an OR of the two columns would read the whole table)
    group = _linked(reader, "article_signatures.article_id = :root", {"root": root})
    group += _linked(reader, "article_signatures.reprint_of = :root", {"root": root})
    return [a for a in group if a.id != article_id]


def article_links(db: Any, ids: list[int]) -> dict[int, tuple[int | None, int | None]]:
    """(reprint_of, story_id) of each article that has a signature."""
    if not ids:
        return {}
    rows = Reader.of(db).rows(
        "SELECT article_id, reprint_of, story_id FROM article_signatures WHERE article_id IN :ids",
        {"ids": ids},
    )
    return {row[0]: (row[1], row[2]) for row in rows}


def copy_counts(db: Any, roots: list[int]) -> dict[int, int]:
    """How many articles copy each of these originals."""
    if not roots:
        return {}
    rows = Reader.of(db).rows(
        "SELECT reprint_of, count(*) FROM article_signatures WHERE reprint_of IN :roots"
        " GROUP BY reprint_of",
        {"roots": roots},
    )
    return {row[0]: row[1] for row in rows if row[0] is not None}


def article_context(db: Any, article_id: int) -> dict[str, Any]:
    """What `crawler show` adds about an article: the text it copies, its copies, its story."""
    reader = Reader.of(db)
    links = article_links(reader, [article_id]).get(article_id, (None, None))
    similarity = _signature(reader, "similarity", article_id)
    story = story_of(reader, article_id)
    return {
        "reprint_of": links[0],
        "similarity": similarity,
        "story_id": links[1],
        "copies": [a.as_dict() for a in article_copies(reader, article_id)],
        "story": story.as_dict() if story is not None else None,
    }


@dataclass(frozen=True)
class CopyInfo:
    """How a search hit stands among copies: the other articles of its text, its links."""

    copies: int
    reprint_of: int | None
    story_id: int | None


def collapse_copies(db: Any, ids: list[int], expand: bool = False) -> dict[int, CopyInfo]:
    """For ranked article ids: the best-ranked article of each text with its copies counted
    (every id when `expand`), in rank order."""
    reader = Reader.of(db)
    links = article_links(reader, ids)
    roots = {i: links.get(i, (None, None))[0] or i for i in ids}
    counts = copy_counts(reader, sorted(set(roots.values())))
    kept: dict[int, CopyInfo] = {}
    seen: set[int] = set()
    for article_id in ids:
        root = roots[article_id]
        if root in seen and not expand:
            continue
        seen.add(root)
        reprint_of, story_id = links.get(article_id, (None, None))
        kept[article_id] = CopyInfo(counts.get(root, 0), reprint_of, story_id)
    return kept
