"""The archive's raw pages in the standard web-archive format (WARC 1.1), both ways.

Export writes one gzip-compressed `response` record per stored snapshot after a `warcinfo`
record; the records are the ones warcio writes and pywb replays. Snapshots hold the decoded
bytes, so the HTTP headers that described the transfer (Content-Encoding, Transfer-Encoding)
are kept under an `X-Archive-Orig-` name and Content-Length is the stored payload's length.
Import reads any WARC's response records back as fetched pages (see `crawler.replay`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from http import HTTPStatus
from io import BytesIO
from typing import IO, Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, aliased
from warcio.archiveiterator import ArchiveIterator
from warcio.exceptions import ArchiveLoadFailed
from warcio.statusandheaders import StatusAndHeaders
from warcio.timeutils import datetime_to_iso_date, iso_date_to_datetime
from warcio.warcwriter import WARCWriter

from crawler import __version__
from crawler.config import DEFAULT_MAX_PAGE_SIZE
from crawler.db.models import Article, ArticleVersion, Payload, Snapshot, Source
from crawler.db.payloads import Unpacker
from crawler.items import FetchedPage
from crawler.read.export import outlet_names

BATCH = 200
# The metadata record after each response: the page's outlet and publication date (JSON).
METADATA_TYPE = "application/vnd.news-archive.page+json"
MAX_METADATA_BYTES = 64 * 1024
BLOCK_READ = 1 << 16
# Renamed, not dropped, so a reader still sees how the page was sent.
RENAMED_HEADERS = frozenset({"content-encoding", "transfer-encoding"})
ORIGINAL_PREFIX = "X-Archive-Orig-"


class WarcError(ValueError):
    """A WARC file that cannot be read; the message says why."""


@dataclass(frozen=True)
class SnapshotFilter:
    outlet: str | Sequence[str] | None = None  # one outlet or several (any of them)
    since: datetime | None = None

    def apply(self, statement: Any) -> Any:
        """The statement narrowed to matching snapshots (Source must be joined)."""
        if self.outlet:
            statement = statement.where(Source.name.in_(outlet_names(self.outlet)))
        if self.since:
            statement = statement.where(Snapshot.fetched_at >= self.since)
        return statement


def status_line(status: int) -> str:
    """`200 OK`: the status and its standard reason phrase (the stored status has none)."""
    try:
        return f"{status} {HTTPStatus(status).phrase}"
    except ValueError:
        return str(status)


def http_headers(status: int, headers: dict[str, Any], length: int) -> StatusAndHeaders:
    """The response's status line and headers as they describe the stored (decoded) payload."""
    pairs: list[tuple[str, str]] = []
    for name, values in headers.items():
        lowered = name.lower()
        if lowered == "content-length":
            continue
        key = ORIGINAL_PREFIX + name if lowered in RENAMED_HEADERS else name
        for value in values if isinstance(values, list) else [values]:
            pairs.append((key, str(value)))
    pairs.append(("Content-Length", str(length)))
    return StatusAndHeaders(status_line(status), pairs, protocol="HTTP/1.1")


def warc_date(value: datetime) -> str:
    """A WARC-Date with microseconds (WARC 1.1), in UTC."""
    return datetime_to_iso_date(value.astimezone(UTC).replace(tzinfo=None), use_micros=True)


