"""The archive writer: the store stage in a process of its own, with group commits.

Pages stored together commit together, each still whole or absent; a page that fails in a batch
does not take the others with it; and a writer killed in the middle of a crawl stops the crawl at
once, leaves nothing half-written, and the next run archives what it had not confirmed."""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import psutil
from sqlalchemy import func, select, text

from crawler.config import SourceConfig
from crawler.context import ensure_source
from crawler.db.models import Article, ArticleSignature, ArticleUrl, Snapshot
from crawler.db.session import Archive
from crawler.db.writer import ArchiveWriter, PageStore, Stored, WriterConfig
from crawler.items import ArticleItem, FetchedPage
from crawler.pipelines.clean import clean_article
from crawler.pipelines.deduplicate import dedup_keys
from crawler.stories import rebuild
from crawler.stories.signing import text_signature
from tests.conftest import BACKEND, crawl, crawl_runs
from tests.test_nothing_lost import (
    ARTICLES,
    REFUSE_POSTGRES,
    REFUSE_SQLITE,
    archived_urls,
    assert_every_article_archived_once,
    execute,
    start_crawl,
)
from tests.test_scheduler import wait_for

BASE = "http://outlet.test"


def article(number: int, slug: str = "story") -> ArticleItem:
    url = f"{BASE}/newstream/{number}/{slug}-{number}/"
    body = [
        f"Paragraph {i} of article {number} about talks number {number * 7 + i}." for i in range(4)
    ]
    item = ArticleItem(
        outlet="kcna_watch",
        url=url,
        title=f"Article {number}",
        body=body,
        published=datetime(2026, 11, 1, 9, number % 60, tzinfo=UTC),
        page=FetchedPage(
            url,
            url,
            200,
            {"Content-Type": ["text/html"]},
            f"<p>{number}</p>".encode(),
            datetime.now(UTC),
        ),
    )
    clean_article(item)
    dedup_keys(item)
    return item


def page_store(db_url: str) -> PageStore:
    archive = Archive(db_url)
    source_id = ensure_source(archive, SourceConfig(name="kcna_watch", base_url=BASE))
    archive.dispose()
    return PageStore(WriterConfig(db_url, source_id, None))


def counts(db_url: str) -> tuple[int, int, int, int]:
    """Articles, snapshots, signatures and archived URLs in the archive."""
    archive = Archive(db_url)
    try:
        with archive.sessions() as session:
            archived = select(func.count()).where(ArticleUrl.state == "archived")
            return (
                session.scalar(select(func.count(Article.id))) or 0,
                session.scalar(select(func.count(Snapshot.id))) or 0,
                session.scalar(select(func.count(ArticleSignature.article_id))) or 0,
                session.scalar(archived) or 0,
            )
    finally:
        archive.dispose()


def test_every_address_of_a_page_is_made_known_with_its_article_and_snapshot(db_url):
    # A page reached through a redirect, under an address other than its canonical one:
    # each of its addresses is archived as its article, with the snapshot just fetched; a
    # later fetch of one of them moves that one to the new snapshot (on PostgreSQL the
    # addresses are written by one statement, bound as an array; elsewhere a row each).
    item = article(1)
    requested = f"{BASE}/newstream/1/old-slug/"
    item.url = f"{BASE}/newstream/1/story-1/?from=list"
    assert item.page is not None
    item.page = replace(item.page, requested_url=requested)
    again = article(1)
    store = page_store(db_url)
    try:
        [(_, first)] = store.store_batch([(0, None, item, None)])
        [(_, second)] = store.store_batch([(1, None, again, None)])
    finally:
        store.close()
    assert first.outcome == "new" and second.outcome == "unchanged"
    archive = Archive(db_url)
    try:
        with archive.sessions() as session:
            rows = session.execute(
                select(
                    ArticleUrl.url, ArticleUrl.state, ArticleUrl.article_id, ArticleUrl.snapshot_id
                ).order_by(ArticleUrl.url)
            ).all()
    finally:
        archive.dispose()
    canonical = again.url
    assert {tuple(row) for row in rows} == {
        (requested, "archived", first.article_id, first.snapshot_id),
        (item.url, "archived", first.article_id, first.snapshot_id),
        (canonical, "archived", first.article_id, second.snapshot_id),
    }
    assert first.snapshot_id != second.snapshot_id


