"""The hostile-site middlewares, fed hand-made requests and responses (whole crawls are in
tests/test_hostile_sites.py)."""

from __future__ import annotations

import asyncio
import gzip
import tracemalloc
import zlib
from datetime import UTC, datetime
from typing import Any

import pytest
from scrapy import Request, Spider
from scrapy.exceptions import DownloadCancelledError, NotConfigured
from scrapy.http import HtmlResponse, Response, TextResponse
from scrapy.utils.test import get_crawler

from crawler.config import DEFAULT_MAX_PAGE_SIZE, SourceConfig
from crawler.middlewares import (
    BinaryPageMiddleware,
    PageRefused,
    PageSizeMiddleware,
    RetryAfterMiddleware,
    SiteMetaRefreshMiddleware,
    SiteRedirectMiddleware,
    SiteScopeMiddleware,
    allowed_sites,
    binary_kind,
    retry_after,
    site_of,
)
from crawler.signals import page_error

BASE = "https://news.test"
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00"


class OutletSpider(Spider):
    name = "outlet"


def make_crawler(source: SourceConfig | None = None, **settings: Any) -> Any:
    """A crawler whose spider walks `source`, its page errors collected in `crawler.errors`."""
    crawler = get_crawler(OutletSpider, settings_dict=settings)
    spider = OutletSpider()
    if source is not None:
        spider.source = source  # type: ignore[attr-defined]
    crawler.spider = spider
    assert crawler.stats is not None
    crawler.stats.open_spider()
    errors: list[tuple[str, str]] = []

    def collect(url: str, reason: str) -> None:
        errors.append((url, reason))

    crawler.signals.connect(collect, signal=page_error, weak=False)
    crawler.errors = errors
    return crawler


def news_source(**keys: Any) -> SourceConfig:
    return SourceConfig(name="outlet", base_url=BASE, **keys)


def stat(crawler: Any, key: str) -> int:
    return crawler.stats.get_value(key, 0)


# -- sites --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "site"),
    [
        ("https://News.Test/a", "news.test"),
        ("http://news.test:80/a", "news.test"),
        ("https://news.test:443/a", "news.test"),
        ("https://news.test:8443/a", "news.test:8443"),
        ("http://127.0.0.1:8080/", "127.0.0.1:8080"),
        ("http://[::1]:8080/", "[::1]:8080"),
        ("file:///etc/passwd", None),
        ("data:text/html,x", None),
        ("http://news.test:99999/", None),
    ],
)
def test_site_of(url, site):
    assert site_of(url) == site


def test_allowed_sites_are_the_base_host_its_www_twin_and_the_declared_hosts():
    assert allowed_sites(news_source(allowed_hosts=("cdn.test",))) == {
        "news.test",
        "www.news.test",
        "cdn.test",
    }
    assert allowed_sites(SourceConfig(name="x", base_url="https://www.news.test")) == {
        "www.news.test",
        "news.test",
    }
    assert allowed_sites(news_source(allowed_hosts=("cdn.test:443", "media.test:8443"))) >= {
        "cdn.test",
        "media.test:8443",
    }
    assert allowed_sites(SourceConfig(name="x", base_url="http://127.0.0.1:8080")) == {
        "127.0.0.1:8080"
    }


@pytest.mark.parametrize(
    "url",
    [f"{BASE}/a", "http://news.test/a", "https://www.news.test/a", "https://cdn.test/img.png"],
)
def test_urls_on_the_site_pass(url):
    crawler = make_crawler(news_source(allowed_hosts=("cdn.test",)))
    assert SiteScopeMiddleware.from_crawler(crawler).process_request(Request(url)) is None
    assert crawler.errors == []


