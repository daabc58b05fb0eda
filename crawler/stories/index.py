"""Keeping copies and stories up to date as articles are stored, re-parsed or imported.

`index_article` runs inside the transaction that wrote the article. Every lookup is an indexed
query (LSH bands by key, story terms by key and time), so its cost depends on how many articles
share a band or a telling term within the story window, not on the archive's size.

Both relations are the connected parts of a graph whose edges depend only on the two articles:
copies (exact Jaccard of the shingles >= COPY_THRESHOLD, found through LSH), and story edges
(copies, or cosine of the term vectors >= STORY_THRESHOLD between articles at most STORY_WINDOW
apart). So the result does not depend on the order articles arrive in, and a rebuild gives what
incremental maintenance gave. In a group of copies every article points (`reprint_of`) at the
original: an article that does not name another outlet as its source before one that does,
then the earliest publication, then the lowest id.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any, cast

from sqlalchemy import (
    BigInteger,
    Integer,
    LargeBinary,
    Select,
    Table,
    Text,
    any_,
    bindparam,
    case,
    delete,
    false,
    func,
    insert,
    null,
    select,
    true,
    union_all,
    update,
)
from sqlalchemy import cast as type_cast
from sqlalchemy.orm import Session
from sqlalchemy.sql import Executable

from crawler.db import direct
from crawler.db.models import Article, ArticleSignature, SignatureBand, Story, StoryTerm, utcnow
from crawler.stories import signatures as sig
from crawler.stories.signing import TextSignature
from crawler.stories.terms import INDEX_TERMS, cosine, index_terms, term_key, term_vector

STORY_WINDOW = timedelta(days=3)
STORY_THRESHOLD = 0.5
# Candidates of a story share at least this many of their telling terms.
MIN_SHARED_TERMS = 2
# At most this many candidates are compared with an article: those sharing the most telling
# terms with it, then the newest. An outlet that writes about one subject every day (every KCNA
# item names Korea and its leader) would otherwise put its whole story window, hundreds of
# articles, in every comparison; a true neighbour shares most of its telling terms.
MAX_CANDIDATES = 64
# Postings of one term read on each side of an article's time (see _story_candidates).
PER_TERM_SIDE = 48
# A story's label is recomputed on every change up to this size, then as its size doubles.
LABEL_EXACT = 32

_SIGNATURES = cast(Table, ArticleSignature.__table__)
_BANDS = cast(Table, SignatureBand.__table__)
_TERMS = cast(Table, StoryTerm.__table__)
_STORIES = cast(Table, Story.__table__)
_ARTICLES = cast(Table, Article.__table__)


@dataclass(frozen=True)
class _Text:
    """What the index reads of an article."""

    id: int
    source_id: int
    title: str
    body: str
    when: datetime
    declared_copy: bool
    dated: bool
    indexed: bool

    @property
    def order(self) -> tuple[bool, datetime, int]:
        """Originals first: an article that names another outlet as its source comes after one
        that does not (a page replayed without its listing may have lost its date); then the
        earliest publication, then the lowest id."""
        return (self.declared_copy, self.when, self.id)


# The statements that run for every stored article are built once (building and caching a
# statement measured more than the query itself).
_TEXTS = (
    select(
        _ARTICLES.c.id,
        _ARTICLES.c.source_id,
        _ARTICLES.c.title,
        _ARTICLES.c.body,
        func.coalesce(_ARTICLES.c.published_at, _ARTICLES.c.first_seen_at),
        _ARTICLES.c.original_source,
        _ARTICLES.c.published_at.is_not(None),
        _SIGNATURES.c.article_id.is_not(None),
    )
    .select_from(_ARTICLES.outerjoin(_SIGNATURES, _SIGNATURES.c.article_id == _ARTICLES.c.id))
    .where(_ARTICLES.c.id.in_(bindparam("ids", expanding=True)))
)
_INSERT_SIGNATURE = insert(_SIGNATURES)
_INSERT_BANDS = insert(_BANDS)
_INSERT_TERMS = insert(_TERMS)
_MINHASH = select(_SIGNATURES.c.minhash).where(_SIGNATURES.c.article_id == bindparam("article_id"))
# The articles sharing a band with the given keys, with their MinHash (the estimate of the
# Jaccard drops the candidates far from a copy before their texts are read): at most
# `MAX_COPY_CANDIDATES`, those sharing the most bands first. Pairs far below the threshold share
# a band now and then (at Jaccard 0.05, 5% of them share one of 21); an outlet whose texts all
# share a phrase would otherwise make every one of its articles a candidate of every other.
# A copy shares about a quarter of the bands (Jaccard 0.5: 21 x 0.5**2), so the bound drops
# only copies beyond the first 64 of one text, and joining any copy joins their group.
MAX_COPY_CANDIDATES = 64


def numbered_keys(keys: Iterable[int]) -> dict[str, int]:
    """The keys as `_band_candidates` and `_story_candidates` bind them: key0, key1, ..."""
    return {f"key{number}": key for number, key in enumerate(keys)}


@lru_cache(maxsize=8)
def _band_candidates(keys: int) -> Select[Any]:
    """The candidates for `keys` band keys, bound one by one (key0, key1, ...): the writer runs
    it directly (crawler/db/direct.py), which takes no expanding list."""
    shared = (
        select(_BANDS.c.article_id)
        .where(
            _BANDS.c.band_key.in_([bindparam(f"key{number}") for number in range(keys)]),
            _BANDS.c.article_id != bindparam("article_id"),
        )
        .group_by(_BANDS.c.article_id)
        .order_by(func.count().desc(), _BANDS.c.article_id)
        .limit(MAX_COPY_CANDIDATES)
    )
    return select(_SIGNATURES.c.article_id, _SIGNATURES.c.minhash).where(
        _SIGNATURES.c.article_id.in_(shared)
    )


_ROOTS = select(_SIGNATURES.c.reprint_of, _SIGNATURES.c.article_id).where(
    _SIGNATURES.c.article_id.in_(bindparam("ids", expanding=True))
)
_POINTING = select(_SIGNATURES.c.article_id).where(
    _SIGNATURES.c.reprint_of.in_(bindparam("roots", expanding=True))
)
_SET_REPRINT = (
    update(_SIGNATURES)
    .where(_SIGNATURES.c.article_id == bindparam("member"))
    .values(reprint_of=bindparam("root"), similarity=bindparam("score"))
)
_MINE = select(
    _SIGNATURES.c.published_at,
    _SIGNATURES.c.terms,
    _SIGNATURES.c.reprint_of,
    _SIGNATURES.c.story_id,
).where(_SIGNATURES.c.article_id == bindparam("article_id"))
# The term vectors as their stored JSON text, parsed through `_vector`'s cache: the same
# neighbours come back for article after article (parsing them measured 3% of a crawl).
_TERMS_TEXT = type_cast(_SIGNATURES.c.terms, Text)


def _postings(term: Any, before: bool) -> Select[Any]:
    """The `PER_TERM_SIDE` postings of `term` nearest the article's time, on one side of it."""
    when = _TERMS.c.published_at
    side = (
        (when <= bindparam("when"), when >= bindparam("start"))
        if before
        else (when > bindparam("when"), when <= bindparam("end"))
    )
    return (
        select(_TERMS.c.article_id)
        .where(_TERMS.c.term_key == term, _TERMS.c.article_id != bindparam("article_id"), *side)
        .order_by(when.desc() if before else when.asc())
        .limit(PER_TERM_SIDE)
    )


