"""Text and date normalisation shared by the spiders and the clean pipeline."""

from __future__ import annotations

import re
import unicodedata
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

_SPACES = re.compile(r"[\s\u00a0\u2000-\u200a\u202f\u205f\u3000]+")
_INVISIBLE = re.compile(r"[\u200b\u200c\u200d\u2060\ufeff\u00ad]")
# Terminal escape sequences a page could hide in its text (ECMA-48): operating system commands
# such as OSC 0 (window title) and OSC 8 (links), ended by BEL or ST (or by the next control
# character, as an unterminated one would run on); control sequences such as CSI 2J (clear
# screen); other escapes. Each is dropped whole, so no `]0;title` or `[2J` is left behind.
_ESCAPE_SEQUENCE = re.compile(
    r"(?:\x1b[\]P^_X]|[\x90\x98\x9d\x9e\x9f])[^\x00-\x1f\x7f-\x9f]*(?:\x07|\x1b\\|\x9c)?"
    r"|(?:\x1b\[|\x9b)[\x30-\x3f]*[\x20-\x2f]*[\x40-\x7e]?"
    r"|\x1b[\x20-\x2f]*[\x30-\x7e]?"
)
# The C0 and C1 control characters and DEL that are not whitespace (those become a space).
_CONTROL = re.compile(r"[\x00-\x08\x0e-\x1b\x7f-\x84\x86-\x9f]")


def normalize_text(value: str | None) -> str | None:
    """NFC, terminal escapes, control and invisible characters dropped, every run of whitespace
    one space; None when empty."""
    if value is None:
        return None
    if value.isascii():
        # the common case, at a fifth of the cost: ASCII is NFC and holds no invisible
        # character, and str.split() splits on exactly the whitespace _SPACES matches; ASCII
        # text is printable but for its control characters, escape included, once split
        # (none of them is whitespace), which leave it to the whole treatment below
        normalised = "  " not in value and not value.startswith(" ") and not value.endswith(" ")
        if normalised and value.isprintable():
            return value or None  # as the clean stage finds what the spider normalised
        joined = " ".join(value.split())
        if joined.isprintable():
            return joined or None
    text = strip_controls(unicodedata.normalize("NFC", value))
    text = _INVISIBLE.sub("", text)
    text = _SPACES.sub(" ", text).strip()
    return text or None


def strip_controls(text: str) -> str:
    """The text without terminal escape sequences and control characters (tab, line feed,
    carriage return and form feed kept: they are whitespace)."""
    return _CONTROL.sub("", _ESCAPE_SEQUENCE.sub("", text))


def split_paragraphs(body: str) -> list[str]:
    return [p for p in body.split("\n\n") if p]


def to_utc(value: datetime | None, timezone: str) -> datetime | None:
    """An aware UTC instant; a naive value is local time in `timezone`."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=ZoneInfo(timezone))
    return value.astimezone(UTC)
