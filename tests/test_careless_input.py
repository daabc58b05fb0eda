"""Careless input: a password in the database URL, an archive that cannot be written, odd
arguments. Each is one line naming the input, exit 2, never a traceback, nothing lost."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from tests.conftest import BACKEND, crawl_runs, run_cli

PASSWORD = "s3cret-Pa55"
UNREACHABLE = f"postgresql+psycopg://archivist:{PASSWORD}@127.0.0.1:9/archive"

EVERY_ARCHIVE_COMMAND = [
    ["crawl", "kcna_watch"],
    ["reparse"],
    ["schedule"],
    ["search", "Shoigu"],
    ["show", "1"],
    ["export"],
    ["stats"],
    ["topics", "apply"],
    ["warc", "export", "-o", "out.warc.gz"],
    ["warc", "import", "{warc}"],
    ["runs"],
    ["sources"],
    ["health"],
    ["db", "upgrade"],
]


def read_only_url(db_url: str) -> str:
    """The same archive, opened read-only (a SQLite file by URI, a read-only PostgreSQL session)."""
    if BACKEND == "sqlite":
        path = make_url(db_url).database
        return f"sqlite:///file:{path}?mode=ro&uri=true"
    return db_url + "?options=-c%20default_transaction_read_only%3Don"


@pytest.mark.parametrize("command", EVERY_ARCHIVE_COMMAND, ids=lambda c: "-".join(c[:2]))
def test_a_password_in_the_database_url_is_never_printed(tmp_path: Path, command):
    warc = tmp_path / "in.warc"
    warc.write_bytes(b"")
    args = [arg.replace("{warc}", str(warc)) for arg in command]
    result = run_cli(*args, "--db", UNREACHABLE)
    assert result.returncode == 2, result.stderr
    assert PASSWORD not in result.stderr + result.stdout
    assert "archivist:***@127.0.0.1:9/archive" in result.stderr
    assert result.stderr.count("\n") == 1, result.stderr  # one line
    assert "Traceback" not in result.stderr and "sqlalche.me" not in result.stderr


def test_crawl_into_a_read_only_archive_is_one_line(db_url, sources_file):
    result = run_cli(
        "crawl", "kcna_watch", "--no-progress", "--db", read_only_url(db_url), sources=sources_file
    )
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("error: cannot write to the archive ")
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert crawl_runs(db_url) == []  # nothing was started


def test_reading_a_read_only_archive_works(db_url):
    result = run_cli("stats", "--json", "--db", read_only_url(db_url))
    assert result.returncode == 0, result.stderr
