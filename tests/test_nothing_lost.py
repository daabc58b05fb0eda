"""Nothing lost: an interrupted walk resumes, a page that failed to store is fetched again, an
archive that refuses writes stops the crawl at once, a killed run keeps its counts and is
retried by the scheduler, and random SIGKILLs leave nothing lost, doubled or corrupt."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.engine import make_url

from crawler.context import RESERVE_BYTES
from crawler.db.models import Article, ArticleUrl, Snapshot, SourceWalk
from crawler.db.session import Archive
from crawler.mirror import MirrorServer
from crawler.mirror.generated import GeneratedSite
from tests.conftest import (
    BACKEND,
    GENERATED_ARTICLES,
    LOOPBACK,
    POSTGRES_ADMIN_URL,
    ROOT,
    crawl,
    crawl_runs,
    write_sources,
)
from tests.test_scheduler import RODONG, Scheduler, final_runs, lease_rows, wait_for
from tests.test_scheduler import sources_file as scheduler_sources

ARTICLES = GENERATED_ARTICLES
RECEPTION = (
    "/newstream/1732960512-284951/"
    "dprk-ministry-of-national-defence-hosts-reception-for-russian-military-delegation/"
)


def start_crawl(db_url: str, sources: Path, *args: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRAWLER_")}
    env.update(CRAWLER_DATABASE_URL=db_url, CRAWLER_SOURCES=str(sources))
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "crawler.cli",
            "crawl",
            "kcna_watch",
            "--no-progress",
            *LOOPBACK,
            *args,
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def archived_urls(db_url: str) -> list[str]:
    archive = Archive(db_url)
    try:
        with archive.sessions() as session:
            return list(session.scalars(select(Article.url)))
    finally:
        archive.dispose()


def article_fetches(server: MirrorServer) -> list[str]:
    return [p for p in server.paths() if p.startswith("/newstream/17")]


def assert_every_article_archived_once(db_url: str, server: MirrorServer, site: GeneratedSite):
    urls = archived_urls(db_url)
    assert len(urls) == len(set(urls)) == len(site.paths)
    assert set(urls) == {server.url(path) for path in site.paths}
    archive = Archive(db_url)
    try:
        with archive.sessions() as session:
            # every stored page is an article's: no snapshot left without its article
            assert session.scalar(select(func.count(Snapshot.id))) == len(urls)
            assert session.scalar(select(func.count()).where(Article.snapshot_id.is_(None))) == 0
    finally:
        archive.dispose()


def walks(db_url: str) -> list[tuple[bool, int | None]]:
    archive = Archive(db_url)
    try:
        with archive.sessions() as session:
            return [(w.complete, w.next_page) for w in session.scalars(select(SourceWalk))]
    finally:
        archive.dispose()


# -- an interrupted walk ------------------------------------------------------------------------


def test_a_killed_walk_resumes_where_it_stopped_and_keeps_its_counts(
    db_url, site, generated, sources
):
    generated.delay("/newstream/page/2/", 120)  # the walk hangs on page 2
    process = start_crawl(db_url, sources, "-s", "CRAWLER_RUN_SAVE_INTERVAL=0.2")
    try:
        # the 50 articles of page 1 are archived and the run's counts say so
        wait_for("page 1 archived", lambda: len(archived_urls(db_url)) == 50, timeout=120)
        wait_for(
            "the run's counts written as it goes",
            lambda: [r.articles_new for r in crawl_runs(db_url)] == [50],
            timeout=60,
        )
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
    assert walks(db_url) == [(False, 2)]
    generated.reset()
    generated.clear_requests()
    result = crawl("kcna_watch", db_url=db_url, sources_file=sources)
    assert result.returncode == 0, result.stderr
    assert_every_article_archived_once(db_url, generated, site)
    # page 1's articles were not fetched again; the walk went on at page 2 to the end
    assert len(article_fetches(generated)) == ARTICLES - 50
    killed, resumed = crawl_runs(db_url)
    assert (killed.status, killed.articles_new, killed.pages) == (
        "interrupted",
        50,
        53,
    )  # robots, feed, page 1, articles
    assert "died" in killed.error_log
    assert killed.walk == "stopped at page 1"
    assert (resumed.status, resumed.articles_new, resumed.walk) == ("finished", 250, "complete")
    assert walks(db_url) == [(True, None)]
    # `crawler runs` shows both, with how far their walks got
    runs = subprocess.run(
        [sys.executable, "-m", "crawler.cli", "runs", "--db", db_url],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
        check=True,
    ).stdout
    assert re.search(r"interrupted .* 53 .* 50 .* stopped at page 1", runs), runs
    assert re.search(r"finished .* 250 .* complete", runs), runs
    # a fully archived site: no article page fetched, the walk stops at page 1
    generated.clear_requests()
    result = crawl("kcna_watch", db_url=db_url, sources_file=sources)
    assert result.returncode == 0, result.stderr
    assert article_fetches(generated) == []
    assert "/newstream/page/2/" not in generated.paths()
    assert crawl_runs(db_url)[-1].walk == "complete"


def test_a_capped_walk_goes_on_where_it_stopped_next_run(db_url, site, generated, tmp_path):
    capped = write_sources(
        tmp_path / "capped.toml", {"kcna_watch": generated.base_url}, max_pages=2
    )
    assert crawl("kcna_watch", db_url=db_url, sources_file=capped).returncode == 0
    assert len(archived_urls(db_url)) == 100
    assert crawl_runs(db_url)[-1].walk == "stopped at page 2"
    new = site.add_articles(10)  # published meanwhile: on top, pushing the rest down
    generated.reload()
    walked = []
    for _ in range(8):
        assert crawl("kcna_watch", db_url=db_url, sources_file=capped).returncode == 0
        walked.append(crawl_runs(db_url)[-1].walk)
        if walked[-1] == "complete":
            break
    # two listing pages a run: the new articles first, then on where the last walk stopped
    assert walked[0] == "stopped at page 2" and walked[-1] == "complete", walked
    assert {generated.url(p) for p in new} <= set(archived_urls(db_url))
    fetched = article_fetches(generated)
    assert len(fetched) == len(set(fetched)) == ARTICLES + 10  # each article fetched once
    assert_every_article_archived_once(db_url, generated, site)


# -- a page that failed to store ------------------------------------------------------------------

REFUSE_SQLITE = """CREATE TRIGGER refuse_articles BEFORE INSERT ON articles
WHEN NEW.url LIKE '%rodong-sinmun-calls%' OR NEW.url LIKE '%hosts-reception-for-russian%'
BEGIN SELECT RAISE(ABORT, 'refused by the test'); END"""
REFUSE_POSTGRES = (
    """CREATE FUNCTION refuse_articles() RETURNS trigger AS $$ BEGIN
