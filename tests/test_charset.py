"""The charset middleware, fed hand-made responses: a declaration is overruled only by the bytes."""

from __future__ import annotations

import logging

import pytest
from scrapy import Request
from scrapy.exceptions import NotConfigured
from scrapy.http import HtmlResponse, Response, TextResponse, XmlResponse
from scrapy.utils.test import get_crawler

from crawler.middlewares import CharsetMiddleware, corrected_encoding

URL = "http://mirror.test/en/news/1/page"
TEXT = "Lebanon’s PM met the envoy on “Border Escalation” — the Élysée’s message."
PAGE = f'<html><head><meta charset="utf-8"><title>t</title></head><body><p>{TEXT}</p></body></html>'


@pytest.fixture
def middleware() -> CharsetMiddleware:
    crawler = get_crawler(settings_dict={})
    assert crawler.stats is not None
    crawler.stats.open_spider()
    return CharsetMiddleware.from_crawler(crawler)


def html(
    body: bytes, content_type: str | None, cls: type[TextResponse] = HtmlResponse
) -> TextResponse:
    headers = {"Content-Type": content_type} if content_type else {}
    return cls(url=URL, body=body, headers=headers, request=Request(URL))


def overruled(middleware: CharsetMiddleware) -> int:
    assert middleware.crawler.stats is not None
    return middleware.crawler.stats.get_value("charset/overruled", 0)


def paragraph(response: Response) -> str:
    assert isinstance(response, TextResponse)
    return response.css("p::text").get() or ""


def test_utf8_bytes_sent_as_latin1_are_read_as_utf8(middleware, caplog):
    served = html(PAGE.encode("utf-8"), "text/html; charset=iso-8859-1")
    assert "â€™" in paragraph(served)  # what Scrapy alone would archive
    with caplog.at_level(logging.INFO, logger="crawler.middlewares"):
        fixed = middleware.process_response(served.request, served)
    assert paragraph(fixed) == TEXT
    assert fixed.encoding == "utf-8"
    # only the reading changes: the exact bytes and headers served are kept for the snapshot
    assert fixed.body == served.body
    assert fixed.headers == served.headers
    assert fixed.url == served.url and fixed.request is served.request
    assert isinstance(fixed, HtmlResponse)
    assert overruled(middleware) == 1
    assert any(
        r.levelno == logging.INFO and URL in r.getMessage() and "cp1252" in r.getMessage()
        for r in caplog.records
    )


def test_a_meta_charset_that_misreads_the_bytes_is_overruled(middleware):
    page = PAGE.replace('charset="utf-8"', 'charset="windows-1252"').encode("utf-8")
    fixed = middleware.process_response(Request(URL), html(page, "text/html"))
    assert paragraph(fixed) == TEXT
    assert overruled(middleware) == 1


def test_a_declaration_that_cannot_decode_the_bytes_gives_way_to_utf8(middleware):
    # Shift_JIS (read as its browser superset cp932) cannot decode these UTF-8 bytes at all
    served = html(PAGE.encode("utf-8"), "text/html; charset=shift_jis")
    assert corrected_encoding(served) == ("cp932", "utf-8")
    assert paragraph(middleware.process_response(served.request, served)) == TEXT


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (PAGE.encode("utf-8"), "text/html; charset=utf-8"),  # declared right
        (PAGE.encode("utf-8"), None),  # nothing declared: Scrapy already infers UTF-8
        # really written in cp1252: not valid UTF-8, the declaration stands
        (PAGE.replace("utf-8", "windows-1252").encode("cp1252"), "text/html; charset=cp1252"),
        ("<p>Café à la crème</p>".encode("latin-1"), "text/html; charset=iso-8859-1"),
        (b"<p>plain ASCII is the same in every charset</p>", "text/html; charset=iso-8859-1"),
        # a byte-order mark is never second-guessed
        ("<p>ok</p>".encode("utf-16"), "text/html; charset=iso-8859-1"),
    ],
)
def test_a_right_or_unprovable_declaration_stands(middleware, body, content_type):
    served = html(body, content_type)
    assert corrected_encoding(served) is None
    assert middleware.process_response(served.request, served) is served
    assert overruled(middleware) == 0


def test_feeds_and_other_text_responses_are_checked_too(middleware):
    feed = f'<?xml version="1.0" encoding="iso-8859-1"?><rss><title>{TEXT}</title></rss>'
    served = html(feed.encode("utf-8"), "application/rss+xml", cls=XmlResponse)
    fixed = middleware.process_response(served.request, served)
    assert isinstance(fixed, XmlResponse)
    assert fixed.xpath("//title/text()").get() == TEXT
    assert overruled(middleware) == 1


def test_binary_responses_pass_untouched(middleware):
    image = Response(URL, body=b"\x89PNG\r\n\x1a\n\xc3\xa9", headers={"Content-Type": "image/png"})
    assert middleware.process_response(Request(URL), image) is image
    assert overruled(middleware) == 0


def test_every_overruled_page_is_counted(middleware):
    for _ in range(3):
        served = html(PAGE.encode("utf-8"), "text/html; charset=iso-8859-1")
        middleware.process_response(served.request, served)
    assert overruled(middleware) == 3


def test_switched_off_by_setting():
    crawler = get_crawler(settings_dict={"CHARSET_CHECK_ENABLED": False})
    with pytest.raises(NotConfigured):
        CharsetMiddleware.from_crawler(crawler)


def test_registered_in_the_project_settings():
    from scrapy.utils.project import get_project_settings

    settings = get_project_settings()
    priority = settings.getdict("DOWNLOADER_MIDDLEWARES")["crawler.middlewares.CharsetMiddleware"]
    # after decompression (590) has turned the body into the bytes the page is written in
    assert priority < 590


def undecodable(middleware: CharsetMiddleware) -> int:
    assert middleware.crawler.stats is not None
    return middleware.crawler.stats.get_value("charset/undecodable", 0)


def test_cp1252_bytes_declared_utf8_are_read_as_cp1252(middleware):
    page = PAGE.replace('charset="utf-8"', "")
    served = html(page.encode("cp1252"), "text/html; charset=utf-8")
    assert "\ufffd" in paragraph(served)  # what Scrapy alone would archive
    fixed = middleware.process_response(served.request, served)
    assert paragraph(fixed) == TEXT
    assert fixed.body == served.body and fixed.headers == served.headers
    assert overruled(middleware) == 1 and undecodable(middleware) == 0


def test_a_page_declared_utf8_by_header_follows_its_own_other_declaration(middleware):
    text = "Здравствуй, мир — русский текст"
    page = f'<html><head><meta charset="windows-1251"></head><body><p>{text}</p></body></html>'
    served = html(page.encode("cp1251"), "text/html; charset=utf-8")
    fixed = middleware.process_response(served.request, served)
    assert paragraph(fixed) == text and fixed.encoding == "cp1251"
    assert overruled(middleware) == 1


def test_utf8_with_a_stray_byte_stays_utf8_and_is_counted(middleware):
    body = PAGE.encode("utf-8").replace(b"met", b"m\xe9t")  # one cp1252 byte among UTF-8
    served = html(body, "text/html; charset=utf-8")
    assert middleware.process_response(served.request, served) is served
    assert "’" in paragraph(served)  # the UTF-8 text is not turned into mojibake
    assert overruled(middleware) == 0 and undecodable(middleware) == 1
