"""The sources file and settings: every kind of mistake is rejected with file, source and reason."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from crawler.config import (
    BUNDLED_SOURCES,
    ConfigError,
    database_url,
    load_sources,
    parse_duration,
    sources_path,
)
from tests.conftest import run_cli

SPIDERS = {"kcna_watch", "urdupoint"}


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "sources.toml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ('[sources.nope]\nbase_url = "https://x.org"\n', "no spider named 'nope'"),
        ('[sources.kcna_watch]\nevery = "2h"\n', "base_url is missing"),
        ('[sources.kcna_watch]\nbase_url = "ftp://x.org"\n', "is not an http(s) URL"),
        ('[sources.kcna_watch]\nbase_url = "kcnawatch.org"\n', "is not an http(s) URL"),
        ('[sources.kcna_watch]\nbase_url = "https://x.org"\nevery = "soon"\n', "bad every"),
        ('[sources.kcna_watch]\nbase_url = "https://x.org"\nevery = "0m"\n', "bad every"),
        ('[sources.kcna_watch]\nbase_url = "https://x.org"\nevery = 5\n', "every must be a string"),
        ('[sources.kcna_watch]\nbase_url = "https://x.org"\ncron = "61 * * * *"\n', "bad cron"),
        ('[sources.kcna_watch]\nbase_url = "https://x.org"\nmax_pages = 0\n', "max_pages"),
        ('[sources.kcna_watch]\nbase_url = "https://x.org"\ncolour = "red"\n', "unknown setting"),
        ('[sources.kcna_watch]\nbase_url = "https://x.org"\nenabled = "yes"\n', "true or false"),
    ],
)
def test_bad_source_is_rejected_naming_file_source_and_reason(tmp_path, text, reason):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_sources(path, known_spiders=SPIDERS)
    message = str(caught.value)
    assert str(path) in message and reason in message
    source = text.split("]")[0].removeprefix("[sources.")
    assert f"source {source!r}" in message


@pytest.mark.parametrize(
    ("text", "reason"),
    [("this is = = not toml", "not valid TOML"), ("[other]\nx = 1\n", "no [sources.NAME] tables")],
)
def test_unreadable_file_is_rejected(tmp_path, text, reason):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_sources(path, known_spiders=SPIDERS)
    assert str(caught.value).startswith(f"{path}: ") and reason in str(caught.value)


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_sources(tmp_path / "absent.toml", known_spiders=SPIDERS)


def test_disabled_source_may_name_a_spider_not_written_yet(tmp_path):
    path = write(
        tmp_path,
        '[sources.kcna_watch]\nbase_url = "https://kcnawatch.org/"\n'
        '[sources.later]\nbase_url = "https://later.example"\nenabled = false\n',
    )
    sources = load_sources(path, known_spiders=SPIDERS)
    assert [s.name for s in sources.enabled()] == ["kcna_watch"]
    assert sources.sources["kcna_watch"].base_url == "https://kcnawatch.org"
    assert sources.sources["kcna_watch"].every == timedelta(hours=2)
    assert sources.sources["kcna_watch"].max_pages == 5


def test_bundled_sources_file_lists_the_five_outlets():
    sources = load_sources(BUNDLED_SOURCES)
    assert set(sources.sources) == {
        "kcna_watch",
        "pyongyang_times",
        "urdupoint",
        "islam_times",
        "al_mayadeen",
    }
    assert sources.sources["kcna_watch"].base_url == "https://kcnawatch.org"


@pytest.mark.parametrize(
    ("text", "seconds"), [("45s", 45), ("30m", 1800), ("2h", 7200), ("1d", 86400), ("1h30m", 5400)]
)
def test_durations(text, seconds):
    assert parse_duration(text) == timedelta(seconds=seconds)


def test_environment_and_options(monkeypatch, tmp_path):
    monkeypatch.delenv("CRAWLER_DATABASE_URL", raising=False)
    monkeypatch.delenv("CRAWLER_SOURCES", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    assert database_url() == f"sqlite:///{tmp_path}/data/news-archive-crawler/archive.db"
    assert sources_path() == BUNDLED_SOURCES
    monkeypatch.setenv("CRAWLER_DATABASE_URL", "sqlite:////tmp/x.db")
    monkeypatch.setenv("CRAWLER_SOURCES", str(tmp_path / "s.toml"))
    assert database_url() == "sqlite:////tmp/x.db"
    assert database_url("sqlite:////tmp/y.db") == "sqlite:////tmp/y.db"
    assert sources_path() == tmp_path / "s.toml"


def test_cli_rejects_a_bad_sources_file_before_anything_runs(tmp_path, db_url):
    path = write(tmp_path, '[sources.kcna_watch]\nbase_url = "https://x.org"\nevery = "often"\n')
    result = run_cli("crawl", "--all", db_url=db_url, sources=path)
    assert result.returncode == 2
    assert str(path) in result.stderr and "'kcna_watch'" in result.stderr
    assert "Traceback" not in result.stderr
    result = run_cli("crawl", "nope", db_url=db_url)
    assert result.returncode == 2 and "no source named 'nope'" in result.stderr


def test_cli_rejects_a_bad_database_url(tmp_path):
    result = run_cli("export", "--db", "notaurl")
    assert result.returncode == 2 and "notaurl" in result.stderr
    assert "Traceback" not in result.stderr


def test_export_to_an_unwritable_place_is_a_clean_error(db_url, tmp_path):
    result = run_cli("export", "-o", str(tmp_path / "no" / "such" / "x.jsonl"), db_url=db_url)
    assert result.returncode == 2 and "cannot write" in result.stderr
    assert "Traceback" not in result.stderr


def test_every_command_checks_a_sources_file_it_is_given(tmp_path, db_url):
    bad = write(tmp_path, '[sources.kcna_watch]\nbase_url = "ftp://x.org"\n')
    for command in (["export"], ["stats"], ["search", "x"], ["db", "upgrade"]):
        result = run_cli(*command, "--sources", str(bad), db_url=db_url)
        assert result.returncode == 2, command
        assert str(bad) in result.stderr and "not an http(s) URL" in result.stderr, command
