"""What the pages and the API read from the archive, as plain records; paging by cursor."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import cache
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from crawler.config import SourcesFile, parse_duration
from crawler.db.models import (
    Article,
    ArticleTopic,
    CrawlRun,
    Snapshot,
    Source,
    Story,
    Topic,
    utcnow,
)
from crawler.db.queries import payload_bytes
from crawler.read.export import ArticleFilter, parse_day_or_time
from crawler.read.search import MARK_END, MARK_START, count_matches, search
from crawler.read.show import article_history
from crawler.scheduler.display import iso
from crawler.scheduler.health import (
    FAILED,
    health_problems,
    last_new_article,
    latest_runs,
    next_run_times,
)
from crawler.stories.changes import Edit, changes_since
from crawler.stories.queries import StoryFilter, StorySummary, get_story, list_stories
from crawler.urls import canonicalize

MAX_LIMIT = 100
# Runs whose stats are summed into a source's fallback counts.
FALLBACK_RUNS = 10
CHART_DAYS = 30
RUN_STATUSES = ("running", "finished", "failed", "timed_out", "interrupted")


class WebError(Exception):
    """A request the archive cannot answer: its HTTP status and a one-line message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def bad_request(message: str) -> WebError:
    return WebError(400, message)


# --- parameters -------------------------------------------------------------------------------


def parse_when(value: str | None, name: str) -> date | datetime | None:
    """A since/until value as `crawler search` takes it: a day (2024-07-19, on the
    publication's own calendar, inclusive) or a timestamp (UTC when no offset is given)."""
    if not value or not value.strip():
        return None
    try:
        return parse_day_or_time(value)
    except ValueError:
        raise bad_request(
            f"{name} {value!r} is not a date like 2024-07-19 or a time like 2024-07-19T06:00"
        ) from None


def outlet_names(session: Session) -> list[str]:
    return list(session.scalars(select(Source.name).order_by(Source.name)))


def topic_names(session: Session) -> list[str]:
    return list(session.scalars(select(Topic.name).order_by(Topic.name)))


def require_known(session: Session, outlet: str | None, topic: str | None) -> None:
    """A 400 naming an outlet or topic the archive does not hold."""
    for kind, value, known in (
        ("outlet", outlet, outlet_names),
        ("topic", topic, topic_names),
    ):
        if value:
            names = known(session)
            if value not in names:
                listed = ", ".join(names) or "none"
                raise bad_request(f"no {kind} {value!r} in the archive ({kind}s: {listed})")


def article_filter(
    session: Session,
    outlet: str | None,
    topic: str | None,
    since: str | None,
    until: str | None,
    story: int | None = None,
) -> ArticleFilter:
    """The CLI's filters from request parameters; an unknown outlet, topic or story is a 400."""
    require_known(session, outlet, topic)
    if story is not None and session.get(Story, story) is None:
        raise bad_request(f"no story {story} in the archive")
    return ArticleFilter(
        outlet or None,
        parse_when(since, "since"),
        parse_when(until, "until"),
        topic or None,
        story,
    )


def encode_cursor(**position: Any) -> str:
    raw = json.dumps(position, separators=(",", ":"), sort_keys=True).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(token: str | None, *keys: str) -> dict[str, Any] | None:
    """The position a cursor holds; a 400 for one this service did not hand out."""
    if not token:
        return None
    try:
        position = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except (binascii.Error, ValueError):
        position = None
    if not isinstance(position, dict) or set(position) != set(keys):
        raise bad_request(f"cursor {token!r} is not one this archive handed out")
    return position


def _query_key(query: str, filters: ArticleFilter, all_copies: bool = False) -> str:
    """A short fingerprint of a search, so a cursor is not replayed on another one."""
    text = json.dumps(
        [
            query,
            filters.outlet,
            filters.topic,
            str(filters.since),
            str(filters.until),
            filters.story,
            all_copies,
        ]
    )
    return hashlib.sha256(text.encode()).hexdigest()[:12]


# --- dates ------------------------------------------------------------------------------------


@cache
def outlet_timezones() -> dict[str, ZoneInfo]:
    """Each spider's time zone, by outlet name (the spiders' `timezone`)."""
    from scrapy.spiderloader import SpiderLoader

    from crawler.config import project_settings

    loader = SpiderLoader.from_settings(project_settings())
    zones = {}
    for name in loader.list():
        try:
            zones[name] = ZoneInfo(getattr(loader.load(name), "timezone", "UTC"))
        except (KeyError, ValueError):
            zones[name] = ZoneInfo("UTC")
    return zones


