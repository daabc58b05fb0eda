"""The archive writer: a crawl's store stage in a process of its own, on the machine's other core.

A crawl's process fetches and parses; each page it hands over (its snapshot, its article with
topics and story index, its URLs made known) is stored here in one transaction of its own, and
what came of it is sent back. Storing costs about as much CPU as fetching and parsing, so the two
run side by side instead of one after the other.

The two processes speak `multiprocessing.connection` messages over the writer's stdin (pages in)
and stdout (results out). The writer is in a session of its own, so a Ctrl-C at the terminal
reaches the crawl only, which stops gracefully and then closes the writer's input; the writer
stores what it was given and exits. If the crawl dies (kill -9), its end of the pipe closes all
the same: the writer stores the page or two already handed over, whole, and exits. If the writer
dies, every page not yet confirmed is reported lost and the crawl stops: those URLs were never
made known, so the next run fetches them again.

The store pipeline starts it (`main()` below); it is never run by hand.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import itertools
import logging
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING, Any

from crawler.db.errors import fatal_reason, one_line
from crawler.items import ArticleItem, NotModifiedItem

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from crawler.stories.signing import TextSignature

logger = logging.getLogger(__name__)

# What the crawl sends after its last page.
_STOP = None
# A group commit holds at most this many pages, gathered for at most this long.
BATCH_PAGES = 32
BATCH_SECONDS = 0.25
# The youngest generation's collection threshold in the writer (Python's is 700).
WRITER_GC_THRESHOLD = 50_000
# A batch waits this long from its first page for more: a commit costs about as much as
# storing a page, and a writer that keeps up would otherwise commit page by page.
GATHER_SECONDS = 0.01
# PostgreSQL: the statements are planned again at this many pages stored, then each time they
# double (PageStore.grew), analysing these tables first (and vacuuming `VACUUMED`).
REPLAN_FIRST = 256
REPLAN_TABLES = (
    "articles",
    "article_urls",
    "article_signatures",
    "signature_bands",
    "story_terms",
    "stories",
    "snapshots",
    "payloads",
)
# The story index's postings, read from their indexes alone once their pages are all visible.
VACUUMED = ("signature_bands", "story_terms")
ANALYSED_ONLY = tuple(table for table in REPLAN_TABLES if table not in VACUUMED)
# How long a crawl that ends waits for its writer to store what it was given and exit. A page
# takes milliseconds; a writer still there after this is stuck on its database.
EXIT_SECONDS = 60.0

# The pipe that carries pages to the writer holds this many bytes (Linux's default is 64 KB):
# a page of 65 KB with its text then goes over in one write and one read, where it took the
# two processes several turns each (3,000 such pages handed over: 3,100 context switches
# against 150, and 0.17-0.23 against 0.12-0.16 ms of CPU a page for both sides, alternated).
PIPE_BYTES = 1 << 20

# (page number, crawl run id, item, the signature of its text when it is an article to store)
Message = tuple[int, int | None, ArticleItem | NotModifiedItem, "TextSignature | None"]


@dataclass(frozen=True)
class WriterConfig:
    database_url: str
    source_id: int
    topics: str | None


@dataclass(frozen=True)
class Stored:
    """What storing one page came to."""

    # "article" (outcome says new/updated/unchanged), "seen" (a 304), "rejected" (snapshot and a
    # rejected URL only), "failed" (this page's own error) or "fatal" (no page can be stored)
    kind: str
    outcome: str | None = None
    article_id: int | None = None
    version: int = 0
    matched: tuple[str, ...] = ()
    snapshot_id: int | None = None
    snapshot_sha256: str | None = None
    snapshot_bytes: int = 0
    problem: str | None = None


# Pages of SQLite's write-ahead log before the writer's commit copies them into the database
# (a checkpoint, with its fsync): SQLite's 1,000 (4 MB) made a checkpoint every 150 pages or so,
# 10% of the writer's time (alternated with 8,000: 2.36 against 2.07-2.19 ms a page).
WAL_CHECKPOINT_PAGES = 8000


def _writer_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute(f"PRAGMA wal_autocheckpoint={WAL_CHECKPOINT_PAGES}")
    cursor.close()


class PageStore:
    """Stores pages of one source, each in one transaction (runs in the writer process)."""

    def __init__(self, config: WriterConfig) -> None:
        from crawler.db.session import Archive
        from crawler.topics import TopicTagger

        self.config = config
        self.failure: str | None = None
        self._stored = 0
        self._replan_at = REPLAN_FIRST
        # its connection is never idle for long: no check (a round trip) before each batch; a
        # connection lost in the middle fails the batch as any lost connection does
        self.archive = Archive(config.database_url, migrate=False, pre_ping=False)
        if self.archive.dialect == "sqlite":
            from sqlalchemy import event

            event.listen(self.archive.engine, "connect", _writer_pragmas)
            self.archive.engine.dispose()  # the connection that checked the schema
        self.tagger = TopicTagger(config.topics)
        with self.archive.transaction() as session:
            self.tagger.open(session)

    def store(
        self,
        run_id: int | None,
        item: ArticleItem | NotModifiedItem,
        signature: TextSignature | None = None,
    ) -> Stored:
        """One page in a transaction of its own."""
        if self.failure is not None:
            return Stored("fatal", problem=self.failure)
        try:
            with self.archive.transaction() as session:
                return self._store(session, run_id, item, signature)
        except Exception as exc:
            reason = fatal_reason(exc)
            if reason is not None:
                return self._failed(reason)
            # one line, never the page's text
            return Stored("failed", problem=f"not stored: {one_line(exc)}")

    def store_batch(self, batch: list[Message]) -> list[tuple[int, Stored]]:
        """Pages that arrived together, in one transaction (a group commit): each page is still
        whole or absent, and a failure of any page sends each page back through `store` alone, to
        tell the failed page from the others; unless the archive itself failed (a full disk),
        which no page escapes: the crawl is told at once."""
        if len(batch) > 1 and self.failure is None:
            try:
                with self.archive.transaction() as session:
                    return [
                        (n, self._store(session, run, item, sig)) for n, run, item, sig in batch
                    ]
            except Exception as exc:
                reason = fatal_reason(exc)
                if reason is not None:
                    self._failed(reason)
        return [(n, self.store(run, item, sig)) for n, run, item, sig in batch]

    def grew(self, pages: int) -> None:
        """Count pages stored; on PostgreSQL, have the statements planned again each time the
        crawl's pages double (from REPLAN_FIRST) while they are a large part of the archive.

        The writer's connection keeps its prepared statements' generic plans for the whole
        crawl, and a plan made while a table was empty stays: the article lookup made on a fresh
        archive filtered every article of the outlet for each page (1.97 ms at 5,000 articles,
        growing with them, instead of 0.07 ms by its index). The tables are analysed and the
        connections replaced (their statements are prepared again, with today's sizes).

        The story index's postings are vacuumed as well, which marks their pages visible to
        all: the story candidates' postings are then read from their index alone, where each of
        a page's 1,152 postings cost a visit to its table row (the database server's CPU
        measured 3.14 -> 2.87 ms a page, 3,000 captured pages replayed, alternated; the vacuums
        included). Autovacuum would do the same, but not before a minute, and a crawl's first
        minute is most of a small one. Only those: vacuuming `articles` and `snapshots` too
        read every page of an archive bulk-loaded and never analysed (its size unknown, so
        taken for small). A table another vacuum holds is skipped, not waited for."""
        self._stored += pages
        if (
            self.failure is not None
            or self.archive.dialect != "postgresql"
            or self._stored < self._replan_at
        ):
            return
        self._replan_at *= 2
        from sqlalchemy import text

        try:
            with self.archive.engine.connect() as connection:
                archived = connection.execute(
                    text("SELECT reltuples FROM pg_class WHERE oid = 'articles'::regclass")
                ).scalar()
                if archived is not None and archived > 2 * self._stored:
                    return  # the crawl's pages are a small part: the plans stand
                connection.commit()
                # VACUUM runs outside a transaction
                outside = connection.execution_options(isolation_level="AUTOCOMMIT")
                outside.execute(text(f"VACUUM (ANALYZE, SKIP_LOCKED) {', '.join(VACUUMED)}"))
                outside.execute(text(f"ANALYZE (SKIP_LOCKED) {', '.join(ANALYSED_ONLY)}"))
        except Exception as exc:  # the next batch meets a failing archive, if it fails
            logger.debug("could not analyse the archive: %s", one_line(exc))
        self.archive.dispose()

    def _failed(self, reason: str) -> Stored:
        """No page can be stored any more (a full disk, a lost connection): every later page is
        refused unread, and the connections are closed, so that the crawl can still close its
        run in the room the archive has left."""
        self.failure = reason
        self.archive.dispose()
        return Stored("fatal", problem=reason)

    def _store(
        self,
        session: Session,
        run_id: int | None,
        item: ArticleItem | NotModifiedItem,
        signature: TextSignature | None,
    ) -> Stored:
        from crawler.db.queries import (
            ARCHIVED,
            REJECTED,
            Outcome,
            archive_article,
            mark_seen,
            record_urls,
            store_snapshot,
        )
        from crawler.stories import index_article
        from crawler.stories.index import new_article_text

        source_id = self.config.source_id
        if isinstance(item, NotModifiedItem):
            mark_seen(session, source_id, item.url, article_id=item.article_id)
            return Stored("seen")
        page = item.page
        snapshot_id, sha256, matched = None, None, set()
        outcome, article_id, version = None, None, 0
        # Snapshot, article, topics, story index and known URLs are written together: any error
        # rolls the whole page back.
        urls = {item.url, item.canonical_url or ""}
        if page is not None:
            snapshot = store_snapshot(session, source_id, run_id, page)
            snapshot_id, sha256 = snapshot.id, snapshot.sha256
            urls |= {page.requested_url, page.final_url}
        if item.rejected:
            record_urls(session, source_id, urls, REJECTED, None, snapshot_id)
        else:
            item.snapshot_id, item.snapshot_sha256 = snapshot_id, sha256
            result, article = archive_article(session, source_id, item)
            if result is not Outcome.UNCHANGED:
                new = result is Outcome.NEW
                matched = self.tagger.tag(session, article.id, item, new)
                # copies and stories kept in step, in the same transaction
                text = None
                if new:
                    text = new_article_text(
                        article.id,
                        source_id,
                        item.title or "",
                        "\n\n".join(item.body),
                        item.published_at,
                        article.last_seen_at,
                        item.original_source,
                    )
                index_article(session, article.id, self.config.topics, signature, text)
            record_urls(session, source_id, urls, ARCHIVED, article.id, snapshot_id)
            outcome, article_id, version = result.value, article.id, article.version
        size = len(page.body) if page is not None else 0
        kind = "rejected" if item.rejected else "article"
        return Stored(
            kind, outcome, article_id, version, tuple(sorted(matched)), snapshot_id, sha256, size
        )

    def close(self) -> None:
        self.archive.dispose()


def serve(pages_in: Connection, results_out: Connection) -> None:
    """Store every page received until the crawl says stop or goes away.

    What has arrived while the last batch was stored, and what arrives within GATHER_SECONDS
    of a batch's first page, is stored together, in one transaction (at most BATCH_PAGES
    pages, gathered for at most BATCH_SECONDS): a writer that falls behind catches up by
    committing less often, and one that keeps up still commits a few pages at a time. Results
    go back once their batch committed, so the crawl counts only what is in the archive; a kill
    costs the batch being stored, whose pages the next run fetches again."""
    config: WriterConfig = pages_in.recv()
    try:
        store = PageStore(config)
    except Exception as exc:
        results_out.send(Stored("fatal", problem=f"the archive writer: {one_line(exc)}"))
        return
    gc.freeze()
    try:
        while True:
            try:
                message = pages_in.recv()
            except EOFError:
                return
            if message is _STOP:
                return
            batch = [message]
            started = time.monotonic()
            stop = False
            while len(batch) < BATCH_PAGES:
                now = time.monotonic()
                if now >= started + BATCH_SECONDS or not pages_in.poll(
                    max(0.0, started + GATHER_SECONDS - now)
                ):
                    break
                message = pages_in.recv()
                if message is _STOP:
                    stop = True
                    break
                batch.append(message)
            results_out.send(store.store_batch(batch))
            store.grew(len(batch))
            if stop:
                return
    finally:
        store.close()


def main() -> int:
    # The terminal's Ctrl-C is for the crawl, which closes this process's input when done.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # Fewer collections, as in a crawl (crawler/runner.py, `crawl_gc`): a page's objects are
    # freed by reference counting; what the writer's start made is set apart once it is ready
    # (`serve`), so the collections that remain do not go through it again.
    gc.set_threshold(WRITER_GC_THRESHOLD, *gc.get_threshold()[1:])
    pages_in = Connection(os.dup(0), writable=False)
    results_out = Connection(os.dup(1), readable=False)
    # whatever a library might print must not land among the results
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    with contextlib.suppress(BrokenPipeError, EOFError):  # the crawl is gone
        serve(pages_in, results_out)
    # Everything is committed and closed, and the crawl waits for this process to exit: what
    # is left is set apart from the collector, as at its start (crawler.cli `main`).
    gc.freeze()
    return 0


def _widen(pipe: int) -> None:
    """Give the pipe `PIPE_BYTES` of room where the system allows it (Linux, within
    /proc/sys/fs/pipe-max-size); elsewhere it keeps its size, which only costs time."""
    try:
        import fcntl

        fcntl.fcntl(pipe, fcntl.F_SETPIPE_SZ, PIPE_BYTES)  # named on Linux only
    except (ImportError, AttributeError, OSError):
        pass


class ArchiveWriter:
    """The crawl's side: hands pages to the writer process and awaits what came of each.

    Two threads carry the messages (a page's bytes into a pipe, results out of one) so that the
    reactor never waits on a pipe; both spend their time blocked in a system call."""

    def __init__(self, config: WriterConfig, on_lost: Callable[[str], None]) -> None:
        """`on_lost(reason)` is called, on the reactor's thread, if the writer stops unasked."""
        self.loop = asyncio.get_running_loop()
        self._on_lost = on_lost
        self.process = subprocess.Popen(
            # not `-m crawler.db.writer`: its classes must unpickle under their own module's name
            [sys.executable, "-c", "import sys, crawler.db.writer as w; sys.exit(w.main())"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            start_new_session=True,
        )
        assert self.process.stdin is not None and self.process.stdout is not None
        _widen(self.process.stdin.fileno())
        self._pages_out = Connection(os.dup(self.process.stdin.fileno()), readable=False)
        self._results_in = Connection(os.dup(self.process.stdout.fileno()), writable=False)
        self.process.stdin.close()
        self.process.stdout.close()
        self._numbers = itertools.count()
        self._pending: dict[int, asyncio.Future[Stored]] = {}
        self._outbox: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._outbox.put(config)
        self._lost: str | None = None
        self._closing = False
        self._sender = threading.Thread(target=self._send, name="archive-writer-out", daemon=True)
        self._receiver = threading.Thread(
            target=self._receive, name="archive-writer-in", daemon=True
        )
        self._sender.start()
        self._receiver.start()

    async def store(
        self,
        run_id: int | None,
        item: ArticleItem | NotModifiedItem,
        signature: TextSignature | None = None,
    ) -> Stored:
        if self._lost is not None:
            return Stored("fatal", problem=self._lost)
        number = next(self._numbers)
        future: asyncio.Future[Stored] = self.loop.create_future()
        self._pending[number] = future
        self._outbox.put((number, run_id, item, signature))
        return await future

    async def close(self, timeout: float = EXIT_SECONDS) -> int:
        """Let the writer store what it was given, then wait for it to exit; its exit status.

        A writer that has not exited `timeout` seconds after being told to (a database that
        does not answer) is killed: what it had not committed is fetched again by the next run,
        and the crawl ends instead of waiting with it."""
        self._closing = True
        self._outbox.put(_STOP)
        try:
            status = await asyncio.wait_for(asyncio.to_thread(self.process.wait), timeout)
        except TimeoutError:
            logger.warning(
                "the archive writer did not exit within %ss of the crawl's end: stopped", timeout
            )
            self.process.kill()
            status = await asyncio.to_thread(self.process.wait)
        await asyncio.to_thread(self._receiver.join)
        return status

    def _send(self) -> None:
        try:
            while True:
                message = self._outbox.get()
                try:
                    self._pages_out.send(message)
                except OSError:
                    raise
                except Exception as exc:  # a page that cannot be pickled: nothing was written
                    problem = f"not stored: cannot hand the page over: {one_line(exc)}"
                    failed = [(message[0], Stored("failed", problem=problem))]
                    self.loop.call_soon_threadsafe(self._resolve, failed)
                if message is _STOP:
                    break
        except OSError:
            pass  # the writer is gone: the receiver reports it
        finally:
            self._pages_out.close()

    def _receive(self) -> None:
        try:
            while True:
                results = self._results_in.recv()
                self.loop.call_soon_threadsafe(self._resolve, results)
        except (EOFError, OSError):
            pass
        except Exception as exc:  # a result that cannot be read: the writer is no use any more
            self._lost = f"the archive writer's answer is unreadable: {one_line(exc)}"
        finally:
            self._results_in.close()
            with contextlib.suppress(RuntimeError):  # the loop is already closed
                self.loop.call_soon_threadsafe(self._writer_gone)

    def _resolve(self, results: list[tuple[int, Stored]] | Stored) -> None:
        if isinstance(results, Stored):  # the writer could not start
            self._lost = results.problem
            self._fail_pending(results)
            return
        for number, stored in results:
            future = self._pending.pop(number, None)
            if future is not None and not future.done():
                future.set_result(stored)

    def _writer_gone(self) -> None:
        if self._closing and not self._pending:
            return
        status = self.process.poll()
        self._lost = self._lost or (
            "the archive writer stopped"
            + (f" (exit status {status})" if status is not None else "")
        )
        self._fail_pending(Stored("fatal", problem=self._lost))
        self._on_lost(self._lost)

    def _fail_pending(self, stored: Stored) -> None:
        pending, self._pending = self._pending, {}
        for future in pending.values():
            if not future.done():
                future.set_result(stored)