def test_a_batch_commits_together_and_a_rerun_changes_nothing(db_url):
    store = page_store(db_url)
    try:
        batch = [(number, None, article(number), None) for number in range(5)]
        results = store.store_batch(batch)
        assert [(n, r.kind, r.outcome) for n, r in results] == [
            (n, "article", "new") for n in range(5)
        ]
        assert all(r.snapshot_id and r.article_id for _, r in results)
        assert counts(db_url) == (5, 5, 5, 5)
        again = store.store_batch([(number, None, article(number), None) for number in range(5)])
        assert {r.outcome for _, r in again} == {"unchanged"}
        # the second fetch of each page is a snapshot of its own; nothing else changed
        assert counts(db_url) == (5, 10, 5, 5)
    finally:
        store.close()


def test_a_page_that_fails_in_a_batch_leaves_the_others_stored(db_url):
    if BACKEND == "postgresql":
        execute(db_url, *REFUSE_POSTGRES)
    else:
        execute(db_url, REFUSE_SQLITE)
    store = page_store(db_url)
    try:
        batch = [(number, None, article(number), None) for number in range(4)]
        refused = article(4, slug="rodong-sinmun-calls")
        batch.insert(2, (4, None, refused, None))
        results = dict(store.store_batch(batch))
        assert results[4].kind == "failed" and "refused by the test" in (results[4].problem or "")
        assert {n for n, r in results.items() if r.kind == "article"} == {0, 1, 2, 3}
        # the refused page is wholly absent: no snapshot, no signature, its URL not known
        assert counts(db_url) == (4, 4, 4, 4)
        assert refused.url not in archived_urls(db_url)
    finally:
        store.close()


def writer_of(process: psutil.Process) -> psutil.Process:
    """The crawl's archive writer (a child in a session of its own)."""
    for child in process.children(recursive=True):
        if "crawler.db.writer" in " ".join(child.cmdline()):
            return child
    raise AssertionError(f"no archive writer under {process.pid}")


def test_a_killed_writer_stops_the_crawl_and_the_next_run_archives_the_rest(
    db_url, site, generated, sources
):
    generated.delay("/newstream/page/3/", 10)  # the walk waits on page 3: the kill comes first
    process = start_crawl(db_url, sources)
    try:
        wait_for("some articles archived", lambda: len(archived_urls(db_url)) >= 20, timeout=120)
        writer = wait_for_writer(process.pid)
        writer.send_signal(signal.SIGKILL)
        _, stderr = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
    assert process.returncode == 1, stderr
    stopping = [line for line in stderr.splitlines() if "stopped: the archive writer" in line]
    assert len(stopping) == 1, stderr
    assert "Traceback" not in stderr, stderr[-3000:]
    run = crawl_runs(db_url)[-1]
    assert run.status == "failed" and run.error_log.startswith("stopped: the archive writer")
    # what the writer confirmed is what the run counted; nothing is half-written
    stored = archived_urls(db_url)
    assert run.articles_new <= len(stored) < ARTICLES
    articles, snapshots, signatures, known = counts(db_url)
    assert articles == snapshots == signatures == known == len(stored)
    generated.reset()
    result = crawl("kcna_watch", db_url=db_url, sources_file=sources)
    assert result.returncode == 0, result.stderr
    assert_every_article_archived_once(db_url, generated, site)


