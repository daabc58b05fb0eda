"""Stopping the scheduler while a run's thread is still at its retry bookkeeping (in-process)."""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from pathlib import Path

from crawler.scheduler.service import SchedulerService, ServiceOptions
from tests.conftest import write_sources


def test_stop_waits_for_a_run_still_scheduling_or_dropping_its_retry(db_url: str, tmp_path: Path):
    """APScheduler's shutdown holds the job stores' lock while it waits for its worker threads;
    a worker that asks for that lock after shutdown began (dropping a finished run's retry job)
    would never end, and `crawler schedule` would hang on SIGTERM or Ctrl-C."""
    sources = write_sources(tmp_path / "sources.toml", {"kcna_watch": "http://127.0.0.1:9"})
    service = SchedulerService(
        ServiceOptions(db_url=db_url, sources_file=sources, jitter=timedelta(0))
    )
    after_run = service._after_run
    in_after_run = threading.Event()
    dropped = threading.Event()
    shutting_down = threading.Event()

    def run_at_once(*_args: object) -> tuple[str, bool]:
        return "finished", False  # no crawl process: the run is over as soon as it starts

    def slow_after_run(*args: object, **kwargs: object) -> None:
        in_after_run.set()
        while not service._stopping:  # the source is free again and stop() has begun
            time.sleep(0.01)
        # a stop() that does not wait for this is in APScheduler's shutdown by now
        shutting_down.wait(5)
        after_run(*args, **kwargs)  # type: ignore[arg-type]
        dropped.set()

    service._run = run_at_once  # type: ignore[method-assign]
    service._after_run = slow_after_run  # type: ignore[method-assign]
    service.start()
    assert service.scheduler is not None
    shutdown = service.scheduler.shutdown

    def marked_shutdown(*args: object, **kwargs: object) -> None:
        shutting_down.set()
        shutdown(*args, **kwargs)  # type: ignore[arg-type]

    service.scheduler.shutdown = marked_shutdown  # type: ignore[method-assign]
    assert in_after_run.wait(60), "the first run did not start"
    stopping = threading.Thread(target=service.stop, daemon=True)
    stopping.start()
    stopping.join(60)
    assert not stopping.is_alive(), "stop() hung"
    assert dropped.is_set() and shutting_down.is_set()
    assert service.scheduler is not None and not service.scheduler.running
