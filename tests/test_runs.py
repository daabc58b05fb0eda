"""`crawler runs`: the recent runs of the archive under test, as a table or JSON."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from crawler.db.models import CrawlRun, Source
from crawler.db.session import Archive
from tests.conftest import run_cli, write_sources

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def add_run(session, source: Source, minutes: int, status: str, **counts: object) -> CrawlRun:
    started = T0 + timedelta(minutes=minutes)
    run = CrawlRun(
        source_id=source.id,
        started_at=started,
        finished_at=None if status == "running" else started + timedelta(seconds=90),
        status=status,
        **counts,
    )
    session.add(run)
    session.flush()
    return run


@pytest.fixture
def seeded(archive: Archive, tmp_path: Path) -> Path:
    """Two sources with a few runs each; the sources file names kcna_watch only."""
    with archive.transaction() as session:
        kcna = Source(name="kcna_watch", base_url="https://k.example")
        urdu = Source(name="urdupoint", base_url="https://u.example")
        session.add_all([kcna, urdu])
        session.flush()
        add_run(
            session,
            kcna,
            0,
            "finished",
            pages=9,
            articles_new=4,
            trigger="scheduled",
            stats={"fallback/metadata/title": 2, "fallback/generic/body": 1},
        )
        add_run(session, urdu, 5, "failed", errors=3, error_log="boom", trigger="manual")
        add_run(session, kcna, 10, "finished", pages=3, articles_updated=1, trigger="scheduled")
        add_run(session, kcna, 20, "timed_out", pages=2, trigger="retry")
        add_run(session, kcna, 30, "running", trigger="scheduled")
    return write_sources(tmp_path / "sources.toml", {"kcna_watch": "https://k.example"})


def runs_json(db_url: str, sources: Path, *args: str) -> list[dict]:
    result = run_cli("runs", "--json", *args, db_url=db_url, sources=sources)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_runs_json_lists_the_newest_first_with_their_counts(db_url, seeded):
    records = runs_json(db_url, seeded)
    assert [(r["source"], r["status"]) for r in records] == [
        ("kcna_watch", "running"),
        ("kcna_watch", "timed_out"),
        ("kcna_watch", "finished"),
        ("urdupoint", "failed"),
        ("kcna_watch", "finished"),
    ]
    oldest = records[-1]
    assert oldest["started_at"] == "2026-03-01T12:00:00+00:00"
    assert oldest["finished_at"] == "2026-03-01T12:01:30+00:00"
    assert oldest["duration_seconds"] == 90
    assert (oldest["pages"], oldest["articles_new"], oldest["articles_updated"]) == (9, 4, 0)
    assert (oldest["errors"], oldest["trigger"]) == (0, "scheduled")
    assert records[0]["finished_at"] is None and records[0]["duration_seconds"] is None
    assert records[3]["error_log"] == "boom" and records[3]["errors"] == 3
    assert records[1]["trigger"] == "retry"
    # the run's Scrapy stats, where layout drift shows as fallback counts
    assert oldest["stats"] == {"fallback/metadata/title": 2, "fallback/generic/body": 1}
    assert records[0]["stats"] is None


def test_runs_filtered_by_source_and_limited(db_url, seeded):
    records = runs_json(db_url, seeded, "--source", "kcna_watch", "--limit", "2")
    assert [(r["source"], r["status"]) for r in records] == [
        ("kcna_watch", "running"),
        ("kcna_watch", "timed_out"),
    ]
    # a source that is no longer configured still has its history
    assert [r["status"] for r in runs_json(db_url, seeded, "--source", "urdupoint")] == ["failed"]


def test_runs_of_an_unknown_source_are_an_error(db_url, seeded):
    result = run_cli("runs", "--source", "nope", db_url=db_url, sources=seeded)
    assert result.returncode == 2
    assert "no source named 'nope'" in result.stderr and "kcna_watch" in result.stderr


def test_runs_table(db_url, seeded):
    result = run_cli("runs", db_url=db_url, sources=seeded)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    timed_out = next(line for line in lines if "timed_out" in line)
    assert "kcna_watch" in timed_out and "retry" in timed_out and "1m30s" in timed_out
    assert "2026-03-01 12:20:00 UTC" in timed_out


def test_runs_of_an_empty_archive(db_url, tmp_path):
    sources = write_sources(tmp_path / "sources.toml", {"kcna_watch": "https://k.example"})
    assert runs_json(db_url, sources) == []
    assert runs_json(db_url, sources, "--source", "kcna_watch") == []