IF NEW.url LIKE '%rodong-sinmun-calls%' OR NEW.url LIKE '%hosts-reception-for-russian%' THEN
RAISE EXCEPTION 'refused by the test'; END IF; RETURN NEW; END $$ LANGUAGE plpgsql""",
    """CREATE TRIGGER refuse_articles BEFORE INSERT ON articles
FOR EACH ROW EXECUTE FUNCTION refuse_articles()""",
)


def execute(db_url: str, *statements: str) -> None:
    archive = Archive(db_url)
    try:
        with archive.engine.begin() as conn:
            for statement in statements:
                conn.execute(text(statement))
    finally:
        archive.dispose()


def test_an_article_that_failed_to_store_is_fetched_again_next_run(db_url, kcna, sources_file):
    if BACKEND == "postgresql":
        execute(db_url, *REFUSE_POSTGRES)
    else:
        execute(db_url, REFUSE_SQLITE)
    result = crawl("kcna_watch", db_url=db_url, sources_file=sources_file)
    assert result.returncode == 0, result.stderr
    refused = {kcna.url(RODONG), kcna.url(RECEPTION)}
    assert len(archived_urls(db_url)) == 2 and not refused & set(archived_urls(db_url))
    # one line per page, with its URL and the reason; never a traceback or the page's text
    lines = [line for line in result.stderr.splitlines() if "refused by the test" in line]
    assert len(lines) == 2 and {url for url in refused if any(url in line for line in lines)} == (
        refused
    )
    assert "Traceback" not in result.stderr and "Rodong Sinmun" not in result.stderr
    archive = Archive(db_url)
    with archive.sessions() as session:
        # the whole page was rolled back: no snapshot, its URLs not known
        assert session.scalar(select(func.count(Snapshot.id))) == 2
        states = dict(session.execute(select(ArticleUrl.url, ArticleUrl.state)).all())
        assert {states.get(url) for url in refused} == {"pending"}
    archive.dispose()
    run = crawl_runs(db_url)[-1]
    assert run.errors == 2 and kcna.url(RODONG) in run.error_log
    execute(
        db_url, "DROP TRIGGER refuse_articles" + (" ON articles" if BACKEND == "postgresql" else "")
    )
    kcna.clear_requests()
    result = crawl("kcna_watch", db_url=db_url, sources_file=sources_file)
    assert result.returncode == 0, result.stderr
    assert sorted(article_fetches(kcna)) == sorted([RODONG, RECEPTION])
    assert len(archived_urls(db_url)) == 4 and refused <= set(archived_urls(db_url))


# -- an archive that refuses writes ---------------------------------------------------------------

DISK_FULL_POSTGRES = (
    """CREATE FUNCTION disk_full() RETURNS trigger AS $$ BEGIN
