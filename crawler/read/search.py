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
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import date, datetime
from typing import Any

from crawler.db.reader import Reader
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
_PG_WEIGHTS = "'{0.1, 0.1, 0.1, 1.0}'::real[]"
_PG_CONFIG = f"'{TEXT_SEARCH_CONFIG}'::regconfig"
_PG_MATCH = "articles.search_vector @@ CAST(:tsquery AS tsquery)"
# bm25 weights of the FTS5 columns (SQLite): title, body
_FTS_WEIGHTS = "10.0, 1.0"
# The FTS5 table (SQLite): its rowid is the article's id; `articles_fts` is its hidden column
# that MATCH and the auxiliary functions (bm25, snippet) take.
_FTS_MATCH = "articles_fts MATCH :query"
_FTS_JOINED = (
    " JOIN articles ON articles.id = articles_fts.rowid"
    " JOIN sources ON sources.id = articles.source_id"
)
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
    db: Any,
    query: str,
    filters: ArticleFilter | None = None,
    limit: int = 20,
    offset: int = 0,
    all_copies: bool = False,
) -> list[SearchHit]:
    """The best `limit` articles for `query` after the first `offset`, best first; SearchError
    for a malformed query. `db`: a Reader or a SQLAlchemy session.

    Copies of one text are one hit (the best-ranked), with the number of its copies, unless
    `all_copies`.
    """
    check_bounds(query)
    filters = filters or ArticleFilter()
    reader = Reader.of(db)
    if all_copies:
        fetch, skip = limit, offset
    else:
        # folding copies needs more ranked hits than are shown: pages are cut after folding
        fetch, skip = (offset + limit) * COPY_HEADROOM, 0
    if reader.dialect == "sqlite":
        hits = _search_sqlite(reader, query, filters, fetch, skip)
    elif reader.dialect == "postgresql":
        hits = _search_postgresql(reader, query, filters, fetch, skip)
    else:
        raise SearchError(f"full-text search needs SQLite or PostgreSQL, not {reader.dialect}")
    kept = collapse_copies(reader, [h.id for h in hits], expand=all_copies)
    folded = [
        replace(h, copies=info.copies, reprint_of=info.reprint_of, story_id=info.story_id)
        for h in hits
        if (info := kept.get(h.id)) is not None
    ]
    return folded[:limit] if all_copies else folded[offset : offset + limit]


def count_matches(
    db: Any,
    query: str,
    filters: ArticleFilter | None = None,
    all_copies: bool = False,
) -> int:
    """How many hits `query` has: the texts it matches, copies of one text counted once as
    search() folds them (every matching article when `all_copies`); SearchError for a
    malformed query."""
    check_bounds(query)
    filters = filters or ArticleFilter()
    reader = Reader.of(db)
    condition, params = filters.sql()
    if reader.dialect == "sqlite":
        joined = _FTS_JOINED if filters != ArticleFilter() else ""
        matching = (
            f"SELECT articles_fts.rowid AS id FROM articles_fts{joined}"
            f" WHERE {_FTS_MATCH} AND {condition}"
        )
        with _fts5_errors(reader, query):
            return _count_texts(reader, matching, params | {"query": fts5_query(query)}, all_copies)
    if reader.dialect == "postgresql":
        matching = (
            "SELECT articles.id FROM articles JOIN sources ON sources.id = articles.source_id"
            f" WHERE {_PG_MATCH} AND {condition}"
        )
        tsquery = postgresql_tsquery(reader, query)
        return _count_texts(reader, matching, params | {"tsquery": tsquery}, all_copies)
    raise SearchError(f"full-text search needs SQLite or PostgreSQL, not {reader.dialect}")


def _count_texts(reader: Reader, matching: str, params: dict[str, Any], all_copies: bool) -> int:
    """The matching articles (`matching` selects their `id`) counted as search() shows them:
    each text once, unless `all_copies`."""
    matches = int(reader.scalar(f"SELECT count(*) FROM ({matching}) AS matches", params) or 0)
    if all_copies or not matches:
        return matches
    # The matches less the copies among them, plus the originals of those copies that do not
    # match themselves (the others are counted already). Copies are found from the few
    # copies' index rather than by a lookup per match (`+ 0`: not by the primary key).
    copies, unmatched = reader.first(
        "SELECT count(*), count(DISTINCT CASE WHEN reprint_of NOT IN"
        f" ({matching}) THEN reprint_of END) FROM article_signatures"
        f" WHERE reprint_of IS NOT NULL AND (article_id + 0) IN ({matching})",
        params,
    )
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


@contextmanager
def _fts5_errors(reader: Reader, query: str) -> Iterator[None]:
    """FTS5's refusals of a query as a SearchError naming it."""
    import sqlite3

    try:
        yield
    except sqlite3.OperationalError as exc:
        message = str(exc)
        if not message.startswith(
            ("fts5:", "no such column", "unterminated string", "unknown special")
        ):
            raise
        raise SearchError(
            f'cannot search for {query!r}: {message} (FTS5 syntax: words, "a phrase", '
            "AND, OR, NOT, NEAR(a b, 5), prefix*, title:word)"
        ) from None