def _sharing(found: Any) -> Select[Any]:
    """From the postings `found` (an article once per term it shares), the articles sharing at
    least `MIN_SHARED_TERMS`: at most `MAX_CANDIDATES`, those sharing the most, then the newest."""
    return (
        select(found.c.article_id)
        .group_by(found.c.article_id)
        .having(func.count() >= MIN_SHARED_TERMS)
        .order_by(func.count().desc(), found.c.article_id.desc())
        .limit(MAX_CANDIDATES)
    )


@lru_cache(maxsize=INDEX_TERMS + 1)
def _story_candidates(keys: int) -> Select[Any]:
    """The candidates of an article's story with their vectors and stories, for `keys` terms
    bound one by one (key0, key1, ...).

    For each term, at most `PER_TERM_SIDE` postings on each side of the article's time, the
    nearest: a term every article of an outlet carries (a generated site's whole vocabulary, or
    a word the general-usage IDF does not know is common there) then costs the same as a rare
    one, and the work does not grow with how many articles the window holds."""
    postings = [
        _postings(bindparam(f"key{number}"), before).subquery()
        for number in range(keys)
        for before in (True, False)
    ]
    found = union_all(*(select(p.c.article_id) for p in postings)).subquery()
    return _with_vectors(_sharing(found))


@lru_cache(maxsize=1)
def _story_candidates_array() -> Select[Any]:
    """`_story_candidates` for PostgreSQL: the same rows, the terms bound as one array (`keys`)
    and each one's postings read by the same LATERAL subquery. One statement whatever the
    number of terms, and a plan of two index scans instead of two per term: the database
    server's CPU measured 2.52 -> 2.37 ms a page (3,000 captured pages replayed, alternated)."""
    from sqlalchemy.dialects.postgresql import ARRAY  # not on SQLite: 25 ms of start-up

    term = (
        func.unnest(bindparam("keys", type_=ARRAY(BigInteger)))
        .table_valued("key")
        .render_derived()
        .alias("term")
    )
    found = union_all(_postings(term.c.key, True), _postings(term.c.key, False)).lateral("postings")
    return _with_vectors(_sharing(found).select_from(term).join(found, true()))


