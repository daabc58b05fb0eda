"""Downloader middlewares shared by every outlet: what a crawl may fetch and keep, and how a
page's bytes are read.

Each refusal (a host or scheme off the source's site, a redirect off-site or in a loop, a page
over the maximum size, bytes that are not text, a Retry-After too long to wait) is recorded in
the run's error log with the page's URL and raised as `PageRefused`, so the spider's errback
knows it is already told.
"""

from __future__ import annotations

import codecs
import email.utils
import functools
import logging
import re
from datetime import UTC, datetime
from urllib.parse import urlsplit

from scrapy import Spider
from scrapy.crawler import Crawler
from scrapy.downloadermiddlewares.httpcompression import HttpCompressionMiddleware
from scrapy.downloadermiddlewares.redirect import MetaRefreshMiddleware, RedirectMiddleware
from scrapy.exceptions import DownloadCancelledError, IgnoreRequest, NotConfigured
from scrapy.http import HtmlResponse, Request, Response, TextResponse
from scrapy.utils.defer import maybe_deferred_to_future
from twisted.internet.defer import CancelledError
from twisted.internet.task import deferLater
from w3lib.encoding import html_body_declared_encoding, read_bom, resolve_encoding

from crawler.config import DEFAULT_MAX_PAGE_SIZE, SourceConfig
from crawler.signals import report_page_error

logger = logging.getLogger(__name__)

UTF8 = "utf-8"
WEB_SCHEMES = frozenset({"http", "https"})
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_DEFAULT_PORTS = {"http": 80, "https": 443}


class PageRefused(IgnoreRequest):
    """A page the crawl does not fetch or keep; already recorded in the run's error log."""


def _source(crawler: Crawler) -> SourceConfig | None:
    """The source the crawl's spider walks, if it is one of the outlets' spiders."""
    source = getattr(crawler.spider, "source", None)
    return source if isinstance(source, SourceConfig) else None


def refuse(crawler: Crawler, request: Request, reason: str, stat: str) -> PageRefused:
    """Record why a request's page is not archived (under the URL first asked for)."""
    url = (request.meta.get("redirect_urls") or [request.url])[0]
    if crawler.stats is not None:
        crawler.stats.inc_value(stat)
    report_page_error(crawler, url, reason)
    return PageRefused(reason)


def _codec(name: str | None) -> codecs.CodecInfo | None:
    """The Python codec of a charset name as browsers read it (latin-1 is cp1252), if known."""
    if not name:
        return None
    resolved = resolve_encoding(name)
    if not resolved:
        return None
    try:
        return codecs.lookup(resolved)
    except LookupError:
        return None


def _decodes(body: bytes, codec: codecs.CodecInfo) -> bool:
    try:
        codec.decode(body, "strict")
    except UnicodeDecodeError:
        return False
    return True


def _single_byte(codec: codecs.CodecInfo) -> bool:
    """Whether every byte is one character in this charset (latin-1, cp1252, koi8-r ...)."""
    return len(codec.decode(bytes(range(0x80, 0x100)), "replace")[0]) == 0x80


# A well-formed UTF-8 sequence of two to four bytes.
_UTF8_SEQUENCE = re.compile(
    rb"[\xc2-\xdf][\x80-\xbf]|\xe0[\xa0-\xbf][\x80-\xbf]|[\xe1-\xec\xee\xef][\x80-\xbf]{2}"
    rb"|\xed[\x80-\x9f][\x80-\xbf]|\xf0[\x90-\xbf][\x80-\xbf]{2}|[\xf1-\xf3][\x80-\xbf]{3}"
    rb"|\xf4[\x80-\x8f][\x80-\xbf]{2}"
)
# What a page declared UTF-8 but not in it is written in, when it names nothing else: the
# charset browsers fall back to for Western pages.
UTF8_FALLBACK = "cp1252"


def _invalid_utf8(body: bytes) -> int:
    """How many byte sequences of body are not UTF-8."""
    replaced = body.decode(UTF8, "replace").count("\ufffd")
    return replaced - body.count("\ufffd".encode())