def wait_for_writer(pid: int) -> psutil.Process:
    deadline = time.monotonic() + 30
    while True:
        try:
            return writer_of(psutil.Process(pid))
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def test_the_writer_lives_no_longer_than_its_crawl(db_url, site, generated, sources):
    generated.delay("/newstream/page/2/", 60)
    process = start_crawl(db_url, sources)
    try:
        wait_for("some articles archived", lambda: len(archived_urls(db_url)) >= 10, timeout=120)
        writer = wait_for_writer(process.pid)
    finally:
        os.killpg(process.pid, signal.SIGKILL)  # the crawl dies; its writer is in another session
        process.communicate()
    # its input closed, the writer stores what it was handed and exits
    writer.wait(timeout=30)
    assert not writer.is_running()
    articles, snapshots, signatures, known = counts(db_url)
    assert articles == snapshots == signatures == known > 0


def index_rows(db_url: str) -> tuple[list[Any], list[Any], list[Any]]:
    """Every signature row (without its story), band and story term, in order."""
    archive = Archive(db_url)
    try:
        with archive.sessions() as session:
            signatures = session.execute(
                text(
                    "SELECT article_id, minhash, shingles, terms, reprint_of FROM"
                    " article_signatures ORDER BY article_id"
                )
            ).all()
            bands = session.execute(
                text("SELECT band_key, article_id FROM signature_bands ORDER BY 1, 2")
            ).all()
            terms = session.execute(
                text("SELECT term_key, article_id FROM story_terms ORDER BY 1, 2")
            ).all()
            return [tuple(row) for row in signatures], list(bands), list(terms)
    finally:
        archive.dispose()


def test_the_signature_computed_by_the_crawl_is_the_one_the_archive_text_gives(db_url):
    """The crawl computes an article's MinHash and term vector on its own core before handing
    the page over: what the writer indexes with it equals what indexing the stored text gives."""
    store = page_store(db_url)
    try:
        items = [article(number) for number in range(6)]
        items.append(article(99, slug="copy"))  # a copy of article 5's text: a copy group
        items[-1].body = list(items[5].body)
        items[-1].content_hash = None
        dedup_keys(items[-1])
        batch = []
        for number, item in enumerate(items):
            signature = text_signature(item.title or "", "\n\n".join(item.body))
            batch.append((number, None, item, signature))
        assert {r.outcome for _, r in store.store_batch(batch)} == {"new"}
    finally:
        store.close()
    from_crawl = index_rows(db_url)
    assert len(from_crawl[0]) == 7 and from_crawl[1] and from_crawl[2]
    assert any(row[4] is not None for row in from_crawl[0])  # the copy was linked
    archive = Archive(db_url)
    try:
        rebuild(archive)  # every signature computed again from the stored texts
    finally:
        archive.dispose()
    assert index_rows(db_url) == from_crawl


def test_pages_go_to_the_writer_through_a_pipe_a_page_fits_in(db_url):
    import fcntl

    from crawler.db.writer import PIPE_BYTES

    archive = Archive(db_url)
    source_id = ensure_source(archive, SourceConfig(name="kcna_watch", base_url=BASE))
    archive.dispose()

    async def crawl_side() -> tuple[int, Stored, int]:
        writer = ArchiveWriter(WriterConfig(db_url, source_id, None), lambda reason: None)
        room = fcntl.fcntl(writer._pages_out.fileno(), fcntl.F_GETPIPE_SZ)
        big = article(1)
        assert big.page is not None
        big.page = replace(big.page, body=os.urandom(200_000))
        stored = await writer.store(None, big)
        return room, stored, await writer.close()

    room, stored, status = asyncio.run(crawl_side())
    assert room == PIPE_BYTES
    assert (stored.kind, stored.outcome, stored.snapshot_bytes) == ("article", "new", 200_000)
    assert status == 0


