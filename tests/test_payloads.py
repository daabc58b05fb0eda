"""Payload compression with a dictionary per outlet (crawler/db/payloads.py): every page read
back byte for byte, the dictionary made from an outlet's first pages and used from the next
transaction on, a dictionary of a rolled-back transaction never used, and the downgrade."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import zstandard
from alembic import command
from sqlalchemy import func, select

from crawler.db.models import CompressionDictionary, Payload, Snapshot, Source
from crawler.db.payloads import DICTIONARY_BYTES, DICTIONARY_PAGES, Unpacker
from crawler.db.queries import payload_bytes, store_payload, store_snapshot
from crawler.db.session import Archive, alembic_config, make_engine, upgrade
from crawler.items import FetchedPage
from crawler.mirror import SITE_NAMES, SITES_DIR


def mirror_pages(site: str) -> list[bytes]:
    """The HTML pages of one outlet's mirror, in a fixed order."""
    return [path.read_bytes() for path in sorted((SITES_DIR / site).rglob("*.html"))]


def add_source(archive: Archive, name: str) -> int:
    with archive.transaction() as session:
        source = Source(name=name, base_url=f"https://{name}.example")
        session.add(source)
        session.flush()
        return source.id


def store_each(archive: Archive, source_id: int, pages: list[bytes]) -> list[str]:
    """Store every page in a transaction of its own, as a crawl does; their digests."""
    digests = []
    for page in pages:
        with archive.transaction() as session:
            digests.append(store_payload(session, page, source_id))
    return digests


def test_snapshots_keep_each_body_once_and_read_back_byte_for_byte(archive):
    # A crawl stores its pages through store_snapshot: on PostgreSQL the payload and the
    # snapshot are one statement (the payload's row written by a CTE), elsewhere two. Either
    # way a body fetched twice is kept once, every fetch has its snapshot, and the payloads are
    # what store_payload alone keeps (the dictionary made from the first pages).
    pages = mirror_pages("kcna_watch")[:6]
    fetches = [*pages, pages[0], pages[4]]
    source_id = add_source(archive, "kcna_watch")
    stored = []
    for number, body in enumerate(fetches):
        url = f"https://kcna_watch.example/{number}"
        page = FetchedPage(url, url, 200, {"Content-Type": ["text/html"]}, body, datetime.now(UTC))
        with archive.transaction() as session:
            stored.append(store_snapshot(session, source_id, None, page))
    with archive.sessions() as session:
        snapshots = session.scalars(select(Snapshot).order_by(Snapshot.id)).all()
        assert [s.id for s in snapshots] == [s.id for s in stored]
        assert [s.sha256 for s in snapshots] == [s.sha256 for s in stored]
        assert [s.size for s in snapshots] == [len(body) for body in fetches]
        assert [payload_bytes(session, s.sha256) for s in snapshots] == fetches
        assert session.scalar(select(func.count()).select_from(Payload)) == len(pages)
        dictionary_ids = [session.get_one(Payload, s.sha256).dictionary_id for s in stored]
    # the same pages through store_payload, into a second outlet of another archive's kind
    digests = store_each(archive, add_source(archive, "kcna_watch_2"), pages)
    assert digests == [s.sha256 for s in stored[: len(pages)]]
    made = dictionary_ids[DICTIONARY_PAGES]
    assert made is not None
    assert dictionary_ids == [None] * DICTIONARY_PAGES + [made] * 3 + [None, made]


@pytest.mark.parametrize("site", SITE_NAMES)
def test_mirror_pages_read_back_byte_for_byte(archive, site):
    pages = mirror_pages(site)
    assert len(pages) > DICTIONARY_PAGES
    digests = store_each(archive, add_source(archive, site), pages)
    with archive.sessions() as session:
        assert [payload_bytes(session, digest) for digest in digests] == pages
        rows = [session.get(Payload, digest) for digest in digests]
        # the pages that made the dictionary (the first three, or fewer when they fill it) are
        # plain zstd, every later one uses it
        samples = next(
            n
            for n in range(1, len(pages) + 1)
            if n >= DICTIONARY_PAGES or sum(map(len, pages[:n])) >= DICTIONARY_BYTES
        )
        dictionary_ids = [row.dictionary_id for row in rows if row is not None]
        assert dictionary_ids[:samples] == [None] * samples
        [dictionary] = session.scalars(select(CompressionDictionary)).all()
        assert dictionary_ids[samples:] == [dictionary.id] * (len(pages) - samples)
        assert dictionary.size == min(DICTIONARY_BYTES, sum(map(len, pages[:samples])))


