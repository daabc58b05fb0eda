"""Start-up of the query commands: each imports what it uses, never the crawl's stack.

What a person notices is a query that takes half a second before it starts; its cause is a
command importing Scrapy, Twisted, lxml, Alembic, ... that it does not use. The commands run as
a person runs them, in a child process, and `-X importtime` lists every module they import
(bench/startup.py measures how long they take)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from scrapy.spiderloader import SpiderLoader
from sqlalchemy import select

from crawler.cli import COMMAND_MODULES, app, register_commands
from crawler.config import known_spider_names, project_settings
from crawler.db.models import Source
from crawler.db.queries import archive_article, content_hash
from crawler.db.session import Archive
from crawler.items import ArticleItem
from tests.conftest import ROOT, write_sources
from tests.test_search import add_article

# What only crawling, migrating, Parquet export or the browser needs.
CRAWL_STACK = (
    "scrapy",
    "twisted",
    "lxml",
    "parsel",
    "trafilatura",
    "numpy",
    "zstandard",
    "alembic",
    "pyarrow",
    "playwright",
)
# What a query command's well-formed call does without: typer (with click and pydantic),
# SQLAlchemy and psycopg 3, a query being parsed by crawler/cli/quick.py and read through
# crawler/db/reader.py (psycopg2 on PostgreSQL).
TYPER_AND_SQLALCHEMY = ("sqlalchemy", "typer", "click", "pydantic", "pydantic_core", "psycopg")
QUERIES = [
    ("search", "Shoigu"),
    ("search", "Shoigu", "--json", "--outlet", "kcna_watch", "--since", "2024-07-01"),
    ("show", "1"),
    ("show", "1", "--json"),
    ("stats",),
    ("runs",),
    ("sources",),
    ("sources", "--json"),
    ("export", "--format", "jsonl"),
    ("export", "--format", "csv"),
    ("changes", "--since", "2000-01-01"),
    ("stories",),
]


def imported_modules(stderr: str) -> set[str]:
    """The modules a `python -X importtime` run imported, from its report on stderr."""
    return set(re.findall(r"^import time:\s+\d+ \|\s+\d+ \|\s*(\S+)$", stderr, re.M))


def run_traced(*args: str, db_url: str, sources: Path) -> subprocess.CompletedProcess[str]:
    """`crawler ARGS` in a child process, reporting every import on stderr."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRAWLER_")}
    env.update(COLUMNS="200", CRAWLER_DATABASE_URL=db_url, CRAWLER_SOURCES=str(sources))
    return subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "crawler.cli", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture
def edited_archive(archive: Archive) -> Archive:
    """Two articles of two outlets, the first of them edited once."""
    first = add_article(
        archive,
        "Shoigu arrives in Pyongyang",
        "The minister was welcomed.",
        published=datetime(2024, 7, 20, 9, tzinfo=UTC),
    )
    add_article(archive, "Harvest begins", "Farmers gathered rice.", outlet="urdupoint")
    with archive.transaction() as session:
        source_id = session.scalar(select(Source.id).where(Source.name == "kcna_watch"))
        published_at = datetime(2024, 7, 20, 9, tzinfo=UTC)
        item = ArticleItem(
            outlet="kcna_watch",
            url="http://kcna_watch.test/news/1",
            title="Shoigu arrives in Pyongyang",
            body=["The minister was welcomed at the airport."],
            published_at=published_at,
            published_date=published_at.date(),
            published_precision="time",
        )
        item.canonical_url = item.url
        item.content_hash = content_hash(item)
        outcome, article = archive_article(session, source_id, item)
    assert (str(outcome), article.id) == ("updated", first)
    return archive


@pytest.mark.parametrize("args", QUERIES, ids=" ".join)
def test_a_query_command_imports_nothing_of_the_crawl(args, db_url, edited_archive, tmp_path):
    sources = write_sources(
        tmp_path / "sources.toml", {"kcna_watch": "http://kcna.test", "urdupoint": "http://u.test"}
    )
    result = run_traced(*args, db_url=db_url, sources=sources)
    assert result.returncode == 0, result.stderr[-2000:]
    shown = {"search": "Shoigu", "show": "welcomed at the airport", "stats": "kcna_watch"}
    shown |= {"sources": "urdupoint", "export": "Harvest begins", "changes": "at the airport"}
    if args[0] in shown:
        assert shown[args[0]] in result.stdout
    modules = imported_modules(result.stderr)
    assert "crawler.cli.querying" in modules  # the report is read: the command's own imports
    crawl_stack = sorted(m for m in modules if m.split(".")[0] in CRAWL_STACK)
    assert crawl_stack == [], f"`crawler {' '.join(args)}` imported {crawl_stack[:10]}"
    heavy = sorted(m for m in modules if m.split(".")[0] in TYPER_AND_SQLALCHEMY)
    assert heavy == [], f"`crawler {' '.join(args)}` imported {heavy[:10]}"
    if db_url.startswith("postgresql"):
        assert "psycopg2" in modules


def test_a_sources_file_is_checked_without_importing_scrapy(db_url, tmp_path):
    bad = write_sources(tmp_path / "bad.toml", {"kcna_watch": "http://kcna.test"}, spider="nope")
    result = run_traced("search", "x", "--sources", str(bad), db_url=db_url, sources=bad)
    assert result.returncode == 2
    assert "no spider named 'nope'" in result.stderr
    assert not {m for m in imported_modules(result.stderr) if m.split(".")[0] == "scrapy"}


def test_the_spider_names_read_from_their_modules_are_the_ones_scrapy_loads():
    loaded = set(SpiderLoader.from_settings(project_settings()).list())
    assert known_spider_names() == loaded
    assert {"kcna_watch", "article"} <= loaded


def test_every_command_is_registered_from_the_module_named_for_it():
    register_commands([])  # with no command named, every module registers its commands
    defined = {
        command.name or command.callback.__name__: command.callback.__module__
        for command in app.registered_commands
        if command.callback is not None
    }
    for group in app.registered_groups:
        commands = group.typer_instance.registered_commands
        callback = group.typer_instance.registered_callback or commands[0]
        assert callback.callback is not None
        defined[group.name or ""] = callback.callback.__module__
    assert {name: f"crawler.cli.{module}" for name, module in COMMAND_MODULES.items()} == defined


def test_help_lists_every_command():
    result = subprocess.run(
        [sys.executable, "-m", "crawler.cli", "--help"],
        cwd=ROOT,
        env={**os.environ, "COLUMNS": "200"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    listed = set(re.findall(r"^│ (\w+) ", result.stdout, re.M))
    assert listed == set(COMMAND_MODULES)
