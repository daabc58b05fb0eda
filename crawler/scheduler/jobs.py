"""The scheduler's jobs: ids, triggers and the job function the job store refers to by name.

The SQLAlchemy job store pickles a job as a reference to a module-level function plus plain
arguments, so a job is `run_source(<source name>, trigger=..., attempt=...)`; the function hands
the run to the service running in this process.
"""

from __future__ import annotations

import threading
from datetime import UTC, timedelta
from typing import TYPE_CHECKING, Protocol

from crawler.config import SourceConfig
from crawler.scheduler.display import format_duration

if TYPE_CHECKING:  # APScheduler is imported to schedule, not by `crawler sources` reading a job
    from apscheduler.triggers.base import BaseTrigger

JOBS_TABLE = "scheduler_jobs"
JOB_FUNCTION = "crawler.scheduler.jobs:run_source"
SOURCE_PREFIX = "source:"
RETRY_PREFIX = "retry:"


class SourceRunner(Protocol):
    """What a job needs from the service: run one source now."""

    def run(self, source: str, trigger: str, attempt: int) -> None: ...


_runner: SourceRunner | None = None
_runner_lock = threading.Lock()


def set_runner(runner: SourceRunner | None) -> None:
    """Make `runner` the service that this process's jobs run through (None to unset)."""
    global _runner
    with _runner_lock:
        _runner = runner


def run_source(source: str, trigger: str = "scheduled", attempt: int = 1) -> None:
    """The job function: run one source through this process's service."""
    with _runner_lock:
        runner = _runner
    if runner is None:
        raise RuntimeError(f"no scheduler service runs in this process to run {source!r}")
    runner.run(source, trigger, attempt)


def source_job_id(source: str) -> str:
    return SOURCE_PREFIX + source


def retry_job_id(source: str) -> str:
    return RETRY_PREFIX + source


def source_of(job_id: str) -> str | None:
    """The source a job id belongs to, None for a job that is not the scheduler's."""
    for prefix in (SOURCE_PREFIX, RETRY_PREFIX):
        if job_id.startswith(prefix):
            return job_id.removeprefix(prefix)
    return None


def effective_jitter(source: SourceConfig, jitter: timedelta) -> float:
    """Seconds of random delay: the requested jitter, at most a tenth of the interval."""
    seconds = jitter.total_seconds()
    if source.every is not None:
        seconds = min(seconds, source.every.total_seconds() / 10)
    return max(seconds, 0.0)


def schedule_description(source: SourceConfig) -> str:
    """'every 2h' or 'cron 0 */2 * * *'."""
    if source.cron:
        return f"cron {source.cron}"
    assert source.every is not None
    return f"every {format_duration(source.every)}"


def job_name(source: SourceConfig, jitter: timedelta) -> str:
    """The job's name, which also records the schedule it was made from (to detect changes)."""
    spread = effective_jitter(source, jitter)
    return f"{source.name}: {schedule_description(source)}, jitter {spread:g}s"


def trigger_for(source: SourceConfig, jitter: timedelta) -> BaseTrigger:
    """The source's trigger: an interval from `every` or a crontab line (UTC) from `cron`."""
    from apscheduler.triggers.interval import IntervalTrigger

    from crawler.scheduler.cron import cron_trigger

    spread = effective_jitter(source, jitter) or None
    if source.cron:
        return cron_trigger(source.cron, spread)
    assert source.every is not None
    return IntervalTrigger(seconds=int(source.every.total_seconds()), jitter=spread, timezone=UTC)
