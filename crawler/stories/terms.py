"""Term vectors for story clustering: what an article is about, as weighted terms.

A term's weight is its (log) frequency in the title and body, times an inverse document
frequency taken from general usage (wordfreq's Zipf scale: "the" 7.7, "minister" 5.0,
"Pyongyang" 3.1, names it does not list 0), times `ENTITY_WEIGHT` for entity-like tokens
(capitalised inside a sentence, or upper-case acronyms). A fixed, usage-based IDF rather than
one counted in the archive makes an article's vector depend on its text only, so the clusters
do not depend on the order articles arrive in. Names in other scripts join their English form
through the topics file's aliases: an alias group that matches adds one concept term
(`@topic/group`) shared by every spelling.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections import Counter
from functools import lru_cache

from crawler.config import ConfigError
from crawler.topics import AliasSet, fold, load_topics

TITLE_WEIGHT = 1
ENTITY_WEIGHT = 2.0
# Words at least this common in general usage carry no meaning of their own here.
STOP_ZIPF = 5.6
MAX_ZIPF = 7.5
VECTOR_TERMS = 40
# The terms an article is indexed under for finding the candidates of its story.
INDEX_TERMS = 12
CONCEPT_IDF = 2.0

# a word, and a word with the characters since the previous one
_WORD = re.compile(r"\w+(?:['’]\w+)?")
_TOKEN = re.compile(r"(?P<gap>\W*)(?P<token>\w+(?:['’]\w+)?)")
_SENTENCE_END = re.compile(r"[.!?:;\"“”]")
# a word whose characters since the previous one end a sentence: it starts one (the first word
# of a text starts one too)
_STARTS_SENTENCE = re.compile(r"[.!?:;\"“”]\W*(\w+(?:['’]\w+)?)")


# The usage list the IDF is read from: wordfreq's small English list (29,000 words).
FREQUENCY_LIST = "small_en.msgpack.gz"


@lru_cache(maxsize=1)
def _frequencies() -> dict[str, float]:
    """wordfreq's `get_frequency_dict("en", wordlist="small")`, read from its data file as
    wordfreq reads it, without importing wordfreq: its import (langcodes' tables, ftfy) took
    0.13 s of every crawl, blocking it at its first article, where reading the list takes
    8 ms. A dictionary lookup per word, where zipf_frequency() would run wordfreq's tokenizer
    on every call (measured 10x slower)."""
    import gzip
    import importlib.util
    from pathlib import Path

    import msgpack

    spec = importlib.util.find_spec("wordfreq")  # finds the package without running it
    folders = spec.submodule_search_locations if spec is not None else None
    if not folders:
        raise RuntimeError("wordfreq is not installed; run `make setup`")
    # the cBpack format (wordfreq's read_cBpack): a header, then the words of each frequency
    # in centibels, the list at index i holding the words at -i cB
    with gzip.open(Path(next(iter(folders))) / "data" / FREQUENCY_LIST, "rb") as packed:
        data = msgpack.load(packed, raw=False)
    header = data[0]
    if not isinstance(header, dict) or header.get("format") != "cB" or header.get("version") != 1:
        raise RuntimeError(f"wordfreq's {FREQUENCY_LIST} has an unknown format: {header!r}")
    frequencies: dict[str, float] = {}
    for index, bucket in enumerate(data[1:]):
        frequency = 10 ** (-index / 100)  # wordfreq's cB_to_freq(-index)
        for word in bucket:
            frequencies[word] = frequency
    return frequencies


# The words most recently weighed and folded: a crawl's articles share most of their words
# (0.29 -> 0.27 ms for a 6 KB body's vector; at most about 2 MB each).
_RECENT_WORDS = 1 << 14


@lru_cache(maxsize=_RECENT_WORDS)
def idf(term: str) -> float:
    """How telling a (folded) term is: 0 for the commonest words, `MAX_ZIPF` for words the
    list does not hold (names, mostly)."""
    if term.isdigit():
        return 1.0 if len(term) < 4 else 2.0
    frequency = _frequencies().get(term)
    if not frequency:
        return MAX_ZIPF
    return max(0.0, MAX_ZIPF - (math.log10(frequency) + 9.0))


def _count_terms(text: str, repeat: int, counts: Counter[str], entities: set[str]) -> None:
    """Add each word of the text, folded, to `counts` (`repeat` times) and those that are
    entity-like somewhere to `entities`: an upper-case word of two letters or more, or a
    capitalised word somewhere other than at the start of a sentence.

    The words are counted as they are, then each distinct word is folded once. A capitalised
    word is inside a sentence somewhere when it occurs more often than it starts one: the words
    starting sentences are found by one search for the characters ending them, instead of
    looking at every word in its place (a third of the CPU an article's term vector took)."""
    raw = _words(text)
    for token, count in raw.items():
        counts[_folded(token)] += count * repeat
    starting: Counter[str] | None = None
    for token in raw:
        if token.islower() or token in entities:
            continue
        if len(token) > 1 and token.isupper():
            entities.add(token)
        elif token[0].isupper():
            if starting is None:
                starting = _sentence_starts(text)
            if raw[token] > starting[token]:
                entities.add(token)


# ASCII: the bytes of a word (\w) and the apostrophe kept, every other byte made a space
_WORD_BYTES = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz'"
_ASCII_WORDS = bytes(byte if byte in _WORD_BYTES else 32 for byte in range(256))


def _words(text: str) -> Counter[str]:
    """How many times each word (`_WORD`) occurs in the text. An ASCII text (most) is split
    at the bytes no word has, and only the pieces with an apostrophe are searched (the
    apostrophe joins two words only between letters): 0.17 -> 0.11 ms for a 6 KB body."""
    if not text.isascii():
        return Counter(_WORD.findall(text))
    words: Counter[str] = Counter()
    for piece, count in Counter(text.encode("ascii").translate(_ASCII_WORDS).split()).items():
        if b"'" in piece:
            for word in _WORD.findall(piece.decode("ascii")):
                words[word] += count
        else:
            words[piece.decode("ascii")] += count
    return words


def _sentence_starts(text: str) -> Counter[str]:
    """How many times each word of the text starts a sentence."""
    starting = Counter(_STARTS_SENTENCE.findall(text))
    first = _TOKEN.search(text)
    if first is not None and _SENTENCE_END.search(first["gap"]) is None:
        starting[first["token"]] += 1  # the text's first word, when no sentence end precedes it
    return starting


@lru_cache(maxsize=_RECENT_WORDS)
def _folded(token: str) -> str:
    return fold(token).replace("’", "'").removesuffix("'s")


@lru_cache(maxsize=4)
def _concepts(topics_file: str | None) -> tuple[tuple[str, AliasSet], ...]:
    """(concept term, its aliases) for every alias group of the topics file."""
    try:
        topics = load_topics(topics_file)
    except ConfigError:
        return ()
    concepts = []
    for name, topic in sorted(topics.topics.items()):
        for number, group in enumerate(topic.all):
            concepts.append((f"@{name}/{number}", AliasSet.compile(group)))
    return tuple(concepts)


def term_vector(
    title: str, body: str, topics_file: str | None = None, size: int = VECTOR_TERMS
) -> dict[str, float]:
    """The article's `size` heaviest terms with unit-length weights."""
    counts: Counter[str] = Counter()
    raw_entities: set[str] = set()
    for text, repeat in ((title, TITLE_WEIGHT), (body, 1)):
        _count_terms(text, repeat, counts, raw_entities)
    entities = {_folded(token) for token in raw_entities}
    weights: dict[str, float] = {}
    for token, count in counts.items():
        zipf_idf = idf(token)
        if zipf_idf <= MAX_ZIPF - STOP_ZIPF:
            continue
        boost = ENTITY_WEIGHT if token in entities else 1.0
        weights[token] = (1.0 + math.log(count)) * zipf_idf * boost
    folded = fold(f"{title}\n{body}")
    for concept, aliases in _concepts(topics_file):
        if aliases.found_in(folded):
            weights[concept] = CONCEPT_IDF * ENTITY_WEIGHT
    heaviest = sorted(weights.items(), key=lambda kv: (-kv[1], kv[0]))[:size]
    norm = math.sqrt(sum(w * w for _, w in heaviest)) or 1.0
    return {term: round(weight / norm, 6) for term, weight in heaviest}


def cosine(first: dict[str, float], second: dict[str, float]) -> float:
    """Cosine similarity of two unit-length vectors."""
    # the shared terms, found by a set intersection (most candidates share a few of 40), summed
    # exactly: a set's order changes from process to process, and a story's edge at 0.5 must not
    return math.fsum(first[term] * second[term] for term in first.keys() & second.keys())


def index_terms(vector: dict[str, float], count: int = INDEX_TERMS) -> list[str]:
    """The heaviest terms of a vector (its first `count`, as term_vector orders them)."""
    return sorted(vector, key=lambda term: (-vector[term], term))[:count]


def term_key(term: str) -> int:
    """A term as a signed 64-bit key."""
    digest = hashlib.blake2b(term.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "little", signed=True)
