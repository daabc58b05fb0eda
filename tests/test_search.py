"""Full-text search on the backend under test: ranking, query syntax, scripts, snippets, filters."""

from __future__ import annotations

import contextlib
import json
from datetime import UTC, datetime

import pytest
from sqlalchemy import column, delete, func, insert, select, table

from crawler.db.models import Article, Source
from crawler.db.queries import archive_article, content_hash
from crawler.db.session import Archive, upgrade
from crawler.items import ArticleItem
from crawler.read.export import ArticleFilter
from crawler.read.search import MARK_END, MARK_START, SearchError, fts5_query, search
from crawler.topics import apply_topics, load_topics
from tests.conftest import run_cli

FILLER = [
    ("Harvest season begins in the provinces", "Farmers gathered rice and maize early."),
    ("New school year opens", "Pupils returned to classrooms across the country."),
    ("Water supply project finished", "Engineers completed the reservoir ahead of schedule."),
    ("Orchestra gives concert", "The national orchestra performed symphonies in the capital."),
    ("Football league results", "The home team won the derby in the last minute."),
    ("Weather outlook for the week", "Rain is expected in the north and sunshine in the south."),
]


def add_article(
    archive: Archive,
    title: str,
    body: str,
    *,
    outlet: str = "kcna_watch",
    published: datetime | None = None,
    summary: str | None = None,
) -> int:
    """Archive one article through the project's own write path; its id."""
    with archive.transaction() as session:
        source_id = session.scalar(select(Source.id).where(Source.name == outlet))
        if source_id is None:
            source = Source(name=outlet, base_url=f"http://{outlet}.test")
            session.add(source)
            session.flush()
            source_id = source.id
        count = session.scalar(select(func.count()).select_from(Article)) or 0
        url = f"http://{outlet}.test/news/{count + 1}"
        published_at = published or datetime(2024, 7, 1, 12, tzinfo=UTC)
        item = ArticleItem(
            outlet=outlet,
            url=url,
            title=title,
            body=body.split("\n\n"),
            summary=summary,
            published_at=published_at,
            # as the clean pipeline dates an article whose outlet gave a time (in UTC)
            published_date=published_at.date(),
            published_precision="time",
        )
        item.canonical_url = url
        item.content_hash = content_hash(item)
        _, article = archive_article(session, source_id, item)
        return article.id


@pytest.fixture
def corpus(archive: Archive) -> dict[str, int]:
    """A small archive: filler articles (so every word has a weight) and the ones searched."""
    for title, body in FILLER:
        add_article(archive, title, body)
    ids = {
        "title": add_article(
            archive,
            "Shoigu arrives in Pyongyang",
            "The defence minister was welcomed at the airport by officials.",
            published=datetime(2024, 7, 20, 9, tzinfo=UTC),
        ),
        "body": add_article(
            archive,
            "Delegation visits a factory",
            "Officials said that Shoigu would come later, and Shoigu did.",
            outlet="urdupoint",
            published=datetime(2024, 7, 10, 9, tzinfo=UTC),
        ),
        "phrase": add_article(
            archive,
            "Talks on the peninsula",
            "North Korea and Russia signed a treaty on strategic partnership.",
            outlet="al_mayadeen",
            published=datetime(2024, 6, 19, 9, tzinfo=UTC),
        ),
        "apart": add_article(
            archive,
            "Cold front",
            "The north of the country saw snow; Korea expects more of it.",
        ),
        "russian": add_article(
            archive,
            "Визит министра обороны",
            "ШОЙГУ прибыл в Пхеньян. Россия и КНДР подписали договор.",
            outlet="islam_times",
        ),
        "korean": add_article(
            archive,
            "국방상 회담",
            "김정은 위원장은 러시아와 협력을 강조했다.",
            outlet="islam_times",
        ),
        "hyphen": add_article(
            archive,
            "Leader inspects works",
            "Kim Jong-un gave guidance at the construction site.",
        ),
    }
    return ids


def ids_of(archive: Archive, query: str, filters: ArticleFilter | None = None) -> list[int]:
    with archive.sessions() as session:
        return [hit.id for hit in search(session, query, filters)]


def test_title_hit_outranks_body_only_hit(archive, corpus):
    assert ids_of(archive, "shoigu") == [corpus["title"], corpus["body"]]
    assert ids_of(archive, "Shoigu") == ids_of(archive, "SHOIGU")


def test_phrase_query_needs_adjacent_words(archive, corpus):
    assert ids_of(archive, '"north korea"') == [corpus["phrase"]]
    assert set(ids_of(archive, "north korea")) == {corpus["phrase"], corpus["apart"]}


