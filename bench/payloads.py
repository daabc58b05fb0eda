"""Bytes stored per byte served, on the real mirror pages (crawler/mirror/sites/*).

For each outlet, each HTML page of its mirror is stored through the archive's own path
(`store_payload`, crawler/db/payloads.py) into a SQLite archive where the outlet's dictionary was
made from its other pages, as it is for every page an outlet serves once its first
DICTIONARY_PAGES pages are archived; the stored payload is read back and compared byte for byte.
Prints, per outlet and in all: bytes served, plain zstd (level 3, what was stored before) and
with the outlet's dictionary, as fractions of the bytes served, and the dictionaries' own size.

    python bench/payloads.py
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import zstandard


def stored_size(archive: Any, site: str, page: bytes, pages: list[bytes]) -> tuple[int, int]:
    """(stored bytes of `page`, stored bytes of the dictionary it needs) once the outlet's
    dictionary was made of its other pages; the page read back byte for byte."""
    from crawler.db.models import CompressionDictionary, Payload, Source
    from crawler.db.payloads import DICTIONARY_PAGES
    from crawler.db.queries import payload_bytes, store_payload

    with archive.transaction() as session:
        source = Source(name=site, base_url="https://x.example")
        session.add(source)
        session.flush()
        source_id = source.id
    for other in [p for p in pages if p != page][:DICTIONARY_PAGES]:
        with archive.transaction() as session:
            store_payload(session, other, source_id)
    with archive.transaction() as session:
        digest = store_payload(session, page, source_id)
    with archive.sessions() as session:
        payload = session.get(Payload, digest)
        assert payload is not None and payload.dictionary_id is not None
        if payload_bytes(session, digest) != page:
            raise SystemExit(f"{site}: a page was not read back as served")
        dictionary = session.get(CompressionDictionary, payload.dictionary_id)
        assert dictionary is not None
        return len(payload.content), len(dictionary.content)


def main() -> int:
    from crawler.db.session import Archive
    from crawler.mirror import SITE_NAMES, SITES_DIR

    plain = zstandard.ZstdCompressor(level=3)
    totals = [0, 0, 0]
    with tempfile.TemporaryDirectory(prefix="bench-payloads-") as tmp:
        template = Path(tmp) / "template.db"
        Archive(f"sqlite:///{template}", migrate=True).dispose()
        print(f"{'outlet':16} pages  served     plain zstd     outlet dictionary  dict size")
        for site in SITE_NAMES:
            pages = [p.read_bytes() for p in sorted((SITES_DIR / site).rglob("*.html"))]
            served = sum(map(len, pages))
            zstd = sum(len(plain.compress(page)) for page in pages)
            stored = dictionaries = 0
            for index, page in enumerate(pages):
                # a fresh archive for each page: payloads are kept once per digest
                path = Path(tmp) / f"{site}-{index}.db"
                shutil.copyfile(template, path)
                archive = Archive(f"sqlite:///{path}")
                try:
                    size, dictionary = stored_size(archive, site, page, pages)
                finally:
                    archive.dispose()
                stored += size
                dictionaries = max(dictionaries, dictionary)
            totals[0] += served
            totals[1] += zstd
            totals[2] += stored
            print(
                f"{site:16} {len(pages):5d} {served:7d} B  {zstd / served:12.3f} "
                f"{stored / served:18.3f}  {dictionaries:7d} B"
            )
    served, zstd, stored = totals
    print(
        f"{'all':16} {'':5} {served:7d} B  {zstd / served:12.3f} {stored / served:18.3f}"
        "  (target <= 0.10)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