@pytest.mark.parametrize(
    ("url", "stat_key", "reason"),
    [
        ("https://evil.test/a", "refused/offsite", "evil.test is not the source's site"),
        ("https://news.test.evil.test/a", "refused/offsite", "is not the source's site"),
        ("https://news.test:8443/a", "refused/offsite", "news.test:8443 is not"),
        ("http://127.0.0.2/internal/admin", "refused/offsite", "127.0.0.2 is not"),
        ("file:///etc/passwd", "refused/scheme", "file scheme (only http and https)"),
        ("data:text/html,<h1>x</h1>", "refused/scheme", "data scheme"),
        ("ftp://news.test/a", "refused/scheme", "ftp scheme"),
    ],
)
def test_urls_off_the_site_are_refused_and_recorded(url, stat_key, reason):
    crawler = make_crawler(news_source())
    request = Request(url)
    with pytest.raises(PageRefused):
        SiteScopeMiddleware.from_crawler(crawler).process_request(request)
    assert len(crawler.errors) == 1
    assert crawler.errors[0][0] == request.url and reason in crawler.errors[0][1]
    assert stat(crawler, stat_key) == 1 and stat(crawler, "archive/errors") == 1


def test_a_response_a_browser_fetched_from_off_the_site_is_refused():
    crawler = make_crawler(news_source())
    middleware = SiteScopeMiddleware.from_crawler(crawler)
    request = Request(f"{BASE}/", meta={"playwright": True})
    moved = HtmlResponse(f"{BASE}/home", body=b"<p>x</p>", request=request)
    assert middleware.process_response(request, moved) is moved
    away = HtmlResponse("http://127.0.0.2/internal/admin", body=b"<p>x</p>", request=request)
    with pytest.raises(PageRefused):
        middleware.process_response(request, away)
    assert crawler.errors == [
        (
            f"{BASE}/",
            "answered from http://127.0.0.2/internal/admin: not fetched: 127.0.0.2 is not the "
            "source's site (news.test, www.news.test; more with allowed_hosts in the sources file)",
        )
    ]


def test_a_spider_without_a_source_is_held_to_the_schemes_only():
    middleware = SiteScopeMiddleware.from_crawler(make_crawler())
    assert middleware.process_request(Request("https://anywhere.test/")) is None
    with pytest.raises(PageRefused):
        middleware.process_request(Request("file:///etc/passwd"))


def test_site_scope_switched_off_by_setting():
    with pytest.raises(NotConfigured):
        SiteScopeMiddleware.from_crawler(make_crawler(SITE_SCOPE_ENABLED=False))


# -- redirects ----------------------------------------------------------------------------------


def redirect(request: Request, location: str, status: int = 302) -> Response:
    return Response(request.url, status=status, headers={"Location": location}, request=request)


def test_a_redirect_on_the_site_is_followed():
    middleware = SiteRedirectMiddleware.from_crawler(make_crawler(news_source()))
    request = Request(f"{BASE}/old")
    followed = middleware.process_response(request, redirect(request, "https://www.news.test/new"))
    assert isinstance(followed, Request) and followed.url == "https://www.news.test/new"


def test_a_redirect_off_the_site_is_refused_under_the_first_url():
    crawler = make_crawler(news_source())
    middleware = SiteRedirectMiddleware.from_crawler(crawler)
    first = Request(f"{BASE}/a")
    second = middleware.process_response(first, redirect(first, f"{BASE}/b"))
    assert isinstance(second, Request)
    with pytest.raises(PageRefused):
        middleware.process_response(second, redirect(second, "http://127.0.0.2/internal/admin"))
    [(url, reason)] = crawler.errors
    assert url == f"{BASE}/a"
    assert reason.startswith(f"redirect from {BASE}/b to http://127.0.0.2/internal/admin not")