def _with_vectors(shared: Select[Any]) -> Select[Any]:
    """The articles `shared` selects, with their vectors (as stored) and stories."""
    return select(_SIGNATURES.c.article_id, _TERMS_TEXT, _SIGNATURES.c.story_id).where(
        _SIGNATURES.c.article_id.in_(shared)
    )


@lru_cache(maxsize=1)
def _new_candidates_array() -> Select[Any]:
    """PostgreSQL: a new article's copy candidates (`_band_candidates`, the band keys bound as
    one array, `bands`) and the candidates of its story (`_story_candidates_array`) in one
    statement: (whether a copy candidate, article id, MinHash, vector as stored, story). The
    story's candidates are of no use when there are copies (a few articles in a hundred), but
    one round trip a page less is worth more."""
    from sqlalchemy.dialects.postgresql import ARRAY  # not on SQLite: 25 ms of start-up

    shared = (
        select(_BANDS.c.article_id)
        .where(
            _BANDS.c.band_key == any_(bindparam("bands", type_=ARRAY(BigInteger))),
            _BANDS.c.article_id != bindparam("article_id"),
        )
        .group_by(_BANDS.c.article_id)
        .order_by(func.count().desc(), _BANDS.c.article_id)
        .limit(MAX_COPY_CANDIDATES)
    )
    copies = select(
        true().label("copy"),
        _SIGNATURES.c.article_id,
        _SIGNATURES.c.minhash,
        type_cast(null(), Text).label("terms"),
        type_cast(null(), Integer).label("story_id"),
    ).where(_SIGNATURES.c.article_id.in_(shared))
    story = _story_candidates_array().subquery()
    neighbours = select(
        false(),
        story.c.article_id,
        type_cast(null(), LargeBinary),
        story.c.terms,
        story.c.story_id,
    )
    return cast(Select[Any], union_all(copies, neighbours))


def story_window(article_id: int, when: datetime) -> dict[str, Any]:
    """The binds of the candidates' queries besides the terms, for an article at `when`."""
    return {
        "when": when,
        "start": when - STORY_WINDOW,
        "end": when + STORY_WINDOW,
        "article_id": article_id,
    }


def story_candidates(
    session: Session, article_id: int, when: datetime, keys: list[int]
) -> list[tuple[Any, ...]]:
    """(article id, its vector as stored, its story) of each candidate of the article's story:
    the articles sharing at least `MIN_SHARED_TERMS` of its telling terms within the window."""
    if not keys:
        return []
    window = story_window(article_id, when)
    if session.get_bind().dialect.name == "postgresql":
        return direct.execute(session, _story_candidates_array(), window | {"keys": keys})
    return direct.execute(session, _story_candidates(len(keys)), numbered_keys(keys) | window)


_HAS_TERMS = select(_TERMS.c.article_id).where(_TERMS.c.article_id == bindparam("article_id"))
_LINKED = select(_SIGNATURES.c.article_id, _SIGNATURES.c.story_id)
_COPIES_OF = _LINKED.where(_SIGNATURES.c.reprint_of == bindparam("root"))
_ORIGINAL = _LINKED.where(_SIGNATURES.c.article_id == bindparam("root"))
_INSERT_STORY = insert(_STORIES).returning(_STORIES.c.id)
_JOIN_STORY = (
    update(_SIGNATURES)
    .where(_SIGNATURES.c.article_id.in_(bindparam("ids", expanding=True)))
    .values(story_id=bindparam("story"))
)
_JOIN_ONE = (
    update(_SIGNATURES)
    .where(_SIGNATURES.c.article_id == bindparam("member"))
    .values(story_id=bindparam("story"))
)


@lru_cache(maxsize=1024)
def _vector(stored: str) -> dict[str, float]:
    """A stored term vector, parsed (shared: never modified; about 4 KB each): 256 of them
    measured 4% more of the writer's time spent parsing, for 3 MB less."""
    return cast(dict[str, float], json.loads(stored))


