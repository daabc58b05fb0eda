"""Run crawls in this process (one Twisted reactor per process: the CLI and the scheduler's
child processes call this once)."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scrapy.crawler import CrawlerProcess
from scrapy.settings import Settings

from crawler.config import SourceConfig, project_settings
from crawler.context import archive_for
from crawler.db.models import CrawlRun
from crawler.extensions import CrawlProgress, ProgressBoard

# Container objects allocated (net) between two collections of the youngest generation while
# crawls run (Python's default: 700).
CRAWL_GC_THRESHOLD = 10_000


@dataclass(frozen=True)
class RunSummary:
    source: str
    run_id: int | None
    status: str
    pages: int
    new: int
    updated: int
    unchanged: int
    skipped: int
    invalid: int
    errors: int
    error_log: str | None
    seconds: float | None = None

    def line(self) -> str:
        """The run's end in one line (as the scheduler logs it)."""
        took = f" in {self.seconds:.1f}s" if self.seconds is not None else ""
        run = f"run {self.run_id} " if self.run_id else ""
        return (
            f"{run}{self.status}{took}: {self.pages} pages, {self.new} new, "
            f"{self.updated} updated, {self.errors} errors"
        )


def crawl_settings(
    db_url: str,
    sources_file: Path,
    *,
    trigger: str = "manual",
    overrides: dict[str, Any] | None = None,
) -> Settings:
    settings = project_settings()
    settings.set("CRAWLER_DATABASE_URL", db_url, priority="cmdline")
    settings.set("CRAWLER_SOURCES", str(sources_file), priority="cmdline")
    settings.set("CRAWLER_TRIGGER", trigger, priority="cmdline")
    for key, value in (overrides or {}).items():
        settings.set(key, value, priority="cmdline")
    return settings


def run_crawls(
    sources: list[SourceConfig],
    settings: Settings,
    *,
    refresh: bool = False,
    board: ProgressBoard | None = None,
) -> list[RunSummary]:
    """Crawl the sources concurrently in this process and summarise each run from the archive.

    `board` (the live display) is fed by each crawler's signals; it is never put in the
    settings, which Scrapy deep-copies (a display holds locks and a terminal)."""
    process = CrawlerProcess(settings)
    crawlers = []
    feeds = []  # signal receivers are weak references: kept alive until the crawls end
    for source in sources:
        crawler = process.create_crawler(source.spider)
        if board is not None:
            feeds.append(CrawlProgress(crawler, board))
        crawlers.append((source, crawler))
        process.crawl(crawler, refresh=refresh, source_name=source.name)
    with crawl_gc():
        process.start()
    run_ids = {
        source.name: (crawler.stats.get_value("archive/run_id") if crawler.stats else None)
        for source, crawler in crawlers
    }
    return summarise_runs(settings["CRAWLER_DATABASE_URL"], run_ids)


@contextmanager
def crawl_gc() -> Iterator[None]:
    """Garbage collection sized for a crawl, restored after it.

    What start-up made (modules, classes, settings: about 100,000 objects) is set apart from
    the collector, which is switched on if start-up paused it (crawler.cli.crawling), and the
    youngest generation is collected every CRAWL_GC_THRESHOLD allocations rather than 700:
    a page's objects are freed by reference counting (its parsed tree too, see
    `release_selector`), yet the default collected every fourth page and went through every
    object of the process five times in 3,000 pages, 0.19 ms of CPU a page against 0.05 ms so
    (bench/crawl_side.py).
    """
    thresholds, enabled = gc.get_threshold(), gc.isenabled()
    gc.freeze()
    gc.set_threshold(CRAWL_GC_THRESHOLD, *thresholds[1:])
    gc.enable()  # whatever the caller had: `crawler crawl` pauses it while it starts
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)
        gc.unfreeze()
        if not enabled:
            gc.disable()


def summarise_runs(db_url: str, run_ids: dict[str, int | None]) -> list[RunSummary]:
    archive = archive_for(db_url)
    try:
        summaries = []
        with archive.transaction() as session:
            for name, run_id in run_ids.items():
                run = session.get(CrawlRun, run_id) if run_id else None
                if run is None:
                    summaries.append(
                        RunSummary(
                            name, None, "failed", 0, 0, 0, 0, 0, 0, 1, "the crawl did not start"
                        )
                    )
                    continue
                summaries.append(
                    RunSummary(
                        source=name,
                        run_id=run.id,
                        status=run.status,
                        pages=run.pages,
                        new=run.articles_new,
                        updated=run.articles_updated,
                        unchanged=run.articles_unchanged,
                        skipped=run.articles_skipped,
                        invalid=run.articles_invalid,
                        errors=run.errors,
                        error_log=run.error_log,
                        seconds=(run.finished_at - run.started_at).total_seconds()
                        if run.finished_at
                        else None,
                    )
                )
        return summaries
    finally:
        archive.dispose()
