"""What the commands and web pages read: stories, a story's articles, an article's copies.

Every function takes an open session and returns plain dataclasses with an `as_dict()` ready
for JSON, so a command and a page show the same thing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import Select, and_, exists, func, or_, select
from sqlalchemy.orm import Session

from crawler.db.models import Article, ArticleSignature, ArticleTopic, Source, Story, Topic


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

    def apply(self, statement: Select[Any]) -> Select[Any]:
        """The statement (on Story) narrowed to matching stories."""
        if isinstance(self.since, datetime):
            statement = statement.where(Story.last_published_at >= self.since)
        elif self.since is not None:
            start = datetime.combine(self.since, time(), tzinfo=UTC)
            statement = statement.where(
                Story.last_published_at >= start - _EARLIEST_ZONE,
                _member_published(
                    Article.published_date >= self.since, ArticleSignature.published_at >= start
                ),
            )
        if isinstance(self.until, datetime):
            statement = statement.where(Story.first_published_at < self.until)
        elif self.until is not None:
            end = datetime.combine(self.until + timedelta(days=1), time(), tzinfo=UTC)
            statement = statement.where(
                Story.first_published_at < end + _LATEST_ZONE,
                _member_published(
                    Article.published_date <= self.until, ArticleSignature.published_at < end
                ),
            )
        if self.min_outlets > 1:
            statement = statement.where(Story.outlet_count >= self.min_outlets)
        if self.outlet:
            statement = statement.where(
                exists()
                .where(ArticleSignature.story_id == Story.id)
                .where(ArticleSignature.source_id == Source.id, Source.name == self.outlet)
            )
        if self.topic:
            statement = statement.where(
                exists()
                .where(ArticleSignature.story_id == Story.id)
                .where(
                    ArticleTopic.article_id == ArticleSignature.article_id,
                    ArticleTopic.topic_id == Topic.id,
                    Topic.name == self.topic,
                )
            )
        return statement


def _member_published(on_day: Any, otherwise: Any) -> Any:
    """The story has an article whose publication day meets `on_day`, or, for one without a
    local day (no publication date: placed by when it was seen), whose place in time meets
    `otherwise`."""
    return (
        exists()
        .where(ArticleSignature.story_id == Story.id, Article.id == ArticleSignature.article_id)
        .where(or_(on_day, and_(Article.published_date.is_(None), otherwise)))
    )


def _linked(session: Session, condition: Any) -> list[LinkedArticle]:
    rows = session.execute(
        select(
            Article.id,
            Article.url,
            Source.name,
            Article.title,
            Article.published_at,
            ArticleSignature.reprint_of,
            ArticleSignature.similarity,
            ArticleSignature.story_id,
            ArticleSignature.published_at.label("placed_at"),
            Article.published_date,
            Article.published_precision,
        )
        .join(ArticleSignature, ArticleSignature.article_id == Article.id)
        .join(Source, Source.id == Article.source_id)
        .where(condition)
        # earliest first, as copies are ordered: an article naming another source comes after
        .order_by(ArticleSignature.published_at, Article.original_source.is_not(None), Article.id)
    )
    return [
        LinkedArticle(
            *row[:8], published_date=row.published_date, published_precision=row.published_precision
        )
        for row in rows
    ]


def list_stories(
    session: Session, filters: StoryFilter | None = None, limit: int = 50
) -> list[StorySummary]:
    """Stories newest first (by their latest article), each with its articles, earliest first."""
    filters = filters or StoryFilter()
    stories = list(
        session.scalars(
            filters.apply(select(Story))
            .order_by(Story.last_published_at.desc(), Story.id.desc())
            .limit(limit)
        )
    )
    if not stories:
        return []
    members: dict[int, list[LinkedArticle]] = {s.id: [] for s in stories}
    for article in _linked(session, ArticleSignature.story_id.in_(list(members))):
        assert article.story_id is not None
        members[article.story_id].append(article)
    return [_summary(story, members[story.id]) for story in stories]


def _summary(story: Story, articles: list[LinkedArticle]) -> StorySummary:
    return StorySummary(
        id=story.id,
        label=story.label,
        first_published_at=story.first_published_at,
        last_published_at=story.last_published_at,
        article_count=story.article_count,
        outlet_count=story.outlet_count,
        articles=articles,
    )


def get_story(session: Session, story_id: int) -> StorySummary | None:
    """One story with its articles, earliest first; None when there is no such story."""
    story = session.get(Story, story_id)
    if story is None:
        return None
    return _summary(story, _linked(session, ArticleSignature.story_id == story_id))


def story_of(session: Session, article_id: int) -> StorySummary | None:
    """The story the article belongs to, if any."""
    story_id = session.scalar(
        select(ArticleSignature.story_id).where(ArticleSignature.article_id == article_id)
    )
    return get_story(session, story_id) if story_id is not None else None


def article_copies(session: Session, article_id: int) -> list[LinkedArticle]:
    """Every other article of the same text (the original first), the article itself left out."""
    root = session.scalar(
        select(ArticleSignature.reprint_of).where(ArticleSignature.article_id == article_id)
    )
    root = root or article_id
    # two indexed lookups (an OR of the two columns would read the whole table)
    group = _linked(session, ArticleSignature.article_id == root) + _linked(
        session, ArticleSignature.reprint_of == root
    )
    return [a for a in group if a.id != article_id]


def article_links(session: Session, ids: list[int]) -> dict[int, tuple[int | None, int | None]]:
    """(reprint_of, story_id) of each article that has a signature."""
    if not ids:
        return {}
    rows = session.execute(
        select(
            ArticleSignature.article_id, ArticleSignature.reprint_of, ArticleSignature.story_id
        ).where(ArticleSignature.article_id.in_(ids))
    )
    return {row[0]: (row[1], row[2]) for row in rows}


def copy_counts(session: Session, roots: list[int]) -> dict[int, int]:
    """How many articles copy each of these originals."""
    if not roots:
        return {}
    rows = session.execute(
        select(ArticleSignature.reprint_of, func.count())
        .where(ArticleSignature.reprint_of.in_(roots))
        .group_by(ArticleSignature.reprint_of)
    )
    return {row[0]: row[1] for row in rows if row[0] is not None}


def article_context(session: Session, article_id: int) -> dict[str, Any]:
    """What `crawler show` adds about an article: the text it copies, its copies, its story."""
    links = article_links(session, [article_id]).get(article_id, (None, None))
    similarity = session.scalar(
        select(ArticleSignature.similarity).where(ArticleSignature.article_id == article_id)
    )
    story = story_of(session, article_id)
    return {
        "reprint_of": links[0],
        "similarity": similarity,
        "story_id": links[1],
        "copies": [a.as_dict() for a in article_copies(session, article_id)],
        "story": story.as_dict() if story is not None else None,
    }


@dataclass(frozen=True)
class CopyInfo:
    """How a search hit stands among copies: the other articles of its text, its links."""

    copies: int
    reprint_of: int | None
    story_id: int | None


def collapse_copies(session: Session, ids: list[int], expand: bool = False) -> dict[int, CopyInfo]:
    """For ranked article ids: the best-ranked article of each text with its copies counted
    (every id when `expand`), in rank order."""
    links = article_links(session, ids)
    roots = {i: links.get(i, (None, None))[0] or i for i in ids}
    counts = copy_counts(session, sorted(set(roots.values())))
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
