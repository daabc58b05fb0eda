"""`crawler stats`: per-outlet and per-topic figures of a small archive built here."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from crawler.db.models import CrawlRun, Source
from crawler.read.stats import collect_stats, sparkline
from crawler.topics import apply_topics, load_topics
from tests.conftest import run_cli
from tests.test_search import add_article

NOW = datetime(2024, 8, 1, 12, 0, tzinfo=UTC)
TOPICS = """
[topics.shoigu]
any = ["Shoigu", "Шойгу"]

[topics.harvest]
any = ["harvest"]
"""


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.fixture
def small_archive(archive, tmp_path):
    """Three outlets (one without articles), two runs of one, two topics."""
    for title, published in [
        ("Shoigu arrives", "2024-07-31T10:00"),
        ("Shoigu leaves", "2024-07-31T23:59"),
        ("Harvest begins", "2024-07-25T08:00"),
        ("Old harvest news", "2024-05-01T08:00"),
    ]:
        add_article(archive, title, "Text.", outlet="kcna_watch", published=at(published))
    for title, published in [
        ("Шойгу в Пхеньяне", "2024-07-03T00:00"),  # the first day of the 30
        ("Before the window", "2024-07-02T23:59"),
    ]:
        add_article(archive, title, "Text.", outlet="urdupoint", published=at(published))
    with archive.transaction() as session:
        session.add(Source(name="al_mayadeen", base_url="http://al_mayadeen.test"))
        kcna = session.query(Source).filter_by(name="kcna_watch").one()
        session.add_all(
            [
                CrawlRun(source_id=kcna.id, started_at=at("2024-07-30T10:00"), status="failed"),
                CrawlRun(
                    source_id=kcna.id,
                    started_at=at("2024-07-31T10:00"),
                    finished_at=at("2024-07-31T10:05"),
                    status="finished",
                    articles_new=2,
                ),
            ]
        )
    topics = tmp_path / "topics.toml"
    topics.write_text(TOPICS, encoding="utf-8")
    apply_topics(archive.sessions, load_topics(topics))
    return archive


def test_outlet_figures(small_archive):
    with small_archive.sessions() as session:
        figures = collect_stats(session, now=NOW)
    assert figures.days[0] == "2024-07-03" and figures.days[-1] == "2024-08-01"
    assert len(figures.days) == 30
    al_mayadeen, kcna, urdupoint = figures.outlets
    assert [o.outlet for o in figures.outlets] == ["al_mayadeen", "kcna_watch", "urdupoint"]
    assert (al_mayadeen.articles, al_mayadeen.oldest, al_mayadeen.last_run) == (0, None, None)
    assert al_mayadeen.recent == 0 and list(al_mayadeen.per_day) == figures.days

    assert kcna.articles == 4
    assert kcna.oldest == at("2024-05-01T08:00")
    assert kcna.newest == at("2024-07-31T23:59")
    assert kcna.per_day["2024-07-31"] == 2 and kcna.per_day["2024-07-25"] == 1
    assert kcna.recent == 3  # the May article is older than 30 days
    assert kcna.last_run is not None
    assert (kcna.last_run.status, kcna.last_run.articles_new) == ("finished", 2)
    assert kcna.last_run.started_at == at("2024-07-31T10:00")

    assert urdupoint.articles == 2
    assert urdupoint.per_day["2024-07-03"] == 1 and urdupoint.recent == 1
    assert urdupoint.last_run is None


def test_topic_figures_and_topic_filter(small_archive, tmp_path):
    topics = load_topics(tmp_path / "topics.toml")
    fingerprints = {name: topic.fingerprint for name, topic in topics.topics.items()}
    with small_archive.sessions() as session:
        figures = collect_stats(session, now=NOW, fingerprints=fingerprints)
        assert [(t.topic, t.articles, t.up_to_date) for t in figures.topics] == [
            ("harvest", 2, True),
            ("shoigu", 3, True),
        ]
        narrowed = collect_stats(session, now=NOW, topic="shoigu")
        changed = collect_stats(session, now=NOW, fingerprints={"shoigu": "other"})
    assert [(o.outlet, o.articles, o.recent) for o in narrowed.outlets] == [
        ("al_mayadeen", 0, 0),
        ("kcna_watch", 2, 2),
        ("urdupoint", 1, 1),
    ]
    assert [(t.topic, t.articles) for t in narrowed.topics] == [("shoigu", 3)]
    assert [(t.topic, t.up_to_date) for t in changed.topics] == [
        ("harvest", None),
        ("shoigu", False),
    ]


def test_as_dict_is_json_ready(small_archive):
    with small_archive.sessions() as session:
        record = collect_stats(session, now=NOW).as_dict()
    again = json.loads(json.dumps(record))
    kcna = again["outlets"][1]
    assert kcna["outlet"] == "kcna_watch" and kcna["last_30_days"] == 3
    assert kcna["newest"] == "2024-07-31T23:59:00+00:00"
    assert kcna["last_run"]["status"] == "finished"


def test_sparkline():
    assert sparkline([0, 1, 2, 4, 8]) == "·▁▂▄█"
    assert sparkline([0, 0]) == "··"


def test_cli_stats(db_url, archive):
    now = datetime.now(UTC)
    add_article(archive, "Shoigu in Pyongyang", "Talks with Russia.", published=now)
    add_article(archive, "Old news", "Text.", published=now - timedelta(days=40))
    add_article(archive, "Elsewhere", "Text.", outlet="urdupoint", published=now)
    applied = run_cli("topics", "apply", db_url=db_url)
    assert applied.returncode == 0, applied.stderr

    result = run_cli("stats", "--json", db_url=db_url)
    assert result.returncode == 0, result.stderr
    figures = json.loads(result.stdout)
    by_outlet = {o["outlet"]: o for o in figures["outlets"]}
    assert by_outlet["kcna_watch"]["articles"] == 2
    assert by_outlet["kcna_watch"]["last_30_days"] == 1
    assert by_outlet["urdupoint"]["articles"] == 1
    assert figures["topics"] == [{"topic": "dprk-russia", "articles": 1, "up_to_date": True}]

    narrowed = run_cli("stats", "--json", "--topic", "dprk-russia", db_url=db_url)
    by_outlet = {o["outlet"]: o for o in json.loads(narrowed.stdout)["outlets"]}
    assert (by_outlet["kcna_watch"]["articles"], by_outlet["urdupoint"]["articles"]) == (1, 0)

    table = run_cli("stats", db_url=db_url)
    assert table.returncode == 0, table.stderr
    assert "kcna_watch" in table.stdout and "urdupoint" in table.stdout
    assert "dprk-russia" in table.stdout and "never" in table.stdout

    unknown = run_cli("stats", "--topic", "nope", db_url=db_url)
    assert unknown.returncode == 2 and "no topic 'nope'" in unknown.stderr
