"""Similarity signatures of article texts: word shingles, their MinHash and its LSH bands.

Two articles are copies of one text when the Jaccard similarity of their bodies' 5-word
shingle sets is at least `COPY_THRESHOLD` (measured by bench/stories.py on its labelled set:
copies and edited copies score 0.58 and more, every other pair 0.031 at most). The MinHash
(`NUM_PERM` permutations) gives `BANDS` bands of `ROWS` values (its first `BANDS * ROWS`);
two articles with an equal band are candidates. A candidate whose MinHash estimate of the
Jaccard (the share of equal values over all `NUM_PERM`) is under `ESTIMATE_FLOOR` is dropped
unread; any other is a copy only when the exact Jaccard of the two texts reaches the threshold.
With 21 bands of 2 rows a pair at Jaccard 0.5 is a candidate with probability
1 - (1 - 0.5**2)**21 = 0.998, at 0.58 (the least similar copy of the labelled set) with 0.9998:
as likely as with the 42 bands of 3 rows used before revision 0009 (0.996, 0.9999), for half
the rows in the index, which is what storing an article costs in a large archive (each row is
an insert at a random place of the index). Pairs far below the threshold become candidates
more often (at Jaccard 0.2: 0.58 against 0.29); the estimate drops them without reading their
texts: a pair at 0.5 estimates under 0.3 with probability about 1e-5 (126 values).

The MinHash is datasketch's (2.0, scheme "affine32": each shingle's CRC-32 mixed by the
MurmurHash3 finalizer, then `a * h + b` modulo 2**32 with odd `a`, the permutations drawn by
numpy's RandomState from `SEED`), computed here in a few numpy lines and checked value for value
against datasketch by the tests: the signatures stored in an archive must not change when a
library changes its default scheme (as datasketch 2.0 did), and importing datasketch (it loads
scipy) cost a crawl 0.4 s of start-up and 30 MB.
"""

from __future__ import annotations

import hashlib
import re
import struct
import zlib
from collections.abc import Iterable
from functools import lru_cache
from types import ModuleType
from typing import TYPE_CHECKING, cast

if TYPE_CHECKING:
    import numpy as np

from crawler.topics import fold

SHINGLE_WORDS = 5
NUM_PERM = 126
# Changing the bands changes the keys stored in `signature_bands`: it takes a migration that
# recomputes them from the stored MinHash (as 0009 did).
BANDS = 21
ROWS = 2
SEED = 1
COPY_THRESHOLD = 0.5
ESTIMATE_FLOOR = 0.3

_WORD = re.compile(r"\w+")


def words(text: str) -> list[str]:
    """The text's words in the form they are compared in (folded, punctuation dropped)."""
    return _WORD.findall(fold(text))


def shingles(body: str) -> set[str]:
    """The body's overlapping runs of `SHINGLE_WORDS` words (the whole text when shorter)."""
    found = words(body)
    if len(found) <= SHINGLE_WORDS:
        return {" ".join(found)} if found else set()
    # the runs as tuples of the word lists shifted by 0..4, joined (a third less time than
    # slicing the list at each word)
    runs = zip(*(found[shift:] for shift in range(SHINGLE_WORDS)), strict=False)
    return set(map(" ".join, runs))


# Every ASCII byte that `\w` does not match, as a space (and every other byte: never met, the
# text being ASCII when this is used).
_NOT_WORD = bytes(c if c < 128 and (chr(c).isalnum() or c == 0x5F) else 0x20 for c in range(256))


def shingle_bytes(body: str) -> set[bytes]:
    """`shingles(body)`, each UTF-8 encoded as the MinHash hashes it, made from bytes: for a
    folded text all in ASCII (most articles in English), its words are the runs left by
    `bytes.translate` and `split` (what the word pattern finds in ASCII) and no string is made or
    encoded per word or shingle. 0.51 -> 0.39 ms for the MinHash of a 6 KB body."""
    folded = fold(body)
    if folded.isascii():
        found = folded.encode("ascii").translate(_NOT_WORD).split()
    else:
        found = [word.encode("utf-8") for word in _WORD.findall(folded)]
    if len(found) <= SHINGLE_WORDS:
        return {b" ".join(found)} if found else set()
    runs = zip(*(found[shift:] for shift in range(SHINGLE_WORDS)), strict=False)
    return set(map(b" ".join, runs))