IF (SELECT count(*) FROM snapshots) >= 40 THEN
RAISE EXCEPTION 'could not extend file "base/16384/16402": No space left on device'
USING ERRCODE = 'disk_full'; END IF; RETURN NEW; END $$ LANGUAGE plpgsql""",
    """CREATE TRIGGER disk_full BEFORE INSERT ON snapshots
FOR EACH ROW EXECUTE FUNCTION disk_full()""",
)


@contextlib.contextmanager
def small_disk(db_url: str, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """The SQLite archive on a small tmpfs of its own, nearly full; (its URL, the ballast file
    whose removal frees the space)."""
    disk = tmp_path / "disk"
    disk.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(disk)], check=True)
    try:
        source = Path(make_url(db_url).database or "")
        shutil.copy(source, disk / "archive.db")
        ballast = disk / "ballast"
        free = shutil.disk_usage(disk).free
        # room for the crawl's reserve (given back when the disk is full) and a few pages
        ballast.write_bytes(b"\0" * (free - RESERVE_BYTES - 400_000))
        yield f"sqlite:///{disk / 'archive.db'}", ballast
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


# Where no tmpfs can be mounted (a container without the capability), SQLite's own full-disk
# error is raised by a trigger instead: the same message, classified the same way.
DISK_FULL_SQLITE = (
    """CREATE TRIGGER disk_full BEFORE INSERT ON snapshots