def _texts(session: Session, ids: Iterable[int]) -> dict[int, _Text]:
    wanted = sorted(set(ids))
    if not wanted:
        return {}
    found = {}
    for row in session.execute(_TEXTS, {"ids": wanted}):
        when = row[4] if row[4].tzinfo else row[4].replace(tzinfo=UTC)
        found[row[0]] = _Text(
            row[0], row[1], row[2], row[3], when, row[5] is not None, bool(row[6]), bool(row[7])
        )
    return found


def new_article_text(
    article_id: int,
    source_id: int,
    title: str,
    body: str,
    published_at: datetime | None,
    first_seen_at: datetime,
    original_source: str | None,
) -> _Text:
    """What the index reads of an article just inserted, as it was written (not read back)."""
    when = (published_at or first_seen_at).astimezone(UTC)
    return _Text(
        article_id,
        source_id,
        title,
        body,
        when,
        original_source is not None,
        published_at is not None,
        False,
    )


def index_article(
    session: Session,
    article_id: int,
    topics_file: str | None = None,
    signature: TextSignature | None = None,
    new: _Text | None = None,
) -> None:
    """(Re)compute the article's signature, its copy links and its story; `signature`, when
    given, is `text_signature` of the text being stored (not read back and computed again),
    `new` the text of an article just inserted (`new_article_text`)."""
    text = new if new is not None else _texts(session, [article_id]).get(article_id)
    if text is None:
        return
    if not text.indexed:
        _index_new(session, text, topics_file, signature)
        return
    regroup, recluster = _remove(session, article_id)
    shingle_set, values, _ = _insert_signature(session, text, topics_file, signature)
    for copy in _ordered(session, regroup):
        _link_copies(session, copy)
    _link_copies(session, text, shingle_set, values)
    for member in sorted(recluster):
        _cluster(session, member)
    _cluster(session, article_id)


def _index_new(
    session: Session, text: _Text, topics_file: str | None, signature: TextSignature | None
) -> None:
    """`index_article` of an article not yet indexed. Most copy nothing and join one story
    alone: their copy candidates and story neighbours are found before their signature is
    written (neither query reads the article's own rows), and the signature is written with
    its story, instead of written and then updated (an UPDATE of a row with four indexes, a
    statement a page: the database server's CPU 0.1 ms a page less, replaying 3,000 pages)."""
    shingle_set, values, vector, row, bands, terms = _signature(text, topics_file, signature)
    neighbours: dict[int, int | None] | None = None
    if session.get_bind().dialect.name == "postgresql":
        keys = _story_keys(vector, text.dated)
        found = direct.execute(
            session,
            _new_candidates_array(),
            story_window(text.id, text.when) | {"bands": sig.band_keys(values), "keys": keys},
        )
        copies = _estimated([(r[1], r[2]) for r in found if r[0]], values)
        neighbours = _neighbours_among(vector, [(r[1], r[3], r[4]) for r in found if not r[0]])
    else:
        copies = _copy_candidates(session, text.id, values)
    if copies:
        _write_signature(session, row, bands, terms)
        linked = _link_copies(session, text, shingle_set, values, copies)
        _cluster(session, text.id, None if linked else (text.when, vector, text.dated))
        return
    if neighbours is None:
        neighbours = _story_neighbours(session, text.id, text.when, vector, text.dated)
    stories = set(neighbours.values())
    if len(stories) == 1 and (story_id := next(iter(stories))) is not None:
        # what _join does for it: the one story its neighbours are in, joined alone
        row = row | {"story_id": story_id}
        if session.get_bind().dialect.name != "postgresql":
            _write_signature(session, row, bands, terms)
            _joined(session, story_id, text.id, text.when)
            return
        [(count, label)] = direct.execute(
            session,
            _insert_signature_joining(),
            row | {"bands": bands, "keys": terms} | _joined_values(story_id, text.id, text.when),
        )
        _relabel_if_due(session, story_id, count, label)
        return
    _write_signature(session, row, bands, terms)
    _join(session, text.id, text.when, neighbours, None)


def _ordered(session: Session, ids: Iterable[int]) -> list[_Text]:
    return sorted(_texts(session, ids).values(), key=lambda t: t.order)


