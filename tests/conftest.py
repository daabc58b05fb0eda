"""Shared fixtures: a fresh archive per test (SQLite or PostgreSQL), the local mirrors, the CLI."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, select, text
from sqlalchemy.engine import make_url

from crawler.db.models import CrawlRun
from crawler.db.session import Archive
from crawler.mirror import SITES_DIR, MirrorServer, MirrorSet
from crawler.mirror.generated import GeneratedSite, generate_kcna_site

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).parent / "fixtures"
# the mirrors of the hand-written spiders' outlets (generic_news is the generic spider's)
OUTLET_SITES = ("al_mayadeen", "islam_times", "kcna_watch", "pyongyang_times", "urdupoint")
BACKEND = os.environ.get("CRAWLER_TEST_DATABASE", "sqlite")
POSTGRES_ADMIN_URL = os.environ.get(
    "CRAWLER_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
# Requests to the loopback mirrors need no politeness delays.
LOOPBACK = ["-s", "AUTOTHROTTLE_ENABLED=False", "-s", "DOWNLOAD_DELAY=0"]


def pytest_report_header(config: pytest.Config) -> str:
    return f"archive backend: {BACKEND}"


@pytest.fixture(autouse=True, scope="session")
def _own_data_folder(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The user data folder (default archive, crawl logs) of every command a test runs is a
    temporary one, never the real user's."""
    before = os.environ.get("XDG_DATA_HOME")
    os.environ["XDG_DATA_HOME"] = str(tmp_path_factory.mktemp("data-home"))
    yield
    if before is None:
        os.environ.pop("XDG_DATA_HOME", None)
    else:
        os.environ["XDG_DATA_HOME"] = before


