"""A manual `crawler crawl` takes the same per-source lease as the scheduler: a source is never
crawled twice at once, whoever started the crawls."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

from crawler.context import ensure_source
from crawler.db.models import SourceLease, utcnow
from crawler.extensions import LEASE_LOST
from crawler.scheduler import lease
from tests.conftest import LOOPBACK, ROOT, crawl, crawl_runs, write_sources
from tests.test_scheduler import RODONG, lease_rows
from tests.test_scheduler_config import source

# a holder on another host (never guessed dead), whose pid reads as an emoji code (":1234:")
ELSEWHERE = "archive-host-2:1234:0badcafe"


def test_a_source_running_elsewhere_is_not_crawled(archive, db_url, kcna, tmp_path):
    sources = write_sources(tmp_path / "sources.toml", {"kcna_watch": kcna.base_url})
    with archive.transaction() as session:
        assert lease.try_acquire(session, "kcna_watch", ELSEWHERE, timedelta(minutes=10))
    result = crawl("kcna_watch", db_url=db_url, sources_file=sources)
    assert result.returncode == 1
    assert "kcna_watch: not crawled: running elsewhere" in result.stderr
    assert ELSEWHERE in result.stderr
    assert crawl_runs(archive) == [] and kcna.paths() == []
    assert [(held.source_name, held.holder) for held in lease_rows(archive)] == [
        ("kcna_watch", ELSEWHERE)
    ]


def start_crawl(db_url: str, sources: Path, *args: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRAWLER_")}
    env.update(CRAWLER_DATABASE_URL=db_url, CRAWLER_SOURCES=str(sources))
    command = [sys.executable, "-m", "crawler.cli", "crawl", "kcna_watch", "--no-progress"]
    return subprocess.Popen(
        [*command, *LOOPBACK, *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def lease_of_a_run(archive, process: subprocess.Popen[str]) -> SourceLease:
    """Wait until the crawl holds the source's lease with its run attached."""
    deadline = time.monotonic() + 60
    while not (held := lease_rows(archive)) or held[0].run_id is None:
        assert process.poll() is None and time.monotonic() < deadline, "no lease with its run"
        time.sleep(0.1)
    return held[0]


def test_a_manual_crawl_holds_the_lease_while_it_runs_and_gives_it_back(
    archive, db_url, kcna, tmp_path
):
    kcna.delay(RODONG, 12)  # time enough for a second crawl to start and be refused
    sources = write_sources(tmp_path / "sources.toml", {"kcna_watch": kcna.base_url})
    first = start_crawl(db_url, sources)
    try:
        held = [lease_of_a_run(archive, first)]
        (run,) = crawl_runs(archive)
        assert held[0].run_id == run.id and run.status == "running"
        # a second crawl of the same source meanwhile is refused, naming the run under way
        second = crawl("kcna_watch", db_url=db_url, sources_file=sources)
        assert second.returncode == 1
        assert f"running elsewhere (lease held by {held[0].holder}, run {run.id}" in second.stderr
        _, stderr = first.communicate(timeout=120)
    finally:
        if first.poll() is None:
            first.kill()
    assert first.returncode == 0, stderr
    assert lease_rows(archive) == []
    assert [(r.status, r.articles_new) for r in crawl_runs(archive)] == [("finished", 4)]


def test_a_crawl_that_died_holding_the_lease_does_not_block_the_next(
    archive, db_url, kcna, tmp_path
):
    source_id = ensure_source(archive, source("kcna_watch"))
    with archive.transaction() as session:
        dead = lease.acquire_for_run(
            session, "kcna_watch", source_id, ELSEWHERE, timedelta(minutes=2), "manual"
        )
        held = session.get(SourceLease, "kcna_watch")
        held.expires_at = utcnow() - timedelta(seconds=1)  # it was never renewed again
    sources = write_sources(tmp_path / "sources.toml", {"kcna_watch": kcna.base_url})
    result = crawl("kcna_watch", db_url=db_url, sources_file=sources)
    assert result.returncode == 0, result.stderr
    old, new = crawl_runs(archive)
    assert old.id == dead and old.status == "interrupted" and old.finished_at is not None
    assert new.status == "finished" and new.articles_new == 4
    assert lease_rows(archive) == []


def test_a_crawl_that_loses_its_lease_stops(archive, db_url, kcna, tmp_path):
    kcna.delay(RODONG, 6)
    sources = write_sources(tmp_path / "sources.toml", {"kcna_watch": kcna.base_url})
    crawling = start_crawl(db_url, sources, "-s", "CRAWLER_LEASE_TTL=2")  # renewed every 0.5 s
    try:
        lease_of_a_run(archive, crawling)
        with archive.transaction() as session:  # taken over, as if it had expired
            taken = session.get(SourceLease, "kcna_watch")
            taken.holder, taken.run_id = ELSEWHERE, None
            taken.expires_at = utcnow() + timedelta(minutes=10)
        _, stderr = crawling.communicate(timeout=120)
    finally:
        if crawling.poll() is None:
            crawling.kill()
    assert crawling.returncode == 1
    assert LEASE_LOST in stderr
    (run,) = crawl_runs(archive)
    assert run.status == "interrupted" and run.error_log.startswith(LEASE_LOST)
    assert [(held.holder, held.run_id) for held in lease_rows(archive)] == [(ELSEWHERE, None)]


def test_a_crawl_stopped_at_once_leaves_no_lease_and_no_open_run(archive, db_url, kcna, tmp_path):
    kcna.delay(RODONG, 60)
    sources = write_sources(tmp_path / "sources.toml", {"kcna_watch": kcna.base_url})
    crawling = start_crawl(db_url, sources)
    try:
        lease_of_a_run(archive, crawling)
        crawling.send_signal(signal.SIGINT)  # Scrapy: stop gracefully (the hung page stays)
        time.sleep(1)
        crawling.send_signal(signal.SIGINT)  # again: stop now
        crawling.communicate(timeout=60)
    finally:
        if crawling.poll() is None:
            crawling.kill()
    (run,) = crawl_runs(archive)
    assert run.status == "interrupted" and run.finished_at is not None
    assert lease_rows(archive) == []
