"""How the archive keeps response bytes: zstd, with a dictionary per outlet.

An outlet's pages share most of their markup (head, navigation, footer, scripts), which zstd
alone cannot see from one page to the next. So the first pages an outlet's crawl stores
(DICTIONARY_PAGES of them, at most DICTIONARY_BYTES) become that outlet's dictionary: a row of
`compression_dictionaries`, written in the same transaction as the page that completes it and
used from the next transaction on. Every later page of the outlet is compressed against it
(zstd's raw-content dictionary: matches reach back into the outlet's earlier pages), and its
payload row names the dictionary (`payloads.dictionary_id`); a payload without one is plain zstd.

Everything that writes or reads a payload's `content` goes through :func:`pack` and
:func:`unpack` / :class:`Unpacker`.
"""

from __future__ import annotations

import threading
import weakref
from dataclasses import dataclass
from typing import cast

import zstandard
from sqlalchemy import Engine, Table, event, insert, select
from sqlalchemy.orm import Session

from crawler.db.models import CompressionDictionary, utcnow

__all__ = ["DICTIONARY_BYTES", "DICTIONARY_PAGES", "Packed", "Unpacker", "pack", "unpack"]

LEVEL = 3
DICTIONARY_PAGES = 3
DICTIONARY_BYTES = 256 * 1024

_DICTIONARIES = cast(Table, CompressionDictionary.__table__)
_INSERT_DICTIONARY = insert(_DICTIONARIES).returning(_DICTIONARIES.c.id)


@dataclass(frozen=True)
class Packed:
    """A body as stored: its compressed bytes and the dictionary they need (None: plain zstd)."""

    content: bytes
    dictionary_id: int | None


class _Outlet:
    """What one archive's writer knows of one outlet's dictionary."""

    def __init__(self, dictionary_id: int | None, data: bytes | None) -> None:
        self.samples: list[bytes] = []
        self.pending: object | None = None  # a dictionary written in an uncommitted transaction
        self._local = threading.local()
        self.adopt(dictionary_id, data)

    def adopt(self, dictionary_id: int | None, data: bytes | None) -> None:
        self.dictionary_id = dictionary_id
        self.dictionary = _raw_dictionary(data) if data is not None else None
        if self.dictionary is not None:
            # digested once, not at every page: a fifth less CPU a page
            self.dictionary.precompute_compress(level=LEVEL)
        self.samples, self.pending = [], None
        self._local = threading.local()

    def compressor(self) -> zstandard.ZstdCompressor:
        """This thread's compressor with the outlet's dictionary."""
        compressor = getattr(self._local, "compressor", None)
        if compressor is None:
            compressor = self._local.compressor = zstandard.ZstdCompressor(
                level=LEVEL, dict_data=self.dictionary
            )
        return cast(zstandard.ZstdCompressor, compressor)


_LOCK = threading.Lock()
# Per engine (one a crawl, so a recreated archive never sees another's ids): the writer's view
# of each outlet, and the dictionaries the read side loaded (they never change once written).
_OUTLETS: weakref.WeakKeyDictionary[Engine, dict[int, _Outlet]] = weakref.WeakKeyDictionary()
_LOADED: weakref.WeakKeyDictionary[Engine, dict[int, zstandard.ZstdCompressionDict]] = (
    weakref.WeakKeyDictionary()
)
_PLAIN = threading.local()


def _engine(session: Session) -> Engine:
    return session.get_bind().engine


def _raw_dictionary(data: bytes) -> zstandard.ZstdCompressionDict:
    return zstandard.ZstdCompressionDict(data, dict_type=zstandard.DICT_TYPE_RAWCONTENT)


def _plain_compress(data: bytes) -> bytes:
    compressor = getattr(_PLAIN, "compressor", None)
    if compressor is None:
        compressor = _PLAIN.compressor = zstandard.ZstdCompressor(level=LEVEL)
    return cast(bytes, compressor.compress(data))


