"""Text normalisation: terminal escapes and control characters never reach the archive."""

from __future__ import annotations

import pytest

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