def _not_utf8(response: TextResponse) -> str | None:
    """The charset a page declared UTF-8 is really in, if its bytes are mostly not UTF-8.

    Its own other declaration (a meta charset under a UTF-8 header) if that decodes the bytes,
    else cp1252. A page of valid UTF-8 with a few stray bytes stays UTF-8 (counted elsewhere).
    """
    body = response.body
    invalid = _invalid_utf8(body)
    if not invalid or invalid <= len(_UTF8_SEQUENCE.findall(body)):
        return None
    own = html_body_declared_encoding(body) if isinstance(response, HtmlResponse) else None
    for name in (own, UTF8_FALLBACK):
        codec = _codec(name)
        if codec is not None and codec.name != "utf-8" and _decodes(body, codec):
            return codec.name
    return UTF8_FALLBACK


def corrected_encoding(response: TextResponse) -> tuple[str, str] | None:
    """(declared, right) when the charset the response is read in misreads its bytes, else None.

    The charset that counts is the one Scrapy follows (the HTTP header, else the page's own
    meta/XML declaration). It is overruled when it cannot decode the bytes but UTF-8 can, or
    when it is a single-byte charset and the non-ASCII bytes are valid UTF-8: read in the
    declared charset, each of their multi-byte sequences would show as mojibake such as `â€™`
    (text really written in a single-byte charset is practically never valid UTF-8). A page
    declared UTF-8 whose bytes are mostly not UTF-8 is read in cp1252 (or the other charset it
    declares itself). A byte-order mark is never second-guessed.
    """
    body = response.body
    if not body or body.isascii() or read_bom(body)[0]:
        return None
    declared = response.encoding
    codec = _codec(declared)
    utf8 = codecs.lookup(UTF8)
    if codec is not None and codec.name == utf8.name:
        right = _not_utf8(response)
        return (declared, right) if right else None
    if codec is None or not _decodes(body, utf8):
        return None
    if not _decodes(body, codec) or _single_byte(codec):
        return declared, UTF8
    return None


def undecodable(response: TextResponse) -> bool:
    """Whether some bytes of the response are not characters of the charset it is read in."""
    body = response.body
    if not body or body.isascii():
        return False
    codec = _codec(response.encoding)
    return codec is not None and not _decodes(body, codec)


class CharsetMiddleware:
    """Reads a text response in the charset its bytes are in when the declared one is wrong.

    Only the response's encoding changes: its body and headers stay exactly as served, so the
    snapshot keeps the raw bytes. Every overruled declaration is logged and counted in the
    stat `charset/overruled`; a page left with bytes its charset cannot read (shown as U+FFFD)
    is logged and counted in `charset/undecodable`. Switched off with
    `CHARSET_CHECK_ENABLED = False`.
    """

    def __init__(self, crawler: Crawler) -> None:
        self.crawler = crawler

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> CharsetMiddleware:
        if not crawler.settings.getbool("CHARSET_CHECK_ENABLED", True):
            raise NotConfigured("CHARSET_CHECK_ENABLED is off")
        return cls(crawler)

    def process_response(self, request: Request, response: Response) -> Response:
        if not isinstance(response, TextResponse):
            return response
        found = corrected_encoding(response)
        if found is None:
            if undecodable(response):
                logger.warning(
                    "%s: bytes that are not %s are read as U+FFFD", response.url, response.encoding
                )
                if self.crawler.stats is not None:
                    self.crawler.stats.inc_value("charset/undecodable")
            return response
        declared, right = found
        logger.info(
            "%s: the declared charset %s misreads the bytes, read as %s",
            response.url,
            declared,
            right,
        )
        if self.crawler.stats is not None:
            self.crawler.stats.inc_value("charset/overruled")
        return response.replace(encoding=right)


# -- bytes that are not text --------------------------------------------------------------------

_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF87a", "a GIF image"),
    (b"GIF89a", "a GIF image"),
    (b"%PDF-", "a PDF document"),
    (b"PK\x03\x04", "a ZIP archive"),
    (b"\x1f\x8b", "gzip data"),
    (b"\x28\xb5\x2f\xfd", "zstd data"),
    (b"\xfd7zXZ\x00", "xz data"),
    (b"OggS", "Ogg media"),
    (b"\x7fELF", "an executable"),
    (b"\x00asm", "WebAssembly"),
    (b"wOFF", "a web font"),
    (b"wOF2", "a web font"),
)
_SAMPLE = 8192
# C0 controls that no text uses (tab, line feed, form feed, carriage return and escape do),
# counted by deleting them (bytes.translate: a fifth of a regular expression's time).
_BINARY_CONTROLS = bytes(range(0x00, 0x09)) + bytes(range(0x0E, 0x1B)) + bytes(range(0x1C, 0x20))


