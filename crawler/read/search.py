"""Full-text search of the archive: ranked hits with a highlighted snippet each.

SQLite searches the FTS5 table `articles_fts` (query syntax of FTS5: words, "phrases", AND, OR,
NOT, NEAR(a b, 5), prefix*, title:word), ranked by bm25 with the title weighing ten times the
body. PostgreSQL searches the `search_vector` column through websearch_to_tsquery (words,
"phrases", OR, -word) ranked by ts_rank_cd with the title weighing ten times the body; a trailing
* makes a word a prefix there too. Both indexes come from migration 0003. The query text is only
ever a bound parameter.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    Float,
    Integer,
    Select,
    Text,
    bindparam,
    case,
    cast,
    column,
    distinct,
    func,
    literal_column,
    select,
    table,
)
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session
from sqlalchemy.sql import ColumnElement

from crawler.db.models import Article, ArticleSignature, Source
from crawler.read.export import ArticleFilter
from crawler.stories.queries import collapse_copies

# Private-use characters mark the highlighted words in snippets: they never occur in news text.
MARK_START, MARK_END = "\ue000", "\ue001"
SNIPPET_WORDS = 24
# Bounds of a query: a query of thousands of OR terms keeps the engine busy for minutes.
MAX_QUERY_CHARS = 1000
MAX_QUERY_TERMS = 64
_OPERATORS = frozenset({"AND", "OR", "NOT", "NEAR", "or"})
_TERM = re.compile(r"\w+")
# Ranked hits fetched per hit shown, so that copies folded into one still leave `limit`.
COPY_HEADROOM = 4
TEXT_SEARCH_CONFIG = "simple"  # PostgreSQL; see migration 0003 for why
# ts_rank_cd weights of D, C, B (body), A (title)
_PG_WEIGHTS = [0.1, 0.1, 0.1, 1.0]
_PG_CONFIG: ColumnElement[Any] = literal_column(f"'{TEXT_SEARCH_CONFIG}'::regconfig")
# bm25 weights of the FTS5 columns (SQLite): title, body
_FTS_WEIGHTS = (10.0, 1.0)
# The FTS5 table (SQLite): its rowid is the article's id; `articles_fts` is its hidden column
# that MATCH and the auxiliary functions (bm25, snippet) take.
_FTS = table("articles_fts", column("rowid", Integer))
_PG_HEADLINE = (
    f'StartSel="{MARK_START}", StopSel="{MARK_END}", MaxWords={SNIPPET_WORDS}, MinWords=12, '
    'ShortWord=1, MaxFragments=2, FragmentDelimiter=" … "'
)
# A word joined to another by - . ' (Kim Jong-un, U.S., DPRK's): FTS5 would read the
# punctuation as syntax, so it is searched as the phrase it is.
_JOINED_WORD = re.compile(r"(?<![\w\"])\w+(?:[-.'’]\w+)+\.?(?![\w\"])")
_QUOTED = re.compile(r'"(?:[^"]|"")*"')
_HYPHENATED = re.compile(r"(?<![\w\"])\w+(?:-\w+)+(?![\w\"])")
_INNER_HYPHEN = re.compile(r"(?<=\w)-(?=\w)")
_PREFIX_WORD = re.compile(r"(\w+)\*")


class SearchError(ValueError):
    """A query the search engine cannot run; the message names the query."""


@dataclass(frozen=True)
class SearchHit:
    id: int
    url: str
    outlet: str
    title: str
    published_at: datetime | None
    snippet: str
    score: float
    published_date: date | None = None
    published_precision: str | None = None
    copies: int = 0  # other articles of the same text (crawler/stories)
    reprint_of: int | None = None
    story_id: int | None = None

    def as_dict(self, start: str = "<mark>", end: str = "</mark>") -> dict[str, Any]:
        """A JSON-ready record; highlighted words between `start` and `end`."""
        return {
            "id": self.id,
            "url": self.url,
            "outlet": self.outlet,
            "title": self.title,
            "published_at": self.published_at.isoformat() if self.published_at else None,
            "published_date": self.published_date.isoformat() if self.published_date else None,
            "published_precision": self.published_precision,
            "snippet": highlight(self.snippet, start, end),
            "score": round(self.score, 6),
            "copies": self.copies,
            "reprint_of": self.reprint_of,
            "story_id": self.story_id,
        }


def highlight(snippet: str, start: str, end: str) -> str:
    """The snippet with its highlight marks replaced by `start` and `end`."""
    return snippet.replace(MARK_START, start).replace(MARK_END, end)


def _pick_snippet(body: str | None, title: str | None) -> str:
    """The body's snippet when the body matched, else the title's when it did, else the body's;
    on one line."""
    chosen = next((c for c in (body, title) if c and MARK_START in c), body or title or "")
    return " ".join(chosen.split())


def _rewrite_unquoted(query: str, rewrite: Callable[[str], str]) -> str:
    """The query with `rewrite` applied to the parts outside "quoted phrases"."""
    pieces, last = [], 0
    for quoted in _QUOTED.finditer(query):
        pieces += [rewrite(query[last : quoted.start()]), quoted.group()]
        last = quoted.end()
    pieces.append(rewrite(query[last:]))
    return "".join(pieces)


def fts5_query(query: str) -> str:
    """The user's FTS5 query with words joined by punctuation quoted as phrases."""
    if query.count('"') % 2:
        return query  # unbalanced: FTS5 reports it
    return _rewrite_unquoted(query, lambda part: _JOINED_WORD.sub(r'"\g<0>"', part))


