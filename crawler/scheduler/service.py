"""`crawler schedule`: the long-running service that crawls every enabled source on its schedule.

APScheduler keeps one job per enabled source in the archive database (table `scheduler_jobs`),
so a restarted service picks its schedule up where it left it and coalesces the runs it missed
into one. A due job takes the source's lease, opens its `crawl_runs` row and runs the crawl in a
child process under a time limit; the lease is renewed while the child runs and released at the
end, and the row always gets a final status.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType

from apscheduler.events import (
    EVENT_JOB_ERROR,
    EVENT_JOB_MAX_INSTANCES,
    EVENT_JOB_MISSED,
    JobEvent,
    JobExecutionEvent,
    JobSubmissionEvent,
)
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.job import Job
from apscheduler.jobstores.base import JobLookupError
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.date import DateTrigger
from sqlalchemy import select

from crawler.config import ConfigError, SourceConfig, load_sources, run_log_file
from crawler.context import ensure_source
from crawler.db.models import CrawlRun, Source, utcnow
from crawler.db.session import Archive
from crawler.scheduler import lease
from crawler.scheduler.child import CrawlChild
from crawler.scheduler.display import format_duration, format_time
from crawler.scheduler.health import newest_runs
from crawler.scheduler.jobs import (
    JOB_FUNCTION,
    JOBS_TABLE,
    job_name,
    retry_job_id,
    schedule_description,
    set_runner,
    source_job_id,
    source_of,
    trigger_for,
)
from crawler.wakeup import Wakeup

logger = logging.getLogger("crawler.scheduler")

POLL_SECONDS = 0.5


@dataclass(frozen=True)
class ServiceOptions:
    """How the service behaves; every field has a `crawler schedule` option."""

    db_url: str
    sources_file: Path
    grace_period: timedelta = timedelta(minutes=2)
    misfire_grace: timedelta = timedelta(hours=1)
    retries: int = 3
    retry_delay: timedelta = timedelta(minutes=5)
    jitter: timedelta = timedelta(seconds=30)
    lease_ttl: timedelta = lease.DEFAULT_TTL
    kill_after: timedelta = timedelta(seconds=15)
    max_concurrent: int = 4
    crawl_args: tuple[str, ...] = ()


@dataclass
class ActiveRun:
    """A run this process is responsible for, from its lease until its row is final."""

    source: str
    stop_reason: str | None = None  # "timed_out" or "interrupted" once the run is being stopped
    child: CrawlChild | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def stop(self, reason: str) -> None:
        with self.lock:
            if self.stop_reason is None:
                self.stop_reason = reason
            if self.child is not None:
                self.child.terminate()


class SchedulerService:
    """Schedules the sources' runs; `serve()` runs until SIGTERM or SIGINT."""

    def __init__(self, options: ServiceOptions) -> None:
        self.options = options
        self.holder = lease.new_holder()
        self.archive: Archive | None = None
        self.scheduler: BackgroundScheduler | None = None
        self.sources: dict[str, SourceConfig] = {}
        self._active: dict[str, ActiveRun] = {}
        self._finishing = 0  # runs started and not through with their retry bookkeeping
        self._lock = threading.Lock()
        self._stopping = False
        self._wake = Wakeup()  # rung by the runs' threads and by signals
        self._stop_requested = False
        self._hurry = False
        self._reload_requested = False

    # -- life cycle ---------------------------------------------------------------------------

    def serve(self) -> None:
        """Start, run until asked to stop, then stop gracefully (main thread only)."""
        previous = {
            signum: signal.signal(signum, self._on_signal)
            for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
        }
        try:
            self.start()
            while not self._stop_requested:
                self._wake.wait(1.0)
                if self._reload_requested and not self._stop_requested:
                    self._reload_requested = False
                    try:
                        self.reload()
                    except Exception:  # e.g. the database is away: keep serving what we have
                        logger.exception("reloading the sources file failed")
            self.stop()
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        if signum == signal.SIGHUP:
            self._reload_requested = True
        elif self._stop_requested:
            self._hurry = True  # a second SIGTERM / Ctrl-C: stop the running crawls now
        else:
            self._stop_requested = True
        self._wake.ring()

    def start(self) -> None:
        """Open the archive, clean up after a dead holder, load the schedule and start it."""
        config = load_sources(self.options.sources_file)
        self.archive = Archive(self.options.db_url)
        with self.archive.transaction() as session:
            swept = lease.sweep(session, self.holder)
        if swept:
            logger.warning("leases of a dead scheduler released: %s", ", ".join(swept))
        self.scheduler = BackgroundScheduler(
            jobstores={
                "default": SQLAlchemyJobStore(engine=self.archive.engine, tablename=JOBS_TABLE)
            },
            executors={"default": ThreadPoolExecutor(self.options.max_concurrent)},
            job_defaults={
                "coalesce": True,
                "max_instances": 1,
                "misfire_grace_time": self._misfire_seconds(),
            },
            timezone=UTC,
        )
        self.scheduler.add_listener(
            self._on_job_event, EVENT_JOB_MISSED | EVENT_JOB_ERROR | EVENT_JOB_MAX_INSTANCES
        )
        set_runner(self)
        self.scheduler.start(paused=True)
        self.reconcile(config.enabled())
        self._retry_dead_runs(swept)
        self.scheduler.resume()
        logger.info(
            "scheduler started (holder %s): %d source(s) from %s",
            self.holder,
            len(self.sources),
            self.options.sources_file,
        )

    def _retry_dead_runs(self, swept: list[str]) -> None:
        """Retry at once each source whose last run died with its process (found open after a
        crash, or closed as orphaned by someone else), unless its regular run is due now anyway
        (then that run is the retry): not a whole interval later."""
        assert self.scheduler is not None and self.archive is not None
        with self.archive.transaction() as session:
            names = {row.id: row.name for row in session.execute(select(Source.id, Source.name))}
            died = {
                names[source_id]
                for source_id, run in newest_runs(session).items()
                if run.status == "interrupted" and lease.ORPHANED in (run.error_log or "")
            }
        now = datetime.now(UTC)
        for name in sorted(died | set(swept)):
            job = self.scheduler.get_job(source_job_id(name))
            if name not in self.sources or job is None:
                continue
            if job.next_run_time is not None and job.next_run_time <= now:
                continue
            if self.scheduler.get_job(retry_job_id(name)) is not None:
                continue  # a retry is already scheduled (it survived the crash in the job store)
            logger.info("%s: its last run died with its process; retrying it now", name)
            self._schedule_retry(name, attempt=1, when=now)

    def reload(self) -> None:
        """Re-read the sources file and apply it (SIGHUP); a broken file changes nothing."""
        try:
            config = load_sources(self.options.sources_file)
        except ConfigError as exc:
            logger.error("sources file not reloaded, the schedule is unchanged: %s", exc)
            return
        logger.info("reloading %s", self.options.sources_file)
        self.reconcile(config.enabled())

    def stop(self) -> None:
        """No new runs; running ones get the grace period, then are stopped; all rows final."""
        with self._lock:
            self._stopping = True
            running = sorted(self._active)
        assert self.scheduler is not None and self.archive is not None
        self.scheduler.pause()
        grace = self.options.grace_period.total_seconds()
        if running:
            logger.info(
                "stopping: no new runs; waiting up to %s for %s to finish (signal again to "
                "stop them now)",
                format_duration(self.options.grace_period),
                ", ".join(running),
            )
        deadline = time.monotonic() + grace
        while self._active_runs() and time.monotonic() < deadline and not self._hurry:
            self._wake.wait(POLL_SECONDS)
        left = self._active_runs()
        if left:
            logger.warning("stopping %s", ", ".join(run.source for run in left))
            for run in left:
                run.stop("interrupted")
        # their threads kill what does not stop and close the rows
        deadline = time.monotonic() + self.options.kill_after.total_seconds() + 60
        while self._active_runs() and time.monotonic() < deadline:
            self._wake.wait(POLL_SECONDS)
        # and their retries scheduled or dropped: APScheduler's shutdown holds the job stores'
        # lock while it waits for its threads, so a thread still at that would never end
        deadline = time.monotonic() + 60
        while self._still_finishing() and time.monotonic() < deadline:
            self._wake.wait(POLL_SECONDS)
        # Detached first: shutting down, APScheduler would otherwise look for due jobs once more
        # and move on the next run time of any that fell due while paused, which a restart
        # must still find due (to catch it up).
        self.scheduler.remove_jobstore("default")
        # a run still at it (its database not answering) would block a waiting shutdown for good
        stuck = self._still_finishing()
        if stuck:
            logger.warning("a run did not finish its bookkeeping; stopping without it")
        self.scheduler.shutdown(wait=not stuck)
        set_runner(None)
        self.archive.dispose()
        logger.info("scheduler stopped")

    def _active_runs(self) -> list[ActiveRun]:
        with self._lock:
            return list(self._active.values())

    def _still_finishing(self) -> bool:
        with self._lock:
            return self._finishing > 0

    def _misfire_seconds(self) -> int:
        return max(int(self.options.misfire_grace.total_seconds()), 1)

    # -- the schedule -------------------------------------------------------------------------

    def reconcile(self, enabled: list[SourceConfig]) -> None:
        """Make the job store match the sources: add new ones, drop removed, apply changes."""
        assert self.scheduler is not None
        self.sources = {source.name: source for source in enabled}
        now = datetime.now(UTC)
        jobs = {job.id: job for job in self.scheduler.get_jobs()}
        for job_id in jobs:
            name = source_of(job_id)
            if name is not None and name not in self.sources:
                self.scheduler.remove_job(job_id)
                if job_id == source_job_id(name):
                    logger.info("%s: no longer scheduled (removed or disabled)", name)
        for source in enabled:
            job = jobs.get(source_job_id(source.name))
            wanted = job_name(source, self.options.jitter)
            if job is None:
                self.scheduler.add_job(
                    JOB_FUNCTION,
                    trigger_for(source, self.options.jitter),
                    id=source_job_id(source.name),
                    name=wanted,
                    args=[source.name],
                    kwargs={"trigger": "scheduled"},
                    next_run_time=now,  # a new source is crawled straight away
                    replace_existing=True,
                )
                logger.info(
                    "%s: scheduled %s, first run now", source.name, schedule_description(source)
                )
            elif job.name != wanted:
                self.scheduler.modify_job(job.id, name=wanted)
                self.scheduler.reschedule_job(
                    job.id, trigger=trigger_for(source, self.options.jitter)
                )
                logger.info(
                    "%s: schedule changed to %s, next run %s",
                    source.name,
                    schedule_description(source),
                    _when(self.scheduler.get_job(job.id)),
                )
            else:
                self._report_next_run(source, job, now)
            current = self.scheduler.get_job(source_job_id(source.name))
            if current is not None and current.misfire_grace_time != self._misfire_seconds():
                self.scheduler.modify_job(current.id, misfire_grace_time=self._misfire_seconds())

    def _report_next_run(self, source: SourceConfig, job: Job, now: datetime) -> None:
        """Log when an unchanged job runs next, or the runs it missed while the service was down
        (APScheduler runs those as one)."""
        due = job.next_run_time
        if due is None or due > now:
            logger.info(
                "%s: %s, next run %s", source.name, schedule_description(source), _when_time(due)
            )
            return
        missed, last = 0, due
        while due is not None and due <= now and missed < 10_000:
            missed, last = missed + 1, due
            due = job.trigger.get_next_fire_time(due, due)
        late = now - last
        if late.total_seconds() <= self._misfire_seconds():
            logger.info(
                "%s: %d run(s) missed while the service was down; one run now to catch up",
                source.name,
                missed,
            )
        else:
            logger.warning(
                "%s: %d run(s) missed, the last %s ago (beyond the grace time); "
                "next regular run %s",
                source.name,
                missed,
                format_duration(late),
                _when_time(due),
            )

    def _on_job_event(self, event: JobEvent) -> None:
        name = source_of(event.job_id) or event.job_id
        if isinstance(event, JobSubmissionEvent):  # EVENT_JOB_MAX_INSTANCES
            logger.info(
                "%s: still running when its next run fell due (%s); that run is skipped",
                name,
                format_time(event.scheduled_run_times[-1]),
            )
        elif isinstance(event, JobExecutionEvent) and event.code == EVENT_JOB_MISSED:
            logger.warning(
                "%s: the run due %s was missed by more than the grace time; skipped",
                name,
                _when_time(event.scheduled_run_time),
            )
        elif isinstance(event, JobExecutionEvent) and event.exception is not None:
            logger.error("%s: the job failed: %r", name, event.exception)

    # -- one run ------------------------------------------------------------------------------

    def run(self, source: str, trigger: str, attempt: int) -> None:
        """Run one source now (called in the scheduler's worker threads)."""
        with self._lock:
            if self._stopping:
                logger.info("%s: not started, the scheduler is stopping", source)
                return
            config = self.sources.get(source)
            if config is None:
                logger.warning("%s: no longer in the sources file; not run", source)
                return
            if source in self._active:
                logger.info("%s: already running here; this %s run is skipped", source, trigger)
                return
            active = self._active[source] = ActiveRun(source)
            self._finishing += 1
        try:
            ended: tuple[str, bool] | None = None
            try:
                ended = self._run(config, active, trigger, attempt)
            finally:
                with self._lock:
                    self._active.pop(source, None)
            if ended is not None:
                # after the source is free again: a retry due at once must find it so
                status, died = ended
                self._after_run(config, status, attempt, died=died)
        finally:
            with self._lock:
                self._finishing -= 1
            self._wake.ring()

    def _run(
        self, source: SourceConfig, active: ActiveRun, trigger: str, attempt: int
    ) -> tuple[str, bool] | None:
        """The run's final status and whether its crawl process died; None when not run."""
        archive = self.archive
        assert archive is not None
        source_id = ensure_source(archive, source)
        with archive.transaction() as session:
            run_id = lease.acquire_for_run(
                session, source.name, source_id, self.holder, self.options.lease_ttl, trigger
            )
            held = None if run_id is not None else lease.current(session, source.name)
        if held is not None and lease.holder_is_dead(held.holder, self.holder):
            with archive.transaction() as session:
                lease.sweep(session, self.holder)
                run_id = lease.acquire_for_run(
                    session, source.name, source_id, self.holder, self.options.lease_ttl, trigger
                )
                held = None if run_id is not None else lease.current(session, source.name)
        if run_id is None:
            logger.info(
                "%s: skipped, running elsewhere (lease held by %s until %s)",
                source.name,
                held.holder if held else "?",
                format_time(held.expires_at) if held else "?",
            )
            return None
        retry = f", attempt {attempt}" if attempt > 1 else ""
        logged = "" if "-v" in self.options.crawl_args else f"; log: {run_log_file(run_id)}"
        logger.info("%s: run %d started (%s%s%s)", source.name, run_id, trigger, retry, logged)
        exit_code: int | None = None
        error: str | None = None
        try:
            exit_code = self._supervise(source, active, run_id)
        except Exception as exc:  # the run must still get a final status
            logger.exception("%s: run %d could not be supervised", source.name, run_id)
            error = f"the scheduler failed to run the crawl: {exc!r}"
        finally:
            run = self._finalize(source, active, run_id, exit_code, error)
        if run is not None:
            logger.info("%s: run %d %s", source.name, run.id, _summary(run))
            for line in (run.error_log or "").splitlines()[:5]:  # the rest: `crawler runs`
                logger.warning("%s: run %d: %s", source.name, run.id, line)
            # a crawl process that died of a signal nobody here sent (OOM killer, kill -9)
            died = exit_code is not None and exit_code < 0 and active.stop_reason is None
            return run.status, died
        return None

    def _supervise(self, source: SourceConfig, active: ActiveRun, run_id: int) -> int | None:
        """Run the crawl process to its end: heartbeat, time limit, stop requests."""
        options = self.options
        with active.lock:
            if active.stop_reason is not None:
                return None
            child = active.child = CrawlChild(
                source.name,
                run_id,
                db_url=options.db_url,
                sources_file=options.sources_file,
                extra_args=list(options.crawl_args),
            )
        ttl = options.lease_ttl.total_seconds()
        beat_every = max(min(ttl / 4, 30.0), 0.2)
        deadline = child.started + source.timeout.total_seconds()
        last_renewed = next_beat = time.monotonic()
        try:
            while True:
                code = child.wait(min(POLL_SECONDS, beat_every))
                if code is not None:
                    return code
                now = time.monotonic()
                if now >= deadline and active.stop_reason is None:
                    logger.warning(
                        "%s: run %d reached its time limit of %s; stopping it",
                        source.name,
                        run_id,
                        format_duration(source.timeout),
                    )
                    active.stop("timed_out")
                if now >= next_beat:
                    next_beat = now + beat_every
                    if self._renew(source.name):
                        last_renewed = now
                    elif now - last_renewed > ttl * 0.75 and active.stop_reason is None:
                        # another scheduler may take the source over any moment now
                        logger.error("%s: run %d lost its lease; stopping it", source.name, run_id)
                        active.stop("interrupted")
                child.kill_if_overdue(options.kill_after.total_seconds())
        finally:
            child.finish()

    def _renew(self, source: str) -> bool:
        assert self.archive is not None
        try:
            with self.archive.transaction() as session:
                return lease.renew(session, source, self.holder, self.options.lease_ttl)
        except Exception as exc:
            logger.warning("%s: lease not renewed: %s", source, exc)
            return False

    def _finalize(
        self,
        source: SourceConfig,
        active: ActiveRun,
        run_id: int,
        exit_code: int | None,
        error: str | None,
    ) -> CrawlRun | None:
        """Give the run its final status (whatever the child managed to record) and release."""
        assert self.archive is not None
        child = active.child
        reason = active.stop_reason
        try:
            with self.archive.transaction() as session:
                run = session.get(CrawlRun, run_id)
                if run is None:
                    return None
                notes: list[str] = []
                if reason == "timed_out" and run.status in ("running", "interrupted"):
                    run.status = "timed_out"
                    notes.append(f"stopped at the time limit of {format_duration(source.timeout)}")
                elif reason == "interrupted" and run.status == "running":
                    run.status = "interrupted"
                    notes.append("stopped by the scheduler")
                elif run.status == "running":
                    run.status = "failed"
                    notes.append(error or f"the crawl process exited with code {exit_code}")
                    if child is not None and child.tail:
                        notes.extend(child.tail)
                if child is not None and child.killed:
                    notes.append("the crawl process did not stop and was killed")
                if notes:
                    run.error_log = "\n".join([*notes, *filter(None, [run.error_log])])
                    run.errors = max(run.errors, 1) if run.status == "failed" else run.errors
                if run.finished_at is None or notes:
                    run.finished_at = utcnow()
                lease.release(session, source.name, self.holder)
                return run
        except Exception:
            logger.exception(
                "%s: run %d could not be closed; its lease will expire", source.name, run_id
            )
            return None

    def _after_run(
        self, source: SourceConfig, status: str, attempt: int, *, died: bool = False
    ) -> None:
        """Schedule a retry after a failure (exponential back-off; at once the first time when
        the crawl process died), drop it after a success."""
        scheduler = self.scheduler
        assert scheduler is not None
        job_id = retry_job_id(source.name)
        if status == "finished":
            with contextlib.suppress(JobLookupError):
                scheduler.remove_job(job_id)
            return
        if status != "failed" or self._stopping:
            return
        if attempt > self.options.retries:
            logger.error(
                "%s: failed %d time(s) in a row; no more retries until the next scheduled run",
                source.name,
                attempt,
            )
            return
        delay = self.options.retry_delay * (2 ** (attempt - 1))
        if died and attempt == 1:
            delay = timedelta(0)
        self._schedule_retry(source.name, attempt, datetime.now(UTC) + delay)

    def _schedule_retry(self, name: str, attempt: int, when: datetime) -> None:
        assert self.scheduler is not None
        self.scheduler.add_job(
            JOB_FUNCTION,
            DateTrigger(run_date=when, timezone=UTC),
            id=retry_job_id(name),
            name=f"{name}: retry {attempt} of {self.options.retries}",
            args=[name],
            kwargs={"trigger": "retry", "attempt": attempt + 1},
            replace_existing=True,
        )
        logger.info("%s: retry %d of %d %s", name, attempt, self.options.retries, _when_time(when))


def _when(job: Job | None) -> str:
    return _when_time(job.next_run_time) if job is not None else "-"


def _when_time(moment: datetime | None) -> str:
    return "at " + format_time(moment) if moment else "never"


def _summary(run: CrawlRun) -> str:
    took = (run.finished_at - run.started_at).total_seconds() if run.finished_at else 0.0
    return (
        f"{run.status} in {took:.1f}s: {run.pages} pages, {run.articles_new} new, "
        f"{run.articles_updated} updated, {run.errors} errors"
    )
