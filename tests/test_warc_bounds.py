"""`crawler warc import` holds a WARC's pages to the crawl's maximum page size."""

from __future__ import annotations

import tracemalloc
import zlib
from io import BytesIO
from pathlib import Path

from sqlalchemy import func, select
from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

from crawler.config import DEFAULT_MAX_PAGE_SIZE
from crawler.db.models import Article, Snapshot
from crawler.db.session import Archive
from crawler.mirror import SITES_DIR
from crawler.read.warc import read_warc
from tests.conftest import run_cli

RODONG = (
    "/newstream/1733392519-286102/"
    "rodong-sinmun-calls-for-thorough-preparations-for-next-years-farming/"
)
KIM_CHAEK = (
    "/newstream/1732523411-283960/"
    "kim-chaek-university-of-technology-boosts-r-d-links-with-industry/"
)


def gzipped_page(page: bytes, padding_mib: int) -> bytes:
    """The page with `padding_mib` MiB of spaces before </body>, gzipped without holding it."""
    head, tail = page.split(b"</body>", 1)
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    parts = [packer.compress(head)]
    parts += [packer.compress(b" " * 1024 * 1024) for _ in range(padding_mib)]
    parts.append(packer.compress(b"</body>" + tail) + packer.flush())
    return b"".join(parts)


def write_warc(path: Path, pages: list[tuple[str, bytes, bool]]) -> Path:
    """A WARC of response records (url, payload, gzip-encoded)."""
    with path.open("wb") as stream:
        writer = WARCWriter(stream, gzip=True, warc_version="1.1")
        for url, body, encoded in pages:
            headers = [("Content-Type", "text/html; charset=utf-8")]
            if encoded:
                headers.append(("Content-Encoding", "gzip"))
            writer.write_record(
                writer.create_warc_record(
                    url,
                    "response",
                    payload=BytesIO(body),
                    length=len(body),
                    http_headers=StatusAndHeaders("200 OK", headers, protocol="HTTP/1.1"),
                    warc_headers_dict={"WARC-Date": "2024-12-01T10:00:00Z"},
                )
            )
    return path


def page(base_url: str, path: str) -> bytes:
    file = SITES_DIR / "kcna_watch" / path.strip("/") / "index.html"
    return file.read_text(encoding="utf-8").replace("{{BASE}}", base_url).encode()


def test_a_record_over_the_bound_is_skipped_without_being_inflated(tmp_path):
    base = "http://127.0.0.1:9"
    bomb = gzipped_page(page(base, RODONG), 512)  # 512 MiB once decoded
    path = write_warc(
        tmp_path / "bomb.warc.gz",
        [(base + RODONG, bomb, True), (base + KIM_CHAEK, page(base, KIM_CHAEK), False)],
    )
    tracemalloc.start()
    try:
        with path.open("rb") as stream:
            read = list(read_warc(stream, max_page_size=4 * 1024 * 1024))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # the bound and warcio's read-ahead (one 16 KiB block of the record may inflate ~1000
    # times), the same for any size of bomb: not 512 MiB
    assert peak < 48 * 1024 * 1024
    assert read[0] == "larger than the maximum page size (4194304 bytes)"
    assert not isinstance(read[1], str) and read[1].page.requested_url == base + KIM_CHAEK
    assert read[1].page.body == page(base, KIM_CHAEK)  # a page under the bound is read whole


def test_import_skips_and_names_a_page_over_the_default_bound(db_url, kcna, sources_file, tmp_path):
    over = DEFAULT_MAX_PAGE_SIZE // (1024 * 1024) + 1
    path = write_warc(
        tmp_path / "bomb.warc.gz",
        [
            (kcna.url(RODONG), gzipped_page(page(kcna.base_url, RODONG), over), True),
            (kcna.url(KIM_CHAEK), page(kcna.base_url, KIM_CHAEK), False),
        ],
    )
    assert path.stat().st_size < 1024 * 1024
    result = run_cli("warc", "import", str(path), db_url=db_url, sources=sources_file)
    assert result.returncode == 0, result.stderr
    assert f"larger than the maximum page size ({DEFAULT_MAX_PAGE_SIZE} bytes)" in result.stdout
    archive = Archive(db_url)
    with archive.sessions() as session:
        assert session.scalars(select(Article.url)).all() == [kcna.url(KIM_CHAEK)]
        assert session.scalar(select(func.count(Snapshot.id))) == 1
    archive.dispose()
