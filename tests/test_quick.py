"""The query commands' short way in (crawler/cli/quick.py): it reads a command line as typer
does, or leaves it to typer.

Each command line is parsed both ways: by quick.parse and by typer's own command (its click
context, as `crawler` runs it). A well-formed call must give the same parameters; anything else
(help, a subcommand, an unknown option, a refused value) must be left to typer, which answers
it as it always did."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from crawler.cli import app, quick, register_commands
from tests.conftest import ROOT

WELL_FORMED = [
    ("search", "kim"),
    ("search", "kim jong", "--outlet", "a", "--outlet=b", "--limit", "5", "--json"),
    ("search", "--since", "2024-07-01", "--until=2024-07-31T06:00", "--", "-kim"),
    ("search", "x", "--topic", "t", "--all-copies", "--db", "sqlite:///a.db", "--sources", "s"),
    ("search", "-", "--limit", "1000"),
    ("show", "12", "--json"),
    ("show", "https://example.com/a?b=1"),
    ("stats",),
    ("stats", "--topic", "dprk-russia", "--json"),
    ("runs", "--source", "kcna_watch", "--limit", "100000"),
    ("sources", "--json", "--sources", "other.toml"),
    ("export",),
    ("export", "-f", "csv", "-o", "out.csv", "--outlet", "a", "--since", "2024-01-01"),
    ("export", "-fparquet", "--output=out.parquet", "--format", "jsonl"),
    ("changes", "--since", "-2d", "--outlet", "a", "--limit", "10000"),
    ("stories", "--min-outlets", "2", "--outlet", "a", "--until", "2d", "--limit", "7"),
    ("crawl",),  # neither a source nor --all: typer takes it, and the crawl refuses it
    ("crawl", "kcna_watch"),
    ("crawl", "kcna_watch", "urdupoint", "--refresh", "--no-progress", "-s", "A=1", "--set=B=2"),
    ("crawl", "--all", "-v", "--db", "sqlite:///a.db", "--sources", "s.toml", "-sC=3"),
    ("crawl", "kcna_watch", "--run-id", "7", "--parent-pid", "123", "--progress", "--verbose"),
    ("crawl", "--", "-odd-name"),
]
LEFT_TO_TYPER = [
    ("search",),  # no query
    ("search", "a", "b"),  # one too many
    ("search", "--help"),
    ("search", "-kim"),  # an option typer does not know
    ("search", "kim", "--limit", "0"),
    ("search", "kim", "--limit", "1001"),
    ("search", "kim", "--limit", "ten"),
    ("search", "kim", "--limit"),
    ("search", "kim", "--json=yes"),
    ("show",),
    ("stats", "--topic"),
    ("runs", "--limit", "-1"),
    ("sources", "add", "https://example.com"),
    ("stories", "rebuild"),
    ("changes", "--limit", "10001"),
    ("crawl", "--help"),
    ("crawl", "kcna_watch", "--run-id", "seven"),
    ("crawl", "kcna_watch", "--bogus"),
    ("crawl", "kcna_watch", "--refresh=yes"),
    ("crawl", "kcna_watch", "--set"),
]


def typer_parameters(argv: tuple[str, ...]) -> dict[str, Any] | None:
    """The parameters typer's command takes from `argv`; None when it refuses them, shows its
    help or hands them to a subcommand."""
    import typer

    register_commands(argv)
    group = typer.main.get_command(app)
    parent = group.make_context("crawler", [argv[0]])
    command = group.get_command(parent, argv[0])  # type: ignore[attr-defined]
    try:
        context = command.make_context(argv[0], list(argv[1:]), parent=parent)
    except Exception:  # click's usage errors, and the exit after --help
        return None
    if getattr(context, "_protected_args", None) or context.args:
        return None  # a subcommand's
    # as typer hands them to the command: a repeatable option not given is None
    return {name: None if value == () else value for name, value in context.params.items()}


@pytest.mark.parametrize("argv", WELL_FORMED, ids=" ".join)
def test_a_well_formed_query_is_read_as_typer_reads_it(argv, capsys):
    parsed = quick.parse(quick.COMMANDS[argv[0]], argv[1:])
    assert parsed is not None
    assert parsed == typer_parameters(argv)


@pytest.mark.parametrize("argv", LEFT_TO_TYPER, ids=" ".join)
def test_anything_else_is_left_to_typer(argv, capsys):
    assert quick.parse(quick.COMMANDS[argv[0]], argv[1:]) is None
    assert typer_parameters(argv) is None


def run(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "crawler.cli", *args],
        cwd=ROOT,
        env={**env, "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_typer_answers_help_and_usage_errors_of_a_query_command(tmp_path: Path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRAWLER_")}
    env["CRAWLER_DATABASE_URL"] = f"sqlite:///{tmp_path / 'none.db'}"
    shown = run("search", "--help", env=env)
    assert shown.returncode == 0
    assert "Full-text search of titles and bodies" in shown.stdout
    assert "--all-copies" in shown.stdout
    refused = run("search", "kim", "--limit", "0", env=env)
    assert refused.returncode == 2
    assert "--limit" in refused.stderr
    unknown = run("stats", "--tpoic", "x", env=env)
    assert unknown.returncode == 2
    assert "No such option" in unknown.stderr


def test_an_archive_at_an_older_schema_is_left_to_sqlalchemy_which_migrates_it(tmp_path: Path):
    from crawler.db.reader import Reader, schema_head
    from crawler.db.session import make_engine, upgrade

    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = make_engine(url)
    upgrade(engine, "0008")
    engine.dispose()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRAWLER_")}
    env["CRAWLER_DATABASE_URL"] = url
    result = run("stats", "--json", env=env)
    assert result.returncode == 0, result.stderr
    assert '"outlets": []' in result.stdout
    reader = Reader.connect(url)  # at the head now: the short way reads it
    try:
        assert reader.stored_revision() == schema_head()
    finally:
        reader.close()