def websearch_query(query: str) -> str:
    """The user's web-search query with hyphenated words as phrases of their parts (the index
    holds hyphens as spaces, see migration 0003)."""
    if query.count('"') % 2:
        return _INNER_HYPHEN.sub(" ", query)

    def phrases(part: str) -> str:
        return _HYPHENATED.sub(lambda m: '"' + m.group().replace("-", " ") + '"', part)

    return _INNER_HYPHEN.sub(" ", _rewrite_unquoted(query, phrases))


def search(
    session: Session,
    query: str,
    filters: ArticleFilter | None = None,
    limit: int = 20,
    offset: int = 0,
    all_copies: bool = False,
) -> list[SearchHit]:
    """The best `limit` articles for `query` after the first `offset`, best first; SearchError
    for a malformed query.

    Copies of one text are one hit (the best-ranked), with the number of its copies, unless
    `all_copies`.
    """
    check_bounds(query)
    filters = filters or ArticleFilter()
    dialect = session.get_bind().dialect.name
    if all_copies:
        fetch, skip = limit, offset
    else:
        # folding copies needs more ranked hits than are shown: pages are cut after folding
        fetch, skip = (offset + limit) * COPY_HEADROOM, 0
    if dialect == "sqlite":
        hits = _search_sqlite(session, query, filters, fetch, skip)
    elif dialect == "postgresql":
        hits = _search_postgresql(session, query, filters, fetch, skip)
    else:
        raise SearchError(f"full-text search needs SQLite or PostgreSQL, not {dialect}")
    kept = collapse_copies(session, [h.id for h in hits], expand=all_copies)
    folded = [
        replace(h, copies=info.copies, reprint_of=info.reprint_of, story_id=info.story_id)
        for h in hits
        if (info := kept.get(h.id)) is not None
    ]
    return folded[:limit] if all_copies else folded[offset : offset + limit]