def local_published(
    published_at: datetime | str | None,
    outlet: str,
    day: date | str | None = None,
    precision: str | None = None,
) -> dict[str, Any] | None:
    """The publication moment in the outlet's time zone; a date only where the outlet gave no
    time: precision 'day' (the local day kept when it was stored), or, for a record without a
    precision, a midnight there."""
    if published_at is None:
        return None
    moment = datetime.fromisoformat(published_at) if isinstance(published_at, str) else published_at
    zone = outlet_timezones().get(outlet, ZoneInfo("UTC"))
    local = moment.astimezone(zone)
    day_only = precision == "day" if precision else local.time() == time()
    shown_day = local.date()
    if day_only and day:  # the day the outlet gave, as it was stored
        shown_day = date.fromisoformat(day) if isinstance(day, str) else day
    return {
        "local": local.isoformat(),
        "timezone": str(zone),
        "date": shown_day.isoformat(),
        "time": None if day_only else local.strftime("%H:%M"),
        "shown": shown_day.isoformat()
        if day_only
        else f"{local:%Y-%m-%d %H:%M} ({local.tzname()})",
    }


# --- search -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class SearchPage:
    query: str
    total: int
    offset: int
    hits: list[dict[str, Any]]
    next_cursor: str | None
    previous_cursor: str | None


def search_page(
    session: Session,
    query: str,
    filters: ArticleFilter,
    cursor: str | None,
    limit: int,
    all_copies: bool = False,
) -> SearchPage:
    """One page of ranked hits (snippets marked with search.MARK_START/END) and the total of
    hits (copies of one text are one hit unless `all_copies`), counted for the first page and
    carried in the cursor after it."""
    key = _query_key(query, filters, all_copies)
    position = decode_cursor(cursor, "offset", "query", "total")
    offset, total = 0, None
    if position is not None:
        if position["query"] != key or not all(
            isinstance(position[name], int) for name in ("offset", "total")
        ):
            raise bad_request("cursor belongs to another search; start again without it")
        offset, total = max(0, position["offset"]), position["total"]
    hits = search(session, query, filters, limit=limit, offset=offset, all_copies=all_copies)
    if total is None:
        total = count_matches(session, query, filters, all_copies) if hits else 0
    records = []
    for hit in hits:
        record = hit.as_dict(start=MARK_START, end=MARK_END)
        record["published"] = local_published(
            hit.published_at, hit.outlet, hit.published_date, hit.published_precision
        )
        records.append(record)
    after = offset + len(hits)
    return SearchPage(
        query=query,
        total=total,
        offset=offset,
        hits=records,
        next_cursor=encode_cursor(offset=after, query=key, total=total) if after < total else None,
        previous_cursor=encode_cursor(offset=max(0, offset - limit), query=key, total=total)
        if offset > 0
        else None,
    )


# --- articles ---------------------------------------------------------------------------------


def article_topics(session: Session, article_id: int) -> list[str]:
    return list(
        session.scalars(
            select(Topic.name)
            .join(ArticleTopic, ArticleTopic.topic_id == Topic.id)
            .where(ArticleTopic.article_id == article_id)
            .order_by(Topic.name)
        )
    )


def article_record(session: Session, article_id: int) -> dict[str, Any]:
    """The article as `crawler show --json` gives it, with its topics and local date; 404 when
    there is none."""
    history = article_history(session, article_id)
    if history is None:
        raise WebError(404, f"no article with id {article_id}")
    history["topics"] = article_topics(session, article_id)
    history["published"] = local_published(
        history["published_at"],
        history["outlet"],
        history["published_date"],
        history["published_precision"],
    )
    return history


