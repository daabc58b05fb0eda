"""Text and date normalisation shared by the spiders and the clean pipeline."""

from __future__ import annotations

import re
import unicodedata
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

_SPACES = re.compile(r"[\s\u00a0\u2000-\u200a\u202f\u205f\u3000]+")
_INVISIBLE = re.compile(r"[\u200b\u200c\u200d\u2060\ufeff\u00ad]")


def normalize_text(value: str | None) -> str | None:
    """NFC, invisible characters dropped, every run of whitespace one space; None when empty."""
    if value is None:
        return None
    if value.isascii():
        # the common case, a tenth of the cost: ASCII is NFC and holds no invisible character,
        # and str.split() splits on exactly the whitespace _SPACES matches
        return " ".join(value.split()) or None
    text = unicodedata.normalize("NFC", value)
    text = _INVISIBLE.sub("", text)
    text = _SPACES.sub(" ", text).strip()
    return text or None


def split_paragraphs(body: str) -> list[str]:
    return [p for p in body.split("\n\n") if p]


def to_utc(value: datetime | None, timezone: str) -> datetime | None:
    """An aware UTC instant; a naive value is local time in `timezone`."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=ZoneInfo(timezone))
    return value.astimezone(UTC)