def jaccard(first: set[str], second: set[str]) -> float:
    """|A ∩ B| / |A ∪ B|; 0.0 for two empty sets."""
    if not first or not second:
        return 0.0
    return len(first & second) / len(first | second)


# Rows of shingles hashed at once: bounds the working array (rows x NUM_PERM x 4 bytes).
_CHUNK = 4096
_EMPTY = 0xFFFFFFFF
_FMIX = (16, 0x85EBCA6B, 13, 0xC2B2AE35, 16)


def _numpy() -> ModuleType:
    # Imported on first use (0.08 s): a crawl needs it once it stores an article.
    import numpy

    return numpy


@lru_cache(maxsize=1)
def _permutations() -> tuple[np.ndarray, np.ndarray]:
    """The `NUM_PERM` affine permutations (a odd, b), drawn as datasketch draws them."""
    np = _numpy()
    generator = np.random.RandomState(SEED)
    a = generator.randint(0, 1 << 31, NUM_PERM, dtype=np.uint32) * np.uint32(2) + np.uint32(1)
    b = generator.randint(0, 1 << 32, NUM_PERM, dtype=np.uint32)
    return a, b


def _fmix(values: np.ndarray) -> np.ndarray:
    """MurmurHash3's 32-bit finalizer (multiplications wrap: modulo 2**32)."""
    s1, m1, s2, m2, s3 = (_numpy().uint32(c) for c in _FMIX)
    values = values ^ (values >> s1)
    values = values * m1
    values = values ^ (values >> s2)
    values = values * m2
    return values ^ (values >> s3)


def minhash(shingle_set: set[str] | set[bytes]) -> np.ndarray:
    """The MinHash values of a shingle set (uint32, `NUM_PERM` of them), its shingles as
    strings (`shingles`) or as their UTF-8 (`shingle_bytes`)."""
    np = _numpy()
    result = np.full(NUM_PERM, _EMPTY, dtype=np.uint32)
    if not shingle_set:
        return result
    encoded: Iterable[bytes] = (
        cast("set[bytes]", shingle_set)
        if isinstance(next(iter(shingle_set)), bytes)
        else map(str.encode, cast("set[str]", shingle_set))
    )
    hashes = np.fromiter(map(zlib.crc32, encoded), dtype=np.uint32, count=len(shingle_set))
    a, b = _permutations()
    with np.errstate(over="ignore"):
        mixed = _fmix(hashes)
        for start in range(0, len(mixed), _CHUNK):
            # a permutation per row, its shingles along the row: each minimum is taken over
            # contiguous values (0.090 -> 0.068 ms for 640 shingles, against shingles per row)
            permuted = np.multiply.outer(a, mixed[start : start + _CHUNK])
            permuted += b.reshape(-1, 1)
            np.minimum(result, permuted.min(axis=1), out=result)
    return result


def to_bytes(values: np.ndarray) -> bytes:
    return values.astype("<u4").tobytes()


def from_bytes(data: bytes) -> np.ndarray:
    return _numpy().frombuffer(data, dtype="<u4")


def _stored(values: np.ndarray | bytes | memoryview) -> bytes:
    """The values as stored: little-endian uint32 (`to_bytes`)."""
    if isinstance(values, bytes | memoryview):
        return bytes(values)
    return to_bytes(values)


def estimate(
    first: np.ndarray | bytes | memoryview, second: np.ndarray | bytes | memoryview
) -> float:
    """The MinHash estimate of two texts' Jaccard: the share of their equal values.

    Stored values are compared as they are (the archive writer indexes without numpy)."""
    mine, theirs = memoryview(_stored(first)).cast("I"), memoryview(_stored(second)).cast("I")
    return sum(a == b for a, b in zip(mine, theirs, strict=True)) / len(mine)


def band_keys(values: np.ndarray | bytes | memoryview) -> list[int]:
    """One signed 64-bit key per band: the band's number and values, hashed."""
    data = _stored(values)
    width = ROWS * 4
    keys = []
    for band in range(BANDS):
        chunk = data[band * width : (band + 1) * width]
        digest = hashlib.blake2b(struct.pack("<H", band) + chunk, digest_size=8).digest()
        keys.append(int.from_bytes(digest, "little", signed=True))
    return keys