def articles_page(
    session: Session, filters: ArticleFilter, cursor: str | None, limit: int
) -> dict[str, Any]:
    """Articles newest archived first (by id), `limit` at a time."""
    position = decode_cursor(cursor, "before")
    statement = filters.apply(
        select(
            Article.id,
            Source.name,
            Article.url,
            Article.title,
            Article.published_at,
            Article.published_date,
            Article.published_precision,
        )
        .join(Source, Source.id == Article.source_id)
        .order_by(Article.id.desc())
        .limit(limit + 1)
    )
    if position is not None:
        statement = statement.where(Article.id < int(position["before"]))
    rows = session.execute(statement).all()
    items = [
        {
            "id": row.id,
            "outlet": row.name,
            "url": row.url,
            "title": row.title,
            "published_at": iso(row.published_at),
            "published_date": row.published_date.isoformat() if row.published_date else None,
            "published_precision": row.published_precision,
        }
        for row in rows[:limit]
    ]
    more = len(rows) > limit
    return {
        "articles": items,
        "next_cursor": encode_cursor(before=items[-1]["id"]) if more else None,
    }


def snapshot_of(session: Session, snapshot_id: int) -> tuple[Snapshot, bytes]:
    """A snapshot's row and its exact bytes; 404 when there is none."""
    snapshot = session.get(Snapshot, snapshot_id)
    if snapshot is None:
        raise WebError(404, f"no snapshot with id {snapshot_id}")
    return snapshot, payload_bytes(session, snapshot.sha256)


def snapshot_article(session: Session, snapshot: Snapshot) -> int | None:
    """The article archived from a snapshot's URL, if any (looked up by its indexed canonical
    URL)."""
    return session.scalar(
        select(Article.id)
        .where(
            Article.source_id == snapshot.source_id,
            Article.canonical_url.in_({canonicalize(snapshot.final_url), snapshot.final_url}),
        )
        .order_by(Article.id)
        .limit(1)
    )


# --- runs and sources -------------------------------------------------------------------------


def fallback_counts(stats: dict[str, Any] | None) -> dict[str, int]:
    """The run's uses of fallbacks (`fallback/...` stats), by what fell back."""
    if not stats:
        return {}
    return {
        key.removeprefix("fallback/"): int(value)
        for key, value in stats.items()
        if key.startswith("fallback/") and isinstance(value, int | float)
    }


def run_record(name: str, run: CrawlRun) -> dict[str, Any]:
    """A run as `crawler runs --json` shows it, its fallbacks counted instead of every stat."""
    from crawler.scheduler.health import run_record as cli_record

    record = cli_record(name, run)
    record.pop("stats")
    return {**record, "fallbacks": fallback_counts(run.stats)}


def runs_page(
    session: Session,
    source: str | None,
    status: str | None,
    cursor: str | None,
    limit: int,
) -> dict[str, Any]:
    """Runs newest first (by id), `limit` at a time."""
    if source and source not in outlet_names(session):
        raise bad_request(f"no source {source!r} in the archive")
    if status and status not in RUN_STATUSES:
        raise bad_request(f"status {status!r} is not one of {', '.join(RUN_STATUSES)}")
    position = decode_cursor(cursor, "before")
    statement = (
        select(Source.name, CrawlRun)
        .join(CrawlRun, CrawlRun.source_id == Source.id)
        .order_by(CrawlRun.id.desc())
        .limit(limit + 1)
    )
    if source:
        statement = statement.where(Source.name == source)
    if status:
        statement = statement.where(CrawlRun.status == status)
    if position is not None:
        statement = statement.where(CrawlRun.id < int(position["before"]))
    rows = session.execute(statement).all()
    runs = [run_record(name, run) for name, run in rows[:limit]]
    more = len(rows) > limit
    return {"runs": runs, "next_cursor": encode_cursor(before=runs[-1]["id"]) if more else None}


def _days(today: date) -> list[str]:
    first = today - timedelta(days=CHART_DAYS - 1)
    return [(first + timedelta(days=n)).isoformat() for n in range(CHART_DAYS)]


def run_outcomes(session: Session, now: datetime) -> dict[str, dict[str, dict[str, int]]]:
    """Per source, per UTC day of the last CHART_DAYS days, how many runs ended how."""
    days = _days(now.astimezone(UTC).date())
    start = datetime.combine(date.fromisoformat(days[0]), time(), tzinfo=UTC)
    out: dict[str, dict[str, dict[str, int]]] = {}
    rows = session.execute(
        select(Source.name, CrawlRun.started_at, CrawlRun.status)
        .join(CrawlRun, CrawlRun.source_id == Source.id)
        .where(CrawlRun.started_at >= start)
    )
    for name, started, status in rows:
        per_day = out.setdefault(name, {day: {} for day in days})
        day = started.astimezone(UTC).date().isoformat()
        if day in per_day:
            per_day[day][status] = per_day[day].get(status, 0) + 1
    return out


