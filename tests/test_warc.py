"""`crawler warc export` read back with warcio; `crawler warc import` re-archives the pages."""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from io import BytesIO
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from warcio.archiveiterator import ArchiveIterator
from warcio.statusandheaders import StatusAndHeaders
from warcio.timeutils import iso_date_to_datetime
from warcio.warcwriter import WARCWriter

from crawler.db.models import Article, ArticleVersion, Snapshot
from crawler.db.queries import payload_bytes
from crawler.db.session import Archive
from crawler.mirror import SITES_DIR, MirrorServer
from crawler.read.warc import http_headers, status_line
from tests.conftest import crawl, fresh_archive_url, run_cli, write_sources
from tests.pages import page_text
from tests.test_pyongyang_times import chromium  # noqa: F401 (a fixture)

KIM_CHAEK = (
    "/newstream/1732523411-283960/"
    "kim-chaek-university-of-technology-boosts-r-d-links-with-industry/"
)
RODONG = (
    "/newstream/1733392519-286102/"
    "rodong-sinmun-calls-for-thorough-preparations-for-next-years-farming/"
)


@pytest.fixture
def empty_db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A second fresh archive on the backend under test (the target of an import)."""
    yield from fresh_archive_url(request, tmp_path / "imported.db")


@pytest.fixture
def crawled(db_url: str, kcna: MirrorServer, sources_file: Path) -> str:
    """The archive after a crawl, an edit and a refreshing crawl: 4 articles, 5 snapshots."""
    assert crawl("kcna_watch", db_url=db_url, sources_file=sources_file).returncode == 0
    kcna.edit(KIM_CHAEK, "more than 30 units", "more than 40 units")
    result = crawl("kcna_watch", "--refresh", db_url=db_url, sources_file=sources_file)
    assert result.returncode == 0, result.stderr
    return db_url


def export_warc(db_url: str, path: Path, *options: str) -> Path:
    result = run_cli("warc", "export", "-o", str(path), *options, db_url=db_url)
    assert result.returncode == 0, result.stderr
    return path


def outcome_counts(stdout: str) -> dict[str, int]:
    """The rows of the table `warc import` prints: label -> count."""
    counts = {}
    for line in stdout.splitlines():
        if line.startswith("│"):
            label, count = (cell.strip() for cell in line.strip("│").split("│"))
            counts[label] = int(count)
    return counts


def by_fetch(snapshot: dict[str, Any]) -> tuple[datetime, str]:
    return snapshot["fetched_at"], snapshot["requested_url"]


def b32_sha1(data: bytes) -> str:
    return "sha1:" + base64.b32encode(hashlib.sha1(data).digest()).decode("ascii")


def stored_snapshots(db_url: str) -> list[dict[str, Any]]:
    archive = Archive(db_url)
    with archive.sessions() as session:
        rows = [
            {
                "requested_url": s.requested_url,
                "final_url": s.final_url,
                "status": s.status,
                "headers": s.headers,
                "fetched_at": s.fetched_at,
                "sha256": s.sha256,
                "size": s.size,
                "payload": payload_bytes(session, s.sha256),
            }
            for s in session.scalars(select(Snapshot).order_by(Snapshot.id))
        ]
    archive.dispose()
    return rows


def articles(db_url: str) -> dict[str, dict[str, Any]]:
    archive = Archive(db_url)
    with archive.sessions() as session:
        found = {
            a.canonical_url: {
                "url": a.url,
                "title": a.title,
                "body": a.body,
                "published_at": a.published_at,
                "original_source": a.original_source,
                "original_url": a.original_url,
                "partial": a.partial,
                "content_hash": a.content_hash,
                "version": a.version,
                "versions": [(v.version, v.content_hash, v.body) for v in a.versions],
                "snapshot_sha256": a.snapshot.sha256 if a.snapshot else None,
            }
            for a in session.scalars(select(Article))
        }
    archive.dispose()
    return found


def test_export_is_read_back_by_warcio_with_the_stored_payloads(crawled, tmp_path):
    path = export_warc(crawled, tmp_path / "archive.warc.gz")
    snapshots = stored_snapshots(crawled)
    assert len(snapshots) == 5
    with path.open("rb") as stream:
        records = []
        for record in ArchiveIterator(stream, check_digests="raise"):
            records.append(
                (
                    record.rec_type,
                    record.rec_headers,
                    record.http_headers,
                    record.content_stream().read(),
                )
            )
    # each response is followed by the metadata record of what the archive knows of the page
    assert [r[0] for r in records] == ["warcinfo"] + ["response", "metadata"] * 5
    info = records[0][1]
    assert info.protocol == "WARC/1.1" and info.get_header("WARC-Filename") == "archive.warc.gz"
    assert b"software: news-archive-crawler/" in records[0][3]
    for (_, response, _, _), (_, meta, _, fields) in zip(records[1::2], records[2::2], strict=True):
        assert meta.get_header("WARC-Refers-To") == response.get_header("WARC-Record-ID")
        assert meta.get_header("WARC-Target-URI") == response.get_header("WARC-Target-URI")
        assert meta.get_header("Content-Type") == "application/vnd.news-archive.page+json"
        known = json.loads(fields)
        assert known["outlet"] == "kcna_watch" and known["published_precision"] == "day"
    for snapshot, (_, warc, http, payload) in zip(snapshots, records[1::2], strict=True):
        assert warc.protocol == "WARC/1.1"
        assert warc.get_header("WARC-Target-URI") == snapshot["requested_url"]
        assert (
            iso_date_to_datetime(warc.get_header("WARC-Date"), tz_aware=True)
            == (snapshot["fetched_at"])
        )
        assert warc.get_header("WARC-Warcinfo-ID") == info.get_header("WARC-Record-ID")
        assert warc.get_header("Content-Type") == "application/http; msgtype=response"
        assert payload == snapshot["payload"]
        assert warc.get_header("WARC-Payload-Digest") == b32_sha1(snapshot["payload"])
        assert http.protocol == "HTTP/1.1" and http.statusline == "200 OK"
        assert http.get_header("Content-Length") == str(len(payload)) == str(snapshot["size"])
        assert http.get_header("Content-Encoding") is None
        assert http.get_header("Transfer-Encoding") is None
        stored = {k.lower(): v for k, v in snapshot["headers"].items()}
        assert http.get_header("Content-Type") == stored["content-type"][0]
        assert http.get_header("ETag") == stored["etag"][0]
    # the two fetches of the edited article are both there, oldest first
    kim = [r for r in records[1::2] if r[1].get_header("WARC-Target-URI").endswith(KIM_CHAEK)]
    assert b"more than 30 units" in kim[0][3] and b"more than 40 units" in kim[1][3]


def test_every_record_is_its_own_gzip_member_with_a_correct_block_digest(crawled, tmp_path):
    path = export_warc(crawled, tmp_path / "archive.warc.gz")
    raw = path.read_bytes()
    with path.open("rb") as stream:
        iterator = ArchiveIterator(stream)
        offsets = []
        for record in iterator:
            record.content_stream().read()
            offsets.append((iterator.get_record_offset(), iterator.get_record_length()))
    assert len(offsets) == 11 and offsets[0][0] == 0
    assert sum(length for _, length in offsets) == len(raw)
    for offset, length in offsets:
        member = gzip.decompress(raw[offset : offset + length])  # decompresses on its own
        head, _, rest = member.partition(b"\r\n\r\n")
        assert head.startswith(b"WARC/1.1\r\n")
        fields = dict(
            line.split(": ", 1) for line in head.decode("utf-8").split("\r\n")[1:] if line
        )
        block_length = int(fields["Content-Length"])
        block = rest[:block_length]
        assert rest[block_length:] == b"\r\n\r\n"
        assert fields["WARC-Block-Digest"] == b32_sha1(block)
        if fields["WARC-Type"] == "response":
            _, _, body = block.partition(b"\r\n\r\n")
            assert fields["WARC-Payload-Digest"] == b32_sha1(body)


def test_export_filters_by_outlet_and_fetch_time(crawled, tmp_path):
    def targets(*options: str) -> list[str]:
        path = export_warc(
            crawled, tmp_path / f"f{len(list(tmp_path.iterdir()))}.warc.gz", *options
        )
        with path.open("rb") as stream:
            return [
                r.rec_headers.get_header("WARC-Target-URI")
                for r in ArchiveIterator(stream)
                if r.rec_type == "response"
            ]

    snapshots = stored_snapshots(crawled)
    assert len(targets("--outlet", "kcna_watch")) == 5
    later = snapshots[-1]["fetched_at"]
    assert targets("--since", later.isoformat()) == [snapshots[-1]["requested_url"]]
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).date().isoformat()
    assert targets("--since", tomorrow) == []
    nowhere = tmp_path / "x.warc.gz"
    result = run_cli("warc", "export", "-o", str(nowhere), "--outlet", "nope", db_url=crawled)
    assert result.returncode == 2 and "no outlet 'nope' in the archive" in result.stderr
    assert not nowhere.exists()


def test_import_into_an_empty_archive_reproduces_the_articles(
    crawled, empty_db_url, sources_file, tmp_path
):
    path = export_warc(crawled, tmp_path / "archive.warc.gz")
    result = run_cli("warc", "import", str(path), db_url=empty_db_url, sources=sources_file)
    assert result.returncode == 0, result.stderr
    assert outcome_counts(result.stdout) == {
        "new articles": 4,
        "new versions": 1,
        "skipped: not a response record": 1,
    }
    original, imported = articles(crawled), articles(empty_db_url)
    assert sorted(imported) == sorted(original)
    for canonical, want in original.items():
        assert imported[canonical] == want, canonical
    # the snapshots came along, with their dates, headers and exact bytes
    got = sorted(stored_snapshots(empty_db_url), key=by_fetch)
    want = sorted(stored_snapshots(crawled), key=by_fetch)
    for mine, theirs in zip(got, want, strict=True):
        for key in ("requested_url", "final_url", "status", "fetched_at", "sha256", "payload"):
            assert mine[key] == theirs[key], key
        lowered = {k.lower() for k in mine["headers"]}
        assert {"content-type", "etag", "last-modified"} <= lowered

    # a second import adds nothing: same snapshots, same articles
    again = run_cli("warc", "import", str(path), db_url=empty_db_url, sources=sources_file)
    assert again.returncode == 0, again.stderr
    assert outcome_counts(again.stdout) == {"unchanged": 5, "skipped: not a response record": 1}
    assert len(stored_snapshots(empty_db_url)) == 5
    assert articles(empty_db_url) == original


def test_an_older_capture_does_not_replace_newer_text(
    crawled, empty_db_url, sources_file, tmp_path
):
    snapshots = stored_snapshots(crawled)
    newest = export_warc(
        crawled, tmp_path / "newest.warc.gz", "--since", snapshots[-1]["fetched_at"].isoformat()
    )
    full = export_warc(crawled, tmp_path / "full.warc.gz")
    first = run_cli("warc", "import", str(newest), db_url=empty_db_url, sources=sources_file)
    assert first.returncode == 0, first.stderr
    second = run_cli("warc", "import", str(full), db_url=empty_db_url, sources=sources_file)
    assert second.returncode == 0, second.stderr
    assert outcome_counts(second.stdout) == {
        "new articles": 3,
        "unchanged": 1,  # the newest capture, imported before
        "older captures (snapshot kept, text not)": 1,
        "skipped: not a response record": 1,
    }
    archive = Archive(empty_db_url)
    with archive.sessions() as session:
        kim = session.scalars(select(Article).where(Article.url.endswith(KIM_CHAEK))).one()
        assert kim.version == 1 and "more than 40 units" in kim.body
        assert session.scalar(select(func.count(ArticleVersion.id))) == 0
        assert session.scalar(select(func.count(Snapshot.id))) == 5
        assert session.scalar(select(func.count(Article.id))) == 4
        # seen when the newest capture was fetched, not moved back by the older one
        assert kim.last_seen_at == snapshots[-1]["fetched_at"]
    archive.dispose()


def _response(writer: WARCWriter, url: str, body: bytes, headers: list[tuple[str, str]]) -> Any:
    return writer.create_warc_record(
        url,
        "response",
        payload=BytesIO(body),
        length=len(body),
        http_headers=StatusAndHeaders("200 OK", headers, protocol="HTTP/1.1"),
        warc_headers_dict={"WARC-Date": "2024-12-01T10:00:00.123456Z"},
    )


def test_import_of_a_foreign_warc_skips_and_counts_what_is_no_article(
    empty_db_url, kcna, sources_file, tmp_path
):
    """A WARC of another tool: gzip-encoded and chunked payloads, listing pages, requests."""
    path = tmp_path / "foreign.warc.gz"
    article_html = page_text("kcna_watch", RODONG, kcna.base_url).encode("utf-8")
    listing_html = page_text("kcna_watch", "/newstream/", kcna.base_url).encode("utf-8")
    gzipped = gzip.compress(article_html)
    chunked = b"%x\r\n%s\r\n0\r\n\r\n" % (len(gzipped), gzipped)
    with path.open("wb") as stream:
        writer = WARCWriter(stream, gzip=True, warc_version="1.1")
        writer.write_record(writer.create_warcinfo_record("foreign.warc.gz", {"software": "x"}))
        writer.write_record(
            writer.create_warc_record(
                kcna.url(RODONG),
                "request",
                payload=BytesIO(b""),
                length=0,
                http_headers=StatusAndHeaders(
                    f"GET {RODONG} HTTP/1.1", [("Host", "x")], is_http_request=True
                ),
            )
        )
        writer.write_record(
            _response(
                writer,
                kcna.url(RODONG),
                chunked,
                [
                    ("Content-Type", "text/html; charset=utf-8"),
                    ("Content-Encoding", "gzip"),
                    ("Transfer-Encoding", "chunked"),
                    ("ETag", '"abc"'),
                ],
            )
        )
        writer.write_record(
            _response(
                writer,
                kcna.url("/newstream/"),
                listing_html,
                [("Content-Type", "text/html; charset=utf-8")],
            )
        )
        writer.write_record(
            _response(
                writer,
                "https://elsewhere.example/newstream/1-2/x/",
                article_html,
                [("Content-Type", "text/html; charset=utf-8")],
            )
        )
    result = run_cli("warc", "import", str(path), db_url=empty_db_url, sources=sources_file)
    assert result.returncode == 0, result.stderr
    assert outcome_counts(result.stdout) == {
        "new articles": 1,
        "skipped: not a response record": 2,  # warcinfo and request
        "skipped: not an article page": 1,  # the listing
        "skipped: no configured source for the host": 1,
    }
    archive = Archive(empty_db_url)
    with archive.sessions() as session:
        article = session.scalars(select(Article)).one()
        assert article.url == kcna.url(RODONG)
        assert (
            article.title == "Rodong Sinmun calls for thorough preparations for next year’s farming"
        )
        snapshot = session.scalars(select(Snapshot)).one()
        # the decoded page is archived, under headers that describe it
        assert payload_bytes(session, snapshot.sha256) == article_html
        assert snapshot.fetched_at == datetime(2024, 12, 1, 10, 0, 0, 123456, tzinfo=UTC)
        lowered = {k.lower() for k in snapshot.headers}
        assert "content-encoding" not in lowered and "transfer-encoding" not in lowered
        assert article.first_seen_at == snapshot.fetched_at
    archive.dispose()


def test_import_errors_name_the_file(empty_db_url, sources_file, tmp_path):
    missing = tmp_path / "missing.warc.gz"
    result = run_cli("warc", "import", str(missing), db_url=empty_db_url, sources=sources_file)
    assert result.returncode == 2 and f"{missing}: no such file" in result.stderr
    junk = tmp_path / "junk.warc.gz"
    junk.write_bytes(b"this is not a web archive\n" * 10)
    result = run_cli("warc", "import", str(junk), db_url=empty_db_url, sources=sources_file)
    assert result.returncode == 2, result.stderr
    assert f"{junk}: not a WARC file" in result.stderr and "Traceback" not in result.stderr
    noise = tmp_path / "noise.warc.gz"
    noise.write_bytes(gzip.compress(bytes(range(256)) * 20))
    result = run_cli("warc", "import", str(noise), db_url=empty_db_url, sources=sources_file)
    assert result.returncode == 2, result.stderr
    assert f"{noise}: not a readable WARC: Unknown archive format" in result.stderr
    assert "Traceback" not in result.stderr


def test_http_headers_describe_the_stored_payload():
    headers = http_headers(
        200,
        {
            "Content-Type": ["text/html"],
            "Content-Encoding": ["gzip"],
            "Transfer-Encoding": ["chunked"],
            "Content-Length": ["123"],
            "Set-Cookie": ["a=1", "b=2"],
        },
        4567,
    )
    assert headers.statusline == "200 OK" and headers.protocol == "HTTP/1.1"
    assert headers.headers == [
        ("Content-Type", "text/html"),
        ("X-Archive-Orig-Content-Encoding", "gzip"),
        ("X-Archive-Orig-Transfer-Encoding", "chunked"),
        ("Set-Cookie", "a=1"),
        ("Set-Cookie", "b=2"),
        ("Content-Length", "4567"),
    ]
    assert status_line(404) == "404 Not Found" and status_line(599) == "599"


@pytest.mark.usefixtures("chromium")
def test_export_then_import_with_no_sources_file_rebuilds_the_archive(db_url, kcna, tmp_path):
    """The WARC carries each page's outlet and publication date (a metadata record after its
    response): imported into an empty archive with only the bundled sources file (whose hosts
    are not the mirrors'), the articles come back the same, The Pyongyang Times' dates (read
    from a listing that is not archived) included."""
    with MirrorServer(SITES_DIR / "pyongyang_times") as pyongyang:
        mirrors = {"kcna_watch": kcna.base_url, "pyongyang_times": pyongyang.base_url}
        sources = write_sources(tmp_path / "mirrors.toml", mirrors)
        source = f"sqlite:///{tmp_path / 'source.db'}"
        result = crawl("kcna_watch", "pyongyang_times", db_url=source, sources_file=sources)
        assert result.returncode == 0, result.stderr
    path = export_warc(source, tmp_path / "archive.warc.gz")
    with path.open("rb") as stream:
        records = list(ArchiveIterator(stream))
    metadata = [r for r in records if r.rec_type == "metadata"]
    responses = [r for r in records if r.rec_type == "response"]
    assert len(metadata) == len(responses) == len(stored_snapshots(source))
    for response, meta in zip(responses, metadata, strict=True):
        assert meta.rec_headers.get_header("WARC-Refers-To") == response.rec_headers.get_header(
            "WARC-Record-ID"
        )

    result = run_cli("warc", "import", str(path), db_url=db_url)  # the bundled sources file
    assert result.returncode == 0, result.stderr
    original, rebuilt = articles(source), articles(db_url)
    assert len(original) == 4 + 3  # kcna_watch's and pyongyang_times'
    assert outcome_counts(result.stdout) == {
        "new articles": 7,
        "skipped: not a response record": 1,  # the warcinfo record
    }
    assert rebuilt == original
    dated = published_dates(source)
    assert published_dates(db_url) == dated
    assert {precision for _, _, precision in dated.values()} == {"day"}
    assert all(day is not None for _, day, _ in dated.values())


def published_dates(db_url: str) -> dict[str, tuple[Any, Any, Any]]:
    archive = Archive(db_url)
    with archive.sessions() as session:
        rows = session.execute(
            select(
                Article.canonical_url,
                Article.published_at,
                Article.published_date,
                Article.published_precision,
            )
        ).all()
    archive.dispose()
    return {row[0]: (row[1], row[2], row[3]) for row in rows}