@pytest.mark.parametrize("chain", [["/a"], ["/a", "/b"], ["/a", "/b", "/c"]])
def test_a_redirect_loop_is_refused_and_shown(chain):
    crawler = make_crawler(news_source())
    middleware = SiteRedirectMiddleware.from_crawler(crawler)
    request = Request(BASE + chain[0])
    for path in chain[1:]:
        request = middleware.process_response(request, redirect(request, BASE + path))
        assert isinstance(request, Request)
    with pytest.raises(PageRefused):
        middleware.process_response(request, redirect(request, BASE + chain[0]))
    expected = " -> ".join(BASE + p for p in [*chain, chain[0]])
    assert crawler.errors == [(BASE + chain[0], f"redirect loop: {expected}")]
    assert stat(crawler, "refused/redirect_loop") == 1


def test_too_many_redirects_are_recorded():
    crawler = make_crawler(news_source(), REDIRECT_MAX_TIMES=2)
    middleware = SiteRedirectMiddleware.from_crawler(crawler)
    request = Request(f"{BASE}/0")
    with pytest.raises(PageRefused):
        for step in range(1, 5):
            request = middleware.process_response(request, redirect(request, f"{BASE}/{step}"))
    assert "more than 2 redirects" in crawler.errors[0][1]


@pytest.mark.parametrize("target", ["file:///etc/passwd", "data:text/plain,x", "ftp://news.test/"])
def test_a_redirect_to_another_scheme_is_refused(target):
    crawler = make_crawler(news_source())
    request = Request(f"{BASE}/a")
    with pytest.raises(PageRefused):
        SiteRedirectMiddleware.from_crawler(crawler).process_response(
            request, redirect(request, target, 301)
        )
    assert crawler.errors[0][1] == f"redirect to {target} not followed: only http and https"


def test_a_meta_refresh_off_the_site_is_refused():
    crawler = make_crawler(news_source())
    request = Request(f"{BASE}/a")
    page = HtmlResponse(
        request.url,
        body=b'<html><head><meta http-equiv="refresh" content="0;url=http://127.0.0.2/x">'
        b"</head></html>",
        request=request,
    )
    with pytest.raises(PageRefused):
        SiteMetaRefreshMiddleware.from_crawler(crawler).process_response(request, page)
    assert "to http://127.0.0.2/x not followed" in crawler.errors[0][1]


# -- size ---------------------------------------------------------------------------------------