def write_warc(
    session: Session,
    filters: SnapshotFilter,
    out: IO[bytes],
    tick: Callable[[], None] = lambda: None,
    filename: str | None = None,
) -> int:
    """Write the matching snapshots as WARC 1.1 response records, streamed; their number."""
    writer = WARCWriter(out, gzip=True, warc_version="1.1")
    info = writer.create_warcinfo_record(
        filename,
        {
            "software": f"news-archive-crawler/{__version__} (warcio)",
            "format": "WARC File Format 1.1",
            "conformsTo": "https://iipc.github.io/warc-specifications/specifications/"
            "warc-format/warc-1.1/",
            "description": "raw pages of the news archive"
            + (f", outlet {', '.join(outlet_names(filters.outlet))}" if filters.outlet else ""),
        },
    )
    writer.write_record(info)
    info_id = info.rec_headers.get_header("WARC-Record-ID")
    # the article a snapshot shows (its current text, or an earlier version's)
    version = (
        select(ArticleVersion.article_id)
        .where(ArticleVersion.snapshot_id == Snapshot.id)
        .order_by(ArticleVersion.id)
        .limit(1)
        .correlate(Snapshot)
        .scalar_subquery()
    )
    current = (
        select(Article.id)
        .where(Article.snapshot_id == Snapshot.id)
        .order_by(Article.id)
        .limit(1)
        .correlate(Snapshot)
        .scalar_subquery()
    )
    shown = aliased(Article)
    statement = filters.apply(
        select(
            Snapshot.requested_url,
            Snapshot.status,
            Snapshot.headers,
            Snapshot.fetched_at,
            Payload.content,
            Payload.dictionary_id,
            Source.name,
            Source.base_url,
            shown.published_at,
            shown.published_date,
            shown.published_precision,
        )
        .join(Source, Source.id == Snapshot.source_id)
        .join(Payload, Payload.sha256 == Snapshot.sha256)
        .outerjoin(shown, shown.id == func.coalesce(current, version))
        .order_by(Snapshot.id)
    ).execution_options(yield_per=BATCH)
    unpack = Unpacker(session)
    count = 0
    for row in session.execute(statement):
        url, status, headers, fetched_at, compressed, dictionary_id = row[:6]
        body = unpack(compressed, dictionary_id)
        record = writer.create_warc_record(
            url,
            "response",
            payload=BytesIO(body),
            length=len(body),
            http_headers=http_headers(status, headers, len(body)),
            warc_headers_dict={
                "WARC-Date": warc_date(fetched_at),
                "WARC-Warcinfo-ID": info_id,
            },
        )
        writer.write_record(record)
        writer.write_record(metadata_record(writer, record, fetched_at, *row[6:]))
        count += 1
        tick()
    return count


def metadata_record(
    writer: WARCWriter,
    response: Any,
    fetched_at: datetime,
    outlet: str,
    base_url: str,
    published_at: datetime | None,
    published_date: date | None,
    published_precision: str | None,
) -> Any:
    """What the archive knows of a page beyond its bytes, for `warc import` to rebuild the
    article: its outlet (so no sources file has to name the host) and its publication date
    (which for some outlets came from a listing page, not from the page itself)."""
    fields = {
        "outlet": outlet,
        "base_url": base_url,
        "published_at": published_at.isoformat() if published_at else None,
        "published_date": published_date.isoformat() if published_date else None,
        "published_precision": published_precision,
    }
    payload = json.dumps(fields, ensure_ascii=False, sort_keys=True).encode("utf-8")
    return writer.create_warc_record(
        response.rec_headers.get_header("WARC-Target-URI"),
        "metadata",
        payload=BytesIO(payload),
        length=len(payload),
        warc_content_type=METADATA_TYPE,
        warc_headers_dict={
            "WARC-Date": warc_date(fetched_at),
            "WARC-Refers-To": response.rec_headers.get_header("WARC-Record-ID"),
            "WARC-Warcinfo-ID": response.rec_headers.get_header("WARC-Warcinfo-ID"),
        },
    )


def _headers(pairs: list[tuple[str, str]]) -> dict[str, list[str]]:
    grouped: dict[str, list[str]] = {}
    for name, value in pairs:
        if name.lower() in RENAMED_HEADERS or name.lower() == "content-length":
            continue  # the payload read back is decoded: they no longer describe it
        if name.startswith(ORIGINAL_PREFIX) and name[len(ORIGINAL_PREFIX) :].lower() in (
            RENAMED_HEADERS
        ):
            name = name[len(ORIGINAL_PREFIX) :]
        grouped.setdefault(name, []).append(value)
    return grouped


@dataclass
class WarcPage:
    """A page read back from a WARC, with what the archive that wrote it knew of it (its
    outlet and publication date: see `metadata_record`), when it said."""

    page: FetchedPage
    record_id: str | None
    metadata: dict[str, Any] | None = None