def _plain_decompress(content: bytes) -> bytes:
    decompressor = getattr(_PLAIN, "decompressor", None)
    if decompressor is None:
        decompressor = _PLAIN.decompressor = zstandard.ZstdDecompressor()
    return cast(bytes, decompressor.decompress(content))


def _outlet(session: Session, source_id: int) -> _Outlet:
    engine = _engine(session)
    with _LOCK:
        known = _OUTLETS.setdefault(engine, {}).get(source_id)
    if known is not None:
        return known
    row = session.execute(
        select(_DICTIONARIES.c.id, _DICTIONARIES.c.content)
        .where(_DICTIONARIES.c.source_id == source_id)
        .order_by(_DICTIONARIES.c.id.desc())
        .limit(1)
    ).first()
    outlet = _Outlet(row.id, _plain_decompress(row.content)) if row else _Outlet(None, None)
    with _LOCK:
        return _OUTLETS[engine].setdefault(source_id, outlet)


def pack(session: Session, source_id: int, body: bytes) -> Packed:
    """The bytes to store for a page of this outlet, in `session`'s transaction."""
    outlet = _outlet(session, source_id)
    if outlet.dictionary is not None:
        return Packed(cast(bytes, outlet.compressor().compress(body)), outlet.dictionary_id)
    packed = Packed(_plain_compress(body), None)
    if outlet.pending is None and body:
        outlet.samples.append(body)
        if (
            len(outlet.samples) >= DICTIONARY_PAGES
            or sum(map(len, outlet.samples)) >= DICTIONARY_BYTES
        ):
            _write_dictionary(session, source_id, outlet)
    return packed


def _write_dictionary(session: Session, source_id: int, outlet: _Outlet) -> None:
    """Store the outlet's samples as its dictionary; used once this transaction commits."""
    # the newest bytes last: zstd finds the nearest matches at the end of a raw dictionary
    data = b"".join(outlet.samples)[-DICTIONARY_BYTES:]
    dictionary_id = session.execute(
        _INSERT_DICTIONARY,
        {
            "source_id": source_id,
            "created_at": utcnow(),
            "size": len(data),
            "content": _plain_compress(data),
        },
    ).scalar_one()
    token = outlet.pending = object()

    def committed(_: Session) -> None:
        if outlet.pending is token:
            outlet.adopt(dictionary_id, data)

    def rolled_back(_: Session) -> None:
        if outlet.pending is token:
            outlet.pending = None  # the samples stay: the next page tries again

    event.listen(session, "after_commit", committed, once=True)
    event.listen(session, "after_rollback", rolled_back, once=True)


class Unpacker:
    """Reads payloads of one archive back to their exact bytes, loading dictionaries once."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self._decompressors: dict[int, zstandard.ZstdDecompressor] = {}

    def __call__(self, content: bytes, dictionary_id: int | None) -> bytes:
        if dictionary_id is None:
            return _plain_decompress(content)
        decompressor = self._decompressors.get(dictionary_id)
        if decompressor is None:
            decompressor = self._decompressors[dictionary_id] = zstandard.ZstdDecompressor(
                dict_data=self._dictionary(dictionary_id)
            )
        return cast(bytes, decompressor.decompress(content))

    def _dictionary(self, dictionary_id: int) -> zstandard.ZstdCompressionDict:
        engine = _engine(self.session)
        with _LOCK:
            dictionary = _LOADED.setdefault(engine, {}).get(dictionary_id)
        if dictionary is None:
            stored = self.session.execute(
                select(_DICTIONARIES.c.content).where(_DICTIONARIES.c.id == dictionary_id)
            ).scalar_one()
            dictionary = _raw_dictionary(_plain_decompress(stored))
            with _LOCK:
                _LOADED[engine][dictionary_id] = dictionary
        return dictionary


def unpack(session: Session, content: bytes, dictionary_id: int | None) -> bytes:
    """The exact bytes of one stored payload."""
    return Unpacker(session)(content, dictionary_id)