def _search_sqlite(
    reader: Reader, query: str, filters: ArticleFilter, limit: int, offset: int = 0
) -> list[SearchHit]:
    condition, params = filters.sql()
    joined = _FTS_JOINED if filters != ArticleFilter() else ""
    params |= {"query": fts5_query(query), "limit": limit, "offset": offset}
    with _fts5_errors(reader, query):
        # bm25() in the ORDER BY rather than FTS5's `rank` column: SQLite's own sorter is
        # faster than FTS5's sorted mode (a third less time for a phrase over 1,000,000
        # articles). Rank first; snippets (costly) only for the hits shown.
        best = [
            (row[0], row[1])
            for row in reader.rows(
                "SELECT articles_fts.rowid, bm25(articles_fts, "
                f"{_FTS_WEIGHTS}) AS score FROM articles_fts{joined}"
                f" WHERE {_FTS_MATCH} AND {condition}"
                " ORDER BY score, articles_fts.rowid LIMIT :limit OFFSET :offset",
                params,
            )
        ]
        if not best:
            return []
        snippet = f"articles_fts, {{column}}, :start, :end, '…', {SNIPPET_WORDS}"
        snippets = reader.rows(
            f"SELECT rowid, snippet({snippet.format(column=1)}),"
            f" snippet({snippet.format(column=0)}) FROM articles_fts"
            f" WHERE {_FTS_MATCH} AND rowid IN :ids",
            {
                "query": params["query"],
                "ids": [i for i, _ in best],
                "start": MARK_START,
                "end": MARK_END,
            },
        )
    snippet_by_id = {row[0]: _pick_snippet(row[1], row[2]) for row in snippets}
    return _hits(reader, best, snippet_by_id, lower_is_better=True)


def _hits(
    reader: Reader,
    best: Sequence[tuple[int, float]],
    snippet_by_id: dict[int, str],
    *,
    lower_is_better: bool,
) -> list[SearchHit]:
    ids = [article_id for article_id, _ in best]
    rows = {
        row.id: row
        for row in reader.rows(
            "SELECT articles.id, articles.url, sources.name, articles.title,"
            " articles.published_at, articles.published_date, articles.published_precision"
            " FROM articles JOIN sources ON sources.id = articles.source_id"
            " WHERE articles.id IN :ids",
            {"ids": ids},
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


def postgresql_tsquery(db: Any, query: str) -> str:
    """The tsquery (as text) of a websearch query, words ending in * made prefixes."""
    reader = Reader.of(db)
    parsed = reader.scalar(
        f"SELECT CAST(websearch_to_tsquery({_PG_CONFIG}, :q) AS TEXT)",
        {"q": websearch_query(query)},
    )
    tsquery = str(parsed or "")
    for word in set(_PREFIX_WORD.findall(query)):
        lexeme = str(
            reader.scalar(f"SELECT CAST(plainto_tsquery({_PG_CONFIG}, :w) AS TEXT)", {"w": word})
            or ""
        )
        if re.fullmatch(r"'[^']+'", lexeme):
            tsquery = re.sub(re.escape(lexeme) + r"(?!:)", lexeme + ":*", tsquery)
    if not tsquery.strip():
        raise SearchError(f"cannot search for {query!r}: it holds no word to search for")
    return tsquery


def _search_postgresql(
    reader: Reader, query: str, filters: ArticleFilter, limit: int, offset: int = 0
) -> list[SearchHit]:
    tsquery = postgresql_tsquery(reader, query)
    condition, params = filters.sql()
    score = f"ts_rank_cd({_PG_WEIGHTS}, articles.search_vector, CAST(:tsquery AS tsquery))"
    best = [
        (row[0], float(row[1]))
        for row in reader.rows(
            f"SELECT articles.id, {score} AS score FROM articles"
            " JOIN sources ON sources.id = articles.source_id"
            f" WHERE {_PG_MATCH} AND {condition}"
            " ORDER BY score DESC, articles.id LIMIT :limit OFFSET :offset",
            params | {"tsquery": tsquery, "limit": limit, "offset": offset},
        )
    ]
    if not best:
        return []
    headline = f"{_PG_CONFIG}, articles.{{column}}, CAST(:tsquery AS tsquery), :options"
    snippets = reader.rows(
        f"SELECT articles.id, ts_headline({headline.format(column='body')}),"
        f" ts_headline({headline.format(column='title')}) FROM articles"
        " WHERE articles.id IN :ids",
        {"tsquery": tsquery, "options": _PG_HEADLINE, "ids": [i for i, _ in best]},
    )
    snippet_by_id = {row[0]: _pick_snippet(row[1], row[2]) for row in snippets}
    return _hits(reader, best, snippet_by_id, lower_is_better=False)