@lru_cache(maxsize=1)
def _signature_inserts() -> tuple[Any, Any, Any]:
    """PostgreSQL: the INSERTs of an article's signature, its band keys (`bands`) and its
    story terms (`keys`), the keys bound as arrays."""
    from sqlalchemy.dialects.postgresql import ARRAY  # not on SQLite: 25 ms of start-up

    article_id = bindparam("article_id", type_=_SIGNATURES.c.article_id.type)
    signature = insert(_SIGNATURES).values(
        {column.name: bindparam(column.name, type_=column.type) for column in _SIGNATURES.c}
    )
    bands = insert(_BANDS).from_select(
        ["band_key", "article_id"],
        select(func.unnest(bindparam("bands", type_=ARRAY(BigInteger))), article_id),
    )
    terms = insert(_TERMS).from_select(
        ["term_key", "published_at", "article_id"],
        select(
            func.unnest(bindparam("keys", type_=ARRAY(BigInteger))),
            bindparam("published_at", type_=_SIGNATURES.c.published_at.type),
            article_id,
        ),
    )
    return signature, bands, terms


@lru_cache(maxsize=1)
def _insert_signature_array() -> Executable:
    """PostgreSQL: an article's signature, its band keys and its story terms in one statement;
    three statements on SQLite. Replaying 3,000 captured pages, alternated: the writer's CPU
    1.68 -> 1.51 ms a page, the server's 2.38 -> 2.28."""
    signature, bands, terms = _signature_inserts()
    return terms.add_cte(signature.cte("signature")).add_cte(bands.cte("bands"))


@lru_cache(maxsize=1)
def _insert_signature_joining() -> Executable:
    """PostgreSQL: `_insert_signature_array` of an article written with its story, and the
    story's figures with it in (`_JOINED`, the article's outlet bound as `source_id`: the
    statement does not see the signature it writes), in one statement returning the story's
    new size and label: one round trip a page less."""
    signature, bands, terms = _signature_inserts()
    joined = _joined_update(_outlet_known(bindparam("source_id"))).cte("joined")
    return (
        select(joined.c.article_count, joined.c.label)
        .add_cte(signature.cte("signature"))
        .add_cte(bands.cte("bands"))
        .add_cte(terms.cte("terms"))
        .add_cte(joined)
    )


def _insert_signature(
    session: Session, text: _Text, topics_file: str | None, signature: TextSignature | None
) -> tuple[set[str] | None, Any, dict[str, float]]:
    """The article's signature, bands and story terms; its shingles (None when `signature`
    was given: made again only if needed), MinHash and vector."""
    shingle_set, values, vector, row, bands, terms = _signature(text, topics_file, signature)
    _write_signature(session, row, bands, terms)
    return shingle_set, values, vector


def _signature(
    text: _Text, topics_file: str | None, signature: TextSignature | None
) -> tuple[set[str] | None, Any, dict[str, float], dict[str, Any], list[int], list[int]]:
    """The article's shingles (None when `signature` was given), MinHash and vector, and the
    rows `_write_signature` writes: the signature (without a story), its band keys and its
    story terms' keys."""
    shingle_set: set[str] | None = None
    if signature is None:
        shingle_set = sig.shingles(text.body)
        signature = TextSignature(
            sig.to_bytes(sig.minhash(shingle_set)),
            len(shingle_set),
            term_vector(text.title, text.body, topics_file),
        )
    values = signature.minhash
    vector = signature.vector
    if vector is None:
        vector = term_vector(text.title, text.body, topics_file)
    row = {
        "article_id": text.id,
        "source_id": text.source_id,
        "published_at": text.when,
        "minhash": signature.minhash,
        "shingles": signature.shingles,
        "terms": vector,
        "reprint_of": None,
        "similarity": None,
        "story_id": None,
    }
    bands = sorted(set(sig.band_keys(values))) if signature.shingles else []
    # An undated article (a page replayed without the listing that dated it) has no place in
    # time: it joins a story only through the texts it copies.
    terms = sorted({term_key(t) for t in index_terms(vector)}) if text.dated else []
    return shingle_set, values, vector, row, bands, terms


def _write_signature(
    session: Session, row: dict[str, Any], bands: list[int], terms: list[int]
) -> None:
    if session.get_bind().dialect.name == "postgresql":
        direct.execute(session, _insert_signature_array(), row | {"bands": bands, "keys": terms})
        return
    article_id, when = row["article_id"], row["published_at"]
    direct.execute(session, _INSERT_SIGNATURE, row)
    direct.execute_many(
        session, _INSERT_BANDS, [{"band_key": key, "article_id": article_id} for key in bands]
    )
    direct.execute_many(
        session,
        _INSERT_TERMS,
        [{"term_key": key, "published_at": when, "article_id": article_id} for key in terms],
    )


