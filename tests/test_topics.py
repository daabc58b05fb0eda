"""Topics: the matching rules, the topics file, tagging when stored and `crawler topics apply`."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import select

from crawler.config import BUNDLED_TOPICS, ConfigError
from crawler.db.models import ArticleTopic, Topic
from crawler.topics import (
    Topics,
    alias_pattern,
    apply_topics,
    ensure_topics,
    load_topics,
    stale_topics,
    tag_article,
)
from tests.conftest import crawl, run_cli, write_sources
from tests.test_search import add_article


@pytest.fixture(scope="module")
def bundled() -> Topics:
    return load_topics(BUNDLED_TOPICS)


@pytest.mark.parametrize(
    "text",
    [
        "Kim Jong Un meets Russian Defence Minister Sergei Shoigu",
        "Kim Jong-un hosts Russia deputy defense minister",
        "KIM JONG UN RECEIVES SHOIGU",
        "Ким Чен Ын принял Шойгу",
        "Ким Чен Ына поздравил Путин",  # inflected forms through the trailing *
        "Делегация России прибыла в КНДР",
        "김정은 위원장은 러시아와 협력을 강조했다",  # Hangul with particles, as substrings
        "조선민주주의인민공화국과 로씨야의 친선",  # North Korean spelling of Russia
        "푸틴 대통령이 평양을 방문했다",
        "The DPRK’s envoy met Lavrov in Moscow",  # typographic apostrophe
        "North Korean troops and Russian forces",
        "The Treaty on Comprehensive Strategic Partnership took effect",  # `any` alone
        "Договор о всеобъемлющем стратегическом партнерстве вступил в силу",  # ё written е
    ],
)
def test_bundled_topic_matches_aliases_in_several_scripts(bundled, text):
    assert bundled.matching(text, None, None) == {"dprk-russia"}


@pytest.mark.parametrize(
    "text",
    [
        "Kim Jong Un inspects a farm",  # only the DPRK side
        "Putin visits Beijing",  # only the Russia side
        "Ким Чен Ын осмотрел ферму",
        "러시아 외무장관이 베이징을 방문했다",
        "Putinism and the Koreans",  # whole words: Putinism is not Putin, Koreans not Korea
        "The DPRKs Moscowitz collection",  # no such words either
    ],
)
def test_bundled_topic_needs_both_sides(bundled, text):
    assert bundled.matching(text, None, None) == set()


def test_title_summary_and_body_are_all_read(bundled):
    assert bundled.matching("Shoigu arrives", None, "Talks held in Pyongyang.") == {"dprk-russia"}
    assert bundled.matching("Shoigu arrives", "in the DPRK", None) == {"dprk-russia"}


def test_alias_patterns():
    assert alias_pattern("Kim Jong-un") == alias_pattern("kim jong un")
    assert alias_pattern("러시아") == "러시아"  # no word boundary for Hangul
    assert alias_pattern("Путин*") == r"п(?<!\wп)утин\w*"
    with pytest.raises(ValueError, match="no letters"):
        alias_pattern(" - ")
    with pytest.raises(ValueError, match="start or end"):
        alias_pattern("Pu*tin")


@pytest.mark.parametrize(
    ("alias", "found", "not_found"),
    [
        (
            "Kim Jong-un",
            ["kim jong un", "met kim jong-un.", "(kim jong un)", "-kim jong un"],
            ["akim jong un", "kim jong unification", "_kim jong un"],
        ),
        ("DPRK", ["dprk", "the dprk's", "«dprk»"], ["xdprk", "dprkx", "2dprk"]),
        ("Путин*", ["путин", "путина", "с путиным"], ["распутин"]),
        ("*korea", ["korea", "northkorea", "south korea"], ["koreans"]),
        ("러시아", ["러시아", "러시아와"], ["로시아"]),
        (".NET", [".net", "a .net app"], ["a.net"]),
    ],
)
def test_an_alias_starts_only_where_a_word_starts(alias, found, not_found):
    # the word-start condition stands after the first letter (the engine then skips to that
    # letter's places); what it matches is what "not after a letter" means
    pattern = re.compile(alias_pattern(alias))
    assert [text for text in found if pattern.search(text)] == found
    assert [text for text in not_found if pattern.search(text)] == []


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[topics.x\n", "not valid TOML"),
        ('[topics.x]\nall = [["a"]]\nkeywords = ["b"]\n', "unknown key"),
        ('[topics.x]\ndescription = "nothing to match"\n', "give `all`"),
        ("[topics.x]\nall = [[]]\n", "all[0] must be a non-empty list"),
        ('[topics.x]\nany = ["Kim *"]\n', "'*' must stand next to letters"),
        ('[topics.x]\nany = ["!?"]\n', "no letters"),
        ('[topics."bad name"]\nany = ["a"]\n', "a topic name is"),
        ("[other]\nx = 1\n", "only [topics.NAME] tables"),
    ],
)
def test_invalid_topics_file_names_file_topic_and_reason(tmp_path, text, message):
    path = write(tmp_path / "topics.toml", text)
    with pytest.raises(ConfigError, match=re.escape(message)) as raised:
        load_topics(path)
    assert str(path) in str(raised.value)


def test_topics_file_from_environment(tmp_path, monkeypatch):
    path = write(tmp_path / "mine.toml", '[topics.mine]\nany = ["x"]\n')
    monkeypatch.setenv("CRAWLER_TOPICS", str(path))
    assert list(load_topics().topics) == ["mine"]
    monkeypatch.delenv("CRAWLER_TOPICS")
    assert load_topics().path == BUNDLED_TOPICS
    with pytest.raises(ConfigError, match="not found"):
        load_topics(tmp_path / "missing.toml")


def tags(archive) -> set[tuple[int, str]]:
    with archive.sessions() as session:
        rows = session.execute(
            select(ArticleTopic.article_id, Topic.name).join(
                Topic, Topic.id == ArticleTopic.topic_id
            )
        )
        return {(article_id, name) for article_id, name in rows}


def test_tag_article_sets_exactly_the_matching_topics(archive):
    article = add_article(archive, "Shoigu in Pyongyang", "Talks.")
    with archive.transaction() as session:
        ids = ensure_topics(session, ["a", "b", "c"])
        assert ensure_topics(session, ["a", "b", "c"]) == ids  # rows made once
        assert tag_article(session, article, {"a", "b"}, ids) == ({ids["a"], ids["b"]}, set())
    with archive.transaction() as session:
        assert tag_article(session, article, {"b", "c"}, ids) == ({ids["c"]}, {ids["a"]})
    assert tags(archive) == {(article, "b"), (article, "c")}


V1 = """
[topics.visits]
description = "Shoigu's visits"
any = ["Shoigu", "Шойгу"]

