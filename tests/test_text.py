"""Text normalisation: the ASCII fast path agrees with the general one, and text_of reads what
parsel's .//text() reads."""

from __future__ import annotations

import re
import string
import unicodedata

from scrapy.http import HtmlResponse

from crawler.spiders.base import paragraphs_of, text_of
from crawler.text import normalize_text

SPACES = re.compile(r"[\s\u00a0\u2000-\u200a\u202f\u205f\u3000]+")


def general_path(value: str) -> str | None:
    text = unicodedata.normalize("NFC", value)
    text = re.sub(r"[\u200b\u200c\u200d\u2060\ufeff\u00ad]", "", text)
    return SPACES.sub(" ", text).strip() or None


def test_ascii_fast_path_agrees_with_the_general_one():
    samples = [
        "  Kim   Jong Un\tvisits\n\nthe  factory  ",
        "".join(chr(c) for c in range(128)),
        "\x1c\x1d\x1e\x1fa\x0bb\x0cc\r\nd",
        string.whitespace,
        "",
    ]
    for sample in samples:
        assert sample.isascii()
        assert normalize_text(sample) == general_path(sample)


def test_other_text_is_composed_and_cleaned():
    assert normalize_text("Cafe\u0301\u00a0\u200bau\u2009lait\u00ad ") == "Café au lait"
    assert normalize_text("\u3000\u200b") is None


def test_text_of_reads_every_text_node_but_not_comments():
    html = (
        "<html><body><div class='c'><p>One <b>bold</b><!-- hidden --> word</p>"
        "<p>  </p><p>Two\n lines</p></div><h1> Title </h1></body></html>"
    )
    response = HtmlResponse("http://mirror.test/", body=html.encode(), encoding="utf-8")
    assert text_of(response.css("h1")) == "Title"
    assert text_of(response.css("h1")[0]) == "Title"
    assert text_of(response.css("div.c")) == "One bold word Two lines"
    assert text_of(response.css("h1::text")) == "Title"
    assert text_of(response.css("h2")) is None
    assert paragraphs_of(response.css("div.c > p")) == ["One bold word", "Two lines"]