def test_boolean_queries_in_the_engine_syntax(archive, corpus):
    if archive.dialect == "sqlite":
        either, without = "shoigu OR treaty", "shoigu NOT factory"
        assert ids_of(archive, "(shoigu OR treaty) AND partnership") == [corpus["phrase"]]
        assert ids_of(archive, "NEAR(korea russia, 2)") == [corpus["phrase"]]
    else:
        either, without = "shoigu or treaty", "shoigu -factory"
    assert set(ids_of(archive, either)) == {corpus["title"], corpus["body"], corpus["phrase"]}
    assert ids_of(archive, without) == [corpus["title"]]


def test_prefix_query_on_both_engines(archive, corpus):
    assert ids_of(archive, "defen*") == [corpus["title"]]
    # Korean attaches particles: 러시아와 is found by the prefix 러시아*
    assert ids_of(archive, "러시아") == []
    assert ids_of(archive, "러시아*") == [corpus["korean"]]


@pytest.mark.parametrize(
    ("query", "key"),
    [
        ("шойгу", "russian"),  # the text has ШОЙГУ: case folded in Cyrillic too
        ("Россия", "russian"),
        ("КНДР", "russian"),
        ("김정은", "korean"),
        ("Kim Jong-un", "hyphen"),
        ('"kim jong un"', "hyphen"),
    ],
)
def test_non_ascii_and_hyphenated_queries(archive, corpus, query, key):
    assert ids_of(archive, query) == [corpus[key]]


def test_snippets_highlight_the_matched_words(archive, corpus):
    with archive.sessions() as session:
        hits = {hit.id: hit for hit in search(session, "shoigu")}
        body_hit = hits[corpus["body"]]
        assert f"{MARK_START}Shoigu{MARK_END} would come later" in body_hit.snippet
        # a title-only hit shows the title, highlighted
        assert hits[corpus["title"]].snippet.startswith(f"{MARK_START}Shoigu{MARK_END} arrives")
        record = body_hit.as_dict()
        assert "<mark>Shoigu</mark> would come later" in record["snippet"]
        [korean] = search(session, "김정은")
        assert f"{MARK_START}김정은{MARK_END}" in korean.snippet


def test_filters_by_outlet_dates_and_topic(archive, corpus, tmp_path):
    everyone = {corpus["title"], corpus["body"]}
    assert ids_of(archive, "shoigu", ArticleFilter(outlet="urdupoint")) == [corpus["body"]]
    since = ArticleFilter(since=datetime(2024, 7, 15, tzinfo=UTC))
    until = ArticleFilter(until=datetime(2024, 7, 15, tzinfo=UTC))
    assert ids_of(archive, "shoigu", since) == [corpus["title"]]
    assert ids_of(archive, "shoigu", until) == [corpus["body"]]
    topics = tmp_path / "topics.toml"
    topics.write_text('[topics.visits]\nany = ["arrives in", "прибыл"]\n', encoding="utf-8")
    apply_topics(archive.sessions, load_topics(topics))
    assert ids_of(archive, "shoigu", ArticleFilter(topic="visits")) == [corpus["title"]]
    assert ids_of(archive, "шойгу", ArticleFilter(topic="visits")) == [corpus["russian"]]
    assert set(ids_of(archive, "shoigu")) == everyone


def test_limit(archive, corpus):
    with archive.sessions() as session:
        assert [h.id for h in search(session, "shoigu", limit=1)] == [corpus["title"]]


def test_index_follows_new_versions_and_deletions(archive, corpus):
    with archive.transaction() as session:
        article = session.get(Article, corpus["apart"])
        assert article is not None
        article.body = "A blizzard covered the eastern ports."
        article.last_seen_at = datetime.now(UTC)
    assert ids_of(archive, "blizzard") == [corpus["apart"]]
    assert corpus["apart"] not in ids_of(archive, "snow")
    with archive.transaction() as session:
        session.execute(delete(Article).where(Article.id == corpus["title"]))
    assert ids_of(archive, "shoigu") == [corpus["body"]]


def test_query_text_is_never_sql(archive, corpus):
    with archive.sessions() as session:
        # FTS5 rejects it as a query; PostgreSQL just searches the words
        with contextlib.suppress(SearchError):
            search(session, "x'; DROP TABLE articles; --")
        assert session.scalar(select(func.count()).select_from(Article)) == len(FILLER) + 7