[topics.treaty]
all = [["treaty", "договор*"], ["Russia*", "Росси*"]]
"""
# visits gains a Hangul alias, treaty is gone, farming is new
V2 = """
[topics.visits]
any = ["Shoigu", "Шойгу", "쇼이구"]

[topics.farming]
any = ["harvest", "урожай"]
"""


@pytest.fixture
def articles(archive) -> dict[str, int]:
    return {
        "en": add_article(archive, "Shoigu arrives in Pyongyang", "Talks on the treaty."),
        "ru": add_article(archive, "Шойгу в Пхеньяне", "Договор с Россией вступил в силу."),
        "ko": add_article(archive, "쇼이구 국방장관 평양 도착", "러시아 대표단이 도착했다."),
        "treaty": add_article(archive, "Treaty ratified", "Russia and the DPRK ratified it."),
        "farm": add_article(archive, "Harvest begins", "Farmers started the harvest."),
    }


def apply_cli(db_url: str, topics: Path) -> dict[str, list[str]]:
    result = run_cli("topics", "apply", "--topics", str(topics), db_url=db_url)
    assert result.returncode == 0, result.stderr
    rows = {}
    for line in result.stdout.splitlines():
        cells = [cell.strip() for cell in line.strip("│ ").split("│")]
        if len(cells) == 4 and cells[1].isdigit():
            rows[cells[0]] = cells[1:]
    assert "5 articles read" in result.stdout
    return rows


def test_topics_apply_after_the_file_changes(db_url, archive, articles, tmp_path):
    topics = write(tmp_path / "topics.toml", V1)
    assert apply_cli(db_url, topics) == {"visits": ["2", "2", "0"], "treaty": ["2", "2", "0"]}
    assert tags(archive) == {
        (articles["en"], "visits"),
        (articles["ru"], "visits"),
        (articles["ru"], "treaty"),
        (articles["treaty"], "treaty"),
    }
    # again: nothing to add or remove
    assert apply_cli(db_url, topics) == {"visits": ["2", "0", "0"], "treaty": ["2", "0", "0"]}

    write(topics, V2)
    with archive.sessions() as session:
        assert stale_topics(session, load_topics(topics)) == ["farming", "visits"]
    assert apply_cli(db_url, topics) == {
        "visits": ["3", "1", "0"],
        "farming": ["1", "1", "0"],
        "treaty (no longer in the file)": ["0", "0", "2"],
    }
    assert tags(archive) == {
        (articles["en"], "visits"),
        (articles["ru"], "visits"),
        (articles["ko"], "visits"),
        (articles["farm"], "farming"),
    }
    with archive.sessions() as session:
        assert stale_topics(session, load_topics(topics)) == []
        assert set(session.scalars(select(Topic.name))) == {"visits", "farming"}


def test_apply_in_small_batches_reports_counts(archive, articles, tmp_path):
    topics = load_topics(write(tmp_path / "topics.toml", V1))
    seen: list[int] = []
    report = apply_topics(archive.sessions, topics, batch=2, progress=seen.append)
    assert seen == [2, 2, 1] and report.articles == 5
    assert (report.topics["visits"].tagged, report.topics["treaty"].tagged) == (2, 2)


def test_topics_apply_rejects_a_bad_file(db_url, tmp_path):
    topics = write(tmp_path / "topics.toml", "[topics.x]\nall = 3\n")
    result = run_cli("topics", "apply", "--topics", str(topics), db_url=db_url)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr and "topic 'x'" in result.stderr


def test_crawled_articles_are_tagged_when_stored(db_url, kcna, tmp_path):
    """The bundled topic tags the kcna_watch items about the DPRK and Russia, and no other."""
    sources = write_sources(tmp_path / "sources.toml", {"kcna_watch": kcna.base_url})
    result = crawl("kcna_watch", db_url=db_url, sources_file=sources)
    assert result.returncode == 0, result.stdout + result.stderr
    exported = run_cli("export", "--topic", "dprk-russia", db_url=db_url)
    assert exported.returncode == 0, exported.stderr
    titles = sorted(json.loads(line)["title"] for line in exported.stdout.splitlines())
    assert titles == [
        "DPRK Ministry of National Defence hosts reception for Russian military delegation",
        "Russian ambassador hosts reception on ratification of DPRK-Russia treaty",
    ]
    found = run_cli("search", "reception", "--topic", "dprk-russia", "--json", db_url=db_url)
    assert found.returncode == 0, found.stderr
    assert sorted(hit["title"] for hit in json.loads(found.stdout)) == titles
    # tagged on store from the start: stats does not call the fresh archive's tags out of date
    stats = run_cli("stats", db_url=db_url)
    assert stats.returncode == 0, stats.stderr
    assert "│ dprk-russia │        2 │" in stats.stdout and "out of date" not in stats.stdout
    # the tags are those `topics apply` gives: nothing to add or remove
    applied = run_cli("topics", "apply", db_url=db_url)
    assert applied.returncode == 0, applied.stderr
    assert "│ dprk-russia │        2 │     0 │       0 │" in applied.stdout


def test_crawl_refuses_a_broken_topics_file(db_url, tmp_path):
    sources = write_sources(tmp_path / "sources.toml", {"kcna_watch": "http://127.0.0.1:9"})
    broken = write(tmp_path / "topics.toml", "[topics.x]\nall = 3\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRAWLER_")}
    env |= {
        "CRAWLER_DATABASE_URL": db_url,
        "CRAWLER_SOURCES": str(sources),
        "CRAWLER_TOPICS": str(broken),
    }
    result = subprocess.run(
        [sys.executable, "-m", "crawler.cli", "crawl", "kcna_watch", "--no-progress"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 2
    assert (
        result.stderr.strip()
        == f"error: {broken}: topic 'x': all must be a list of lists of aliases"
    )