def _remove(session: Session, article_id: int) -> tuple[set[int], set[int]]:
    """Drop the article from the index; the copies and story members to link again."""
    row = session.execute(
        select(_SIGNATURES.c.reprint_of, _SIGNATURES.c.story_id).where(
            _SIGNATURES.c.article_id == article_id
        )
    ).one()
    root = row.reprint_of or article_id
    group = set(
        session.scalars(select(_SIGNATURES.c.article_id).where(_SIGNATURES.c.reprint_of == root))
    ) | {root}
    group.discard(article_id)
    members: set[int] = set()
    if row.story_id is not None:
        members = set(
            session.scalars(
                select(_SIGNATURES.c.article_id).where(_SIGNATURES.c.story_id == row.story_id)
            )
        )
        members.discard(article_id)
        session.execute(
            update(_SIGNATURES).where(_SIGNATURES.c.story_id == row.story_id).values(story_id=None)
        )
        session.execute(delete(_STORIES).where(_STORIES.c.id == row.story_id))
    if group:
        session.execute(
            update(_SIGNATURES)
            .where(_SIGNATURES.c.article_id.in_(group))
            .values(reprint_of=None, similarity=None)
        )
    session.execute(delete(_BANDS).where(_BANDS.c.article_id == article_id))
    session.execute(delete(_TERMS).where(_TERMS.c.article_id == article_id))
    session.execute(delete(_SIGNATURES).where(_SIGNATURES.c.article_id == article_id))
    return group, members


def _copy_group(session: Session, roots: set[int]) -> set[int]:
    """The roots and every article pointing at one of them."""
    return roots | set(session.scalars(_POINTING, {"roots": sorted(roots)}))


def _copy_candidates(session: Session, article_id: int, values: Any) -> list[int]:
    """The articles sharing a band with the MinHash `values` whose estimate is not too low."""
    keys = sig.band_keys(values)
    found = direct.execute(
        session, _band_candidates(len(keys)), numbered_keys(keys) | {"article_id": article_id}
    )
    return _estimated(found, values)


def _estimated(found: Iterable[tuple[Any, ...]], values: Any) -> list[int]:
    """Of the candidates (article id, MinHash), those whose estimate is not too low."""
    return [
        other_id
        for other_id, other_values in found
        if sig.estimate(values, other_values) >= sig.ESTIMATE_FLOOR
    ]


def _link_copies(
    session: Session,
    text: _Text,
    shingle_set: set[str] | None = None,
    values: Any = None,
    candidates: list[int] | None = None,
) -> bool:
    """Link the article into the group of the texts it copies (or that copy it); whether it
    has any. `candidates`: `_copy_candidates` of its MinHash, when already found."""
    if values is None:
        values = session.execute(_MINHASH, {"article_id": text.id}).scalar_one()
    if candidates is None:
        candidates = _copy_candidates(session, text.id, values)
    if not candidates:
        return False
    if shingle_set is None:
        shingle_set = sig.shingles(text.body)
    others = _texts(session, candidates)
    copies = [
        other.id
        for other in others.values()
        if sig.jaccard(shingle_set, sig.shingles(other.body)) >= sig.COPY_THRESHOLD
    ]
    if not copies:
        return False
    roots = {row[0] or row[1] for row in session.execute(_ROOTS, {"ids": copies})}
    group = _copy_group(session, roots) | {text.id}
    members = _texts(session, group)
    root = min(members.values(), key=lambda t: t.order)
    root_shingles = sig.shingles(root.body)
    links: list[dict[str, Any]] = [{"member": root.id, "root": None, "score": None}]
    for member in members.values():
        if member.id == root.id:
            continue
        score = sig.jaccard(sig.shingles(member.body), root_shingles)
        links.append({"member": member.id, "root": root.id, "score": round(score, 4)})
    session.execute(_SET_REPRINT, links)
    return True


def _cluster(
    session: Session,
    article_id: int,
    fresh: tuple[datetime, dict[str, float], bool] | None = None,
) -> None:
    """Put the article in the story of the articles it is about the same event as.

    `fresh`: (time, vector, dated) of an article just indexed that copies nothing.
    """
    reprint_of: int | None = None
    story_id: int | None = None
    if fresh is None:
        mine = session.execute(_MINE, {"article_id": article_id}).one()
        when: datetime = mine.published_at
        vector: dict[str, float] = mine.terms
        reprint_of, story_id = mine.reprint_of, mine.story_id
        dated = session.execute(_HAS_TERMS, {"article_id": article_id}).first() is not None
    else:
        when, vector, dated = fresh
    neighbours = _story_neighbours(session, article_id, when, vector, dated)
    # the texts it copies or that copy it are in its story, however far apart in time
    if fresh is None:
        root = reprint_of or article_id
        for statement in (_COPIES_OF, _ORIGINAL):
            for other_id, other_story in session.execute(statement, {"root": root}):
                if other_id != article_id:
                    neighbours[other_id] = other_story
    _join(session, article_id, when, neighbours, story_id)


