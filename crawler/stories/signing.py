"""What the crawl's process computes of an article's text before the archive writer stores it.

Kept apart from `crawler.stories.index` (the SQL of the story index), which the crawl's process
does not need: importing it there cost a crawl on SQLite 30 ms of start-up.
"""

from __future__ import annotations

from dataclasses import dataclass

from crawler.stories import signatures as sig
from crawler.stories.terms import term_vector


@dataclass(frozen=True)
class TextSignature:
    """What indexing an article computes from its text alone (`text_signature`): its MinHash,
    how many shingles it has and its term vector (None: the indexing computes it). The crawl
    computes the MinHash on its own core, before the page goes to the archive writer; on SQLite
    the writer computes the vector, which shares the work between the two about evenly, and on
    PostgreSQL the crawl does (crawler/pipelines/store.py). The shingles themselves are made
    again only when the article has copy candidates (a few in a hundred).
    """

    minhash: bytes
    shingles: int
    vector: dict[str, float] | None


def text_signature(
    title: str, body: str, topics_file: str | None = None, *, vector: bool = True
) -> TextSignature:
    """The signature of an article's stored title and body (its paragraphs joined by a blank
    line, as `archive_article` stores them); without its term vector unless `vector`."""
    shingle_set = sig.shingle_bytes(body)
    values = sig.minhash(shingle_set)
    return TextSignature(
        sig.to_bytes(values),
        len(shingle_set),
        term_vector(title, body, topics_file) if vector else None,
    )
