"""Downloader middlewares shared by every outlet."""

from __future__ import annotations

import codecs
import logging

from scrapy.crawler import Crawler
from scrapy.exceptions import NotConfigured
from scrapy.http import Request, Response, TextResponse
from w3lib.encoding import read_bom, resolve_encoding

logger = logging.getLogger(__name__)

UTF8 = "utf-8"


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


def corrected_encoding(response: TextResponse) -> tuple[str, str] | None:
    """(declared, right) when the charset the response is read in misreads its bytes, else None.

    The charset that counts is the one Scrapy follows (the HTTP header, else the page's own
    meta/XML declaration). It is overruled when it cannot decode the bytes but UTF-8 can, or
    when it is a single-byte charset and the non-ASCII bytes are valid UTF-8: read in the
    declared charset, each of their multi-byte sequences would show as mojibake such as `â€™`
    (text really written in a single-byte charset is practically never valid UTF-8). A
    byte-order mark is never second-guessed.
    """
    body = response.body
    if not body or body.isascii() or read_bom(body)[0]:
        return None
    declared = response.encoding
    codec = _codec(declared)
    utf8 = codecs.lookup(UTF8)
    if codec is None or codec.name == utf8.name or not _decodes(body, utf8):
        return None
    if not _decodes(body, codec) or _single_byte(codec):
        return declared, UTF8
    return None


class CharsetMiddleware:
    """Reads a text response in the charset its bytes are in when the declared one is wrong.

    Only the response's encoding changes: its body and headers stay exactly as served, so the
    snapshot keeps the raw bytes. Every overruled declaration is logged and counted in the
    stat `charset/overruled`. Switched off with `CHARSET_CHECK_ENABLED = False`.
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
