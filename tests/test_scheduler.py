"""The `crawler schedule` service against the kcna_watch mirror, with intervals of seconds.

Every scheduler runs as a child process (`python -m crawler.cli schedule`) and is stopped in
teardown whatever happens. Waits are bounded polls with generous deadlines; no assertion depends
on exact timing beyond "never early" and "within a generous limit".
"""

from __future__ import annotations

import itertools
import os
import pickle
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest
from sqlalchemy import MetaData, Table, inspect, select

from crawler.db.models import CrawlRun, SourceLease
from crawler.db.session import Archive
from crawler.mirror import MirrorServer
from crawler.scheduler.jobs import JOBS_TABLE
from tests.conftest import LOOPBACK, ROOT, crawl_runs, run_cli, write_sources

T = TypeVar("T")

RODONG = (
    "/newstream/1733392519-286102/"
    "rodong-sinmun-calls-for-thorough-preparations-for-next-years-farming/"
)
# Short everything, so that the service's behaviour shows within seconds.
FAST = [
    "--jitter",
    "0",
    "--grace-period",
    "30s",
    "--kill-after",
    "2s",
    "--retry-delay",
    "1s",
    *LOOPBACK,
    "-s",
    "RETRY_TIMES=0",
]
DEADLINE = 90.0


class Scheduler:
    """A `crawler schedule` child process whose output goes to a log file."""

    def __init__(self, db_url: str, sources: Path, log: Path, args: list[str]) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CRAWLER_")}
        env.update(CRAWLER_DATABASE_URL=db_url, CRAWLER_SOURCES=str(sources), COLUMNS="200")
        self.log_path = log
        self._log = log.open("w", encoding="utf-8")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "crawler.cli", "schedule", *FAST, *args],
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        self.started = datetime.now(UTC)

    @property
    def pid(self) -> int:
        return self.process.pid

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def send(self, signum: int) -> None:
        self.process.send_signal(signum)

    def wait(self, timeout: float = DEADLINE) -> int:
        return self.process.wait(timeout=timeout)

    def close(self) -> None:
        """Stop it: SIGTERM (its crawls are stopped with it), SIGKILL when that does not do."""
        if self.process.poll() is None:
            self.send(signal.SIGTERM)
            try:
                self.process.wait(timeout=0.5)
            except subprocess.TimeoutExpired:
                self.send(signal.SIGTERM)  # the second one stops running crawls at once
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=30)
        self._log.close()


@pytest.fixture
def schedulers(
    db_url: str, kcna: MirrorServer, tmp_path: Path
) -> Iterator[Callable[..., Scheduler]]:
    """Start schedulers on the archive under test; all of them are stopped in teardown."""
    started: list[Scheduler] = []

    def start(*args: str, sources: Path | None = None) -> Scheduler:
        log = tmp_path / f"scheduler-{len(started) + 1}.log"
        scheduler = Scheduler(db_url, sources or tmp_path / "sources.toml", log, list(args))
        started.append(scheduler)
        return scheduler

    yield start
    for scheduler in started:
        scheduler.close()


def sources_file(tmp_path: Path, kcna: MirrorServer, **settings: object) -> Path:
    path = write_sources(tmp_path / "sources.toml", {"kcna_watch": kcna.base_url})
    text = path.read_text(encoding="utf-8")
    for key, value in settings.items():
        line = f'{key} = "{value}"' if isinstance(value, str) else f"{key} = {str(value).lower()}"
        if key in ("every", "cron"):
            text = text.replace('every = "1h"', line)
        else:
            text += line + "\n"
    path.write_text(text, encoding="utf-8")
    return path