def sources_overview(
    session: Session, sources: SourcesFile, failures: int = 3, now: datetime | None = None
) -> list[dict[str, Any]]:
    """Every source configured or archived: its schedule, state, health, fallbacks and runs."""
    from crawler.read.stats import collect_stats

    now = now or utcnow()
    figures = {o.outlet: o for o in collect_stats(session, now=now).outlets}
    nexts = next_run_times(session)
    newest = last_new_article(session)
    problems: dict[str, list[str]] = {}
    for problem in health_problems(session, sources.enabled(), failures, now=now):
        problems.setdefault(problem.source, []).append(problem.message)
    recent = latest_runs(session, FALLBACK_RUNS)
    outcomes = run_outcomes(session, now)
    days = _days(now.astimezone(UTC).date())
    names = sorted(set(sources.sources) | set(figures))
    overview = []
    for name in names:
        config = sources.sources.get(name)
        outlet = figures.get(name)
        last_runs = runs_page(session, name, None, None, 5)["runs"] if outlet else []
        fallbacks: dict[str, int] = {}
        for run in recent.get(name, []):
            for key, count in fallback_counts(run.stats).items():
                fallbacks[key] = fallbacks.get(key, 0) + count
        failed_recently = sum(run.status in FAILED for run in recent.get(name, []))
        overview.append(
            {
                "source": name,
                "configured": config is not None,
                "enabled": bool(config and config.enabled),
                "base_url": config.base_url if config else None,
                "every_seconds": config.every.total_seconds() if config and config.every else None,
                "cron": config.cron if config else None,
                "schedule": _schedule(config),
                "next_run": iso(nexts.get(name)) if config and config.enabled else None,
                "last_new_article_at": iso(newest.get(name)),
                "articles": outlet.articles if outlet else 0,
                "articles_per_day": outlet.per_day if outlet else dict.fromkeys(days, 0),
                "healthy": not problems.get(name),
                "problems": problems.get(name, []),
                "failed_of_last_runs": [failed_recently, len(recent.get(name, []))],
                "fallbacks": dict(sorted(fallbacks.items())),
                "run_outcomes": outcomes.get(name, {day: {} for day in days}),
                "last_runs": last_runs,
            }
        )
    return overview


def _schedule(config: Any) -> str:
    if config is None:
        return "not in the sources file"
    from crawler.scheduler.display import format_duration

    when = f"cron {config.cron}" if config.cron else f"every {format_duration(config.every)}"
    return when if config.enabled else f"{when} (disabled)"


def topics_list(session: Session) -> list[dict[str, Any]]:
    rows = session.execute(
        select(Topic.name, func.count(ArticleTopic.article_id), Topic.applied_at)
        .outerjoin(ArticleTopic, ArticleTopic.topic_id == Topic.id)
        .group_by(Topic.id, Topic.name, Topic.applied_at)
        .order_by(Topic.name)
    )
    return [
        {"topic": name, "articles": count, "applied_at": iso(applied)}
        for name, count, applied in rows
    ]


# --- stories and changes ----------------------------------------------------------------------


def _back(value: str) -> datetime | None:
    """A duration (2d, 12h) as the moment that long ago; None for anything else."""
    try:
        back = parse_duration(value)
    except ValueError:
        return None
    return utcnow() - back


def moment(value: str | None, name: str) -> date | datetime | None:
    """A since/until value as `crawler stories` takes it: a duration back from now (2d, 12h),
    or as `crawler search` reads it (a local day, inclusive, or a timestamp)."""
    if not value or not value.strip():
        return None
    back = _back(value)
    if back is not None:
        return back
    try:
        return parse_when(value, name)
    except WebError:
        raise bad_request(
            f"{name} {value!r} is not a duration like 2d or 12h, a date like 2024-07-19 "
            "or a time like 2024-07-19T06:00"
        ) from None


def instant(value: str, name: str) -> datetime:
    """A since value as `crawler changes` takes it (when edits were made): a duration back
    from now, a timestamp, or a day from its start in UTC."""
    parsed = moment(value, name)
    if isinstance(parsed, datetime):
        return parsed
    assert parsed is not None
    return datetime.combine(parsed, time(), tzinfo=UTC)


