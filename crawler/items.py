"""Typed items passed from the spiders through the pipelines."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime


@dataclass
class FetchedPage:
    """The raw response an article came from, exactly as received."""

    requested_url: str
    final_url: str
    status: int
    headers: dict[str, list[str]]
    body: bytes
    fetched_at: datetime


@dataclass
class ArticleItem:
    """One article page, as a spider read it and as the pipelines refine it.

    Spiders fill the fields up to `page`; `published` may be naive, meaning the outlet's
    local time. The clean pipeline sets `published_at` (always an aware UTC instant) and the
    later stages fill `canonical_url`, `content_hash` and `snapshot_id`.
    """

    outlet: str
    url: str
    title: str | None
    body: list[str] = field(repr=False)  # logs name an item by its URL, never print its text
    timezone: str = "UTC"
    published: datetime | None = None
    author: str | None = None
    summary: str | None = None
    language: str | None = None
    original_source: str | None = None
    original_url: str | None = None
    outlet_article_id: str | None = None
    partial: bool = False
    declared_canonical: str | None = None
    page: FetchedPage | None = field(default=None, repr=False)
    # filled by the pipelines
    published_at: datetime | None = None
    published_date: date | None = None  # the local calendar day of publication
    published_precision: str | None = None  # "day" (a date only was shown) or "time"
    canonical_url: str | None = None
    content_hash: str | None = None
    snapshot_id: int | None = None
    snapshot_sha256: str | None = None
    # why the validate stage turned it down (stored as a snapshot and a rejected URL only)
    rejected: str | None = None


@dataclass
class NotModifiedItem:
    """A known article the server answered 304 for: it is still there, unchanged."""

    outlet: str
    url: str
    article_id: int | None = None