def count_matches(
    session: Session,
    query: str,
    filters: ArticleFilter | None = None,
    all_copies: bool = False,
) -> int:
    """How many hits `query` has: the texts it matches, copies of one text counted once as
    search() folds them (every matching article when `all_copies`); SearchError for a
    malformed query."""
    check_bounds(query)
    filters = filters or ArticleFilter()
    dialect = session.get_bind().dialect.name
    if dialect == "sqlite":
        rowid = _FTS.c.rowid
        match = literal_column("articles_fts").op("MATCH")(bindparam("query", fts5_query(query)))
        matching = select(rowid.label("id")).select_from(_FTS).where(match)
        if filters != ArticleFilter():
            matching = filters.apply(
                matching.join(Article, Article.id == rowid).join(
                    Source, Source.id == Article.source_id
                )
            )
        try:
            return _count_texts(session, matching, all_copies)
        except OperationalError as exc:
            error = _fts5_error(query, exc)
            if error is None:
                raise
            raise error from None
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import TSQUERY, TSVECTOR

        tsquery = cast(bindparam("tsquery", postgresql_tsquery(session, query)), TSQUERY)
        vector = literal_column("articles.search_vector", TSVECTOR)
        matching = filters.apply(
            select(Article.id)
            .join(Source, Source.id == Article.source_id)
            .where(vector.op("@@")(tsquery))
        )
        return _count_texts(session, matching, all_copies)
    raise SearchError(f"full-text search needs SQLite or PostgreSQL, not {dialect}")


def _count_texts(session: Session, matching: Select[Any], all_copies: bool) -> int:
    """The matching articles (a select of their `id`) counted as search() shows them: each text
    once, unless `all_copies`."""
    matches = int(session.scalar(select(func.count()).select_from(matching.subquery())) or 0)
    if all_copies or not matches:
        return matches
    # The matches less the copies among them, plus the originals of those copies that do not
    # match themselves (the others are counted already). Copies are found from the few
    # copies' index rather than by a lookup per match (`+ 0`: not by the primary key).
    signature = ArticleSignature
    originals = case((signature.reprint_of.not_in(matching), signature.reprint_of))
    copies, unmatched = session.execute(
        select(func.count(), func.count(distinct(originals))).where(
            signature.reprint_of.is_not(None), (signature.article_id + 0).in_(matching)
        )
    ).one()
    return matches - int(copies) + int(unmatched)


def check_bounds(query: str) -> None:
    """SearchError unless the query has some text and stays within the bounds."""
    if not query.strip():
        raise SearchError("the search query is empty")
    if len(query) > MAX_QUERY_CHARS:
        raise SearchError(
            f"the search query is {len(query):,} characters long; "
            f"at most {MAX_QUERY_CHARS:,} are searched"
        )
    terms = sum(1 for word in _TERM.findall(query) if word not in _OPERATORS)
    if terms > MAX_QUERY_TERMS:
        raise SearchError(
            f"the search query has {terms:,} words; at most {MAX_QUERY_TERMS} are searched"
        )


def _fts5_error(query: str, exc: OperationalError) -> SearchError | None:
    message = str(exc.orig) if exc.orig is not None else str(exc)
    if message.startswith(("fts5:", "no such column", "unterminated string", "unknown special")):
        return SearchError(
            f'cannot search for {query!r}: {message} (FTS5 syntax: words, "a phrase", '
            "AND, OR, NOT, NEAR(a b, 5), prefix*, title:word)"
        )
    return None


def _search_sqlite(
    session: Session, query: str, filters: ArticleFilter, limit: int, offset: int = 0
) -> list[SearchHit]:
    fts: ColumnElement[Any] = literal_column("articles_fts")
    rowid = _FTS.c.rowid
    # bm25() in the ORDER BY rather than FTS5's `rank` column: SQLite's own sorter is faster
    # than FTS5's sorted mode (a third less time for a phrase over 1,000,000 articles).
    rank = func.bm25(fts, *_FTS_WEIGHTS, type_=Float).label("score")
    match = fts.op("MATCH")(bindparam("query", fts5_query(query)))
    ranked = select(rowid, rank).where(match)
    if filters != ArticleFilter():
        ranked = filters.apply(
            ranked.join(Article, Article.id == rowid).join(Source, Source.id == Article.source_id)
        )
    # Rank first; snippets (costly) only for the hits shown.
    ranked = ranked.order_by(rank, rowid).limit(limit).offset(offset)
    try:
        best = [(row[0], row[1]) for row in session.execute(ranked)]
        if not best:
            return []
        snippets = select(
            rowid,
            func.snippet(fts, 1, MARK_START, MARK_END, "…", SNIPPET_WORDS),
            func.snippet(fts, 0, MARK_START, MARK_END, "…", SNIPPET_WORDS),
        ).where(match, rowid.in_(bindparam("ids", [i for i, _ in best], expanding=True)))
        snippet_by_id = {row[0]: _pick_snippet(row[1], row[2]) for row in session.execute(snippets)}
    except OperationalError as exc:
        error = _fts5_error(query, exc)
        if error is None:
            raise
        raise error from None
    return _hits(session, best, snippet_by_id, lower_is_better=True)