def test_later_pages_cost_a_fraction_of_plain_zstd(archive):
    pages = mirror_pages("kcna_watch")
    digests = store_each(archive, add_source(archive, "kcna_watch"), pages)
    plain = zstandard.ZstdCompressor(level=3)
    later = list(zip(digests, pages, strict=True))[DICTIONARY_PAGES:]
    with archive.sessions() as session:
        stored = sum(len(session.get(Payload, digest).content) for digest, _ in later)
    assert stored < 0.5 * sum(len(plain.compress(page)) for _, page in later)


def test_outlets_have_dictionaries_of_their_own(archive):
    kcna, urdu = add_source(archive, "kcna_watch"), add_source(archive, "urdupoint")
    kcna_digests = store_each(archive, kcna, mirror_pages("kcna_watch"))
    urdu_digests = store_each(archive, urdu, mirror_pages("urdupoint"))
    with archive.sessions() as session:
        owners = {
            row.id: row.source_id
            for row in session.execute(
                select(CompressionDictionary.id, CompressionDictionary.source_id)
            )
        }
        assert sorted(owners.values()) == sorted([kcna, urdu])
        for digests, source_id in ((kcna_digests, kcna), (urdu_digests, urdu)):
            last = session.get(Payload, digests[-1])
            assert last is not None and owners[last.dictionary_id] == source_id


def test_dictionary_of_a_rolled_back_transaction_is_never_used(archive):
    source_id = add_source(archive, "kcna_watch")
    pages = mirror_pages("kcna_watch")
    store_each(archive, source_id, pages[: DICTIONARY_PAGES - 1])
    with pytest.raises(RuntimeError), archive.transaction() as session:
        store_payload(session, pages[DICTIONARY_PAGES - 1], source_id)  # writes the dictionary
        raise RuntimeError("the page's article failed")
    digests = store_each(archive, source_id, pages[DICTIONARY_PAGES - 1 :])
    with archive.sessions() as session:
        assert [payload_bytes(session, d) for d in digests] == pages[DICTIONARY_PAGES - 1 :]
        assert session.scalar(select(func.count()).select_from(CompressionDictionary)) == 1
        assert session.get(Payload, digests[-1]).dictionary_id is not None


def test_a_new_writer_takes_up_the_outlets_stored_dictionary(db_url):
    pages = mirror_pages("islam_times")
    first = Archive(db_url)
    try:
        source_id = add_source(first, "islam_times")
        store_each(first, source_id, pages[: DICTIONARY_PAGES + 1])
    finally:
        first.dispose()
    second = Archive(db_url)  # another crawl: another engine, nothing remembered in memory
    try:
        [digest] = store_each(second, source_id, pages[-1:])
        with second.sessions() as session:
            payload = session.get(Payload, digest)
            assert payload is not None and payload.dictionary_id is not None
            assert Unpacker(session)(payload.content, payload.dictionary_id) == pages[-1]
            assert session.scalar(select(func.count()).select_from(CompressionDictionary)) == 1
    finally:
        second.dispose()


def test_downgrade_rewrites_dictionary_payloads_as_plain_zstd(db_url):
    archive = Archive(db_url)
    try:
        pages = mirror_pages("al_mayadeen")
        digests = store_each(archive, add_source(archive, "al_mayadeen"), pages)
    finally:
        archive.dispose()
    engine = make_engine(db_url)
    try:
        command.downgrade(alembic_config(engine), "0007")  # to before 0008
        plain = zstandard.ZstdDecompressor()
        with engine.connect() as connection:
            rows = dict(connection.exec_driver_sql("SELECT sha256, content FROM payloads").all())
        assert [plain.decompress(rows[digest]) for digest in digests] == pages
        upgrade(engine)
    finally:
        engine.dispose()
