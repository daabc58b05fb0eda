"""Scrapy settings of the project (`scrapy crawl` and the `crawler` command share them)."""

import os

from crawler import __version__

BOT_NAME = "crawler"
SPIDER_MODULES = ["crawler.spiders"]
NEWSPIDER_MODULE = "crawler.spiders"

# Where the archive lives and which sources exist; both may be overridden per command.
CRAWLER_DATABASE_URL = os.environ.get("CRAWLER_DATABASE_URL")
CRAWLER_SOURCES = os.environ.get("CRAWLER_SOURCES")

# Polite by default: an honest user agent, robots.txt obeyed, AutoThrottle on.
USER_AGENT = (
    f"news-archive-crawler/{__version__} (+https://github.com/news-archive/crawler; "
    "archiving news for research)"
)
ROBOTSTXT_OBEY = True
AUTOTHROTTLE_ENABLED = True
AUTOTHROTTLE_START_DELAY = 1.0
AUTOTHROTTLE_MAX_DELAY = 30.0
AUTOTHROTTLE_TARGET_CONCURRENCY = 2.0
CONCURRENT_REQUESTS = 16
CONCURRENT_REQUESTS_PER_DOMAIN = 4
DOWNLOAD_DELAY = 0.25
DOWNLOAD_TIMEOUT = 60
RETRY_TIMES = 2
COOKIES_ENABLED = False
TELNETCONSOLE_ENABLED = False
REMOTE_CONTROL_ENABLED = False
HTTPCACHE_ENABLED = False

TWISTED_REACTOR = "twisted.internet.asyncioreactor.AsyncioSelectorReactor"
FEED_EXPORT_ENCODING = "utf-8"
LOG_LEVEL = os.environ.get("CRAWLER_LOG_LEVEL", "INFO")

ITEM_PIPELINES = {
    "crawler.pipelines.snapshot.SnapshotPipeline": 100,
    "crawler.pipelines.clean.CleanPipeline": 200,
    "crawler.pipelines.validate.ValidatePipeline": 300,
    "crawler.pipelines.deduplicate.DeduplicatePipeline": 400,
    "crawler.pipelines.store.StorePipeline": 500,
}

# Engine side of decompression (590): a page whose declared charset misreads its bytes is
# read in the right one (stat `charset/overruled`); the bytes themselves stay as served.
DOWNLOADER_MIDDLEWARES = {
    "crawler.middlewares.CharsetMiddleware": 585,
}
CHARSET_CHECK_ENABLED = True

EXTENSIONS = {
    "crawler.extensions.RunRecorder": 100,
    "crawler.extensions.CrawlProgress": 200,
    "crawler.extensions.LeaseKeeper": 300,  # only when `crawler crawl` holds the source's lease
}
# Seconds a manual crawl's source lease lasts unless renewed (renewed every quarter of it).
CRAWLER_LEASE_TTL = 120

# Browser rendering, chosen per request with meta={"playwright": True}. The handler is
# registered (as DOWNLOAD_HANDLERS) only in the settings of a crawl whose source renders
# (NewsSpider.update_settings): it starts node drivers and Chromium, ~130 MB each.
PLAYWRIGHT_DOWNLOAD_HANDLERS = {
    "http": "scrapy_playwright.handler.ScrapyPlaywrightDownloadHandler",
    "https": "scrapy_playwright.handler.ScrapyPlaywrightDownloadHandler",
}
PLAYWRIGHT_BROWSER_TYPE = "chromium"
PLAYWRIGHT_LAUNCH_OPTIONS = {
    "executable_path": os.environ.get("CRAWLER_CHROMIUM", "/usr/bin/chromium"),
    "headless": True,
    "args": [
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
    ],
}
PLAYWRIGHT_MAX_PAGES_PER_CONTEXT = 4
PLAYWRIGHT_MAX_CONTEXTS = 2
PLAYWRIGHT_DEFAULT_NAVIGATION_TIMEOUT = 30_000
