"""Similarity signatures of article texts: word shingles, their MinHash and its LSH bands.

Two articles are copies of one text when the Jaccard similarity of their bodies' 5-word
shingle sets is at least `COPY_THRESHOLD` (measured by bench/stories.py on its labelled set:
copies and edited copies score 0.58 and more, every other pair 0.031 at most). The MinHash
(datasketch, `NUM_PERM` permutations) is cut into `BANDS` bands of `ROWS` values; two articles
with an equal band are candidates, and a candidate is a copy only when the exact Jaccard of the
two texts reaches the threshold. With 42 bands of 3 rows a pair at Jaccard 0.5 is a candidate
with probability 1 - (1 - 0.5**3)**42 = 0.996, at 0.6 with 0.99999.
"""

from __future__ import annotations

import hashlib
import re
import struct
import zlib
from functools import lru_cache

import numpy as np
from datasketch import MinHash

from crawler.topics import fold

SHINGLE_WORDS = 5
NUM_PERM = 126
BANDS = 42
ROWS = NUM_PERM // BANDS
SEED = 1
COPY_THRESHOLD = 0.5

_WORD = re.compile(r"\w+")


def words(text: str) -> list[str]:
    """The text's words in the form they are compared in (folded, punctuation dropped)."""
    return _WORD.findall(fold(text))


def shingles(body: str) -> set[str]:
    """The body's overlapping runs of `SHINGLE_WORDS` words (the whole text when shorter)."""
    found = words(body)
    if len(found) <= SHINGLE_WORDS:
        return {" ".join(found)} if found else set()
    return {" ".join(found[i : i + SHINGLE_WORDS]) for i in range(len(found) - SHINGLE_WORDS + 1)}


def jaccard(first: set[str], second: set[str]) -> float:
    """|A ∩ B| / |A ∪ B|; 0.0 for two empty sets."""
    if not first or not second:
        return 0.0
    return len(first & second) / len(first | second)


@lru_cache(maxsize=1)
def _template() -> MinHash:
    # Making a MinHash draws its permutations: they are drawn once and copied. CRC-32 hashes
    # the shingles three times faster than the default SHA-1 (measured, bench/stories.py).
    return MinHash(num_perm=NUM_PERM, seed=SEED, hashfunc=zlib.crc32)


def minhash(shingle_set: set[str]) -> np.ndarray:
    """The MinHash values of a shingle set (uint32, `NUM_PERM` of them)."""
    signature = _template().copy()
    if shingle_set:
        signature.update_batch([s.encode("utf-8") for s in sorted(shingle_set)])
    return np.asarray(signature.hashvalues, dtype=np.uint32)


def to_bytes(values: np.ndarray) -> bytes:
    return values.astype("<u4").tobytes()


def from_bytes(data: bytes) -> np.ndarray:
    return np.frombuffer(data, dtype="<u4")


def band_keys(values: np.ndarray) -> list[int]:
    """One signed 64-bit key per band: the band's number and values, hashed."""
    keys = []
    for band in range(BANDS):
        chunk = values[band * ROWS : (band + 1) * ROWS].astype("<u4").tobytes()
        digest = hashlib.blake2b(struct.pack("<H", band) + chunk, digest_size=8).digest()
        keys.append(int.from_bytes(digest, "little", signed=True))
    return keys