def _story_neighbours(
    session: Session, article_id: int, when: datetime, vector: dict[str, float], dated: bool
) -> dict[int, int | None]:
    """The articles within the story window whose vectors are near enough to the article's,
    with their stories (article id -> story id or None); the article's own rows are not read."""
    keys = _story_keys(vector, dated)
    if not keys:
        return {}
    return _neighbours_among(vector, story_candidates(session, article_id, when, keys))


def _story_keys(vector: dict[str, float], dated: bool) -> list[int]:
    """The keys of the terms an article's story candidates are found by; none for an undated
    article (it has no story terms: it shares none with anyone)."""
    return [term_key(t) for t in index_terms(vector)] if dated else []


def _neighbours_among(
    vector: dict[str, float], candidates: Iterable[tuple[Any, ...]]
) -> dict[int, int | None]:
    """Of the story candidates (article id, vector as stored, story), those near enough to
    `vector`, with their stories."""
    neighbours: dict[int, int | None] = {}
    joined: set[int] = set()  # the stories of the neighbours found so far
    for other_id, terms, other_story in candidates:
        # a candidate of a story a neighbour already brings in changes nothing (its story
        # is joined either way, and only a neighbour without a story is joined by itself):
        # not compared. Every member of one busy story is a candidate of its next article.
        if other_story is not None and other_story in joined:
            continue
        if cosine(vector, _vector(terms)) >= STORY_THRESHOLD:
            neighbours[other_id] = other_story
            if other_story is not None:
                joined.add(other_story)
    return neighbours


def _join(
    session: Session,
    article_id: int,
    when: datetime,
    neighbours: dict[int, int | None],
    story_id: int | None,
) -> None:
    """Put the article (in story `story_id`, or in none) and its `neighbours` in one story."""
    if not neighbours:
        return
    stories = {s for s in neighbours.values() if s is not None}
    if story_id is not None:
        stories.add(story_id)
    if stories:
        target = min(stories)
    else:
        target = session.execute(
            _INSERT_STORY,
            {
                "label": "",
                "first_published_at": when,
                "last_published_at": when,
                "article_count": 0,
                "outlet_count": 0,
                "updated_at": utcnow(),
            },
        ).scalar_one()
    merged = sorted(stories - {target})
    if merged:
        session.execute(
            update(_SIGNATURES).where(_SIGNATURES.c.story_id.in_(merged)).values(story_id=target)
        )
        session.execute(delete(_STORIES).where(_STORIES.c.id.in_(merged)))
    loose = sorted({article_id} | {a for a, s in neighbours.items() if s is None})
    if loose == [article_id]:
        direct.execute(session, _JOIN_ONE, {"member": article_id, "story": target})
    else:
        session.execute(_JOIN_STORY, {"ids": loose, "story": target})
    if loose == [article_id] and story_id is None and not merged and stories:
        _joined(session, target, article_id, when)
    else:
        refresh_story(session, target)


def _outlet_known(source: Any) -> Any:
    """Whether the story (`story`) has another article (than `article_id`) of the outlet
    `source`."""
    return (
        select(_SIGNATURES.c.article_id)
        .where(
            _SIGNATURES.c.story_id == bindparam("story"),
            _SIGNATURES.c.source_id == source,
            _SIGNATURES.c.article_id != bindparam("article_id"),
        )
        .exists()
    )


def _joined_update(outlet_known: Any) -> Any:
    """The story's (`story`) figures with one more article, at `when`, returning its new size
    and its label."""
    when = bindparam("when", type_=_STORIES.c.first_published_at.type)
    return (
        update(_STORIES)
        .where(_STORIES.c.id == bindparam("story"))
        .values(
            article_count=_STORIES.c.article_count + 1,
            first_published_at=case(
                (_STORIES.c.first_published_at <= when, _STORIES.c.first_published_at),
                else_=when,
            ),
            last_published_at=case(
                (_STORIES.c.last_published_at >= when, _STORIES.c.last_published_at),
                else_=when,
            ),
            updated_at=bindparam("updated_at"),
            outlet_count=_STORIES.c.outlet_count + case((outlet_known, 0), else_=1),
        )
        .returning(_STORIES.c.article_count, _STORIES.c.label)
    )


