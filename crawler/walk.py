"""What a crawl knows and how far its discovery walks got, kept in the archive across runs.

Known means archived (or rejected as not an article), looked up per listing, feed or sitemap
page by one indexed query. Every article address a page shows that is not known yet is recorded
as pending in the same transaction that moves the walk on, so a crawl that dies before fetching
it leaves it for the next run, which fetches every pending address its own walks did not find
again once they are done.

A walk (a paginated listing from its first page, or a sitemap index's sitemaps newest first)
stops early at a page whose articles are all archived only where that is safe: where the last
walk of the same entry point was complete (what follows was covered), or to jump to where an
unfinished walk stopped. Each page walked is recorded, so a walk cut short (killed, timed out,
capped by `max_pages`, a listing page that failed) resumes there next time. Listings list newest
first, so new articles only push older ones to later pages: resuming at the page number where a
walk stopped never skips an article.

    complete walk, new articles on top:  walk from page 1, stop at the first archived page
    walk that stopped at page N (next N+1): walk from page 1 until an archived page, then go on
                                         at page N+1 until an archived page (if an earlier
                                         complete walk covered what follows) or the end
    no walk yet (a new source):          walk to the end (max_pages pages a run)
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from crawler.context import CrawlContext, crawl_context, stop_on_archive_failure
from crawler.db.errors import fatal_reason, one_line
from crawler.db.queries import (
    KnownUrl,
    WalkState,
    add_pending,
    count_attempts,
    known_among,
    pending_urls,
    save_walk,
    walk_states,
)
from crawler.urls import canonicalize

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from crawler.spiders.base import NewsSpider

COMPLETE = WalkState(complete=True, covered=True, next_url=None, next_page=None)


@dataclass(frozen=True)
class WalkStep:
    """One page of a walk: the entry point it belongs to and its page number."""

    entry: str
    page: int
    url: str


@dataclass
class _Progress:
    """A walk during this run."""

    entry: str
    previous: WalkState | None
    tail: bool  # past the newest pages: walking where the last walk stopped (or a first walk)
    stop_ok: bool  # an archived page ends this part of the walk
    pages: int = 0  # pages walked in this run
    last_page: int = 0
    done: bool = False


class ArchiveUnavailable(Exception):
    """The archive cannot be read or written any more; the crawl is being stopped."""


class Walks:
    """The crawl's known URLs, pending URLs and walk progress (one per crawl)."""

    def __init__(self, spider: NewsSpider) -> None:
        self.spider = spider
        self.crawler = spider.crawler
        crawler = spider.crawler
        self.max_attempts = crawler.settings.getint("CRAWLER_PENDING_ATTEMPTS", 5)
        self._states: dict[str, WalkState] = {}
        self._progress: dict[str, _Progress] = {}
        # During a crawl a walked page's state is saved on a thread of its own, in order: on
        # SQLite the reactor would otherwise wait for the archive writer's lock (and its busy
        # handler's sleeps), 23 ms a listing page measured, 11% of a crawl's time.
        self._saver: ThreadPoolExecutor | None = None
        self._failures: deque[tuple[str, Exception]] = deque()
        self._failed = False

    @property
    def refresh(self) -> bool:
        return self.spider.refresh

    @property
    def max_pages(self) -> int:
        """Pages of one walk read at most in a run (the source's `max_pages`)."""
        return self.spider.source.max_pages

    @property
    def context(self) -> CrawlContext:
        return crawl_context(self.crawler)

    def open(self) -> list[str]:
        """Load the walks' states; the pending addresses left by earlier runs."""
        context = self.context
        self._progress = {}
        if self._crawling():
            self._saver = ThreadPoolExecutor(max_workers=1, thread_name_prefix="walk-saver")
        with self._guard(), context.archive.transaction() as session:
            self._states = walk_states(session, context.source_id)
            return pending_urls(session, context.source_id, self.max_attempts)

    def close(self) -> None:
        """Wait for the walk states still being saved, and report what failed (spider_closed,
        before the run is recorded)."""
        saver, self._saver = self._saver, None
        if saver is not None:
            saver.shutdown(wait=True)
            self._report_failures()

    def _crawling(self) -> bool:
        try:
            return bool(self.crawler.engine.running)
        except (AttributeError, RuntimeError):  # a spider tested on its own
            return False

    def _save(self, url: str, work: Callable[[Session], None]) -> None:
        """Run `work` (the state of the walked page at `url`) in a transaction of its own: on
        the saver's thread during a crawl, at once otherwise."""
        if self._saver is None:
            with self._guard(), self.context.archive.transaction() as session:
                work(session)
            return
        failure = self.context.failure
        if failure is not None:  # stopping already: nothing more is saved
            raise ArchiveUnavailable(failure)
        self._saver.submit(self._save_now, url, work)

    def _save_now(self, url: str, work: Callable[[Session], None]) -> None:
        """`_save`'s work on the saver's thread. After a failure nothing more is saved in this
        run: a later page's state would move the walk past the page whose addresses were not
        recorded; without it the next run walks those pages again. A failure is reported on the
        reactor's thread (or by `close`, whichever comes first)."""
        from twisted.internet import reactor

        if self._failed or self.context.failure is not None:
            return
        try:
            with self.context.archive.transaction() as session:
                work(session)
        except Exception as exc:
            self._failed = True
            self._failures.append((url, exc))
            reactor.callFromThread(self._report_failures)

    def _report_failures(self) -> None:
        """Report the saves that failed: a failure no page escapes stops the crawl."""
        while self._failures:
            url, exc = self._failures.popleft()
            reason = fatal_reason(exc)
            if reason is not None:
                stop_on_archive_failure(self.crawler, reason)
            else:
                problem = f"the walk's state was not saved: {one_line(exc)}"
                self.spider.report_error(url, problem)

    def attempted(self, urls: list[str]) -> None:
        """Pending addresses about to be fetched: one more attempt each (a URL that fails for
        good is given up after CRAWLER_PENDING_ATTEMPTS runs that fetched it)."""
        context = self.context
        with self._guard(), context.archive.transaction() as session:
            count_attempts(session, context.source_id, urls)

    def known(self, urls: Iterable[str]) -> dict[str, KnownUrl]:
        """The known ones among `urls`, by the URL as given (its canonical form counts too)."""
        wanted = list(dict.fromkeys(urls))
        if not wanted:
            return {}
        forms = {url: canonicalize(url) for url in wanted}
        context = self.context
        with self._guard(), context.archive.transaction() as session:
            found = known_among(
                session,
                context.source_id,
                [*wanted, *forms.values()],
                with_validators=self.refresh,
            )
        known = {}
        for url in wanted:
            hit = found.get(url) or found.get(forms[url])
            if hit is not None:
                known[url] = hit
        return known

    def found(self, urls: list[str]) -> None:
        """Record addresses a page without a walk (a feed) showed and that are not known."""
        if urls:
            context = self.context
            with self._guard(), context.archive.transaction() as session:
                add_pending(session, context.source_id, urls)

    def walked(
        self, step: WalkStep, fresh: list[str], articles: int, next_url: str | None
    ) -> WalkStep | None:
        """A page of a walk was read: `fresh` its articles not known yet (recorded as pending),
        `articles` how many it showed, `next_url` the page after it. The page to walk next, or
        None where the walk ends in this run; the walk's state is saved with the pending URLs."""
        progress = self._progress.get(step.entry)
        if progress is None:
            previous = self._states.get(step.entry)
            first_walk = previous is None or self.refresh
            progress = self._progress[step.entry] = _Progress(
                step.entry, previous, tail=first_walk, stop_ok=not first_walk
            )
        progress.pages += 1
        progress.last_page = step.page
        known_page = articles > 0 and not fresh and not self.refresh
        save: WalkState | None = None
        following: WalkStep | None = None
        previous = progress.previous
        if known_page and progress.stop_ok:
            if not progress.tail and previous is not None and previous.next_url:
                # the newest pages are walked: go on where the last walk stopped
                progress.tail, progress.stop_ok = True, previous.covered
                save = previous
                following = WalkStep(
                    step.entry, previous.next_page or step.page + 1, previous.next_url
                )
            else:
                save = COMPLETE
        elif next_url is None:
            save = COMPLETE  # the listing's end
        else:
            following = WalkStep(step.entry, step.page + 1, next_url)
            if (
                not progress.tail
                and previous is not None
                and previous.next_page
                and following.page >= previous.next_page
            ):
                # the newest pages reached where the last walk stopped: this is its tail now
                progress.tail, progress.stop_ok = True, previous.covered
            if progress.tail:
                covered = progress.stop_ok
            else:
                # walking the newest pages: where an earlier complete walk began is covered; an
                # unfinished one's resume point would be lost if this stops: walk on to the end
                covered = previous is not None and previous.complete
            save = WalkState(False, covered, following.url, following.page)
        if save is not None and save.complete:
            progress.done = True
        context = self.context
        source_id, last_page, run_id = context.source_id, progress.last_page, context.run_id
        keep = save if save is not None and not (self.refresh and not save.complete) else None

        def work(session: Session) -> None:
            add_pending(session, source_id, fresh)
            if keep is not None:
                save_walk(session, source_id, step.entry, keep, last_page, run_id)

        self._save(step.url, work)
        if following is not None and progress.pages >= self.max_pages:
            self._inc("discovery/max_pages_reached")
            following = None
        if save is COMPLETE and known_page:
            self._inc("discovery/stopped_at_known_page")
        self._report(progress)
        return following

    def failed(self, step: WalkStep) -> None:
        """A page of a walk could not be fetched or read: the walk stops there this run."""
        progress = self._progress.get(step.entry)
        if progress is None:
            self.context.walks[step.entry] = f"stopped at page {step.page - 1}"
        else:
            self._report(progress)

    def _report(self, progress: _Progress) -> None:
        self.context.walks[progress.entry] = (
            "complete" if progress.done else f"stopped at page {progress.last_page}"
        )

    @contextmanager
    def _guard(self) -> Iterator[None]:
        """Turn an archive error that will recur for every page into stopping the crawl."""
        failure = self.context.failure
        if failure is not None:  # stopping already: write nothing more
            raise ArchiveUnavailable(failure)
        try:
            yield
        except Exception as exc:
            reason = fatal_reason(exc)
            if reason is None:
                raise
            stop_on_archive_failure(self.crawler, reason)
            raise ArchiveUnavailable(reason) from None

    def _inc(self, key: str) -> None:
        if self.crawler.stats is not None:
            self.crawler.stats.inc_value(key)