def test_fts5_query_quotes_words_joined_by_punctuation():
    assert fts5_query("Kim Jong-un") == 'Kim "Jong-un"'
    assert fts5_query("U.S. sanctions") == '"U.S." sanctions'
    assert fts5_query('"Jong-un" title:DPRK\'s') == '"Jong-un" title:"DPRK\'s"'
    assert fts5_query('"unbalanced jong-un') == '"unbalanced jong-un'


def test_cli_search_json(db_url, corpus):
    result = run_cli("search", "shoigu", "--json", db_url=db_url)
    assert result.returncode == 0, result.stderr
    hits = json.loads(result.stdout)
    assert [h["id"] for h in hits] == [corpus["title"], corpus["body"]]
    first = hits[0]
    assert {"id", "url", "outlet", "title", "published_at", "snippet"} <= set(first)
    assert first["outlet"] == "kcna_watch" and first["title"] == "Shoigu arrives in Pyongyang"
    assert first["published_at"] == "2024-07-20T09:00:00+00:00"
    assert "<mark>Shoigu</mark>" in first["snippet"]


def test_cli_search_text_and_filters(db_url, corpus):
    result = run_cli(
        "search", "Шойгу", "--outlet", "islam_times", "--since", "2024-01-01", db_url=db_url
    )
    assert result.returncode == 0, result.stderr
    assert "Визит министра обороны" in result.stdout
    assert "[ШОЙГУ] прибыл" in result.stdout
    none = run_cli("search", "shoigu", "--until", "2020-01-01", db_url=db_url)
    assert none.returncode == 0 and none.stdout == ""
    assert "no article matches 'shoigu'" in none.stderr
    unknown = run_cli("search", "shoigu", "--topic", "nope", db_url=db_url)
    assert unknown.returncode == 2
    assert "no topic 'nope'" in unknown.stderr


def test_cli_prints_an_outlets_text_as_written(db_url, archive, corpus):
    # ":fire:" and ":flag_kp:" are rich's emoji codes: an outlet's text is never rendered as one
    add_article(archive, "Drills :fire: resume near :flag_kp: border", "Artillery drills resumed.")
    result = run_cli("search", "artillery", db_url=db_url)
    assert result.returncode == 0, result.stderr
    assert "Drills :fire: resume near :flag_kp: border" in result.stdout


def malformed_queries(dialect: str) -> list[str]:
    if dialect == "sqlite":
        return ["AND", '"unbalanced quote', "kim AND", "(shoigu", "   "]
    return ["!!!", "   "]  # websearch_to_tsquery accepts anything: only wordless queries fail


def test_cli_malformed_query_is_a_clean_error(db_url, archive, corpus):
    for query in malformed_queries(archive.dialect):
        result = run_cli("search", query, db_url=db_url)
        assert result.returncode == 2, (query, result.stdout, result.stderr)
        assert "Traceback" not in result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1, result.stderr
        assert lines[0].startswith("error:")
        if query.strip():
            assert repr(query) in lines[0]


def test_migration_indexes_the_articles_already_archived(db_url, archive):
    from alembic import command

    from crawler.db.session import alembic_config

    command.downgrade(alembic_config(archive.engine), "0002")
    # the columns of revision 0002 only (the models describe the newest schema)
    old_articles = table(
        "articles",
        *(
            column(name)
            for name in (
                "source_id",
                "url",
                "canonical_url",
                "title",
                "body",
                "content_hash",
                "partial",
                "version",
                "first_seen_at",
                "last_seen_at",
                "updated_at",
            )
        ),
    )
    seen = datetime(2024, 7, 1, tzinfo=UTC)
    with archive.transaction() as session:
        session.add(Source(id=1, name="kcna_watch", base_url="http://kcna.test"))
        session.flush()
        for n, (title, body) in enumerate([*FILLER, ("Shoigu in Pyongyang", "Talks.")], 1):
            session.execute(
                insert(old_articles).values(
                    source_id=1,
                    url=f"http://kcna.test/{n}",
                    canonical_url=f"http://kcna.test/{n}",
                    title=title,
                    body=body,
                    content_hash=f"{n:064x}",
                    partial=False,
                    version=1,
                    first_seen_at=seen,
                    last_seen_at=seen,
                    updated_at=seen,
                )
            )
    upgrade(archive.engine)
    assert ids_of(archive, "shoigu") == [len(FILLER) + 1]


def test_empty_archive_and_no_match(archive):
    assert ids_of(archive, "shoigu") == []
    with pytest.raises(SearchError, match="empty"):
        ids_of(archive, "  ")