def binary_kind(body: bytes, encoding: str | None = None) -> str | None:
    """What the bytes are when they are not text (`a PNG image`, `binary data`), else None.

    Known file signatures first; otherwise more than one in twenty of the first 8 KiB a control
    character that text does not use (random or compressed bytes have one in ten; a page with a
    stray NUL or escape stays text). UTF-16 and UTF-32 (by byte-order mark or declaration) are text.
    """
    head = body[:_SAMPLE]
    for signature, kind in _SIGNATURES:
        if head.startswith(signature):
            return kind
    wide = (encoding or "").lower().replace("_", "-").startswith(("utf-16", "utf-32"))
    if not head or wide or (read_bom(head)[0] or "").startswith(("utf-16", "utf-32")):
        return None
    if (len(head) - len(head.translate(None, _BINARY_CONTROLS))) * 20 > len(head):
        return "binary data"
    return None


class BinaryPageMiddleware:
    """Refuses a response whose bytes are not text (an image, an archive ...) whatever its
    Content-Type says: read as text it would be archived as a page of U+FFFD.

    Counted as `refused/not_text`. Switched off with `BINARY_CHECK_ENABLED = False`.
    """

    def __init__(self, crawler: Crawler) -> None:
        self.crawler = crawler

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> BinaryPageMiddleware:
        if not crawler.settings.getbool("BINARY_CHECK_ENABLED", True):
            raise NotConfigured("BINARY_CHECK_ENABLED is off")
        return cls(crawler)

    def process_response(self, request: Request, response: Response) -> Response:
        if not isinstance(response, TextResponse):
            return response
        kind = binary_kind(response.body, response.encoding)
        if kind is None:
            return response
        declared = (response.headers.get("Content-Type") or b"").decode("latin-1") or "no type"
        raise refuse(
            self.crawler,
            request,
            f"not text: the bytes are {kind}, though served as {declared}",
            "refused/not_text",
        )


# -- the source's own site ----------------------------------------------------------------------


