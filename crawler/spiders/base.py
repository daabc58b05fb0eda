"""What every outlet's spider shares: discovery, pagination, incremental stopping, fallbacks
and item assembly. An outlet's module holds only its URL patterns, selectors and time zone."""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, ClassVar, TypeVar

from lxml import etree
from scrapy import Request, Spider, signals
from scrapy.crawler import Crawler
from scrapy.exceptions import CloseSpider, DontCloseSpider, IgnoreRequest
from scrapy.http import Response, TextResponse
from scrapy.settings import BaseSettings
from scrapy.spidermiddlewares.httperror import HttpError
from scrapy.utils.sitemap import Sitemap
from twisted.python.failure import Failure

from crawler.config import ConfigError, SourceConfig, load_sources, parse_duration
from crawler.context import source_config
from crawler.db.queries import KnownUrl
from crawler.extract import PageMetadata, generic_paragraphs
from crawler.items import ArticleItem, FetchedPage, NotModifiedItem
from crawler.middlewares import PageRefused
from crawler.signals import page_error
from crawler.text import normalize_text
from crawler.walk import ArchiveUnavailable, Walks, WalkStep

T = TypeVar("T")

# A walk's first page goes first (it finds the first articles: a feed would make them wait for
# feedparser's import); its later pages and sitemaps after the article pages already found
# (priority 0), so the requests waiting in memory stay about one listing page's worth.
FIRST_PAGE_PRIORITY = 10
WALK_PRIORITY = -10
_FEED_LINK = re.compile(r"<item\b.*?<link>\s*([^<\s]+)\s*</link>", re.S | re.I)
# An ampersand that starts no entity: the commonest way feeds break XML.
_BARE_AMPERSAND = re.compile(rb"&(?!#\d+;|#x[0-9a-fA-F]+;|[A-Za-z][A-Za-z0-9]*;)")


@dataclass(frozen=True)
class ListingEntry:
    """An article link as a feed, sitemap or listing page showed it."""

    url: str
    title: str | None = None
    published: datetime | None = None


def parse_bool(name: str, value: Any) -> bool:
    """A spider argument given as true/false, yes/no, 1/0."""
    if isinstance(value, bool):
        return value
    lowered = str(value).strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(f"spider argument {name}={value!r} is not true or false")


# Plain strings from lxml: parsel's .xpath() would wrap every text node in a Selector.
_TEXT_NODES = etree.XPath(".//text()", smart_strings=False)


def _texts(selector: Any) -> list[str]:
    root = selector.root
    return [root] if isinstance(root, str) else _TEXT_NODES(root)


def text_of(selection: Any) -> str | None:
    """All text inside the selected node(s), whitespace-normalised."""
    selectors = selection if isinstance(selection, list) else [selection]
    return normalize_text(" ".join(text for node in selectors for text in _texts(node)))


def paragraphs_of(selection: Any) -> list[str]:
    """The text of each selected paragraph, empty ones left out."""
    return [t for t in (text_of(p) for p in selection) if t]


def release_selector(response: Response) -> None:
    """Let a page's parsed tree be freed with its response, once the spider has read it.

    A response and the selector it caches refer to each other, so without this the tree
    (half a megabyte for a 65 KB page) waits for the cyclic garbage collector: the pipelines
    keep a response alive across enough collections for it to reach the oldest generation,
    which is collected rarely, and each of its collections freed about 60 MB of pages (peak RSS
    255 MB against 185 MB with this, at 3,000 pages). The selector needs its response only
    while it is built.

    The response drops its tree and decoded text too: it waits in Scrapy's scraper slot until
    the archive writer has stored its page, and with its tree a waiting page held about 0.5 MB
    (bench/throughput.py: peak RSS 228 -> 212 MB at 3,000 pages, which paid for the longer
    backlog in `crawler.settings`). Reading it again parses it again.
    """
    if isinstance(response, TextResponse):
        response.selector.response = None
        response._cached_selector = None
        response._cached_ubody = None


def parse_local_datetime(text: str | None, *formats: str) -> datetime | None:
    """A date/time shown on a page, read with the first `strptime` format that fits.

    The result is naive: the outlet's local time, put in UTC by the clean pipeline.
    """
    shown = normalize_text(text)
    if not shown:
        return None
    for fmt in formats:
        try:
            return datetime.strptime(shown, fmt)
        except ValueError:
            continue
    return None


