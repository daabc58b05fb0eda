"""`crawler health` exit codes and `crawler sources`, on a seeded archive under test."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger

from crawler.config import load_sources
from crawler.db.models import Article, CrawlRun, Source, utcnow
from crawler.db.session import Archive
from crawler.scheduler.health import health_problems
from crawler.scheduler.jobs import JOB_FUNCTION, JOBS_TABLE
from tests.conftest import run_cli


def sources_file(tmp_path: Path, **extra: str) -> Path:
    """kcna_watch enabled (with `extra` settings), urdupoint disabled."""
    lines = ["[sources.kcna_watch]", 'base_url = "https://k.example"', 'every = "1h"']
    lines += [f'{key} = "{value}"' for key, value in extra.items()]
    lines += ["", "[sources.urdupoint]", 'base_url = "https://u.example"', "enabled = false", ""]
    path = tmp_path / "sources.toml"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def seed(archive: Archive, name: str, statuses: list[str], article_age: timedelta | None) -> None:
    """Runs with these statuses (oldest first, an hour apart, the last one an hour ago) and,
    when given, one article first seen `article_age` ago."""
    now = utcnow()
    with archive.transaction() as session:
        source = Source(name=name, base_url=f"https://{name}.example")
        session.add(source)
        session.flush()
        for index, status in enumerate(statuses):
            started = now - timedelta(hours=len(statuses) - index)
            session.add(
                CrawlRun(
                    source_id=source.id,
                    started_at=started,
                    finished_at=started + timedelta(minutes=1),
                    status=status,
                )
            )
        if article_age is not None:
            session.add(
                Article(
                    source_id=source.id,
                    url=f"https://{name}.example/a",
                    canonical_url=f"https://{name}.example/a",
                    title="A",
                    body="Body",
                    content_hash="0" * 64,
                    first_seen_at=now - article_age,
                    last_seen_at=now,
                    updated_at=now,
                )
            )


def health(db_url: str, sources: Path, *args: str):
    return run_cli("health", *args, db_url=db_url, sources=sources)


def test_an_archive_that_never_ran_is_healthy(db_url, tmp_path):
    result = health(db_url, sources_file(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "healthy: 1 enabled source(s)" in result.stdout


def test_the_last_n_runs_failed(db_url, archive, tmp_path):
    seed(archive, "kcna_watch", ["finished", "failed", "timed_out", "failed"], timedelta(hours=5))
    path = sources_file(tmp_path)
    result = health(db_url, path)
    assert result.returncode == 1
    assert "kcna_watch: the last 3 run(s) failed (failed, timed_out, failed)" in result.stdout
    assert health(db_url, path, "--failures", "4").returncode == 0
    listed = json.loads(health(db_url, path, "--failures", "2", "--json").stdout)
    assert listed == [
        {"source": "kcna_watch", "problem": "the last 2 run(s) failed (failed, timed_out)"}
    ]


def problems(archive: Archive, sources: Path, failures: int = 3) -> list[str]:
    """What `crawler health` would report, computed in this process."""
    config = load_sources(sources, known_spiders={"kcna_watch", "urdupoint"})
    with archive.sessions() as session:
        found = health_problems(session, list(config.sources.values()), failures)
    return [f"{problem.source}: {problem.message}" for problem in found]


def test_a_success_or_too_few_runs_is_not_a_failure(archive, tmp_path):
    seed(archive, "kcna_watch", ["failed", "interrupted", "failed", "finished"], timedelta(hours=1))
    path = sources_file(tmp_path)
    assert problems(archive, path) == []
    assert problems(archive, path, failures=1) == []
    seed(archive, "urdupoint", ["failed"] * 5, None)  # disabled: not checked
    assert problems(archive, path) == []


def test_interrupted_runs_neither_count_nor_break_a_streak(archive, tmp_path):
    seed(archive, "kcna_watch", ["failed", "failed", "interrupted", "failed"], timedelta(hours=1))
    assert problems(archive, sources_file(tmp_path)) == [
        "kcna_watch: the last 3 run(s) failed (failed, failed, failed)"
    ]


def test_no_new_article_for_longer_than_stale_after(archive, tmp_path):
    seed(archive, "kcna_watch", ["finished"] * 2, timedelta(days=4, hours=1))
    (found,) = problems(archive, sources_file(tmp_path))
    # (seconds pass between seeding and checking)
    assert found.startswith("kcna_watch: no new article for 4d1h") and found.endswith(
        "(stale_after 3d)"
    )
    assert problems(archive, sources_file(tmp_path, stale_after="5d")) == []


def test_a_source_that_never_found_an_article(archive, tmp_path):
    seed(archive, "kcna_watch", ["finished"] * 3, None)  # runs started 1 to 3 hours ago
    (found,) = problems(archive, sources_file(tmp_path, stale_after="2h"))
    assert found.startswith("kcna_watch: no article at all for 3h") and found.endswith(
        "(stale_after 2h)"
    )
    assert problems(archive, sources_file(tmp_path, stale_after="4h")) == []


def test_health_of_an_unreachable_archive_is_an_error(tmp_path):
    missing = tmp_path / "not-a-database.db"
    missing.write_text("this is not SQLite")
    result = health(f"sqlite:///{missing}", sources_file(tmp_path))
    assert result.returncode == 2 and "error" in result.stderr


def test_sources_shows_schedule_next_run_last_run_and_last_new_article(db_url, archive, tmp_path):
    seed(archive, "kcna_watch", ["finished", "failed"], timedelta(days=1))
    due = datetime(2031, 5, 6, 7, 8, 9, tzinfo=UTC)
    scheduler = BackgroundScheduler(
        jobstores={"default": SQLAlchemyJobStore(engine=archive.engine, tablename=JOBS_TABLE)},
        timezone=UTC,
    )
    scheduler.start(paused=True)
    scheduler.add_job(
        JOB_FUNCTION,
        IntervalTrigger(hours=1, timezone=UTC),
        id="source:kcna_watch",
        args=["kcna_watch"],
        next_run_time=due,
    )
    scheduler.shutdown(wait=False)
    path = sources_file(tmp_path)
    result = run_cli("sources", "--json", db_url=db_url, sources=path)
    assert result.returncode == 0, result.stderr
    kcna, urdu = json.loads(result.stdout)
    assert kcna["source"] == "kcna_watch" and kcna["every"] == 3600 and kcna["cron"] is None
    assert kcna["next_run"] == "2031-05-06T07:08:09+00:00"
    assert kcna["last_run_status"] == "failed"
    assert kcna["last_new_article_at"] is not None
    seen = datetime.fromisoformat(kcna["last_new_article_at"])
    assert timedelta(hours=23) < utcnow() - seen < timedelta(hours=25)
    assert urdu["enabled"] is False and urdu["next_run"] is None
    assert urdu["last_run_status"] is None
    table = run_cli("sources", db_url=db_url, sources=path)
    assert table.returncode == 0, table.stderr
    row = next(line for line in table.stdout.splitlines() if "kcna_watch" in line)
    assert "every 1h" in row and "2031-05-06 07:08:09 UTC" in row and "failed" in row
    never = next(line for line in table.stdout.splitlines() if "urdupoint" in line)
    assert "never" in never


def test_every_run_failed_and_nothing_archived_is_not_healthy(db_url, archive, tmp_path):
    """A fresh install that cannot reach its sources: fewer failures than --failures, but
    nothing ever worked."""
    seed(archive, "kcna_watch", ["failed", "interrupted"], None)
    path = sources_file(tmp_path)
    result = health(db_url, path)
    assert result.returncode == 1
    assert result.stdout == (
        "unhealthy kcna_watch: every run so far failed (1) and nothing was ever archived\n"
    )
    assert problems(archive, path, failures=1) == ["kcna_watch: the last 1 run(s) failed (failed)"]


def test_failures_after_an_archived_article_wait_for_the_threshold(archive, tmp_path):
    seed(archive, "kcna_watch", ["failed", "failed"], timedelta(hours=1))
    assert problems(archive, sources_file(tmp_path)) == []