def gzip_bomb(megabytes: int) -> bytes:
    """A gzip stream of `megabytes` MiB of spaces inside an HTML page, built without holding it."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    parts = [packer.compress(b"<html><body><p>")]
    chunk = b" " * (1024 * 1024)
    parts += [packer.compress(chunk) for _ in range(megabytes)]
    parts.append(packer.compress(b"</p></body></html>") + packer.flush())
    return b"".join(parts)


def test_the_source_or_the_setting_sets_each_request_s_maximum():
    request = Request(f"{BASE}/a")
    PageSizeMiddleware.from_crawler(make_crawler(news_source())).process_request(request)
    assert request.meta["download_maxsize"] == DEFAULT_MAX_PAGE_SIZE
    request = Request(f"{BASE}/a")
    crawler = make_crawler(news_source(), CRAWLER_MAX_PAGE_SIZE=1000)
    PageSizeMiddleware.from_crawler(crawler).process_request(request)
    assert request.meta["download_maxsize"] == 1000
    request = Request(f"{BASE}/a")
    crawler = make_crawler(news_source(max_page_size=5000), CRAWLER_MAX_PAGE_SIZE=1000)
    PageSizeMiddleware.from_crawler(crawler).process_request(request)
    assert request.meta["download_maxsize"] == 5000


def test_a_gzip_bomb_is_stopped_at_the_maximum_without_inflating_it():
    bomb = gzip_bomb(256)  # 256 MiB once inflated, about 250 KB as served
    assert len(bomb) < 1024 * 1024
    crawler = make_crawler(news_source(max_page_size=4 * 1024 * 1024))
    middleware = PageSizeMiddleware.from_crawler(crawler)
    request = Request(f"{BASE}/bomb")
    middleware.process_request(request)
    response = HtmlResponse(
        request.url, body=bomb, headers={"Content-Encoding": "gzip"}, request=request
    )
    tracemalloc.start()
    try:
        with pytest.raises(PageRefused):
            middleware.process_response(request, response)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 16 * 1024 * 1024  # the bound (4 MiB) and its buffers, not 256 MiB
    [(url, reason)] = crawler.errors
    assert url == request.url
    assert reason.startswith("larger than the maximum page size (4194304 bytes) once decompressed")
    assert stat(crawler, "refused/too_large") == 1


def test_a_compressed_page_under_the_maximum_is_inflated():
    crawler = make_crawler(news_source(max_page_size=4096))
    middleware = PageSizeMiddleware.from_crawler(crawler)
    request = Request(f"{BASE}/a")
    middleware.process_request(request)
    body = b"<html><body><p>fine</p></body></html>"
    served = HtmlResponse(
        request.url, body=gzip.compress(body), headers={"Content-Encoding": "gzip"}, request=request
    )
    inflated = middleware.process_response(request, served)
    assert isinstance(inflated, TextResponse) and inflated.body == body
    assert crawler.errors == []


@pytest.mark.parametrize(
    "message",
    [
        "Expected to receive 5000 bytes which is larger than download max size (1000)",
        "",  # the body grew past the bound as it streamed (no Content-Length)
    ],
)
def test_a_download_cut_off_at_the_maximum_is_recorded(message):
    crawler = make_crawler(news_source(max_page_size=1000))
    middleware = PageSizeMiddleware.from_crawler(crawler)
    request = Request(f"{BASE}/big")
    middleware.process_request(request)
    cut = DownloadCancelledError(message)
    with pytest.raises(PageRefused):
        middleware.process_exception(request, cut)
    assert crawler.errors[0][1].startswith("larger than the maximum page size (1000 bytes)")
    # any other failure is left to the rest of the chain
    assert middleware.process_exception(request, ConnectionRefusedError()) is None


# -- bytes that are not text --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "kind"),
    [
        (PNG, "a PNG image"),
        (b"\xff\xd8\xff\xe0\x00\x10JFIF", "a JPEG image"),
        (b"%PDF-1.7\n", "a PDF document"),
        (gzip.compress(b"<html></html>"), "gzip data"),
        (bytes(range(256)) * 8, "binary data"),
        (b"<html><body>fine</body></html>", None),
        (b"<p>one stray \x00 NUL and an \x1b[2J escape in a page of text</p>" * 4, None),
        # one byte in twenty a control that text does not use is still text, more is not
        (b"\x01" * 20 + b"a" * 380, None),
        (b"\x01" * 21 + b"a" * 379, "binary data"),
        (b"\x1f" * 21 + b"a" * 379, "binary data"),
        (b"\x1b\t\n\x0c\r" * 40 + b"a" * 200, None),
        ("<p>UTF-16 text</p>".encode("utf-16"), None),
        ("<p>Кириллица и 한국어</p>".encode(), None),
        (b"", None),
    ],
)
def test_binary_kind(body, kind):
    assert binary_kind(body) == kind


def test_a_png_served_as_html_is_refused_with_what_it_is():
    crawler = make_crawler(news_source())
    request = Request(f"{BASE}/a")
    served = HtmlResponse(
        request.url, body=PNG, headers={"Content-Type": "text/html; charset=utf-8"}, request=request
    )
    with pytest.raises(PageRefused):
        BinaryPageMiddleware.from_crawler(crawler).process_response(request, served)
    assert crawler.errors == [
        (
            request.url,
            "not text: the bytes are a PNG image, though served as text/html; charset=utf-8",
        )
    ]
    assert stat(crawler, "refused/not_text") == 1


def test_text_and_binary_types_pass_the_binary_check():
    middleware = BinaryPageMiddleware.from_crawler(make_crawler(news_source()))
    request = Request(f"{BASE}/a")
    page = HtmlResponse(request.url, body=b"<p>text</p>", request=request)
    image = Response(request.url, body=PNG, headers={"Content-Type": "image/png"}, request=request)
    assert middleware.process_response(request, page) is page
    assert middleware.process_response(request, image) is image


# -- Retry-After --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("2", 2.0),
        ("0", 0.0),
        ("Wed, 25 Nov 2026 12:00:30 GMT", 30.0),
        ("Wed, 25 Nov 2026 11:00:00 GMT", 0.0),  # a date gone by: no wait
        ("soon", None),
        ("-5", None),
    ],
)
def test_retry_after(value, seconds):
    response = Response(BASE, status=503, headers={"Retry-After": value})
    assert retry_after(response, now=datetime(2026, 11, 25, 12, 0, tzinfo=UTC)) == seconds


def test_no_retry_after_header():
    assert retry_after(Response(BASE, status=503)) is None


def answer(middleware: RetryAfterMiddleware, request: Request, response: Response) -> Any:
    return asyncio.run(middleware.process_response(request, response))


def test_a_retry_after_beyond_the_longest_wait_is_refused():
    crawler = make_crawler(news_source(), CRAWLER_RETRY_AFTER_MAX=10)
    middleware = RetryAfterMiddleware.from_crawler(crawler)
    request = Request(f"{BASE}/a")
    busy = Response(request.url, status=503, headers={"Retry-After": "11"}, request=request)
    with pytest.raises(PageRefused):
        answer(middleware, request, busy)
    assert crawler.errors[0][1] == (
        "HTTP 503, Retry-After 11 s is longer than the longest wait "
        "(CRAWLER_RETRY_AFTER_MAX = 10 s): not retried"
    )


@pytest.mark.parametrize(
    ("status", "meta"),
    [
        (503, {"retry_times": 2}),  # retries used up: nothing left to wait for
        (503, {"dont_retry": True}),
        (200, {}),
        (500, {}),  # not a status that asks to come back later
    ],
)
def test_no_wait_when_nothing_will_be_retried(status, meta):
    crawler = make_crawler(news_source(), CRAWLER_RETRY_AFTER_MAX=10, RETRY_TIMES=2)
    middleware = RetryAfterMiddleware.from_crawler(crawler)
    request = Request(f"{BASE}/a", meta=meta)
    busy = Response(request.url, status=status, headers={"Retry-After": "3600"}, request=request)
    assert answer(middleware, request, busy) is busy
    assert crawler.errors == []


# -- registration -------------------------------------------------------------------------------


def test_registered_in_the_project_settings_in_the_right_places():
    from scrapy.utils.project import get_project_settings

    chain = get_project_settings().getwithbase("DOWNLOADER_MIDDLEWARES")
    assert (
        chain["crawler.middlewares.SiteScopeMiddleware"]
        < chain["scrapy.downloadermiddlewares.robotstxt.RobotsTxtMiddleware"]
    )
    for replaced in (
        "scrapy.downloadermiddlewares.redirect.RedirectMiddleware",
        "scrapy.downloadermiddlewares.redirect.MetaRefreshMiddleware",
        "scrapy.downloadermiddlewares.httpcompression.HttpCompressionMiddleware",
    ):
        assert chain[replaced] is None
    # Retry-After is read before RetryMiddleware retries (responses go down the priorities)
    assert (
        chain["crawler.middlewares.RetryAfterMiddleware"]
        > chain["scrapy.downloadermiddlewares.retry.RetryMiddleware"]
    )
    # the binary check and the charset reading see the decompressed body
    assert (
        chain["crawler.middlewares.CharsetMiddleware"]
        < chain["crawler.middlewares.BinaryPageMiddleware"]
        < chain["crawler.middlewares.PageSizeMiddleware"]
    )


def test_allowed_sites_of_a_source_with_selectors():
    # a source's selectors table makes it unhashable: the sites are still worked out
    source = SourceConfig(name="x", base_url="https://news.test", selectors={"title": "h1"})
    assert allowed_sites(source) == {"news.test", "www.news.test"}
