"""`scrapy crawl SPIDER`: Scrapy's command, exiting 1 when the run it recorded did not finish
cleanly (an unreachable site, a timeout), as `crawler crawl` does."""

from __future__ import annotations

import argparse

from scrapy.commands.crawl import Command as ScrapyCrawlCommand
from scrapy.exceptions import UsageError

from crawler.config import database_url
from crawler.runner import summarise_runs


class Command(ScrapyCrawlCommand):
    def run(self, args: list[str], opts: argparse.Namespace) -> None:
        if len(args) != 1:
            raise UsageError("name one spider: scrapy crawl SPIDER")
        assert self.crawler_process is not None
        crawler = self._create_crawler(args[0])
        self.crawler_process.crawl(crawler, **opts.spargs)
        self.crawler_process.start()
        if self.crawler_process.bootstrap_failed:
            self.exitcode = 1
            return
        run_id = crawler.stats.get_value("archive/run_id") if crawler.stats else None
        if run_id is None:
            return  # no run was recorded (CRAWLER_RECORD_RUNS=False)
        db_url = database_url(crawler.settings.get("CRAWLER_DATABASE_URL"))
        (summary,) = summarise_runs(db_url, {args[0]: run_id})
        if summary.status != "finished":
            self.exitcode = 1