class NewsSpider(Spider):
    """Base of every outlet's spider (subclasses set the class attributes and `_parse_*`)."""

    timezone: ClassVar[str] = "UTC"
    feed_paths: ClassVar[tuple[str, ...]] = ()
    sitemap_paths: ClassVar[tuple[str, ...]] = ()
    listing_paths: ClassVar[tuple[str, ...]] = ()
    # CSS of the article links on a listing page, and of its "next page" link.
    listing_link_css: ClassVar[str] = ""
    next_page_css: ClassVar[str | None] = None
    # Only links whose path matches are articles (feeds and sitemaps list other things too).
    article_path: ClassVar[re.Pattern[str]] = re.compile(r".")
    # Listing pages that exist only after their JavaScript ran (scrapy-playwright).
    render_listing: ClassVar[bool] = False
    # Fields for which the page's own metadata stands in when the outlet's selectors fail.
    metadata_fallbacks: ClassVar[tuple[str, ...]] = ("title", "published")

    source: SourceConfig

    def __init__(
        self,
        *args: Any,
        refresh: Any = False,
        max_pages: Any = None,
        base_url: str | None = None,
        source_name: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        # the source's table in the sources file: several sources may share one spider
        self._source_name_arg = source_name or self.name
        self.refresh = parse_bool("refresh", refresh)
        self._max_pages_arg = self._positive_int("max_pages", max_pages)
        self._base_url_arg = base_url
        self._requested: set[str] = set()
        # addresses earlier runs found and did not archive, fetched once the walks are done
        self._pending: list[str] = []
        self.walks: Walks
        # Every article request carries these same two objects: Scrapy checks a callback for
        # a `return` with a value by reading its source (inspect, ast), once per callable it
        # still holds, so a bound method made afresh per request (dropped with its response)
        # was read again for every page (4% of the crawl's CPU, bench/crawl_side.py).
        self._article_callback = self.parse_article
        self._article_errback = self.on_error

    @staticmethod
    def _positive_int(name: str, value: Any) -> int | None:
        if value is None:
            return None
        try:
            number = int(value)
        except (TypeError, ValueError):
            raise ValueError(f"spider argument {name}={value!r} is not a whole number") from None
        if number < 1:
            raise ValueError(f"spider argument {name}={value!r} must be at least 1")
        return number

    @classmethod
    def update_settings(cls, settings: BaseSettings) -> None:
        super().update_settings(settings)
        if cls.uses_browser(settings):
            handlers = settings.getdict("PLAYWRIGHT_DOWNLOAD_HANDLERS")
            merged = {**settings.getdict("DOWNLOAD_HANDLERS"), **handlers}
            settings.set("DOWNLOAD_HANDLERS", merged, priority="spider")

    @classmethod
    def uses_browser(cls, settings: BaseSettings) -> bool:
        """Whether this outlet's crawl needs the browser: its listing or its source renders."""
        if cls.render_listing:
            return True
        try:
            sources = load_sources(settings.get("CRAWLER_SOURCES"))
        except ConfigError:
            return False  # from_crawler reports the broken sources file
        source = sources.sources.get(cls.name)
        return source is not None and source.render_js

    @classmethod
    def from_crawler(cls, crawler: Crawler, *args: Any, **kwargs: Any) -> NewsSpider:
        spider = super().from_crawler(crawler, *args, **kwargs)
        source = source_config(crawler, spider._source_name_arg)
        overrides: dict[str, Any] = {}
        if spider._max_pages_arg:
            overrides["max_pages"] = spider._max_pages_arg
        if spider._base_url_arg:
            if not re.match(r"^https?://[^/]+", spider._base_url_arg):
                raise ValueError(
                    f"spider argument base_url={spider._base_url_arg!r} is not http(s)"
                )
            overrides["base_url"] = spider._base_url_arg.rstrip("/")
        spider.source = replace(source, **overrides) if overrides else source
        spider.walks = Walks(spider)
        crawler.signals.connect(spider.fetch_pending, signal=signals.spider_idle)
        crawler.signals.connect(spider.walks.close, signal=signals.spider_closed)
        return spider

    # -- discovery -------------------------------------------------------------------------

    async def start(self) -> AsyncIterator[Any]:
        problem = self.browser_problem()
        if problem:
            # fail this source's run at once; other sources of the same crawl go on
            self.report_error(self.source.base_url, problem)
            raise CloseSpider("browser_missing")
        try:
            self._pending = self.walks.open()
        except ArchiveUnavailable:
            return
        for request in self.discovery_requests():
            yield request

    def fetch_pending(self) -> None:
        """Once the walks are done: fetch what earlier runs found and did not archive and this
        run's walks did not find again (spider_idle)."""
        pending = [url for url in self._pending if url not in self._requested]
        self._pending = []
        if not pending or self.crawler.engine is None:
            return
        try:
            self.walks.attempted(pending)
        except ArchiveUnavailable:
            return
        self._inc("discovery/pending_fetched", len(pending))
        for request in self._requests_for([ListingEntry(url=url) for url in pending], {}):
            self.crawler.engine.crawl(request)
        raise DontCloseSpider

    def browser_problem(self) -> str | None:
        """Why the browser this source's listing needs cannot be started here, or None."""
        if not (self.render_listing or self.source.render_js):
            return None
        launch = self.crawler.settings.getdict("PLAYWRIGHT_LAUNCH_OPTIONS")
        path = launch.get("executable_path")
        if not path or (os.path.isfile(path) and os.access(path, os.X_OK)):
            return None
        return (
            f"{self.name} renders its listing in headless Chromium, but no Chromium executable "
            f"is at {path}: install it (`apt-get install chromium`) or set CRAWLER_CHROMIUM "
            "to the path of a Chromium binary"
        )

    def discovery_requests(self) -> Iterator[Request]:
        """The entry points: the source's `feeds`, `sitemaps`, `listings`, else the spider's own."""
        source = self.source
        for path in self.feed_paths if source.feeds is None else source.feeds:
            yield Request(source.url(path), callback=self.parse_feed, errback=self.on_error)
        for path in self.sitemap_paths if source.sitemaps is None else source.sitemaps:
            yield self.sitemap_request(source.url(path))
        for path in self.listing_paths if source.listings is None else source.listings:
            yield self.listing_request(source.url(path), page=1)

    def listing_request(self, url: str, page: int, entry: str | None = None) -> Request:
        """Page `page` of the listing walk that starts at `entry` (`url` when it is the first)."""
        meta: dict[str, Any] = {}
        if self.render_listing or self.source.render_js:
            meta = {"playwright": True, "playwright_include_page": False}
        meta["walk"] = WalkStep(entry or url, page, url)
        return Request(
            url,
            callback=self.parse_listing,
            errback=self.on_walk_error,
            cb_kwargs={"page": page},
            meta=meta,
            # not the whole outlet's requests in memory: 27 MB per 20,000 articles
            priority=FIRST_PAGE_PRIORITY if entry is None else WALK_PRIORITY,
        )

    def parse_feed(self, response: Response) -> Iterator[Request]:
        import feedparser  # a tenth of a second of every crawl's start-up, for feeds only

        parsed = feedparser.parse(response.body)
        if parsed.bozo:
            self._inc("discovery/feed_malformed")
            # feedparser's lenient mode mangles a bare "&" ("R&D" -> "R&D;"): escape and retry
            repaired = feedparser.parse(_BARE_AMPERSAND.sub(b"&amp;", response.body))
            if not repaired.bozo:
                self._inc("discovery/feed_repaired")
                parsed = repaired
        entries = [
            ListingEntry(
                url=response.urljoin(entry.get("link", "")),
                title=normalize_text(entry.get("title")),
                published=self._feed_time(entry),
            )
            for entry in parsed.entries
            if entry.get("link")
        ]
        if not entries:
            # feedparser gave up on broken XML: take the item links as text.
            text = response.body.decode("utf-8", "replace")
            entries = [ListingEntry(url=response.urljoin(u)) for u in _FEED_LINK.findall(text)]
            if entries:
                self._inc("discovery/feed_links_by_text")
        self._inc("discovery/feed_entries", len(entries))
        try:
            requests, fresh, _ = self.discover(entries)
            self.walks.found(fresh)
        except ArchiveUnavailable:
            return
        yield from requests

    @staticmethod
    def _feed_time(entry: Any) -> datetime | None:
        parsed = entry.get("published_parsed") or entry.get("updated_parsed")
        if not parsed:
            return None
        year, month, day, hour, minute, second = parsed[:6]
        return datetime(year, month, day, hour, minute, second, tzinfo=UTC)

    def sitemap_request(
        self, url: str, older: tuple[str, ...] = (), step: WalkStep | None = None
    ) -> Request:
        """A sitemap; `older` are the sitemaps of the same index still to walk, newest first,
        `step` its place in that walk (None for a sitemap named in the sources)."""
        return Request(
            url,
            callback=self.parse_sitemap,
            errback=self.on_sitemap_error,
            cb_kwargs={"older": older},
            meta={"walk": step} if step is not None else {},
            priority=FIRST_PAGE_PRIORITY if step is None else WALK_PRIORITY,
        )

    def parse_sitemap(self, response: Response, older: tuple[str, ...] = ()) -> Iterator[Request]:
        step: WalkStep | None = response.meta.get("walk")
        try:
            sitemap = Sitemap(response.body)
        except Exception as exc:  # lxml raises several types for broken XML
            self.report_error(response.url, f"unreadable sitemap: {exc}")
            yield from self._sitemap_failed(older, step)
            return
        if sitemap.type not in ("urlset", "sitemapindex"):
            self.report_error(response.url, f"not a sitemap (a <{sitemap.type}> document)")
            yield from self._sitemap_failed(older, step)
            return
        locs = [(entry.get("loc", ""), entry.get("lastmod")) for entry in sitemap]
        if sitemap.type == "sitemapindex":
            # newest first, one after the other like a listing's pages (at most max_pages a run)
            children = sorted(locs, key=lambda loc: loc[1] or "", reverse=True)
            urls = tuple(response.urljoin(loc) for loc, _ in children if loc)
            if urls:
                yield self.sitemap_request(urls[0], urls[1:], WalkStep(response.url, 1, urls[0]))
            return
        entries = [ListingEntry(url=response.urljoin(loc)) for loc, _ in locs if loc]
        self._inc("discovery/sitemap_entries", len(entries))
        try:
            requests, fresh, articles = self.discover(entries)
            following = self._walk_on(step, fresh, articles, older)
        except ArchiveUnavailable:
            return
        yield from requests
        if following is not None:
            # the next sitemap, or where the last walk stopped
            rest = older[older.index(following.url) + 1 :] if following.url in older else older
            yield self.sitemap_request(following.url, rest, following if step else None)

    def _walk_on(
        self, step: WalkStep | None, fresh: list[str], articles: int, older: tuple[str, ...]
    ) -> WalkStep | None:
        """The sitemap to walk after this one (recorded with the articles found pending)."""
        following = older[0] if older else None
        if step is not None:
            return self.walks.walked(step, fresh, articles, following)
        # a sitemap outside a walk (named in the sources, or a unit test's response)
        self.walks.found(fresh)
        return WalkStep(following, 0, following) if following else None

    def _sitemap_failed(self, older: tuple[str, ...], step: WalkStep | None) -> Iterator[Request]:
        """A sitemap that cannot be read is skipped (reported in the run): the next one is
        walked, so a sitemap broken for good never holds the walk up."""
        try:
            following = self._walk_on(step, [], 0, older)
        except ArchiveUnavailable:
            return
        if following is not None:
            rest = older[older.index(following.url) + 1 :] if following.url in older else older
            yield self.sitemap_request(following.url, rest, following if step else None)

    def on_sitemap_error(self, failure: Failure) -> Iterator[Request]:
        """Report a sitemap that could not be fetched and go on with the next one."""
        self.on_error(failure)
        request = getattr(failure, "request", None)
        if request is not None:
            yield from self._sitemap_failed(
                request.cb_kwargs.get("older", ()), request.meta.get("walk")
            )

    def on_walk_error(self, failure: Failure) -> None:
        """Report a listing page that could not be fetched; its walk resumes there next run."""
        self.on_error(failure)
        request = getattr(failure, "request", None)
        step = request.meta.get("walk") if request is not None else None
        if step is not None:
            self.walks.failed(step)

    def parse_listing(self, response: Response, page: int = 1) -> Iterator[Request]:
        step = response.meta.get("walk") or WalkStep(response.url, page, response.url)
        entries = list(self._parse_listing_entries(response))
        self._inc("discovery/listing_entries", len(entries))
        next_href = (
            response.css(self.next_page_css).attrib.get("href") if self.next_page_css else None
        )
        next_url = response.urljoin(next_href) if next_href else None
        release_selector(response)
        try:
            requests, fresh, articles = self.discover(entries)
            following = self.walks.walked(step, fresh, articles, next_url)
        except ArchiveUnavailable:
            return
        yield from requests
        if following is not None:
            yield self.listing_request(following.url, following.page, following.entry)

    def _parse_listing_entries(self, response: Response) -> Iterable[ListingEntry]:
        """The article links of a listing page (outlets with listing dates override this)."""
        for href in response.css(self.listing_link_css).xpath("@href").getall():
            yield ListingEntry(url=response.urljoin(href.strip()))

    # -- article requests ------------------------------------------------------------------

    def is_article_url(self, url: str) -> bool:
        return bool(self.article_path.search(re.sub(r"^https?://[^/]+", "", url)))

    def article_requests(self, entries: Iterable[ListingEntry]) -> list[Request]:
        """Requests for the article links among `entries` that are not known (see discover)."""
        return self.discover(entries)[0]

    def discover(self, entries: Iterable[ListingEntry]) -> tuple[list[Request], list[str], int]:
        """Requests for a page's article links that are not known (all of them, conditional
        where possible, with --refresh); the links not known; how many article links it shows.

        Known means archived or rejected, looked up for the whole page in one query."""
        articles = list({e.url: e for e in entries if self.is_article_url(e.url)}.values())
        known = self.walks.known(e.url for e in articles)
        fresh = [e.url for e in articles if e.url not in known]
        wanted = [e for e in articles if e.url not in self._requested]
        self._requested.update(e.url for e in wanted)
        if not self.refresh:
            skipped = [e for e in wanted if e.url in known]
            if skipped:
                self._inc("archive/articles_skipped", len(skipped))
            wanted = [e for e in wanted if e.url not in known]
        return self._requests_for(wanted, known), fresh, len(articles)

    def _requests_for(
        self, entries: list[ListingEntry], known: dict[str, KnownUrl]
    ) -> list[Request]:
        requests = []
        for entry in entries:
            hit = known.get(entry.url)
            headers: dict[str, str] = hit.validators if hit is not None else {}
            meta: dict[str, Any] = {}
            if hit is not None and headers:
                self._inc("archive/conditional_requests")
                meta = {"handle_httpstatus_list": [304], "article_id": hit.article_id}
            requests.append(
                Request(
                    entry.url,
                    callback=self._article_callback,
                    errback=self._article_errback,
                    headers=headers or None,
                    cb_kwargs={"entry": entry},
                    meta=meta,
                )
            )
        return requests

    def on_error(self, failure: Failure) -> None:
        request = getattr(failure, "request", None)
        url = request.url if request is not None else "?"
        if isinstance(failure.value, PageRefused):
            return  # the middleware that refused it has recorded why in the run's error log
        if isinstance(failure.value, IgnoreRequest) and not isinstance(failure.value, HttpError):
            # robots.txt said no (or a middleware chose to drop it): politeness, not a failure
            self._inc("archive/requests_ignored")
            self.logger.info("not fetched: %s (%s)", url, failure.getErrorMessage())
            return
        if isinstance(failure.value, HttpError):
            reason = f"HTTP {failure.value.response.status}"
        else:
            reason = f"{type(failure.value).__name__}: {failure.getErrorMessage()}"
        rendered = request is not None and request.meta.get("playwright")
        if rendered and "BrowserType.launch" in reason:
            # Playwright's launch error runs to pages of command line: name the cause instead
            reason = (
                f"headless Chromium could not be started ({reason.splitlines()[0]}): check the "
                "browser (`apt-get install chromium`) or set CRAWLER_CHROMIUM to a working one"
            )
        self.report_error(url, reason)

    def report_error(self, url: str, reason: str) -> None:
        self.logger.error("cannot archive %s: %s", url, reason)
        self._inc("archive/errors")
        self.crawler.signals.send_catch_log(page_error, url=url, reason=reason)

    # -- articles --------------------------------------------------------------------------

    def parse_article(self, response: Response, entry: ListingEntry | None = None) -> Iterator[Any]:
        # (no entry: `scrapy parse -c parse_article URL` calls it with the response alone)
        entry = entry or ListingEntry(url=response.url)
        if response.status == 304:
            yield NotModifiedItem(self.source.name, entry.url, response.meta.get("article_id"))
            return
        if not isinstance(response, TextResponse):
            self.report_error(
                response.url, f"not a text page ({response.headers.get('Content-Type')!r})"
            )
            return
        self._inc("archive/articles_fetched")
        yield self.build_article(response, entry)

    def build_article(self, response: TextResponse, entry: ListingEntry) -> ArticleItem:
        """Assemble the item: the outlet's `_parse_*` helpers first, then the fallbacks."""
        page = PageMetadata(response)
        item = ArticleItem(
            outlet=self.source.name,
            url=response.url,
            timezone=self.source.timezone or self.timezone,
            title=self._with_fallback(
                "title", self._parse_title(response), lambda: page.title or entry.title
            ),
            body=self._with_fallback(
                "body", self._parse_body(response), lambda: generic_paragraphs(response), "generic"
            )
            or [],
            published=self._with_fallback(
                "published",
                self._parse_published(response, entry),
                lambda: page.published or entry.published,
            ),
            author=self._with_fallback("author", self._parse_author(response), lambda: page.author),
            summary=self._with_fallback(
                "summary", self._parse_summary(response), lambda: page.summary
            ),
            language=self._parse_language(response) or self.source.language or page.language,
            original_source=self._parse_original_source(response),
            original_url=self._parse_original_url(response),
            outlet_article_id=self._parse_outlet_article_id(response),
            partial=self._parse_partial(response),
            declared_canonical=page.canonical,
            page=FetchedPage(
                requested_url=response.request.url if response.request else response.url,
                final_url=response.url,
                status=response.status,
                headers={
                    k.decode("latin-1"): [v.decode("latin-1") for v in vs]
                    for k, vs in response.headers.items()
                },
                body=response.body,
                fetched_at=datetime.now(UTC),
            ),
        )
        release_selector(response)
        return item

    def _with_fallback(
        self, field: str, value: T | None, fallback: Callable[[], T | None], kind: str = "metadata"
    ) -> T | None:
        if value:
            return value
        if kind == "metadata" and field not in self.metadata_fallbacks:
            return value
        found = fallback()
        if found:
            self._inc(f"fallback/{kind}/{field}")
            self.logger.info("%s: %s taken from the page's %s", self.name, field, kind)
        return found

    def _inc(self, key: str, count: int = 1) -> None:
        if self.crawler.stats is not None:
            self.crawler.stats.inc_value(key, count)

    # -- per-outlet field helpers: override what the outlet shows --------------------------

    def _parse_title(self, response: TextResponse) -> str | None:
        return None

    def _parse_body(self, response: TextResponse) -> list[str]:
        return []

    def _parse_published(self, response: TextResponse, entry: ListingEntry) -> datetime | None:
        return None

    def _parse_author(self, response: TextResponse) -> str | None:
        return None

    def _parse_summary(self, response: TextResponse) -> str | None:
        return None

    def _parse_language(self, response: TextResponse) -> str | None:
        return None

    def _parse_original_source(self, response: TextResponse) -> str | None:
        return None

    def _parse_original_url(self, response: TextResponse) -> str | None:
        return None

    def _parse_outlet_article_id(self, response: TextResponse) -> str | None:
        return None

    def _parse_partial(self, response: TextResponse) -> bool:
        return False


__all__ = [
    "ListingEntry",
    "NewsSpider",
    "paragraphs_of",
    "parse_bool",
    "parse_duration",
    "parse_local_datetime",
    "text_of",
]