def _hits(
    session: Session,
    best: Sequence[tuple[int, float]],
    snippet_by_id: dict[int, str],
    *,
    lower_is_better: bool,
) -> list[SearchHit]:
    ids = [article_id for article_id, _ in best]
    rows = {
        row.id: row
        for row in session.execute(
            select(
                Article.id,
                Article.url,
                Source.name,
                Article.title,
                Article.published_at,
                Article.published_date,
                Article.published_precision,
            )
            .join(Source, Source.id == Article.source_id)
            .where(Article.id.in_(ids))
        )
    }
    return [
        SearchHit(
            id=article_id,
            url=rows[article_id].url,
            outlet=rows[article_id].name,
            title=rows[article_id].title,
            published_at=rows[article_id].published_at,
            published_date=rows[article_id].published_date,
            published_precision=rows[article_id].published_precision,
            snippet=snippet_by_id.get(article_id, ""),
            score=-score if lower_is_better else score,
        )
        for article_id, score in best
    ]


def postgresql_tsquery(session: Session, query: str) -> str:
    """The tsquery (as text) of a websearch query, words ending in * made prefixes."""
    parsed = session.scalar(
        select(
            cast(
                func.websearch_to_tsquery(_PG_CONFIG, bindparam("q", websearch_query(query))), Text
            )
        )
    )
    tsquery = str(parsed or "")
    for word in set(_PREFIX_WORD.findall(query)):
        lexeme = str(
            session.scalar(
                select(cast(func.plainto_tsquery(_PG_CONFIG, bindparam("w", word)), Text))
            )
            or ""
        )
        if re.fullmatch(r"'[^']+'", lexeme):
            tsquery = re.sub(re.escape(lexeme) + r"(?!:)", lexeme + ":*", tsquery)
    if not tsquery.strip():
        raise SearchError(f"cannot search for {query!r}: it holds no word to search for")
    return tsquery


def _search_postgresql(
    session: Session, query: str, filters: ArticleFilter, limit: int, offset: int = 0
) -> list[SearchHit]:
    from sqlalchemy.dialects.postgresql import ARRAY, REAL, TSQUERY, TSVECTOR

    tsquery = cast(bindparam("tsquery", postgresql_tsquery(session, query)), TSQUERY)
    vector = literal_column("articles.search_vector", TSVECTOR)
    weights = cast(bindparam("weights", _PG_WEIGHTS), ARRAY(REAL))
    score = func.ts_rank_cd(weights, vector, tsquery)
    ranked = (
        filters.apply(
            select(Article.id, score.label("score"))
            .join(Source, Source.id == Article.source_id)
            .where(vector.op("@@")(tsquery))
        )
        .order_by(score.desc(), Article.id)
        .limit(limit)
        .offset(offset)
    )
    best = [(row[0], float(row[1])) for row in session.execute(ranked)]
    if not best:
        return []
    options: ColumnElement[str] = bindparam("options", _PG_HEADLINE)
    snippets = select(
        Article.id,
        func.ts_headline(_PG_CONFIG, Article.body, tsquery, options),
        func.ts_headline(_PG_CONFIG, Article.title, tsquery, options),
    ).where(Article.id.in_([article_id for article_id, _ in best]))
    snippet_by_id = {row[0]: _pick_snippet(row[1], row[2]) for row in session.execute(snippets)}
    return _hits(session, best, snippet_by_id, lower_is_better=False)
