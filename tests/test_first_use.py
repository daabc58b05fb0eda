"""What a new user meets first: where the archive is, commands that read an archive that is not
there, the version, the demo."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from crawler import __version__
from tests.conftest import BACKEND, run_cli

READ_ONLY_COMMANDS = [
    ["search", "Shoigu"],
    ["show", "1"],
    ["export"],
    ["stats"],
    ["runs"],
    ["sources"],
    ["health"],
    ["warc", "export", "-o", "out.warc.gz"],
]


def run_from(
    cwd: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`crawler ARGS` run from the folder `cwd`, with only the environment given."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("CRAWLER_", "XDG_"))}
    return subprocess.run(
        [sys.executable, "-m", "crawler.cli", *args],
        cwd=cwd,
        env={**clean, "COLUMNS": "200", **(env or {})},
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )


def test_the_default_archive_is_in_the_user_data_folder_wherever_commands_run(tmp_path):
    data_home = tmp_path / "data"
    env = {"XDG_DATA_HOME": str(data_home)}
    default = data_home / "news-archive-crawler" / "archive.db"
    first, second = tmp_path / "one", tmp_path / "two"
    first.mkdir()
    second.mkdir()
    refused = run_from(first, "stats", env=env)
    assert refused.returncode == 2
    assert refused.stderr.strip() == (
        f"error: no archive at {default} (crawl into it first, or name another with --db or "
        "CRAWLER_DATABASE_URL)"
    )
    assert not default.exists() and not list(first.iterdir())
    assert run_from(first, "db", "upgrade", env=env).returncode == 0
    assert default.is_file() and not list(first.iterdir())
    stats = run_from(second, "stats", "--json", env=env)
    assert stats.returncode == 0, stats.stderr
    assert not list(second.iterdir())


@pytest.mark.parametrize("command", READ_ONLY_COMMANDS, ids=lambda c: c[0] + "-" + c[-1])
def test_reading_commands_refuse_a_sqlite_file_that_does_not_exist(tmp_path, command):
    missing = tmp_path / "typo.db"
    result = run_from(tmp_path, *command, "--db", f"sqlite:///{missing}")
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith(f"error: no archive at {missing} ")
    assert result.stderr.count("\n") == 1 and not missing.exists()
    assert not (tmp_path / "out.warc.gz").exists()


def test_version():
    result = run_cli("--version")
    assert result.returncode == 0
    assert result.stdout == f"crawler (news-archive-crawler) {__version__}\n"


def test_demo_keeps_its_archive_and_ends_with_the_next_commands(request, tmp_path):
    """On SQLite the demo's own archive in the user data folder; on PostgreSQL one given by
    --db. Either way the commands it suggests work as printed."""
    env = {"XDG_DATA_HOME": str(tmp_path / "data")}
    args = ["demo"]
    if BACKEND == "postgresql":
        db_url = request.getfixturevalue("db_url")
        args += ["--db", db_url]
    else:
        db_url = f"sqlite:///{tmp_path / 'data' / 'news-archive-crawler' / 'demo.db'}"
    result = run_from(tmp_path, *args, env=env)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    start = next(n for n, line in enumerate(lines) if line.startswith("The demo archive is kept"))
    assert db_url in lines[start]
    suggested = [shlex.split(line) for line in lines[start + 1 :]]
    assert [words[:2] for words in suggested] == [
        ["crawler", "search"],
        ["crawler", "show"],
        ["crawler", "stats"],
        ["crawler", "export"],
    ]
    for words in suggested:
        ran = run_from(tmp_path, *words[1:], env=env)
        assert ran.returncode == 0, (words, ran.stderr)
        assert (ran.stdout + ran.stderr).strip(), words
    exported = ran.stderr
    assert exported.startswith("exported ") and (tmp_path / "articles.csv").stat().st_size > 1000
    # run again: a fresh demo archive, not one growing with every demo
    if BACKEND == "sqlite":
        assert run_from(tmp_path, "demo", env=env).returncode == 0
        runs = run_from(tmp_path, "runs", "--json", "--db", db_url, env=env)
        assert sorted(run["id"] for run in json.loads(runs.stdout)) == [1, 2, 3, 4, 5]
        assert run_from(tmp_path, *suggested[-1][1:], env=env).stderr == exported
