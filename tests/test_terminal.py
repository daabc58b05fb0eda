"""What a person sees in a terminal: `crawl`, `search`, `show` and `schedule` run under a
pseudo-terminal, their screen read back through a terminal emulator."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import select

from crawler.db.models import Article
from crawler.db.session import Archive
from tests.conftest import LOOPBACK, crawl, export_jsonl, run_cli, write_sources
from tests.terminal import run_in_terminal

DEFENCE_RECEPTION = (
    "/newstream/1732960512-284951/"
    "dprk-ministry-of-national-defence-hosts-reception-for-russian-military-delegation/"
)
TREATY_RECEPTION = (
    "/newstream/1734001822-287305/"
    "russian-ambassador-hosts-reception-on-ratification-of-dprk-russia-treaty/"
)


def env_for(db_url: str, sources_file: Path) -> dict[str, str]:
    return {"CRAWLER_DATABASE_URL": db_url, "CRAWLER_SOURCES": str(sources_file)}


@pytest.fixture
def crawled(db_url: str, sources_file: Path) -> str:
    """The archive after a crawl of the kcna_watch mirror."""
    result = crawl("kcna_watch", db_url=db_url, sources_file=sources_file)
    assert result.returncode == 0, result.stderr
    return db_url


def test_crawl_draws_its_live_display_and_the_summary(db_url, sources_file):
    run = run_in_terminal("crawl", "kcna_watch", *LOOPBACK, env=env_for(db_url, sources_file))
    assert run.returncode == 0, run
    assert "Traceback" not in run.raw
    assert "crawling" in run.raw  # the live display was drawn while the crawl ran
    lines = run.screen.splitlines()
    row = next(line for line in lines if "│ kcna_watch" in line)
    cells = [cell.strip() for cell in row.strip("│ ").split("│")]
    assert cells[:5] == ["kcna_watch", "1", "finished", "8", "4"]
    assert "crawl summary" in run.screen
    # the live display is gone from the screen once the crawl is over
    assert "crawling" not in run.screen.replace("crawl summary", "")


def test_search_on_a_terminal_highlights_and_shows_whole_urls(crawled, sources_file, kcna):
    run = run_in_terminal("search", "delegation", env=env_for(crawled, sources_file))
    assert run.returncode == 0, run
    assert "Traceback" not in run.raw
    assert "\x1b[1;33m" in run.raw  # the matched words are highlighted
    assert kcna.url(DEFENCE_RECEPTION) in run.unwrapped
    assert " 1. " in run.screen


def test_show_on_a_terminal_prints_the_article_with_whole_urls(crawled, sources_file, kcna):
    url = kcna.url(DEFENCE_RECEPTION)
    # the URL as copied without its trailing slash still names the article
    run = run_in_terminal("show", url.rstrip("/"), env=env_for(crawled, sources_file), columns=80)
    assert run.returncode == 0, run
    assert "Traceback" not in run.raw
    screen = run.screen
    assert "DPRK Ministry of National Defence hosts reception" in screen
    assert "versions (1)" in screen and "snapshots (1)" in screen
    # the URLs are never cut short: the terminal wraps them, a copy of the line is the URL
    lines = run.unwrapped.splitlines()
    assert f"url                {url}" in lines
    assert f"canonical url      {url}" in lines
    assert any(line.endswith(f"  {url}") and " UTC  200  " in line for line in lines)
    assert "…" not in screen


def test_schedule_on_a_terminal_prints_a_line_per_run_start_and_end(db_url, sources_file):
    run = run_in_terminal(
        "schedule",
        "--jitter",
        "0",
        *LOOPBACK,
        env=env_for(db_url, sources_file),
        stop_when="kcna_watch: run 1 finished",
        timeout=120,
    )
    assert run.returncode == 0, run
    assert "Traceback" not in run.raw
    lines = run.unwrapped.splitlines()
    started = next(line for line in lines if "kcna_watch: run 1 started (scheduled; log: " in line)
    log = Path(started.split("; log: ")[1].rstrip(")"))
    assert log.name == "run-1.log" and "Spider opened" in log.read_text()
    finished = [line for line in lines if "kcna_watch: run 1 finished" in line]
    assert len(finished) == 1 and "8 pages, 4 new, 0 updated, 0 errors" in finished[0], run
    assert lines[-1].endswith("scheduler stopped")
    # scheduled, started, run 1 started, run 1 finished, (stopping,) stopped: nothing of Scrapy's
    assert len(lines) <= 6 and not any("[kcna_watch run 1]" in line for line in lines), run


HOSTILE = "\x1b[2J\x1b]0;pwned\x07\x1b]8;;http://evil.example/\x1b\\click\x1b]8;;\x1b\\\x9b31m"


def plant_control_characters(db_url: str, url: str) -> None:
    """Put terminal control sequences in an archived article's title and body (as text
    archived before cleaning dropped them, or imported from elsewhere, would hold)."""
    archive = Archive(db_url)
    with archive.transaction() as session:
        article = session.scalar(select(Article).where(Article.url == url))
        assert article is not None
        article.title = f"Reception {HOSTILE} delegation"
        article.body = f"A delegation {HOSTILE} arrived.\n\n" + article.body
    archive.dispose()


def test_control_characters_in_the_archive_are_shown_escaped(crawled, sources_file, kcna):
    url = kcna.url(DEFENCE_RECEPTION)
    plant_control_characters(crawled, url)
    env = env_for(crawled, sources_file)
    for run in (
        run_in_terminal("show", url, env=env),
        run_in_terminal("search", "delegation", env=env),
    ):
        assert run.returncode == 0, run
        for sequence in ("\x1b[2J", "\x1b]0;", "\x1b]8;", "\x07", "\x9b"):
            assert sequence not in run.raw
        assert r"\x1b[2J\x1b]0;pwned\x07" in run.unwrapped
        assert r"click\x1b]8;;\x1b\\x9b31m" in run.unwrapped


def test_a_day_only_date_is_the_day_the_outlet_shows(crawled, sources_file, kcna):
    """KCNA Watch shows `Date: 12/12/2024` and no time: that day, wherever one reads it."""
    env = env_for(crawled, sources_file)
    url = kcna.url(TREATY_RECEPTION)
    (record,) = [r for r in export_jsonl(crawled) if r["url"] == url]
    assert record["published_at"] == "2024-12-11T15:00:00+00:00"  # midnight in Pyongyang
    assert (record["published_date"], record["published_precision"]) == ("2024-12-12", "day")
    shown = run_in_terminal("show", url, env=env)
    assert "published          2024-12-12\n" in shown.unwrapped + "\n"
    found = run_in_terminal("search", "ratification", "--since", "2024-12-12", env=env)
    assert found.returncode == 0, found
    assert f"kcna_watch · 2024-12-12 · #{record['id']} · {url}" in found.unwrapped
    for since, until, hits in (
        ("2024-12-12", "2024-12-12", 1),
        ("2024-12-13", None, 0),
        (None, "2024-12-11", 0),
        ("2024-12-11T15:00Z", "2024-12-11T15:00Z", 1),
    ):
        args = ["search", "ratification", "--json"]
        args += ["--since", since] if since else []
        args += ["--until", until] if until else []
        result = run_cli(*args, db_url=crawled)
        assert result.returncode == 0, result.stderr
        assert len(json.loads(result.stdout)) == hits, (since, until)


def test_an_unreachable_source_is_a_few_lines_and_its_log_a_file(db_url, tmp_path):
    """Offline: no Scrapy traceback or stats dump on the screen, one line per run start and
    end and one per error; Scrapy's log in the run's file."""
    closed = write_sources(tmp_path / "closed.toml", {"kcna_watch": "http://127.0.0.1:9"})
    env = env_for(db_url, closed) | {"XDG_DATA_HOME": str(tmp_path / "data")}
    args = ("--jitter", "0", "--retries", "0", "-s", "RETRY_TIMES=0")
    # stopped once the scheduler has said all it says of the failed run (its last line)
    run = run_in_terminal(
        "schedule", *args, env=env, stop_when="kcna_watch: failed 1 time(s) in a row"
    )
    assert "Traceback" not in run.raw and "Dumping Scrapy stats" not in run.raw
    # (the signal that stops the scheduler may come in before the run's last line: "stopping")
    lines = [line for line in run.unwrapped.splitlines() if " INFO stopping: " not in line]
    assert [line.split(" ", 2)[2].split(":")[0] for line in lines] == [
        "kcna_watch",  # scheduled every 1h
        "scheduler started (holder vm",
        "kcna_watch",  # run 1 started
        "kcna_watch",  # run 1 failed
        "kcna_watch",  # the feed: connection refused
        "kcna_watch",  # the listing: connection refused
        "kcna_watch",  # failed 1 time(s) in a row
        "scheduler stopped",
    ], run
    assert "kcna_watch: run 1 failed in " in lines[3]
    assert "kcna_watch: run 1: http://127.0.0.1:9/newstream/feed/: " in lines[4]
    log = tmp_path / "data" / "news-archive-crawler" / "logs" / "run-1.log"
    assert "Traceback" in log.read_text() and "Dumping Scrapy stats" in log.read_text()

    crawled = run_in_terminal("crawl", "kcna_watch", "-s", "RETRY_TIMES=0", env=env)
    assert crawled.returncode == 1
    assert "Traceback" not in crawled.raw and "Dumping Scrapy stats" not in crawled.raw
    (started,) = [line for line in crawled.unwrapped.splitlines() if "crawl started" in line]
    manual_log = Path(started.split("(log: ")[1].rstrip(")"))
    assert manual_log.parent == log.parent and "Dumping Scrapy stats" in manual_log.read_text()
    assert "kcna_watch: run 2 failed in " in crawled.unwrapped

    verbose = run_cli(
        "crawl", "kcna_watch", "-v", "-s", "RETRY_TIMES=0", db_url=db_url, sources=closed
    )
    assert "Dumping Scrapy stats" in verbose.stderr and "(log: " not in verbose.stderr