@dataclass(frozen=True)
class StoryPageFilter(StoryFilter):
    """The CLI's story filters, and the position after which a page starts."""

    after: tuple[datetime, int] | None = None  # (last_published_at, id) of the previous page's last

    def conditions(self) -> tuple[list[str], dict[str, Any]]:
        where, params = super().conditions()
        if self.after is not None:
            where.append(
                "(stories.last_published_at < :after_newest OR (stories.last_published_at"
                " = :after_newest AND stories.id < :after_id))"
            )
            params |= {"after_newest": self.after[0], "after_id": self.after[1]}
        return where, params


def story_filter(
    session: Session,
    since: str | None,
    until: str | None,
    topic: str | None,
    outlet: str | None,
    min_outlets: int,
) -> StoryFilter:
    """`crawler stories`' filters from request parameters; an unknown outlet or topic is a 400."""
    require_known(session, outlet, topic)
    return StoryFilter(
        since=moment(since, "since"),
        until=moment(until, "until"),
        topic=topic or None,
        outlet=outlet or None,
        min_outlets=min_outlets,
    )


def _story_key(filters: StoryFilter) -> str:
    """A fingerprint of the filters, so a cursor is not replayed on other ones (a duration's
    moment moves with the clock: the fingerprint keeps only what the user chose)."""
    text = json.dumps([filters.topic, filters.outlet, filters.min_outlets])
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def stories_page(
    session: Session, filters: StoryFilter, cursor: str | None, limit: int
) -> dict[str, Any]:
    """Stories newest first (by their latest article) as `crawler stories --json` gives them,
    `limit` at a time."""
    position = decode_cursor(cursor, "newest", "id", "filters")
    after = None
    if position is not None:
        if position["filters"] != _story_key(filters) or not isinstance(position["id"], int):
            raise bad_request("cursor belongs to other filters; start again without it")
        try:
            after = (datetime.fromisoformat(position["newest"]), position["id"])
        except (TypeError, ValueError):
            raise bad_request(f"cursor {cursor!r} is not one this archive handed out") from None
    paged = StoryPageFilter(**vars(filters), after=after)
    found = list_stories(session, paged, limit + 1)
    shown = found[:limit]
    next_cursor = None
    if len(found) > limit:
        last = shown[-1]
        next_cursor = encode_cursor(
            newest=last.last_published_at.isoformat(), id=last.id, filters=_story_key(filters)
        )
    return {"stories": [s.as_dict() for s in shown], "next_cursor": next_cursor}


def story_record(session: Session, story_id: int) -> dict[str, Any]:
    """One story as `crawler stories --json` gives it; 404 when there is none."""
    story: StorySummary | None = get_story(session, story_id)
    if story is None:
        raise WebError(404, f"no story with id {story_id}")
    return story.as_dict()


def _changes_key(since: str, outlet: str | None, topic: str | None) -> str:
    """A fingerprint of the changes' filters, so a cursor is not replayed on other ones."""
    text = json.dumps([since, outlet or None, topic or None])
    return hashlib.sha256(text.encode()).hexdigest()[:12]


@dataclass(frozen=True)
class ChangesPage:
    since: datetime
    edits: list[Edit]
    next_cursor: str | None


def edits_since(
    session: Session,
    since: str | None,
    outlet: str | None,
    topic: str | None,
    cursor: str | None,
    limit: int,
) -> ChangesPage:
    """`crawler changes`: every edit since then (7 days back by default), newest first,
    `limit` at a time."""
    require_known(session, outlet, topic)
    since = since.strip() if since and since.strip() else "7d"
    start = instant(since, "since")
    key = _changes_key(since, outlet, topic)
    position = decode_cursor(cursor, "changed", "id", "filters")
    before = None
    if position is not None:
        if position["filters"] != key or not isinstance(position["id"], int):
            raise bad_request("cursor belongs to other filters; start again without it")
        try:
            before = (datetime.fromisoformat(position["changed"]), position["id"])
        except (TypeError, ValueError):
            raise bad_request(f"cursor {cursor!r} is not one this archive handed out") from None
    found = changes_since(session, start, outlet or None, topic or None, limit + 1, before)
    shown = found[:limit]
    next_cursor = None
    if len(found) > limit:
        last = shown[-1]
        next_cursor = encode_cursor(
            changed=last.changed_at.isoformat(), id=last.version_id, filters=key
        )
    return ChangesPage(start, shown, next_cursor)
