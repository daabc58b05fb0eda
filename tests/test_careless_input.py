"""Careless input: a password in the database URL, an archive that cannot be written, odd
arguments. Each is one line naming the input, exit 2, never a traceback, nothing lost."""

from __future__ import annotations

import gzip
import io
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url
from warcio.archiveiterator import ArchiveIterator

from tests.conftest import BACKEND, ROOT, crawl, crawl_runs, export_jsonl, run_cli
from tests.test_export import _bulk

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


def test_invalid_utf8_in_an_argument_is_one_line(db_url):
    result = subprocess.run(
        [sys.executable, "-m", "crawler.cli", "search", b"Sho\xffigu", "--db", db_url],
        cwd=ROOT,
        capture_output=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr == b"error: argument b'Sho\\xffigu' is not valid UTF-8 text\n"


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("w" * 1001, "is 1,001 characters long; at most 1,000 are searched"),
        (" ".join(f"w{n}" for n in range(150)), "has 150 words; at most 64 are searched"),
        ("   ", "the search query is empty"),
    ],
    ids=["long", "many-terms", "empty"],
)
def test_search_queries_are_bounded(db_url, query, message):
    started = time.monotonic()
    result = run_cli("search", query, db_url=db_url)
    assert result.returncode == 2
    assert result.stderr.startswith("error: ") and message in result.stderr
    assert result.stderr.count("\n") == 1
    assert time.monotonic() - started < 30


def test_a_query_at_the_bounds_is_searched(db_url):
    query = " OR ".join(f"w{n}" for n in range(64))
    assert len(query) <= 1000
    result = run_cli("search", query, db_url=db_url)
    assert result.returncode == 0, result.stderr


def archive_bytes(db_url: str) -> bytes | None:
    path = make_url(db_url).database
    return Path(path).read_bytes() if BACKEND == "sqlite" and path else None


@pytest.mark.parametrize(
    "command", [["export", "--format", "csv"], ["warc", "export"]], ids=["export", "warc"]
)
def test_an_export_onto_the_archive_file_is_refused(tmp_path, command):
    """The archive is a SQLite file here on either backend: only a file can be overwritten."""
    path = tmp_path / "archive.db"
    url = f"sqlite:///{path}"
    assert run_cli("db", "upgrade", "--db", url).returncode == 0
    before = path.read_bytes()
    for target in (
        path,
        tmp_path / "archive.db-wal",
        tmp_path / ".." / tmp_path.name / "archive.db",
    ):
        result = run_cli(*command, "-o", str(target), "--db", url)
        assert result.returncode == 2, result.stderr
        assert result.stderr == (
            f"error: -o {target}: that is the archive itself ({path}); write to another file\n"
        )
    assert path.read_bytes() == before
    assert run_cli("stats", "--db", url).returncode == 0


