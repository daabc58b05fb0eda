"""Scrapy settings of the project (`scrapy crawl` and the `crawler` command share them)."""

import os

from scrapy.settings import default_settings as scrapy_defaults

from crawler import __version__
from crawler.config import DEFAULT_MAX_PAGE_SIZE

BOT_NAME = "crawler"
SPIDER_MODULES = ["crawler.spiders"]
NEWSPIDER_MODULE = "crawler.spiders"
# `scrapy crawl` exits 1 when its run failed; `scrapy parse` records no run
COMMANDS_MODULE = "crawler.commands"

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
# Workers Scrapy starts per response to pass its output on (default 100): each is an asyncio
# task made and ended for every page, 101 tasks costing about 1 ms of CPU a page, a third of a
# bare spider's. An article page yields one item (the pages in flight are stored side by
# side by the archive writer whatever this count); a listing's requests are queued one after
# the other (bench/crawl_side.py).
CONCURRENT_ITEMS = 4
DOWNLOAD_DELAY = 0.25
DOWNLOAD_TIMEOUT = 60
RETRY_TIMES = 2
COOKIES_ENABLED = False
TELNETCONSOLE_ENABLED = False
REMOTE_CONTROL_ENABLED = False
HTTPCACHE_ENABLED = False
# Pages parsed and waiting for the archive writer (crawler/db/writer.py), in bytes of their
# bodies: when the writer is the slower, the crawl stops taking new requests at this backlog.
# The writer answers a batch (up to 32 pages) at a time, so a backlog shorter than about two
# batches makes the crawl wait for each one: bench/throughput.py measured 3 MB (about 45
# generated pages) 10% faster than 1.5 MB on SQLite, 5 MB no faster. On PostgreSQL, where the
# writer's batches also wait on the server, 8 MB (about 120 pages) kept the crawl going where
# 3 MB made it wait: 3,000 generated pages alternated, 186 pages/s at 3 MB, 199.5 at 6 MB and
# 203.4 at 10 MB (4 crawls each). A waiting page holds its body and item, not its parsed tree
# (`release_selector`): peak RSS 214 MB at 3 MB against 228 at 1.5 MB with the trees kept.
SCRAPER_SLOT_MAX_ACTIVE_SIZE = 8_000_000

TWISTED_REACTOR = "twisted.internet.asyncioreactor.AsyncioSelectorReactor"
FEED_EXPORT_ENCODING = "utf-8"
LOG_LEVEL = os.environ.get("CRAWLER_LOG_LEVEL", "INFO")

# The snapshot is written by the store stage, in the page's one transaction with its article.
ITEM_PIPELINES = {
    "crawler.pipelines.clean.CleanPipeline": 200,
    "crawler.pipelines.validate.ValidatePipeline": 300,
    "crawler.pipelines.deduplicate.DeduplicatePipeline": 400,
    "crawler.pipelines.store.StorePipeline": 500,
}

# Scrapy's own, less what this project switches off for good: listing a component as None
# would not spare its import (Scrapy loads every listed class to match it with its base
# entry), and a component left in the base is imported to find it is off. Cookies stay off
# (COOKIES_ENABLED; its middleware imports tldextract, 0.05 s of every crawl's start-up): a
# crawl that needs them lists scrapy.downloadermiddlewares.cookies.CookiesMiddleware here.
DOWNLOADER_MIDDLEWARES_BASE = {
    name: order
    for name, order in scrapy_defaults.DOWNLOADER_MIDDLEWARES_BASE.items()
    if name != "scrapy.downloadermiddlewares.cookies.CookiesMiddleware"
}
# Engine side of decompression (590): a page whose declared charset misreads its bytes is
# read in the right one (stat `charset/overruled`); the bytes themselves stay as served.
# What a hostile site cannot make the crawl do (each refusal in the run's error log,
# crawler/middlewares.py): fetch off the source's site or another scheme than http(s) (45,
# before robots.txt), follow a redirect off-site or in a loop (replacing Scrapy's redirect
# middlewares), keep a page larger than its maximum size once decompressed (replacing
# Scrapy's HttpCompressionMiddleware), keep bytes that are not text as a page (586), or be
# retried sooner than its Retry-After asks (555, outside RetryMiddleware's 550).
DOWNLOADER_MIDDLEWARES = {
    "crawler.middlewares.SiteScopeMiddleware": 45,
    "crawler.middlewares.RetryAfterMiddleware": 555,
    "scrapy.downloadermiddlewares.redirect.MetaRefreshMiddleware": None,
    "crawler.middlewares.SiteMetaRefreshMiddleware": 580,
    "crawler.middlewares.CharsetMiddleware": 585,
    "crawler.middlewares.BinaryPageMiddleware": 586,
    "scrapy.downloadermiddlewares.httpcompression.HttpCompressionMiddleware": None,
    "crawler.middlewares.PageSizeMiddleware": 590,
    "scrapy.downloadermiddlewares.redirect.RedirectMiddleware": None,
    "crawler.middlewares.SiteRedirectMiddleware": 600,
}
CHARSET_CHECK_ENABLED = True
BINARY_CHECK_ENABLED = True
SITE_SCOPE_ENABLED = True
# A page larger than this once decompressed is not archived (per source: max_page_size).
CRAWLER_MAX_PAGE_SIZE = DEFAULT_MAX_PAGE_SIZE
# The longest Retry-After (seconds) a 429 or 503 answer is waited for before its retry.
CRAWLER_RETRY_AFTER_MAX = 60

# Scrapy's own less its telnet console and remote control, both off (TELNETCONSOLE_ENABLED,
# REMOTE_CONTROL_ENABLED) yet imported to find that out, or when listed as None here:
# twisted.conch and aiohttp, 0.09 s of every crawl's start-up and 6 MB.
EXTENSIONS_BASE = {
    name: order
    for name, order in scrapy_defaults.EXTENSIONS_BASE.items()
    if name
    not in (
        "scrapy.extensions.telnet.TelnetConsole",
        "scrapy.extensions.remote_control.RemoteControl",
    )
}
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