def wait_for(what: str, check: Callable[[], T | None], timeout: float = DEADLINE) -> T:
    """Poll `check` until it returns something truthy; fail naming `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(0.2)


def crawling(kcna: MirrorServer) -> bool:
    """Whether a crawl is under way: three of the four articles served (the mirror logs a
    request when it answers it, so the hung one does not show)."""
    articles = {path for path in kcna.paths() if path.startswith("/newstream/17")}
    return len(articles - {RODONG}) >= 3


def final_runs(archive: Archive, at_least: int) -> Callable[[], list[CrawlRun] | None]:
    def check() -> list[CrawlRun] | None:
        runs = crawl_runs(archive)
        done = [run for run in runs if run.status != "running"]
        return runs if len(done) >= at_least else None

    return check


def stored_jobs(archive: Archive) -> dict[str, dict[str, Any]]:
    """The scheduler's job store as it stands: job id -> the job's pickled state."""
    if not inspect(archive.engine).has_table(JOBS_TABLE):
        return {}
    table = Table(JOBS_TABLE, MetaData(), autoload_with=archive.engine)
    with archive.engine.connect() as conn:
        rows = conn.execute(select(table.c.id, table.c.job_state)).all()
    return {job_id: pickle.loads(state) for job_id, state in rows}


def lease_rows(archive: Archive) -> list[SourceLease]:
    with archive.sessions() as session:
        return list(session.scalars(select(SourceLease)))


def test_runs_happen_on_time_and_are_recorded(archive, kcna, tmp_path, schedulers):
    sources_file(tmp_path, kcna, every="4s")
    scheduler = schedulers()
    wait_for("three finished runs", final_runs(archive, 3))
    scheduler.send(signal.SIGTERM)
    assert scheduler.wait() == 0
    runs = crawl_runs(archive)
    assert {run.status for run in runs} == {"finished"}
    assert {run.trigger for run in runs} == {"scheduled"}
    assert runs[0].articles_new == 4 and all(run.articles_new == 0 for run in runs[1:])
    # a new source is crawled at once, then every 4 seconds: never early; when a run outlasts
    # the interval, the next one starts at the first due time after it (no pile-up)
    assert runs[0].started_at - scheduler.started < timedelta(seconds=30)
    for before, after in itertools.pairwise(runs):
        assert after.started_at - before.started_at >= timedelta(seconds=3.9)
        assert after.started_at - before.finished_at < timedelta(seconds=4 + 10)
    log = scheduler.log()
    assert "kcna_watch: scheduled every 4s, first run now" in log
    for run in runs:
        assert f"kcna_watch: run {run.id} started (scheduled; log: " in log
        assert f"kcna_watch: run {run.id} finished in" in log
    assert "4 new, 0 updated, 0 errors" in log
    assert lease_rows(archive) == []


def test_two_schedulers_on_one_archive_never_overlap_a_source(archive, kcna, tmp_path, schedulers):
    kcna.delay(RODONG, 2.5)  # every run lasts a few seconds, and one falls due every second
    sources_file(tmp_path, kcna, every="1s")
    first, second = schedulers(), schedulers()

    def contended() -> bool:
        runs = [run for run in crawl_runs(archive) if run.status != "running"]
        busy = "running elsewhere" in first.log() + second.log()
        return len(runs) >= 4 and busy

    wait_for("four runs and a run refused for the lease", contended, timeout=120)
    for scheduler in (first, second):
        scheduler.send(signal.SIGTERM)
    assert first.wait() == 0 and second.wait() == 0
    runs = crawl_runs(archive)
    assert all(run.status == "finished" and run.finished_at for run in runs)
    runs.sort(key=lambda run: run.started_at)
    for before, after in itertools.pairwise(runs):
        assert after.started_at >= before.finished_at, (before.id, after.id)
    # the article page that hangs was asked for by one crawl at a time
    assert lease_rows(archive) == []


def test_a_hung_run_is_stopped_at_its_time_limit(archive, kcna, tmp_path, schedulers):
    kcna.delay(RODONG, 300)
    sources_file(tmp_path, kcna, every="1h", timeout="4s")
    scheduler = schedulers()
    runs = wait_for("the run to end", final_runs(archive, 1))
    run = runs[0]
    assert run.status == "timed_out" and run.trigger == "scheduled"
    assert "stopped at the time limit of 4s" in run.error_log
    took = (run.finished_at - run.started_at).total_seconds()
    assert 4 <= took < 60
    assert scheduler.process.poll() is None  # the service itself carries on
    assert "run 1 reached its time limit of 4s; stopping it" in scheduler.log()
    assert lease_rows(archive) == []
    scheduler.send(signal.SIGTERM)
    assert scheduler.wait() == 0


def test_a_killed_scheduler_restarted_closes_its_run_and_coalesces_missed_runs(
    archive, kcna, tmp_path, schedulers
):
    kcna.delay(RODONG, 300)  # the first run hangs until the scheduler is killed
    sources_file(tmp_path, kcna, every="6s")
    first = schedulers("--lease-ttl", "10m")  # a restart must not wait for the lease to expire
    wait_for("the first run to hang", lambda: crawling(kcna))
    first.send(signal.SIGKILL)
    first.wait()
    kcna.reset()
    job = stored_jobs(archive)["source:kcna_watch"]
    start, interval = job["trigger"].start_date, job["trigger"].interval
    due = job["next_run_time"]
    # the service stays down while two runs fall due
    wait_for("two missed runs", lambda: datetime.now(UTC) > due + interval + timedelta(seconds=1))
    assert [run.status for run in crawl_runs(archive)] == ["running"]  # nobody closed it yet
    restarted_at = datetime.now(UTC)
    second = schedulers("--lease-ttl", "10m")
    runs = wait_for("the catch-up run", final_runs(archive, 2))
    killed, catch_up = runs[0], runs[1]
    # the dead scheduler's crawl died with it; its run was closed and its lease released
    assert killed.status == "interrupted" and "died" in killed.error_log
    assert catch_up.status == "finished" and catch_up.trigger == "scheduled"
    assert catch_up.started_at >= restarted_at
    log = second.log()
    assert "leases of a dead scheduler released: kcna_watch" in log
    missed = re.search(
        r"kcna_watch: (\d+) run\(s\) missed while the service was down; one run now", log
    )
    assert missed and int(missed.group(1)) >= 2, log
    assert "first run now" not in log  # the job came back from the store, not added anew
    assert stored_jobs(archive)["source:kcna_watch"]["trigger"].start_date == start
    # coalesced: no second catch-up run straight after the first, only the next regular one
    # (runs fall due on the grid of the first due time, every `interval`)
    next_regular = due + ((catch_up.finished_at - due) // interval + 1) * interval
    wait_for("the next regular run time", lambda: datetime.now(UTC) > next_regular)
    early = [run for run in crawl_runs(archive)[2:] if run.started_at < next_regular]
    assert early == []
    second.send(signal.SIGTERM)
    assert second.wait() == 0


def test_sigterm_lets_a_running_crawl_finish(archive, kcna, tmp_path, schedulers):
    kcna.delay(RODONG, 5)
    sources_file(tmp_path, kcna, every="1h")
    scheduler = schedulers()
    wait_for("the crawl to be under way", lambda: crawling(kcna))
    scheduler.send(signal.SIGTERM)
    assert scheduler.wait() == 0
    runs = crawl_runs(archive)
    assert [(run.status, run.articles_new) for run in runs] == [("finished", 4)]
    log = scheduler.log()
    assert "stopping: no new runs; waiting up to 30s for kcna_watch" in log
    assert log.index("run 1 finished") < log.index("scheduler stopped")
    assert lease_rows(archive) == []


def test_sigterm_stops_a_hung_crawl_after_the_grace_period(archive, kcna, tmp_path, schedulers):
    kcna.delay(RODONG, 300)
    sources_file(tmp_path, kcna, every="1h")
    scheduler = schedulers("--grace-period", "1s")
    wait_for("the crawl to hang", lambda: crawling(kcna))
    scheduler.send(signal.SIGTERM)
    assert scheduler.wait() == 0
    runs = crawl_runs(archive)
    assert [run.status for run in runs] == ["interrupted"]
    assert runs[0].finished_at is not None and "stopped by the scheduler" in runs[0].error_log
    assert "stopping kcna_watch" in scheduler.log()
    assert lease_rows(archive) == []


def test_a_failed_run_is_retried_with_back_off_and_recorded(db_url, archive, tmp_path, schedulers):
    with socket.socket() as probe:  # a port nobody listens on: every request is refused
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    path = write_sources(tmp_path / "sources.toml", {"kcna_watch": f"http://127.0.0.1:{closed}"})
    scheduler = schedulers("--retries", "2")
    wait_for("the last retry", lambda: "no more retries" in scheduler.log())
    runs = crawl_runs(archive)
    assert [(run.trigger, run.status) for run in runs] == [
        ("scheduled", "failed"),
        ("retry", "failed"),
        ("retry", "failed"),
    ]
    first_wait = (runs[1].started_at - runs[0].finished_at).total_seconds()
    second_wait = (runs[2].started_at - runs[1].finished_at).total_seconds()
    assert first_wait >= 1 and second_wait >= 2  # 1s, then doubled
    log = scheduler.log()
    assert "kcna_watch: retry 1 of 2" in log and "kcna_watch: retry 2 of 2" in log
    assert "run 2 started (retry, attempt 2; log: " in log
    assert "retry:kcna_watch" not in stored_jobs(archive)
    health = run_cli("health", "--failures", "3", db_url=db_url, sources=path)
    assert health.returncode == 1 and "kcna_watch" in health.stdout
    assert "the last 3 run(s) failed (failed, failed, failed)" in health.stdout


def test_a_changed_sources_file_is_reconciled_on_sighup_and_restart(
    archive, kcna, tmp_path, schedulers
):
    path = sources_file(tmp_path, kcna, every="1h")
    scheduler = schedulers()
    wait_for("the first run", final_runs(archive, 1))
    assert stored_jobs(archive)["source:kcna_watch"]["name"] == "kcna_watch: every 1h, jitter 0s"
    # a shorter interval
    path.write_text(path.read_text().replace('every = "1h"', 'every = "3s"'))
    scheduler.send(signal.SIGHUP)
    wait_for("the second run", final_runs(archive, 2))
    assert "kcna_watch: schedule changed to every 3s" in scheduler.log()
    assert stored_jobs(archive)["source:kcna_watch"]["name"] == "kcna_watch: every 3s, jitter 0s"
    # a broken file changes nothing
    good = path.read_text()
    path.write_text(good.replace('every = "3s"', 'every = "often"'))
    scheduler.send(signal.SIGHUP)
    wait_for("the reload to be refused", lambda: "not reloaded" in scheduler.log())
    assert "source:kcna_watch" in stored_jobs(archive)
    # the source disabled: its job goes
    path.write_text(good + "enabled = false\n")
    scheduler.send(signal.SIGHUP)
    # the job leaves the store just before the line is logged: wait for both
    wait_for(
        "the job to go",
        lambda: (
            "source:kcna_watch" not in stored_jobs(archive)
            and "kcna_watch: no longer scheduled" in scheduler.log()
        ),
    )
    scheduler.send(signal.SIGTERM)
    assert scheduler.wait() == 0
    count = len(crawl_runs(archive))
    # enabled again with a cron line while the service is down: applied at start-up
    path.write_text(good.replace('every = "3s"', 'cron = "*/5 * * * *"'))
    restarted = schedulers()
    wait_for("the run of the re-added source", final_runs(archive, count + 1))
    job = stored_jobs(archive)["source:kcna_watch"]
    assert job["name"] == "kcna_watch: cron */5 * * * *, jitter 0s"
    assert "kcna_watch: scheduled cron */5 * * * *, first run now" in restarted.log()
    restarted.send(signal.SIGTERM)
    assert restarted.wait() == 0
    assert all(run.status == "finished" for run in crawl_runs(archive))