WHEN (SELECT count(*) FROM snapshots) >= 40
BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END""",
)


def can_mount(tmp_path: Path) -> bool:
    """Whether this process may mount a tmpfs (root with CAP_SYS_ADMIN)."""
    probe = tmp_path / "probe"
    probe.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(probe)], capture_output=True
    )
    if mounted.returncode == 0:
        subprocess.run(["umount", str(probe)], check=False)
    return mounted.returncode == 0


@contextlib.contextmanager
def refusing_archive(db_url: str, tmp_path: Path) -> Iterator[tuple[str, Any]]:
    if BACKEND == "postgresql":
        execute(db_url, *DISK_FULL_POSTGRES)
        yield db_url, lambda: execute(db_url, "DROP TRIGGER disk_full ON snapshots")
    elif not can_mount(tmp_path):
        execute(db_url, *DISK_FULL_SQLITE)
        yield db_url, lambda: execute(db_url, "DROP TRIGGER disk_full")
    else:
        with small_disk(db_url, tmp_path) as (url, ballast):
            yield url, ballast.unlink


def test_an_archive_that_refuses_writes_stops_the_crawl_at_once(
    db_url, site, generated, sources, tmp_path
):
    with refusing_archive(db_url, tmp_path) as (url, free_space):
        result = crawl("kcna_watch", db_url=url, sources_file=sources)
        assert result.returncode == 1
        # one line on the screen says why (the details are in the run's log file)
        stopping = [line for line in result.stderr.splitlines() if "stopped: the archive" in line]
        assert len(stopping) == 1, result.stderr
        assert re.search(r"(disk is full|No space left on device)", stopping[0]), stopping
        assert "Traceback" not in result.stderr, result.stderr[-3000:]
        assert "Generated item" not in result.stderr  # no page's text in the log
        stored = len(archived_urls(url))
        # (none when the first batch the writer stored did not fit: it holds every page so far)
        assert stored < ARTICLES
        # stopped at once, not at the end of the outlet: what was fetched after the failure is
        # what was in flight until the writer told the crawl (16 downloads, at most 1.5 MB of
        # parsed pages waiting for the writer, the batch of at most 32 it was storing; measured
        # up to about a hundred pages on PostgreSQL, where the writer is the slower)
        assert len(article_fetches(generated)) < min(ARTICLES, stored + 150)
        run = crawl_runs(url)[-1]
        assert run.status == "failed" and run.error_log.startswith("stopped: the archive")
        assert run.articles_new == stored
        assert lease_rows(Archive(url)) == []
        # the room kept beside a SQLite archive was given back to close the run
        assert not list(Path(make_url(url).database or "/nonexistent").parent.glob("*.reserve-*"))
        free_space()
        result = crawl("kcna_watch", db_url=url, sources_file=sources)
        assert result.returncode == 0, result.stderr
        assert_every_article_archived_once(url, generated, site)


# -- the scheduler --------------------------------------------------------------------------------


def test_the_scheduler_retries_a_run_killed_with_it_at_once(db_url, archive, kcna, tmp_path):
    kcna.delay(RODONG, 300)  # the first run hangs until the scheduler is killed
    sources = scheduler_sources(tmp_path, kcna, every="1h")
    first = Scheduler(db_url, sources, tmp_path / "first.log", ["--lease-ttl", "10m"])
    second = None
    try:
        wait_for("the first run to hang", lambda: RECEPTION in kcna.paths())
        first.send(signal.SIGKILL)
        first.wait()
        kcna.reset()
        # the source's next regular run is an hour away: the dead run is retried now
        second = Scheduler(db_url, sources, tmp_path / "second.log", ["--lease-ttl", "10m"])
        runs = wait_for("the retry", final_runs(archive, 2))
        killed, retry = runs[0], runs[1]
        assert killed.status == "interrupted" and "died" in killed.error_log
        assert (retry.trigger, retry.status) == ("retry", "finished")
        urls = archived_urls(db_url)
        assert len(urls) == len(set(urls)) == 4
        assert "its last run died with its process; retrying it now" in second.log()
    finally:
        first.close()
        if second is not None:
            second.close()


def crawl_child_of(scheduler: Scheduler) -> int | None:
    """The pid of the crawl process a scheduler runs, if any (from /proc)."""
    wanted = f"--parent-pid\0{scheduler.pid}\0"
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            if wanted in (entry / "cmdline").read_text(errors="replace"):
                return int(entry.name)
    return None


def test_the_scheduler_retries_at_once_a_crawl_process_that_was_killed(
    db_url, archive, kcna, tmp_path
):
    kcna.delay(RODONG, 300)
    sources = scheduler_sources(tmp_path, kcna, every="1h")
    scheduler = Scheduler(db_url, sources, tmp_path / "scheduler.log", ["--retry-delay", "10m"])
    try:
        wait_for("the run to hang", lambda: RECEPTION in kcna.paths())
        child = wait_for("its crawl process", lambda: crawl_child_of(scheduler))
        kcna.reset()
        os.kill(child, signal.SIGKILL)  # what the OOM killer does
        runs = wait_for("the retry", final_runs(archive, 2))
        killed, retry = runs[0], runs[1]
        assert killed.status == "failed" and "exited with code -9" in killed.error_log
        assert (retry.trigger, retry.status) == ("retry", "finished")
        urls = archived_urls(db_url)
        assert len(urls) == len(set(urls)) == 4
        # not after the 10 minutes of --retry-delay: at once
        assert (retry.started_at - killed.finished_at).total_seconds() < 60
    finally:
        scheduler.close()


# -- random kills ------------------------------------------------------------------------------


def test_random_kills_lose_nothing_double_nothing_corrupt_nothing(tmp_path):
    args = ["--kills", "3", "--articles", "200", "--max-delay", "10"]
    if BACKEND == "postgresql":
        args += ["--postgres", POSTGRES_ADMIN_URL]
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "kills.py"), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    summary = result.stdout.splitlines()[-1]
    assert re.search(
        r"kills 3 +archived 200 of 200 +lost 0 +doubled 0 +corrupt 0 +halves 0 +open runs 0",
        summary,
    ), result.stdout