class WarcReader:
    """Every record of a WARC: a response as the page it carries, else why it is no page.

    After iterating, `records` is how many whole records were read and `ended_early` says
    where the file stopped in the middle of a record (a truncated download or copy)."""

    def __init__(self, stream: IO[bytes], max_page_size: int = DEFAULT_MAX_PAGE_SIZE) -> None:
        self.stream = stream
        self.max_page_size = max_page_size
        self.records = 0
        self.ended_early: str | None = None

    def __iter__(self) -> Iterator[WarcPage | str]:
        pending: WarcPage | None = None  # a page, until the record after it is read
        try:
            for record in ArchiveIterator(self.stream):
                if record.format != "warc":
                    raise WarcError(f"not a WARC file (found a record of format {record.format!r})")
                refers_to = record.rec_headers.get_header("WARC-Refers-To")
                if (
                    record.rec_type == "metadata"
                    and pending is not None
                    and refers_to is not None
                    and refers_to == pending.record_id
                ):
                    metadata = self._metadata(record)
                    if not self._complete(record):
                        self._ended_early(record)
                        break
                    self.records += 1
                    pending.metadata = metadata
                    continue
                outcome = self._page(record)
                if not self._complete(record):
                    self._ended_early(record)
                    break
                self.records += 1
                if pending is not None:
                    yield pending
                    pending = None
                if isinstance(outcome, FetchedPage):
                    pending = WarcPage(outcome, record.rec_headers.get_header("WARC-Record-ID"))
                else:
                    yield outcome
        except ArchiveLoadFailed as exc:
            reason = str(exc)  # may quote a whole line of binary junk
            reason = reason if len(reason) <= 100 else reason[:100] + "..."
            raise WarcError(f"not a readable WARC: {reason}") from None
        if pending is not None:
            yield pending

    def _ended_early(self, record: Any) -> None:
        url = record.rec_headers.get_header("WARC-Target-URI")
        self.ended_early = f"in record {self.records + 1}" + (f" ({url})" if url else "")

    @staticmethod
    def _metadata(record: Any) -> dict[str, Any] | None:
        """The fields of a metadata record this program wrote (None for any other)."""
        if record.rec_headers.get_header("Content-Type") != METADATA_TYPE:
            return None
        data = record.raw_stream.read(MAX_METADATA_BYTES + 1)
        if len(data) > MAX_METADATA_BYTES:
            return None
        try:
            fields = json.loads(data)
        except ValueError:
            return None
        return fields if isinstance(fields, dict) else None

    @staticmethod
    def _complete(record: Any) -> bool:
        """Whether the record's whole block was in the file (read to its end first)."""
        limit = getattr(record.raw_stream, "limit", None)
        if limit is None:
            return False  # its headers were cut before they gave the block's length
        while record.raw_stream.read(BLOCK_READ):
            pass
        return bool(record.raw_stream.limit == 0)

    def _page(self, record: Any) -> FetchedPage | str:
        if record.rec_type != "response":
            return "not a response record"
        if record.http_headers is None or not record.http_headers.get_statuscode():
            return "response without HTTP headers"
        url = record.rec_headers.get_header("WARC-Target-URI")
        date = record.rec_headers.get_header("WARC-Date")
        if not url or not url.startswith(("http://", "https://")):
            return "response for a non-HTTP URL"
        try:
            status = int(record.http_headers.get_statuscode())
            fetched = iso_date_to_datetime(date, tz_aware=True) if date else None
        except ValueError:
            return "response with a malformed status line or date"
        # content_stream() undoes any chunked transfer and content encoding, as it streams: a
        # page is read up to the crawl's bound once decoded, never held whole when larger
        body = record.content_stream().read(self.max_page_size + 1)
        if len(body) > self.max_page_size:
            return f"larger than the maximum page size ({self.max_page_size} bytes)"
        return FetchedPage(
            requested_url=url,
            final_url=url,
            status=status,
            headers=_headers(record.http_headers.headers),
            body=body,
            fetched_at=fetched or datetime.now(UTC),
        )


def read_warc(
    stream: IO[bytes], max_page_size: int = DEFAULT_MAX_PAGE_SIZE
) -> Iterator[WarcPage | str]:
    """Every record of a WARC: a response as the page it carries, else why it is no page."""
    return iter(WarcReader(stream, max_page_size))
