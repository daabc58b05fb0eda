"""What the operator asks about: recent runs, each source's state, and which sources are unwell."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from crawler.config import SourceConfig
from crawler.db.reader import Reader, stored_json
from crawler.scheduler.display import format_duration, iso
from crawler.scheduler.jobs import JOBS_TABLE, source_of

# Statuses that count against a source; an interrupted run was stopped, not broken, and
# says nothing either way.
FAILED = ("failed", "timed_out")
NEUTRAL = ("running", "interrupted")

# A run as the queries below read it: the attributes of models.CrawlRun.
RUN_COLUMNS = (
    "crawl_runs.id, crawl_runs.source_id, crawl_runs.started_at, crawl_runs.finished_at, "
    "crawl_runs.status, crawl_runs.trigger, crawl_runs.pages, crawl_runs.articles_new, "
    "crawl_runs.articles_updated, crawl_runs.articles_unchanged, crawl_runs.articles_skipped, "
    "crawl_runs.articles_invalid, crawl_runs.errors, crawl_runs.error_log, crawl_runs.stats, "
    "crawl_runs.walk"
)


def _run(row: Any) -> Any:
    """A run's row with its Scrapy counters as a dict (SQLite hands back the JSON text)."""
    return row._replace(stats=stored_json(row.stats))


def recent_runs(db: Any, source: str | None = None, limit: int = 20) -> list[dict[str, Any]]:
    """The newest runs first, as plain records (the shape of `crawler runs --json`)."""
    reader = Reader.of(db)
    rows = reader.rows(
        f"SELECT sources.name AS source_name, {RUN_COLUMNS} FROM sources"
        " JOIN crawl_runs ON crawl_runs.source_id = sources.id"
        + (" WHERE sources.name = :source" if source is not None else "")
        + " ORDER BY crawl_runs.started_at DESC, crawl_runs.id DESC LIMIT :limit",
        {"source": source, "limit": limit},
    )
    return [run_record(row.source_name, _run(row)) for row in rows]


def run_record(name: str, run: Any) -> dict[str, Any]:
    """A run (a models.CrawlRun or a row of RUN_COLUMNS) as `crawler runs --json` (and the web
    API) show it."""
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


def known_source_names(db: Any) -> set[str]:
    return set(Reader.of(db).column("SELECT name FROM sources"))


def newest_runs(db: Any) -> dict[int, Any]:
    """The newest crawl run of every source that has one (rows of RUN_COLUMNS), by source id."""
    rows = Reader.of(db).rows(
        f"SELECT {RUN_COLUMNS} FROM crawl_runs WHERE crawl_runs.id IN"
        " (SELECT max(id) FROM crawl_runs GROUP BY source_id)"
    )
    return {row.source_id: _run(row) for row in rows}


def last_runs(db: Any) -> dict[str, Any]:
    """The newest crawl run of every source that has one, by source name."""
    reader = Reader.of(db)
    names = dict(reader.rows("SELECT id, name FROM sources"))
    return {names[source_id]: run for source_id, run in newest_runs(reader).items()}


def next_run_times(db: Any) -> dict[str, datetime]:
    """When the scheduler will run each source next (a pending retry counts), from its job store."""
    reader = Reader.of(db)
    if not reader.has_table(JOBS_TABLE):
        return {}
    # read the two plain columns; the pickled job itself is the scheduler's business
    out: dict[str, datetime] = {}
    for job_id, stamp in reader.rows(f"SELECT id, next_run_time FROM {JOBS_TABLE}"):
        name = source_of(job_id)
        if name is None or stamp is None:
            continue
        moment = datetime.fromtimestamp(float(stamp), UTC)
        out[name] = min(out.get(name, moment), moment)
    return out


def last_new_article(db: Any) -> dict[str, datetime]:
    """When each source last brought an article the archive did not have."""
    rows = Reader.of(db).rows(
        "SELECT sources.name, max(articles.first_seen_at) AS newest_at FROM sources"
        " JOIN articles ON articles.source_id = sources.id GROUP BY sources.name"
    )
    return {name: moment for name, moment in rows if moment is not None}


def latest_runs(db: Any, per_source: int) -> dict[str, list[Any]]:
    """The newest `per_source` runs of every source that ended finished or failed, newest
    first."""
    rows = Reader.of(db).rows(
        f"SELECT sources.name AS source_name, {RUN_COLUMNS} FROM sources"
        " JOIN crawl_runs ON crawl_runs.source_id = sources.id"
        " JOIN (SELECT id, row_number() OVER (PARTITION BY source_id"
        " ORDER BY started_at DESC, id DESC) AS rank FROM crawl_runs"
        " WHERE status NOT IN :neutral) AS ranked ON ranked.id = crawl_runs.id"
        " WHERE ranked.rank <= :per_source"
        " ORDER BY crawl_runs.started_at DESC, crawl_runs.id DESC",
        {"neutral": NEUTRAL, "per_source": per_source},
    )
    out: dict[str, list[Any]] = {}
    for row in rows:
        out.setdefault(row.source_name, []).append(_run(row))
    return out


def first_run_started(db: Any) -> dict[str, datetime]:
    rows = Reader.of(db).rows(
        "SELECT sources.name, min(crawl_runs.started_at) AS first_at FROM sources"
        " JOIN crawl_runs ON crawl_runs.source_id = sources.id GROUP BY sources.name"
    )
    return {name: moment for name, moment in rows if moment is not None}


@dataclass(frozen=True)
class SourceState:
    """A configured source as `crawler sources` shows it."""

    source: SourceConfig
    next_run: datetime | None
    last_run: Any  # a row of RUN_COLUMNS, or None
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
    db: Any, sources: list[SourceConfig], runs: dict[str, Any] | None = None
) -> list[SourceState]:
    reader = Reader.of(db)
    nexts = next_run_times(reader)
    newest = last_new_article(reader)
    runs = last_runs(reader) if runs is None else runs
    return [
        SourceState(
            source,
            nexts.get(source.name) if source.enabled else None,
            runs.get(source.name),
            newest.get(source.name),
        )
        for source in sources
    ]


@dataclass(frozen=True)
class Problem:
    source: str
    message: str


def health_problems(
    db: Any, sources: list[SourceConfig], failures: int, now: datetime | None = None
) -> list[Problem]:
    """Enabled sources whose last `failures` runs all failed, or that found nothing new for
    longer than their `stale_after` (counted from their first run when they never found any)."""
    now = now or datetime.now(UTC)
    reader = Reader.of(db)
    runs = latest_runs(reader, failures)
    newest = last_new_article(reader)
    first = first_run_started(reader)
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
