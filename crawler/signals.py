"""Signals of this project (sent through the crawler's signal manager)."""

from __future__ import annotations

import logging

from scrapy.crawler import Crawler

logger = logging.getLogger(__name__)

# A page could not be archived: kwargs url, reason. Recorded in the crawl run's error log.
page_error = object()


def report_page_error(crawler: Crawler, url: str, reason: str) -> None:
    """Log a page that will not be archived, count it and send it to the run's error log."""
    logger.error("cannot archive %s: %s", url, reason)
    if crawler.stats is not None:
        crawler.stats.inc_value("archive/errors")
    crawler.signals.send_catch_log(page_error, url=url, reason=reason)