def test_a_page_that_cannot_be_handed_over_fails_alone(db_url):
    archive = Archive(db_url)
    source_id = ensure_source(archive, SourceConfig(name="kcna_watch", base_url=BASE))
    archive.dispose()

    async def crawl_side() -> tuple[Stored, Stored, int, list[str]]:
        lost: list[str] = []
        writer = ArchiveWriter(WriterConfig(db_url, source_id, None), lost.append)
        unpicklable = article(1)
        unpicklable.author = threading.Lock()  # type: ignore[assignment]
        first = await writer.store(None, unpicklable)
        second = await writer.store(None, article(2))
        return first, second, await writer.close(), lost

    first, second, status, lost = asyncio.run(crawl_side())
    assert first.kind == "failed" and "cannot hand the page over" in (first.problem or "")
    assert (second.kind, second.outcome) == ("article", "new")
    assert status == 0 and lost == []
    assert archived_urls(db_url) == [article(2).url]


def test_a_writer_that_does_not_exit_at_the_crawls_end_is_stopped_after_its_time(db_url, caplog):
    # A writer stuck on its database must not hold the crawl (and a scheduler's run) open:
    # the crawl waits a bounded time for it, then kills it. What it had confirmed stays.
    archive = Archive(db_url)
    source_id = ensure_source(archive, SourceConfig(name="kcna_watch", base_url=BASE))
    archive.dispose()

    async def crawl_side() -> tuple[Stored, int, float, int]:
        writer = ArchiveWriter(WriterConfig(db_url, source_id, None), lambda reason: None)
        stored = await writer.store(None, article(1))
        os.kill(writer.process.pid, signal.SIGSTOP)  # it will never read the stop
        started = time.monotonic()
        status = await writer.close(timeout=1.0)
        return stored, status, time.monotonic() - started, writer.process.pid

    stored, status, waited, pid = asyncio.run(crawl_side())
    assert (stored.kind, stored.outcome) == ("article", "new")
    assert status == -signal.SIGKILL and 1.0 <= waited < 10
    assert not psutil.pid_exists(pid)
    assert "did not exit within 1.0s" in caplog.text
    assert archived_urls(db_url) == [article(1).url]


def test_on_postgresql_the_writer_plans_its_statements_again_as_the_crawl_grows(db_url):
    # A generic plan made while `articles` was empty scanned every article of the outlet for
    # each page's lookup: at each doubling of the crawl's pages (while they are much of the
    # archive) the writer vacuums and analyses the tables and replaces its connection, whose
    # statements are then prepared and planned again. The vacuum marks the pages of
    # story_terms visible to all, so that the story candidates' postings are read from the
    # index alone.
    store = page_store(db_url)
    store._replan_at = 4
    try:
        store.store_batch([(n, None, article(n), None) for n in range(4)])

        def backend() -> Any:
            with store.archive.engine.connect() as connection:
                if BACKEND == "sqlite":
                    return connection.execute(
                        text("SELECT count(*) FROM sqlite_master WHERE name = 'sqlite_stat1'")
                    ).scalar()
                return connection.execute(text("SELECT pg_backend_pid()")).scalar()

        def analysed() -> bool:
            if BACKEND == "sqlite":
                return False
            with store.archive.engine.connect() as connection:
                analysed_at, articles_vacuumed, vacuumed_at, visible = connection.execute(
                    text(
                        "SELECT a.last_analyze, a.last_vacuum, t.last_vacuum, c.relallvisible"
                        " FROM pg_stat_user_tables a, pg_stat_user_tables t, pg_class c"
                        " WHERE a.relname = 'articles' AND t.relname = 'story_terms'"
                        " AND c.oid = 'story_terms'::regclass"
                    )
                ).one()
                # the postings vacuumed (their pages all visible), the articles analysed only
                assert (analysed_at is None) == (vacuumed_at is None) == (visible == 0)
                assert articles_vacuumed is None
                return analysed_at is not None

        first = backend()
        assert not analysed()
        store.grew(3)
        assert backend() == first and not analysed()  # 3 pages: not yet
        store.grew(1)
        if BACKEND == "sqlite":
            assert backend() == first == 0  # SQLite plans each statement as it prepares it
        else:
            second = backend()
            assert second != first and analysed()
            store.grew(1)  # 5 pages: the next time is at 8
            assert backend() == second
    finally:
        store.close()
