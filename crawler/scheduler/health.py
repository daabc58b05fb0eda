"""What the operator asks about: recent runs, each source's state, and which sources are unwell."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import MetaData, Table, func, inspect, select
from sqlalchemy.orm import Session

from crawler.config import SourceConfig
from crawler.db.models import Article, CrawlRun, Source, utcnow
from crawler.scheduler.display import format_duration, iso
from crawler.scheduler.jobs import JOBS_TABLE, source_of

# Statuses that count against a source; an interrupted run was stopped, not broken, and
# says nothing either way.
FAILED = ("failed", "timed_out")
NEUTRAL = ("running", "interrupted")


def recent_runs(
    session: Session, source: str | None = None, limit: int = 20
) -> list[dict[str, Any]]:
    """The newest runs first, as plain records (the shape of `crawler runs --json`)."""
    query = (
        select(Source.name, CrawlRun)
        .join(CrawlRun, CrawlRun.source_id == Source.id)
        .order_by(CrawlRun.started_at.desc(), CrawlRun.id.desc())
        .limit(limit)
    )
    if source is not None:
        query = query.where(Source.name == source)
    records = []
    for name, run in session.execute(query):
        records.append(run_record(name, run))
    return records


def run_record(name: str, run: CrawlRun) -> dict[str, Any]:
    """A run as `crawler runs --json` (and the web API) show it."""
    took = (run.finished_at - run.started_at).total_seconds() if run.finished_at else None
    return {
        "id": run.id,
        "source": name,
        "trigger": run.trigger,
        "status": run.status,
        "started_at": iso(run.started_at),
        "finished_at": iso(run.finished_at),
        "duration_seconds": round(took, 3) if took is not None else None,
        "pages": run.pages,
        "articles_new": run.articles_new,
        "articles_updated": run.articles_updated,
        "articles_unchanged": run.articles_unchanged,
        "articles_skipped": run.articles_skipped,
        "articles_invalid": run.articles_invalid,
        "errors": run.errors,
        "error_log": run.error_log,
        "walk": run.walk,
        "stats": run.stats,  # Scrapy's counters: fallback/*, charset/*, downloader/*
    }


def known_source_names(session: Session) -> set[str]:
    return set(session.scalars(select(Source.name)))


def next_run_times(session: Session) -> dict[str, datetime]:
    """When the scheduler will run each source next (a pending retry counts), from its job store."""
    bind = session.get_bind()
    if not inspect(bind).has_table(JOBS_TABLE):
        return {}
    # read the two plain columns; the pickled job itself is the scheduler's business
    jobs = Table(JOBS_TABLE, MetaData(), autoload_with=bind)
    out: dict[str, datetime] = {}
    for job_id, stamp in session.execute(select(jobs.c.id, jobs.c.next_run_time)):
        name = source_of(job_id)
        if name is None or stamp is None:
            continue
        moment = datetime.fromtimestamp(float(stamp), UTC)
        out[name] = min(out.get(name, moment), moment)
    return out


def last_new_article(session: Session) -> dict[str, datetime]:
    """When each source last brought an article the archive did not have."""
    rows = session.execute(
        select(Source.name, func.max(Article.first_seen_at))
        .join(Article, Article.source_id == Source.id)
        .group_by(Source.name)
    )
    return {name: _aware(moment) for name, moment in rows if moment is not None}


def _aware(moment: datetime | str) -> datetime:
    # func.max() loses the column type on SQLite, which hands back the stored text
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def latest_runs(session: Session, per_source: int) -> dict[str, list[CrawlRun]]:
    """The newest `per_source` runs of every source that ended finished or failed, newest
    first."""
    ranked = (
        select(
            CrawlRun.id,
            func.row_number()
            .over(
                partition_by=CrawlRun.source_id,
                order_by=(CrawlRun.started_at.desc(), CrawlRun.id.desc()),
            )
            .label("rank"),
        )
        .where(CrawlRun.status.not_in(NEUTRAL))
        .subquery()
    )
    query = (
        select(Source.name, CrawlRun)
        .join(CrawlRun, CrawlRun.source_id == Source.id)
        .join(ranked, ranked.c.id == CrawlRun.id)
        .where(ranked.c.rank <= per_source)
        .order_by(CrawlRun.started_at.desc(), CrawlRun.id.desc())
    )
    out: dict[str, list[CrawlRun]] = {}
    for name, run in session.execute(query):
        out.setdefault(name, []).append(run)
    return out


def first_run_started(session: Session) -> dict[str, datetime]:
    rows = session.execute(
        select(Source.name, func.min(CrawlRun.started_at))
        .join(CrawlRun, CrawlRun.source_id == Source.id)
        .group_by(Source.name)
    )
    return {name: _aware(moment) for name, moment in rows if moment is not None}


@dataclass(frozen=True)
class SourceState:
    """A configured source as `crawler sources` shows it."""

    source: SourceConfig
    next_run: datetime | None
    last_run: CrawlRun | None
    last_new_article: datetime | None

    def record(self) -> dict[str, Any]:
        run = self.last_run
        return {
            "source": self.source.name,
            "enabled": self.source.enabled,
            "every": self.source.every.total_seconds() if self.source.every else None,
            "cron": self.source.cron,
            "base_url": self.source.base_url,
            "next_run": iso(self.next_run),
            "last_run_started_at": iso(run.started_at) if run else None,
            "last_run_status": run.status if run else None,
            "last_run_articles_new": run.articles_new if run else None,
            "last_new_article_at": iso(self.last_new_article),
        }


def source_states(
    session: Session, sources: list[SourceConfig], last_runs: dict[str, CrawlRun]
) -> list[SourceState]:
    nexts = next_run_times(session)
    newest = last_new_article(session)
    return [
        SourceState(
            source,
            nexts.get(source.name) if source.enabled else None,
            last_runs.get(source.name),
            newest.get(source.name),
        )
        for source in sources
    ]


@dataclass(frozen=True)
class Problem:
    source: str
    message: str


def health_problems(
    session: Session, sources: list[SourceConfig], failures: int, now: datetime | None = None
) -> list[Problem]:
    """Enabled sources whose last `failures` runs all failed, or that found nothing new for
    longer than their `stale_after` (counted from their first run when they never found any)."""
    now = now or utcnow()
    runs = latest_runs(session, failures)
    newest = last_new_article(session)
    first = first_run_started(session)
    problems = []
    for source in sources:
        if not source.enabled:
            continue
        recent = runs.get(source.name, [])
        if len(recent) >= failures and all(run.status in FAILED for run in recent):
            statuses = ", ".join(run.status for run in recent)
            problems.append(Problem(source.name, f"the last {failures} run(s) failed ({statuses})"))
        elif source.name not in newest and recent and all(run.status in FAILED for run in recent):
            # fewer failures than the threshold, but nothing ever worked: a new source that
            # cannot be reached is not healthy
            problems.append(
                Problem(
                    source.name,
                    f"every run so far failed ({len(recent)}) and nothing was ever archived",
                )
            )
        since = newest.get(source.name) or first.get(source.name)
        if since is not None and now - since > source.stale_after:
            what = "no new article" if source.name in newest else "no article at all"
            problems.append(
                Problem(
                    source.name,
                    f"{what} for {format_duration(now - since)} "
                    f"(stale_after {format_duration(source.stale_after)})",
                )
            )
    return problems
