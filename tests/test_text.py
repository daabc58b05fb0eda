"""Text normalisation: terminal escapes and control characters never reach the archive; the
ASCII fast path agrees with the general one; text_of reads what parsel's .//text() reads."""

from __future__ import annotations

import re
import string
import unicodedata

import pytest
from scrapy.http import HtmlResponse

from crawler.spiders.base import paragraphs_of, text_of
from crawler.text import normalize_text, strip_controls


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("\x1b[2J\x1b[HHeadline", "Headline"),  # clear screen, cursor home
        ("\x1b[1;31mred\x1b[0m text", "red text"),  # colours
        ("before\x1b]0;owned window\x07after", "beforeafter"),  # OSC 0 window title, BEL
        ("before\x1b]2;owned\x1b\\after", "beforeafter"),  # ended by ST
        ("see \x1b]8;;http://evil.example/\x1b\\the link\x1b]8;;\x1b\\ here", "see the link here"),
        ("cut off \x1b]0;no end", "cut off"),  # an unterminated OSC runs to the text's end
        ("title\x1b]0;x\nnext line", "title next line"),  # ... or to the next control character
        ("C1 \x9b31mCSI\x9b0m and \x9d0;osc\x9c done", "C1 CSI and done"),
        ("reset\x1bc here", "reset here"),
        ("nul\x00 bell\x07 del\x7f gone", "nul bell del gone"),
        ("tab\tform\x0cfeed\x0bvt\r\nline", "tab form feed vt line"),  # whitespace stays space
        ("Lebanon’s café — 러시아 КНДР", "Lebanon’s café — 러시아 КНДР"),
    ],
)
def test_escapes_and_controls_are_dropped_whole(raw, clean):
    assert normalize_text(raw) == clean


def test_only_escapes_is_empty():
    assert normalize_text("\x1b[2J\x1b]0;x\x07") is None


def test_strip_controls_keeps_line_structure():
    assert strip_controls("a\x1b[2J\nb\tc\x00") == "a\nb\tc"


def test_placeholder_publication_dates_are_no_date():
    from datetime import datetime

    from crawler.extract import parse_datetime
    from crawler.items import ArticleItem
    from crawler.pipelines.clean import clean_article

    assert parse_datetime("0001-01-01T00:00:00+00:00") is None
    assert parse_datetime("2019-11-20T05:00:00Z") == datetime.fromisoformat("2019-11-20T05:00Z")
    item = ArticleItem(
        outlet="x",
        url="http://x.test/a",
        timezone="UTC",
        title="t",
        body=["b"],
        published=datetime(1, 1, 1, 0, 0),
    )
    cleaned = clean_article(item)
    assert (cleaned.published_at, cleaned.published_date) == (None, None)


# -- the ASCII fast path and text_of ------------------------------------------------------------

_SPACES = re.compile(r"[\s\u00a0\u2000-\u200a\u202f\u205f\u3000]+")


def general_path(value: str) -> str | None:
    text = strip_controls(unicodedata.normalize("NFC", value))
    text = re.sub(r"[\u200b\u200c\u200d\u2060\ufeff\u00ad]", "", text)
    return _SPACES.sub(" ", text).strip() or None


def test_ascii_fast_path_agrees_with_the_general_one():
    samples = [
        "  Kim   Jong Un\tvisits\n\nthe  factory  ",
        "".join(chr(c) for c in range(128)),
        "\x1c\x1d\x1e\x1fa\x0bb\x0cc\r\nd",
        "\x1b[2J\x1b[Hcleared \x07bell \x7fdel",
        string.whitespace,
        "",
        # already normalised (the clean stage reads what the spider normalised), or nearly
        "Kim Jong Un visits the factory.",
        " leading space",
        "trailing space ",
        "two  spaces",
        "a\x00NUL among printable text",
        "an \x1b escape",
        " ",
        "x",
    ]
    for sample in samples:
        assert sample.isascii()
        assert normalize_text(sample) == general_path(sample)
    normalised = "Kim Jong Un visits the factory."
    assert normalize_text(normalised) is normalised  # returned as it is, not copied


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