def site_of(url: str) -> str | None:
    """`host` or `host:port` (a port only when not the scheme's default) of an http(s) URL."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in WEB_SCHEMES or not parts.hostname:
        return None
    host = parts.hostname.lower()
    if ":" in host:
        host = f"[{host}]"
    return host if port in (None, _DEFAULT_PORTS[parts.scheme]) else f"{host}:{port}"


def allowed_sites(source: SourceConfig) -> frozenset[str]:
    """The sites a source's crawl may fetch from: its base_url's host with its www. twin (http
    and https alike), and the hosts its `allowed_hosts` declares."""
    return _allowed_sites(source.base_url, source.allowed_hosts)


@functools.lru_cache(maxsize=64)
def _allowed_sites(base_url: str, allowed_hosts: tuple[str, ...]) -> frozenset[str]:
    """`allowed_sites`, worked out once per source (a source holds unhashable parts)."""
    base = site_of(base_url)
    sites = {base} if base else set()
    if base and not re.fullmatch(r"[\d.:]+|\[.*", base):
        sites.add(base[4:] if base.startswith("www.") else "www." + base)
    # a declared default port is no port: site_of() leaves it out too
    sites.update(re.sub(r":(80|443)$", "", host.lower()) for host in allowed_hosts)
    return frozenset(sites)


class SiteScopeMiddleware:
    """Lets a crawl fetch only http(s) URLs on its source's own site (see `allowed_sites`).

    Runs before every other downloader middleware, so a refused URL costs no request at all,
    not even for its robots.txt; a response that comes from another URL than was asked (a
    browser that followed a redirect itself) is checked too. A link to another host or scheme
    (`file:`, `data:`, `ftp:` ...) is recorded in the run's error log and counted as
    `refused/offsite` or `refused/scheme`. Spiders without a source (not one of the outlets')
    are held to the schemes only. Switched off with `SITE_SCOPE_ENABLED = False`.
    """

    def __init__(self, crawler: Crawler) -> None:
        self.crawler = crawler

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> SiteScopeMiddleware:
        if not crawler.settings.getbool("SITE_SCOPE_ENABLED", True):
            raise NotConfigured("SITE_SCOPE_ENABLED is off")
        return cls(crawler)

    def process_request(self, request: Request) -> None:
        problem = off_site(self.crawler, request.url)
        if problem is not None:
            reason, stat = problem
            raise refuse(self.crawler, request, reason, stat)

    def process_response(self, request: Request, response: Response) -> Response:
        # A browser (a rendered listing) follows redirects itself: check where it ended up.
        if response.url == request.url:
            return response
        problem = off_site(self.crawler, response.url)
        if problem is not None:
            reason, stat = problem
            raise refuse(self.crawler, request, f"answered from {response.url}: {reason}", stat)
        return response


def off_site(crawler: Crawler, url: str) -> tuple[str, str] | None:
    """(why, stat) when the crawl may not fetch url, else None."""
    scheme = urlsplit(url).scheme.lower()
    if scheme not in WEB_SCHEMES:
        return f"not fetched: {scheme or 'no'} scheme (only http and https)", "refused/scheme"
    source = _source(crawler)
    if source is None:
        return None
    site = site_of(url)
    allowed = allowed_sites(source)
    if site in allowed:
        return None
    return (
        f"not fetched: {site or 'an unreadable host'} is not the source's site "
        f"({', '.join(sorted(allowed))}; "
        "more with allowed_hosts in the sources file)",
        "refused/offsite",
    )


class _GuardedRedirects:
    """Follows a redirect only on the source's site and never in a loop; records the rest."""

    crawler: Crawler

    def guard(self, request: Request, result: Request | Response) -> Request | Response:
        if not isinstance(result, Request):
            return result
        chain = [*request.meta.get("redirect_urls", []), request.url]
        if result.url in chain:
            path = " -> ".join([*chain[chain.index(result.url) :], result.url])
            raise refuse(self.crawler, request, f"redirect loop: {path}", "refused/redirect_loop")
        problem = off_site(self.crawler, result.url)
        if problem is not None:
            reason, stat = problem
            raise refuse(
                self.crawler,
                request,
                f"redirect from {request.url} to {result.url} not followed: {reason}",
                stat,
            )
        return result

    def too_many(self, request: Request, exc: IgnoreRequest) -> PageRefused:
        limit = self.crawler.settings.getint("REDIRECT_MAX_TIMES")
        return refuse(
            self.crawler,
            request,
            f"more than {limit} redirects (REDIRECT_MAX_TIMES), last to {request.url}: {exc}",
            "refused/redirects",
        )


class SiteRedirectMiddleware(_GuardedRedirects, RedirectMiddleware):
    """Scrapy's RedirectMiddleware, but a redirect off the source's site (or to another scheme)
    is not followed, and a loop or too long a chain is recorded instead of vanishing."""

    def process_response(
        self, request: Request, response: Response, spider: Spider | None = None
    ) -> Request | Response:
        try:
            result = super().process_response(request, response)
        except PageRefused:
            raise
        except IgnoreRequest as exc:
            raise self.too_many(request, exc) from exc
        location = response.headers.get("Location")
        if (
            result is response
            and location
            and response.status in REDIRECT_STATUSES
            and not request.meta.get("dont_redirect", False)
        ):
            target = response.urljoin(location.decode("latin-1"))
            if urlsplit(target).scheme.lower() not in WEB_SCHEMES:
                raise refuse(
                    self.crawler,
                    request,
                    f"redirect to {target[:80]} not followed: only http and https",
                    "refused/scheme",
                )
        return self.guard(request, result)


class SiteMetaRefreshMiddleware(_GuardedRedirects, MetaRefreshMiddleware):
    """Scrapy's MetaRefreshMiddleware with the same bounds as `SiteRedirectMiddleware`."""

    def process_response(
        self, request: Request, response: Response, spider: Spider | None = None
    ) -> Request | Response:
        try:
            result = super().process_response(request, response)
        except PageRefused:
            raise
        except IgnoreRequest as exc:
            raise self.too_many(request, exc) from exc
        return self.guard(request, result)


# -- page size ----------------------------------------------------------------------------------


class PageSizeMiddleware(HttpCompressionMiddleware):
    """Bounds every page by its source's `max_page_size` (else `CRAWLER_MAX_PAGE_SIZE`), counted
    on the decompressed bytes as they are inflated, and records a page over it as an error.

    The bound is the request's `download_maxsize`, which Scrapy's download handler applies to the
    bytes received and its HttpCompressionMiddleware (this class's base, which it replaces) to the
    decompressed body, chunk by chunk, so a small gzip that inflates to gigabytes stops at the
    bound. Counted as `refused/too_large`.
    """

    def __init__(self, crawler: Crawler) -> None:
        super().__init__(crawler=crawler)
        self.crawler = crawler
        self.default_max_size = crawler.settings.getint(
            "CRAWLER_MAX_PAGE_SIZE", DEFAULT_MAX_PAGE_SIZE
        )
        self.decompress = crawler.settings.getbool("COMPRESSION_ENABLED", True)

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> PageSizeMiddleware:
        return cls(crawler)

    def max_size(self) -> int:
        source = _source(self.crawler)
        return (source.max_page_size if source else None) or self.default_max_size

    def process_request(
        self, request: Request, spider: Spider | None = None
    ) -> Request | Response | None:
        request.meta.setdefault("download_maxsize", self.max_size())
        if self.decompress:
            return super().process_request(request)
        return None

    def process_response(
        self, request: Request, response: Response, spider: Spider | None = None
    ) -> Request | Response:
        if not self.decompress:
            return response
        try:
            return super().process_response(request, response)
        except IgnoreRequest as exc:  # its only refusal: the body inflates past the bound
            raise self.too_large(request, "once decompressed") from exc

    def process_exception(self, request: Request, exception: Exception) -> None:
        # The handler cancels a download announced larger than the bound with a message naming
        # the max size, and one that grows past it without a message (a timeout has its own
        # DownloadTimeoutError).
        if isinstance(exception, (DownloadCancelledError, CancelledError)) and (
            "max size" in str(exception) or not str(exception)
        ):
            raise self.too_large(request, "as received") from exception

    def too_large(self, request: Request, when: str) -> PageRefused:
        limit = request.meta.get("download_maxsize", self.default_max_size)
        return refuse(
            self.crawler,
            request,
            f"larger than the maximum page size ({limit} bytes) {when}; nothing of it kept "
            "(max_page_size in the sources file)",
            "refused/too_large",
        )


# -- Retry-After --------------------------------------------------------------------------------


def retry_after(response: Response, now: datetime | None = None) -> float | None:
    """The seconds a response's Retry-After asks to wait (a number or an HTTP date), if any."""
    raw = response.headers.get("Retry-After")
    if not raw:
        return None
    value = raw.decode("latin-1").strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


class RetryAfterMiddleware:
    """Waits what a 429 or 503 answer's `Retry-After` asks before Scrapy's RetryMiddleware
    retries it, up to `CRAWLER_RETRY_AFTER_MAX` seconds; a longer wait is not retried and is
    recorded in the run's error log (`refused/retry_after_too_long`).

    Runs just outside the RetryMiddleware (its process_response first), only for requests that
    will be retried (a status in RETRY_HTTP_CODES, retries left, no `dont_retry`).
    """

    STATUSES = frozenset({429, 503})

    def __init__(self, crawler: Crawler) -> None:
        self.crawler = crawler
        settings = crawler.settings
        self.max_wait = settings.getfloat("CRAWLER_RETRY_AFTER_MAX", 60.0)
        self.retry_codes = {int(code) for code in settings.getlist("RETRY_HTTP_CODES")}
        self.retry_times = settings.getint("RETRY_TIMES")

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> RetryAfterMiddleware:
        if not crawler.settings.getbool("RETRY_ENABLED", True):
            raise NotConfigured("RETRY_ENABLED is off")
        return cls(crawler)

    async def process_response(self, request: Request, response: Response) -> Response:
        wait = retry_after(response) if response.status in self.STATUSES else None
        retried = (
            response.status in self.retry_codes
            and not request.meta.get("dont_retry", False)
            and request.meta.get("retry_times", 0)
            < request.meta.get("max_retry_times", self.retry_times)
        )
        if wait is None or not retried:
            return response
        if wait > self.max_wait:
            raise refuse(
                self.crawler,
                request,
                f"HTTP {response.status}, Retry-After {wait:.0f} s is longer than the longest "
                f"wait (CRAWLER_RETRY_AFTER_MAX = {self.max_wait:.0f} s): not retried",
                "refused/retry_after_too_long",
            )
        if self.crawler.stats is not None:
            self.crawler.stats.inc_value("retry/retry_after_waits")
        logger.info("%s: HTTP %s, retrying in %.1f s", request.url, response.status, wait)
        from twisted.internet import reactor  # the running one; imported late on purpose

        await maybe_deferred_to_future(deferLater(reactor, wait))
        return response