def cli_process(*args: str, db_url: str) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRAWLER_")}
    env["CRAWLER_DATABASE_URL"] = db_url
    return subprocess.Popen(
        [sys.executable, "-m", "crawler.cli", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def test_export_into_a_reader_that_stops_ends_quietly(db_url):
    _bulk(db_url, 2000, 2000)  # some 4 MB: far more than a pipe holds
    process = cli_process("export", db_url=db_url)
    assert process.stdout is not None and process.stderr is not None
    first = json.loads(process.stdout.readline())
    assert first["title"] == "Article 0"
    process.stdout.close()  # what `| head -1` does
    stderr = process.stderr.read().decode()
    assert process.wait(timeout=60) == 1
    assert stderr == ""


def test_an_export_cut_short_leaves_the_previous_file_as_it_was(db_url, tmp_path):
    _bulk(db_url, 3000, 20_000)
    target = tmp_path / "articles.jsonl"
    target.write_text("the previous export\n")
    process = cli_process("export", "-o", str(target), db_url=db_url)
    deadline = time.monotonic() + 60
    while not list(tmp_path.glob(".articles.jsonl.*.part")) and time.monotonic() < deadline:
        time.sleep(0.05)
    partial = list(tmp_path.glob(".articles.jsonl.*.part"))
    assert partial, "the export is written to a temporary file beside the target"
    process.kill()
    process.wait(timeout=60)
    assert target.read_text() == "the previous export\n"
    # a complete export replaces it and leaves nothing else behind
    result = run_cli("export", "-o", str(target), db_url=db_url)
    assert result.returncode == 0, result.stderr
    assert len(target.read_text().splitlines()) == 3000
    # (the killed one could not clean up after itself; the complete one did)
    assert list(tmp_path.glob(".articles.jsonl.*.part")) == partial


def test_importing_an_empty_warc_says_so(db_url, sources_file, tmp_path):
    empty = tmp_path / "empty.warc.gz"
    empty.write_bytes(b"")
    result = run_cli("warc", "import", str(empty), db_url=db_url, sources=sources_file)
    assert result.returncode == 1
    assert result.stderr == f"error: {empty}: the file is empty\n"
    cut = tmp_path / "cut.warc.gz"
    cut.write_bytes(b"\x1f\x8b\x08\x00")
    result = run_cli("warc", "import", str(cut), db_url=db_url, sources=sources_file)
    assert result.returncode == 1
    assert result.stderr == f"error: {cut}: no WARC record in it\n"


@pytest.mark.parametrize("suffix", [".warc.gz", ".warc"])
def test_importing_a_truncated_warc_says_what_was_read(db_url, sources_file, tmp_path, suffix):
    source = f"sqlite:///{tmp_path / 'source.db'}"
    assert crawl("kcna_watch", db_url=source, sources_file=sources_file).returncode == 0
    whole = tmp_path / "whole.warc.gz"
    assert run_cli("warc", "export", "-o", str(whole), "--db", source).returncode == 0
    data = whole.read_bytes() if suffix == ".warc.gz" else gzip.decompress(whole.read_bytes())
    records = list(ArchiveIterator(io.BytesIO(data)))
    assert len(records) == 5  # warcinfo and the four article pages
    cut = tmp_path / f"cut{suffix}"
    cut.write_bytes(data[: len(data) * 3 // 5])
    result = run_cli("warc", "import", str(cut), db_url=db_url, sources=sources_file)
    assert result.returncode == 1, result.stderr
    message = result.stderr.strip()
    assert message.startswith(f"error: {cut}: the file ended early, in record ")
    whole_records = int(message.split("; ")[-1].split()[0])
    assert 1 <= whole_records < 5 and message.endswith("whole WARC records read before it")
    imported = export_jsonl(db_url)
    assert len(imported) == whole_records - 1  # every whole page, and nothing of the cut one
    assert re.search(rf"│ new articles +│ +{whole_records - 1} │", result.stdout), result.stdout


def test_outlet_names_are_checked_and_may_be_repeated(db_url, sources_file, tmp_path):
    assert crawl("kcna_watch", db_url=db_url, sources_file=sources_file).returncode == 0
    for command in (["search", "reception"], ["export"], ["warc", "export", "-o", "x.warc.gz"]):
        result = run_cli(*command, "--outlet", "kcna", db_url=db_url)
        assert result.returncode == 2, command
        assert result.stderr == "error: no outlet 'kcna' in the archive (outlets: kcna_watch)\n"
    exported = run_cli("export", "--outlet", "urdupoint", "--outlet", "kcna_watch", db_url=db_url)
    assert exported.returncode == 2  # every one is checked
    assert "no outlet 'urdupoint'" in exported.stderr
    _bulk(db_url, 3, 100)  # a second outlet, "bulk"

    def outlets_exported(*names: str) -> list[str]:
        args = [arg for name in names for arg in ("--outlet", name)]
        result = run_cli("export", *args, db_url=db_url)
        assert result.returncode == 0, result.stderr
        return sorted(json.loads(line)["outlet"] for line in result.stdout.splitlines())

    assert outlets_exported("bulk") == ["bulk"] * 3
    assert outlets_exported("kcna_watch", "bulk") == ["bulk"] * 3 + ["kcna_watch"] * 4