@pytest.fixture(scope="session")
def _postgres_template() -> Iterator[str]:
    """A migrated template database; each test gets a copy (CREATE DATABASE ... TEMPLATE)."""
    admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    name = f"crawler_tpl_{uuid.uuid4().hex[:8]}"
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:
        # In CI a missing PostgreSQL is a failure, never a silent skip.
        pytest.fail(f"PostgreSQL at {POSTGRES_ADMIN_URL} is not usable: {exc}")
    url = make_url(POSTGRES_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    Archive(url, migrate=True).dispose()
    yield name
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(scope="session")
def _sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "archive.db"
    archive = Archive(f"sqlite:///{path}")
    with archive.engine.connect() as conn:
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    archive.dispose()
    return path


def fresh_archive_url(request: pytest.FixtureRequest, path: Path) -> Iterator[str]:
    """A fresh, migrated, empty archive on the backend under test (a SQLite file at `path`)."""
    if BACKEND == "postgresql":
        template = request.getfixturevalue("_postgres_template")
        name = f"crawler_t_{uuid.uuid4().hex[:10]}"
        admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{template}"'))
        yield make_url(POSTGRES_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
    elif BACKEND == "sqlite":
        shutil.copy(request.getfixturevalue("_sqlite_template"), path)
        yield f"sqlite:///{path}"
    else:
        pytest.fail(f"CRAWLER_TEST_DATABASE={BACKEND!r}: use sqlite or postgresql")


@pytest.fixture
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The URL of a fresh, migrated, empty archive on the backend under test."""
    yield from fresh_archive_url(request, tmp_path / "archive.db")


@pytest.fixture
def empty_db_url(tmp_path: Path) -> Iterator[str]:
    """The URL of an archive with no schema at all on the backend under test."""
    if BACKEND == "sqlite":
        yield f"sqlite:///{tmp_path / 'empty.db'}"
        return
    if BACKEND != "postgresql":
        pytest.fail(f"CRAWLER_TEST_DATABASE={BACKEND!r}: use sqlite or postgresql")
    name = f"crawler_e_{uuid.uuid4().hex[:10]}"
    admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:
        admin.dispose()
        pytest.fail(f"PostgreSQL at {POSTGRES_ADMIN_URL} is not usable: {exc}")
    yield make_url(POSTGRES_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture
def archive(db_url: str) -> Iterator[Archive]:
    opened = Archive(db_url)
    yield opened
    opened.dispose()


@pytest.fixture
def mirrors() -> Iterator[MirrorSet]:
    """All five outlet mirrors on loopback ports."""
    with MirrorSet(OUTLET_SITES) as started:
        yield started


@pytest.fixture
def kcna() -> Iterator[MirrorServer]:
    """The kcna_watch mirror on a loopback port."""
    with MirrorServer(SITES_DIR / "kcna_watch") as server:
        yield server


@pytest.fixture
def sources_file(tmp_path: Path, kcna: MirrorServer) -> Path:
    """A sources file naming the kcna_watch mirror (outlet test modules name their own)."""
    return write_sources(tmp_path / "sources.toml", {"kcna_watch": kcna.base_url})


def export_jsonl(db_url: str) -> list[dict[str, Any]]:
    """Every archived article, as `crawler export --format jsonl` prints it."""
    result = run_cli("export", "--format", "jsonl", db_url=db_url)
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines()]


def crawl_runs(archive: Archive | str) -> list[CrawlRun]:
    """Every crawl_runs row, oldest first, from an open archive or a URL."""
    opened = Archive(archive) if isinstance(archive, str) else archive
    try:
        with opened.sessions() as session:
            found = list(session.scalars(select(CrawlRun).order_by(CrawlRun.id)))
            session.expunge_all()
            return found
    finally:
        if opened is not archive:
            opened.dispose()


def write_sources(path: Path, base_urls: dict[str, str], **settings: object) -> Path:
    """A sources file with one table per mirror (extra settings apply to every source)."""
    lines: list[str] = []
    for name, base in base_urls.items():
        lines += [f"[sources.{name}]", f'base_url = "{base}"', 'every = "1h"']
        if name == "pyongyang_times":
            lines.append("render_js = true")
        for key, value in settings.items():
            lines.append(
                f"{key} = {value!r}".replace("'", '"')
                if isinstance(value, str)
                else f"{key} = {str(value).lower()}"
            )
        lines.append("")
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def run_cli(
    *args: str, db_url: str | None = None, sources: Path | None = None, timeout: float = 240
) -> subprocess.CompletedProcess[str]:
    """Run the `crawler` command in a child process (a Twisted reactor runs once per process)."""
    return run_python("-m", "crawler.cli", *args, db_url=db_url, sources=sources, timeout=timeout)


def run_python(
    *args: str,
    db_url: str | None = None,
    sources: Path | None = None,
    timeout: float = 240,
    **options: Any,
) -> subprocess.CompletedProcess[str]:
    """Run this interpreter with `args` in the project's root, with none of the caller's
    CRAWLER_* settings but the archive and sources given; `options` go to subprocess.run."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRAWLER_")}
    env["COLUMNS"] = "200"
    if db_url:
        env["CRAWLER_DATABASE_URL"] = db_url
    if sources:
        env["CRAWLER_SOURCES"] = str(sources)
    return subprocess.run(
        [sys.executable, *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        **options,
    )


def crawl(
    *sources: str, db_url: str, sources_file: Path, extra: tuple[str, ...] = ()
) -> subprocess.CompletedProcess[str]:
    result = run_cli(
        "crawl", *sources, "--no-progress", *LOOPBACK, *extra, db_url=db_url, sources=sources_file
    )
    return result


# A generated KCNA Watch-style outlet (six listing pages of 50), served locally.
GENERATED_ARTICLES = 300


@pytest.fixture
def site(tmp_path: Path) -> GeneratedSite:
    return generate_kcna_site(tmp_path / "site", GENERATED_ARTICLES)


@pytest.fixture
def generated(site: GeneratedSite) -> Iterator[MirrorServer]:
    with MirrorServer(site.folder) as server:
        yield server


@pytest.fixture
def sources(tmp_path: Path, generated: MirrorServer) -> Path:
    return write_sources(
        tmp_path / "sources.toml", {"kcna_watch": generated.base_url}, max_pages=20
    )
