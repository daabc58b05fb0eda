"""Extensions: the crawl run's record in the archive, and the live progress display."""

from __future__ import annotations

import logging
import time
from datetime import datetime, timedelta
from typing import Any, Protocol

from scrapy import Spider, signals
from scrapy.crawler import Crawler
from scrapy.exceptions import NotConfigured
from scrapy.utils.defer import deferred_from_coro
from twisted.internet.task import LoopingCall

from crawler.context import ARCHIVE_FAILED, crawl_context
from crawler.db.errors import one_line
from crawler.db.models import CrawlRun, utcnow
from crawler.scheduler import lease
from crawler.signals import page_error

logger = logging.getLogger(__name__)

MAX_ERROR_LINES = 200

# Close reasons and the status a run ends with; anything else is a failure.
_STATUS_BY_REASON = {
    "finished": "finished",
    "shutdown": "interrupted",
    "closespider_timeout": "timed_out",
    "timed_out": "timed_out",
    "lease_lost": "interrupted",
    ARCHIVE_FAILED: "failed",
}
LEASE_LOST = "stopped: the source's lease was lost (not renewed in time, or taken over)"


def _jsonable(stats: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in stats.items():
        if isinstance(value, datetime):
            out[key] = value.isoformat()
        elif isinstance(value, (int, float, str, bool)) or value is None:
            out[key] = value
    return out


class RunRecorder:
    """Opens a `crawl_runs` row when the spider opens and completes it when it closes; its counts
    are written as the crawl goes (every CRAWLER_RUN_SAVE_INTERVAL seconds), so a run whose
    process is killed keeps what it did."""

    def __init__(self, crawler: Crawler) -> None:
        self.crawler = crawler
        self.errors: list[str] = []
        self.run_id: int | None = None
        self.interval = crawler.settings.getfloat("CRAWLER_RUN_SAVE_INTERVAL", 10.0)
        self.task: LoopingCall | None = None
        crawler.signals.connect(self.spider_opened, signal=signals.spider_opened)
        crawler.signals.connect(self.spider_closed, signal=signals.spider_closed)
        crawler.signals.connect(self.page_error, signal=page_error)
        crawler.signals.connect(self.spider_error, signal=signals.spider_error)
        crawler.signals.connect(self.item_error, signal=signals.item_error)

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> RunRecorder:
        if not crawler.settings.getbool("CRAWLER_RECORD_RUNS", True):
            raise NotConfigured
        return cls(crawler)

    def spider_opened(self, spider: Spider) -> None:
        context = crawl_context(self.crawler)
        trigger = self.crawler.settings.get("CRAWLER_TRIGGER", "manual")
        # the scheduler opens the row itself (CRAWLER_RUN_ID) so that it can always close it
        given = self.crawler.settings.getint("CRAWLER_RUN_ID", 0)
        with context.archive.transaction() as session:
            run = session.get(CrawlRun, given) if given else None
            if run is not None and run.source_id != context.source_id:
                raise ValueError(f"run {given} is not a run of {spider.name}")
            if run is None:
                run = CrawlRun(source_id=context.source_id, status="running", trigger=trigger)
                session.add(run)
                session.flush()
            holder = self.crawler.settings.get("CRAWLER_LEASE_HOLDER")
            if holder:  # a manual `crawler crawl` holds the source's lease: it covers this run
                lease.attach_run(session, spider.name, holder, run.id)
            self.run_id = context.run_id = run.id
        assert self.crawler.stats is not None
        self.crawler.stats.set_value("archive/run_id", self.run_id)
        if self.interval > 0:
            self.task = LoopingCall(self.save_counts)
            self.task.start(self.interval, now=False)

    def save_counts(self) -> None:
        """Write the run's counts so far (a killed run keeps them)."""
        if self.run_id is None:
            return
        try:
            context = crawl_context(self.crawler)
            with context.archive.transaction() as session:
                run = session.get(CrawlRun, self.run_id)
                if run is not None and run.status == "running":
                    self._fill(run, self._stats())
                    run.errors = len(self.errors)
        except Exception as exc:  # the archive is away: the final write will tell
            logger.warning("the counts of run %s were not saved: %s", self.run_id, one_line(exc))

    def _stats(self) -> dict[str, Any]:
        return self.crawler.stats.get_stats() if self.crawler.stats else {}

    def _fill(self, run: CrawlRun, stats: dict[str, Any]) -> None:
        run.pages = int(stats.get("response_received_count", 0))
        run.articles_new = int(stats.get("archive/articles_new", 0))
        run.articles_updated = int(stats.get("archive/articles_updated", 0))
        run.articles_unchanged = int(stats.get("archive/articles_unchanged", 0))
        run.articles_skipped = int(stats.get("archive/articles_skipped", 0))
        run.articles_invalid = int(stats.get("archive/articles_invalid", 0))
        run.walk = crawl_context(self.crawler).walk_summary()
        run.stats = _jsonable(stats)

    def page_error(self, url: str, reason: str) -> None:
        self.errors.append(f"{url}: {reason}")

    def spider_error(self, failure: Any, response: Any, spider: Spider) -> None:
        self.errors.append(f"{response.url}: {failure.getErrorMessage()}")

    def item_error(self, item: Any, response: Any, spider: Spider, failure: Any) -> None:
        url = getattr(item, "url", None) or getattr(response, "url", "?")
        self.errors.append(f"{url}: {failure.type.__name__}: {failure.getErrorMessage()}")

    def spider_closed(self, spider: Spider, reason: str) -> None:
        if self.task is not None and self.task.running:
            self.task.stop()
        if self.run_id is None:
            return
        stats = self._stats()
        context = crawl_context(self.crawler)
        pages = int(stats.get("response_received_count", 0))
        status = _STATUS_BY_REASON.get(reason, "failed")
        errors = len(self.errors)
        reached = pages - int(stats.get("robotstxt/response_count", 0))
        if status == "finished" and errors and not reached:
            status = "failed"  # no page of the site answered: an unreachable site is a failed run
        log = self.errors[:MAX_ERROR_LINES]
        if errors > MAX_ERROR_LINES:
            log.append(f"... and {errors - MAX_ERROR_LINES} more")
        if reason == ARCHIVE_FAILED:
            log.insert(0, f"stopped: {context.failure}")
            errors += 1
        elif reason not in _STATUS_BY_REASON:
            log.insert(0, f"closed: {reason}")
        elif reason == "lease_lost":
            log.insert(0, LEASE_LOST)
        try:
            with context.archive.transaction() as session:
                run = session.get(CrawlRun, self.run_id)
                assert run is not None
                run.finished_at = utcnow()
                run.status = status
                self._fill(run, stats)
                run.errors = errors
                run.error_log = "\n".join(log) or None
        except Exception as exc:
            # the archive refuses even this: the run is closed by the next crawl or scheduler
            logger.error(
                "run %s of %s could not be closed (%s): %s",
                self.run_id,
                spider.name,
                status,
                one_line(exc),
            )
            return
        logger.info(
            "run %s of %s: %s, %d pages, %d errors, walk %s",
            self.run_id,
            spider.name,
            status,
            pages,
            errors,
            run.walk or "-",
        )


class LeaseKeeper:
    """Renews the source's lease while a manual `crawler crawl` runs (CRAWLER_LEASE_HOLDER, taken
    by the command before the crawl started); stops the crawl if the lease is lost, so that a
    source is never crawled twice at once.

    Renewed every quarter of CRAWLER_LEASE_TTL (seconds) on the reactor thread, like every other
    write of the crawl; lost when the row is no longer this holder's or has not been renewed for
    three quarters of the TTL (the database was unreachable)."""

    def __init__(self, crawler: Crawler, holder: str, ttl: float) -> None:
        self.crawler = crawler
        self.holder = holder
        self.ttl = timedelta(seconds=ttl)
        self.renewed = time.monotonic()
        self.task: LoopingCall | None = None
        crawler.signals.connect(self.spider_opened, signal=signals.spider_opened)
        crawler.signals.connect(self.spider_closed, signal=signals.spider_closed)

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> LeaseKeeper:
        holder = crawler.settings.get("CRAWLER_LEASE_HOLDER")
        if not holder:
            raise NotConfigured
        return cls(crawler, holder, crawler.settings.getfloat("CRAWLER_LEASE_TTL", 120))

    def spider_opened(self, spider: Spider) -> None:
        self.renewed = time.monotonic()
        self.task = LoopingCall(self.renew, spider.name)
        self.task.start(self.ttl.total_seconds() / 4, now=True)

    def renew(self, source: str) -> None:
        try:
            with crawl_context(self.crawler).archive.transaction() as session:
                kept = lease.renew(session, source, self.holder, self.ttl)
        except Exception as exc:
            logger.warning("renewing the lease of %s failed: %s", source, exc)
            kept = time.monotonic() - self.renewed < self.ttl.total_seconds() * 3 / 4
        else:
            self.renewed = time.monotonic()
        if kept:
            return
        logger.error("%s: %s", source, LEASE_LOST)
        self._stop_renewing()
        engine = self.crawler.engine
        if engine is not None and engine.spider is not None:
            deferred_from_coro(engine.close_spider_async(reason="lease_lost"))

    def spider_closed(self, spider: Spider) -> None:
        self._stop_renewing()

    def _stop_renewing(self) -> None:
        if self.task is not None and self.task.running:
            self.task.stop()


class ProgressBoard(Protocol):
    """What the live display needs: one call per change of a source's counters."""

    def update(self, source: str, counters: dict[str, int]) -> None: ...


class CrawlProgress:
    """Feeds the CLI's live display (given as the CRAWLER_PROGRESS_BOARD setting)."""

    def __init__(self, crawler: Crawler, board: ProgressBoard) -> None:
        self.crawler = crawler
        self.board = board
        for signal in (
            signals.response_received,
            signals.item_scraped,
            signals.item_dropped,
            signals.spider_opened,
        ):
            crawler.signals.connect(self.refresh, signal=signal)
        crawler.signals.connect(self.refresh, signal=page_error)

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> CrawlProgress:
        board = crawler.settings.get("CRAWLER_PROGRESS_BOARD")
        if board is None:
            raise NotConfigured
        return cls(crawler, board)

    def refresh(self, **_: Any) -> None:
        if self.crawler.spider is None or self.crawler.stats is None:
            return
        stats = self.crawler.stats.get_stats()
        counters = {
            "pages": int(stats.get("response_received_count", 0)),
            "new": int(stats.get("archive/articles_new", 0)),
            "updated": int(stats.get("archive/articles_updated", 0)),
            "unchanged": int(stats.get("archive/articles_unchanged", 0)),
            "skipped": int(stats.get("archive/articles_skipped", 0)),
            "errors": int(stats.get("archive/errors", 0))
            + int(stats.get("archive/articles_invalid", 0)),
        }
        self.board.update(self.crawler.spider.name, counters)