# What `_joined` writes, built once (building the statement measured more than running it):
# the story's figures with one more article, in one statement that also returns the story's
# new size and its label, which is recomputed (a second statement) only when it is due. The
# story's row was read first and written then: one statement a page less.
_JOINED = _joined_update(
    _outlet_known(
        select(_SIGNATURES.c.source_id)
        .where(_SIGNATURES.c.article_id == bindparam("article_id"))
        .scalar_subquery()
    )
)
_RELABEL = (
    update(_STORIES).where(_STORIES.c.id == bindparam("story")).values(label=bindparam("label"))
)


def _joined_values(story_id: int, article_id: int, when: datetime) -> dict[str, Any]:
    return {"story": story_id, "article_id": article_id, "when": when, "updated_at": utcnow()}


def _joined(session: Session, story_id: int, article_id: int, when: datetime) -> None:
    """`refresh_story` for the commonest change, one article joining a story, from the
    story's figures instead of all of its members: what it writes is what refresh_story
    would, at a cost that does not grow with the story."""
    [(count, label)] = direct.execute(session, _JOINED, _joined_values(story_id, article_id, when))
    _relabel_if_due(session, story_id, count, label)


def _relabel_if_due(session: Session, story_id: int, count: int, label: str) -> None:
    """The label of a story now of `count` articles, recomputed when it is due."""
    if _label_due(label, count):
        label = _representative_title(session, story_id)
        direct.execute(session, _RELABEL, {"story": story_id, "label": label})


def refresh_story(session: Session, story_id: int) -> None:
    """A story's times and counts, and its label: the title of the member nearest the members'
    mean vector. The label is recomputed while the story is small and then each time its size
    doubles, so that storing an article costs the same however large its story has grown."""
    figures = session.execute(
        select(
            func.count(),
            func.count(func.distinct(_SIGNATURES.c.source_id)),
            func.min(_SIGNATURES.c.published_at),
            func.max(_SIGNATURES.c.published_at),
        ).where(_SIGNATURES.c.story_id == story_id)
    ).one()
    count = figures[0]
    values: dict[str, Any] = {
        "article_count": count,
        "outlet_count": figures[1],
        "first_published_at": figures[2],
        "last_published_at": figures[3],
        "updated_at": utcnow(),
    }
    current = session.execute(
        select(_STORIES.c.label).where(_STORIES.c.id == story_id)
    ).scalar_one()
    if _label_due(current, count):
        values["label"] = _representative_title(session, story_id)
    session.execute(update(_STORIES).where(_STORIES.c.id == story_id).values(**values))


def _label_due(label: str, count: int) -> bool:
    """Whether a story of `count` articles gets its label recomputed: while it is small, then
    each time its size doubles."""
    return not label or count <= LABEL_EXACT or count & (count - 1) == 0


def _representative_title(session: Session, story_id: int) -> str:
    # read twice as a stream: loaded at once, a story of 16,384 generated articles held 65 MB
    # of parsed vectors (the peak of a 20,000-page crawl); in id order, so that the centroid's
    # sums and the choice between equals do not depend on a query plan
    members = (
        select(_SIGNATURES.c.published_at, _SIGNATURES.c.terms, _ARTICLES.c.title)
        .join(_ARTICLES, _ARTICLES.c.id == _SIGNATURES.c.article_id)
        .where(_SIGNATURES.c.story_id == story_id)
        .order_by(_SIGNATURES.c.article_id)
        .execution_options(yield_per=256)
    )
    centroid: dict[str, float] = {}
    for row in session.execute(members):
        for term, weight in row.terms.items():
            centroid[term] = centroid.get(term, 0.0) + weight
    best: tuple[tuple[float, float], str] | None = None
    for row in session.execute(members):
        key = (cosine(row.terms, centroid), -row.published_at.timestamp())
        if best is None or key > best[0]:
            best = (key, row.title)
    if best is None:
        raise ValueError(f"story {story_id} has no member")
    return str(best[1])


def clear_index(session: Session) -> None:
    """Empty the signatures, the LSH index and the stories."""
    for table in (_TERMS, _BANDS, _SIGNATURES, _STORIES):
        session.execute(delete(table))


def rebuild(
    archive: Any,
    topics_file: str | None = None,
    batch: int = 500,
    tick: Callable[[], None] = lambda: None,
) -> int:
    """Recompute every article's signature, copies and story, oldest article first."""
    with archive.transaction() as session:
        clear_index(session)
        ids = list(session.scalars(select(_ARTICLES.c.id).order_by(_ARTICLES.c.id)))
    for start in range(0, len(ids), batch):
        with archive.transaction() as session:
            for article_id in ids[start : start + batch]:
                index_article(session, article_id, topics_file)
                tick()
    return len(ids)
