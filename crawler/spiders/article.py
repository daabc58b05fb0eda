"""The generic spider: any outlet from a few lines of the sources file (`spider = "article"`).

Without `feeds`, `sitemaps` or `listings` it finds the site's entry points itself, stopping at
the first kind that lists articles: the `Sitemap:` lines of robots.txt, the feeds the homepage
links with `<link rel="alternate">`, the usual feed and sitemap paths, and at last the
homepage's own links. Sitemap and feed entries are articles when their URL looks like one;
links taken from a page (the homepage, a configured listing) must also prove it on the page
itself (JSON-LD article type, `og:type`, or enough main text). The run's stats say how each
archived article was found (`discovery/found_by/<how>`) and which entry points were used
(`discovery/entry_points/<kind>`).

Fields come from the source's `selectors` when given, else from the page's own metadata
(JSON-LD, OpenGraph, `article:*`, microdata, `<time>`, htmldate), and the body from main-text
extraction (`crawler.extract.main_text`).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterable, Iterator
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from dateutil import parser as dateparser
from scrapy import Request
from scrapy.exceptions import CloseSpider, IgnoreRequest
from scrapy.http import Response, TextResponse
from scrapy.utils.gz import gunzip, gzip_magic_number

from crawler.config import is_xpath
from crawler.extract import Found, PageMetadata, main_text
from crawler.spiders.base import (
    ListingEntry,
    NewsSpider,
    paragraphs_of,
    parse_bool,
    release_selector,
    text_of,
)
from crawler.text import normalize_text

# Where sites usually keep their feeds and sitemaps, tried when robots.txt and the homepage
# name none.
USUAL_FEEDS = ("/feed", "/rss", "/feed.xml", "/rss.xml", "/atom.xml", "/index.xml")
USUAL_SITEMAPS = ("/sitemap.xml", "/sitemap_index.xml", "/news-sitemap.xml", "/sitemap-news.xml")
FEED_TYPES = ("application/rss+xml", "application/atom+xml", "application/feed+json")
# Paths of feeds, sitemaps and site furniture, which are never articles.
_NOT_ARTICLE_PATH = re.compile(
    r"(?:^/?$|/(?:feed|rss|atom|sitemap)[^/]*/?$|\.(?:xml|rss|atom|json|gz|txt)$"
    r"|^/(?:about|contact|privacy|terms|imprint|impressum|search|login|register|subscribe)"
    r"(?:[-_.][\w.-]*)?/?$)",
    re.I,
)
# Main text that makes a page an article when its metadata does not say so.
MIN_ARTICLE_CHARS = 1000
# Entry points whose links an article page must confirm (a sitemap or feed lists articles).
_PAGE_LINKS = "links"


class ArticleSpider(NewsSpider):
    """Any news site: discovery from the site itself, fields from the page's own metadata."""

    name = "article"
    listing_link_css = "a[href]"
    metadata_fallbacks = ("title", "published", "author", "summary")

    def __init__(self, *args: Any, probe: Any = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # `crawler sources add`: look at a site without an archive (nothing is known)
        self.probing = parse_bool("probe", probe)
        self._article_entries = 0
        self._found_entry_point = False
        self._last_body: tuple[TextResponse, list[str]] | None = None
        self._last_page: PageMetadata | None = None
        self._pattern: re.Pattern[str] | None = None

    @property
    def article_pattern(self) -> re.Pattern[str] | None:
        if self._pattern is None and self.source.article_pattern:
            self._pattern = re.compile(self.source.article_pattern)
        return self._pattern

    # -- discovery -------------------------------------------------------------------------

    async def start(self) -> AsyncIterator[Any]:
        if self.probing:
            for request in self.discovery_requests():
                yield request
        else:
            async for request in super().start():
                yield request
        if not self.source.has_discovery:
            async for request in self.find_entry_points():
                yield request

    async def find_entry_points(self) -> AsyncIterator[Request]:
        """The site's entry points, found in the order of the module's docstring."""
        robots = await self.fetch(self.source.url("/robots.txt"))
        for url in sitemaps_in_robots(robots) if robots is not None else []:
            for request in self._probe("robots_sitemaps", await self.fetch(url), strict=True):
                yield request
        if self._found_entry_point:
            return
        homepage = await self.fetch(self.source.url("/"))
        for url in feed_links(homepage) if isinstance(homepage, TextResponse) else []:
            for request in self._probe("homepage_feeds", await self.fetch(url), strict=True):
                yield request
        if self._found_entry_point:
            return
        for path in (*USUAL_FEEDS, *USUAL_SITEMAPS):
            response = await self.fetch(self.source.url(path))
            for request in self._probe("usual_paths", response, strict=False):
                yield request
            if self._found_entry_point:
                return
        if isinstance(homepage, TextResponse):
            self._inc("discovery/entry_points/homepage_links")
            for request in self.parse_listing(homepage, page=1):
                yield request
        if not self._article_entries:
            # nothing this spider could ever archive: a failed run, not an empty success
            self.report_error(self.source.base_url, "no feed, sitemap or article link found")
            raise CloseSpider("no_articles_found")

    async def fetch(self, url: str) -> Response | None:
        """A discovery page fetched now (robots.txt obeyed); None if it is not there."""
        assert self.crawler.engine is not None
        try:
            response = await self.crawler.engine.download_async(Request(url, dont_filter=True))
        except IgnoreRequest as exc:
            self._inc("archive/requests_ignored")
            self.logger.info("not fetched: %s (%s)", url, exc)
            return None
        except Exception as exc:  # DNS, refused connection, timeout: the probe found nothing
            self.logger.info("discovery: %s: %s: %s", url, type(exc).__name__, exc)
            return None
        return response if response.status == 200 else None

    def _probe(self, kind: str, response: Response | None, strict: bool) -> Iterator[Request]:
        """The requests a fetched feed or sitemap leads to; notes the kind when it led to any.

        `strict`: the site named it a feed or sitemap, so a page that is neither is an error;
        a usual path that answers with something else (many sites serve their homepage for
        any path) is passed over.
        """
        if response is None:
            return
        before = self._article_entries
        led_somewhere = False
        if is_feed(response):
            requests = self.parse_feed(response)
        elif strict or is_sitemap(response):
            requests = self.parse_sitemap(response)
        else:
            return
        for request in requests:
            led_somewhere = True
            yield request
        if led_somewhere or self._article_entries > before:
            self._found_entry_point = True
            self._inc(f"discovery/entry_points/{kind}")

    def parse_feed(self, response: Response) -> Iterator[Request]:
        yield from _found_by(self, super().parse_feed(response), "feed")

    def parse_sitemap(self, response: Response, older: tuple[str, ...] = ()) -> Iterator[Request]:
        body = response.body
        if gzip_magic_number(response):
            max_size = self.crawler.settings.getint("DOWNLOAD_MAXSIZE")
            try:
                body = gunzip(body, max_size=max_size)
            except (OSError, ValueError) as exc:
                self.report_error(response.url, f"unreadable gzipped sitemap: {exc}")
                return
            self._inc("discovery/sitemap_gunzipped")
        yield from _found_by(
            self, super().parse_sitemap(response.replace(body=body), older), "sitemap"
        )

    def parse_listing(self, response: Response, page: int = 1) -> Iterator[Request]:
        yield from _found_by(self, super().parse_listing(response, page), _PAGE_LINKS)

    def _parse_listing_entries(self, response: Response) -> Iterable[ListingEntry]:
        for href in response.css(self.listing_link_css).xpath("@href").getall():
            url = response.urljoin(href.strip()).split("#")[0]
            yield ListingEntry(url=url)

    def discover(self, entries: Iterable[ListingEntry]) -> tuple[list[Request], list[str], int]:
        listed = list(entries)
        self._article_entries += sum(1 for e in listed if self.is_article_url(e.url))
        return super().discover(listed)

    def is_article_url(self, url: str) -> bool:
        """On the source's site, and shaped like an article (or matching `article_pattern`)."""
        parts = urlsplit(url)
        if _host(url) != _host(self.source.base_url):
            return False
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        if self.article_pattern is not None:
            return bool(self.article_pattern.search(path))
        # imported here: every crawl loads this module (Scrapy's spider loader), few use it
        from courlan.filters import extension_filter, is_navigation_page, is_not_crawlable

        return not (
            _NOT_ARTICLE_PATH.search(parts.path)
            or not extension_filter(parts.path)
            or is_navigation_page(url)
            or is_not_crawlable(url)
        )

    # -- articles --------------------------------------------------------------------------

    def parse_article(self, response: Response, entry: ListingEntry | None = None) -> Iterator[Any]:
        how = response.meta.get("found_by", "unknown")
        if response.status == 200 and isinstance(response, TextResponse) and how == _PAGE_LINKS:
            proof = self.article_proof(response)
            if proof is None:
                self._inc("discovery/not_article")
                self.logger.info("not an article: %s", response.url)
                release_selector(response)
                return
            self._inc(f"discovery/article_by/{proof}")
        for item in super().parse_article(response, entry):
            if response.status == 200:
                self._inc(f"discovery/found_by/{how}")
            yield item

    def article_proof(self, response: TextResponse) -> str | None:
        """Why the page is an article ("jsonld", "og_type", "text_length"), or None."""
        declared = self._metadata(response).is_article
        if declared:
            return "jsonld" if declared.startswith("JSON-LD") else "og_type"
        if sum(len(p) for p in self._body(response)) >= MIN_ARTICLE_CHARS:
            return "text_length"
        return None

    def _body(self, response: TextResponse) -> list[str]:
        """The main text, extracted once per page however many times it is asked for."""
        if self._last_body is None or self._last_body[0] is not response:
            # only the page being read is kept: memory stays flat
            self._last_body = (response, main_text(response.text, response.url))
        return self._last_body[1]

    def _metadata(self, response: TextResponse) -> PageMetadata:
        """The page's metadata, read once per page (its JSON-LD is parsed once)."""
        if self._last_page is None or self._last_page.response is not response:
            self._last_page = PageMetadata(response)
        return self._last_page

    def field(
        self, response: TextResponse, name: str, entry: ListingEntry | None = None
    ) -> Found | None:
        """A field and where it came from: the source's selector, else what the page declares
        (for the date: then the feed's or sitemap's, then what the page shows)."""
        selector = self.source.selectors.get(name)
        if selector:
            value = select_field(response, selector, name)
            if value:
                return Found(value, f"selector {selector}")
            self._inc(f"extraction/selector_missed/{name}")
        if name == "body":
            body = self._body(response)
            return Found(body, "main text (trafilatura)") if body else None
        page = self._metadata(response)
        found = page.found(name)
        if found is None and name == "published":
            if entry is not None and entry.published:
                return Found(entry.published, "feed date")
            return page.found("published_guess")
        return found

    def _value(self, response: TextResponse, name: str, entry: ListingEntry | None = None) -> Any:
        found = self.field(response, name, entry)
        if found is None:
            return None
        how = "selector" if found.how.startswith("selector") else found.how.replace(" ", "_")
        self._inc(f"extraction/{name}/{how}")
        return found.value

    def _parse_title(self, response: TextResponse) -> str | None:
        value: str | None = self._value(response, "title")
        return value

    def _parse_body(self, response: TextResponse) -> list[str]:
        value: list[str] | None = self._value(response, "body")
        return value or []

    def _parse_published(self, response: TextResponse, entry: ListingEntry) -> datetime | None:
        value: datetime | None = self._value(response, "published", entry)
        return value

    def _parse_author(self, response: TextResponse) -> str | None:
        value: str | None = self._value(response, "author")
        return value

    def _parse_summary(self, response: TextResponse) -> str | None:
        value: str | None = self._value(response, "summary")
        return value


def _found_by(spider: ArticleSpider, requests: Iterable[Request], how: str) -> Iterator[Request]:
    """Mark the article requests among `requests` with the kind of page that listed them."""
    for request in requests:
        if request.callback == spider.parse_article:
            request.meta.setdefault("found_by", how)
        yield request


def _host(url: str) -> str:
    return (urlsplit(url).netloc or "").lower().removeprefix("www.")


def sitemaps_in_robots(response: Response) -> list[str]:
    """The `Sitemap:` URLs a robots.txt names."""
    if not isinstance(response, TextResponse):
        return []
    found = re.findall(r"(?im)^\s*sitemap\s*:\s*(\S+)", response.text)
    return [response.urljoin(url) for url in found]


def feed_links(response: TextResponse) -> list[str]:
    """The feeds a page announces with <link rel="alternate" type="application/rss+xml">."""
    hrefs = response.xpath(
        '//link[contains(concat(" ", normalize-space(@rel), " "), " alternate ")]'
        "[@type=$rss or @type=$atom or @type=$json]/@href",
        rss=FEED_TYPES[0],
        atom=FEED_TYPES[1],
        json=FEED_TYPES[2],
    ).getall()
    return list(dict.fromkeys(response.urljoin(h.strip()) for h in hrefs if h.strip()))


def is_feed(response: Response) -> bool:
    """Whether a fetched entry point is an RSS/Atom feed rather than a sitemap."""
    head = response.body[:1024].lstrip().lower()
    if gzip_magic_number(response):
        return False
    return b"<rss" in head or b"<feed" in head or b"<rdf:rdf" in head


def is_sitemap(response: Response) -> bool:
    """Whether a fetched entry point is a sitemap or sitemap index (gzipped or not)."""
    if gzip_magic_number(response):
        return True
    head = response.body[:2048].lower()
    return b"<urlset" in head or b"<sitemapindex" in head


def select_field(response: TextResponse, selector: str, name: str) -> Any:
    """What a selector of the sources file picks out of the page for one field."""
    nodes = response.xpath(selector) if is_xpath(selector) else response.css(selector)
    if not nodes:
        return None
    if name == "body":
        if len(nodes) == 1 and nodes.xpath(".//p"):
            return paragraphs_of(nodes.xpath(".//p"))
        return paragraphs_of(nodes)
    first = nodes[0]
    if isinstance(first.root, str):  # an attribute or text() selected directly
        text = normalize_text(first.root)
    elif name == "published":
        text = normalize_text(first.xpath("@datetime|@content").get()) or text_of(first)
    else:
        text = text_of(first)
    if name != "published" or not text:
        return text
    try:
        return dateparser.parse(text, fuzzy=True)
    except (ValueError, OverflowError):
        return None
