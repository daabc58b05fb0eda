"""Re-archive responses fetched earlier through the current spider parsing and cleaning.

`crawler warc import` and `crawler reparse` share this: a stored or imported page is turned back
into the Scrapy response it was, the outlet's own spider builds the article from it (nothing is
fetched), and the pipelines' steps (clean, validate, dedup keys, store) run in one transaction.
"""

from __future__ import annotations

import re
from array import array
from collections import Counter
from collections.abc import Callable
from datetime import date, datetime, time
from typing import Any
from urllib.parse import urlsplit

from scrapy import Request
from scrapy.crawler import Crawler
from scrapy.exceptions import NotConfigured
from scrapy.http import Headers, Response, TextResponse
from scrapy.responsetypes import responsetypes
from scrapy.spiderloader import get_spider_loader
from scrapy.statscollectors import MemoryStatsCollector
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from crawler.config import ConfigError, SourceConfig, SourcesFile, project_settings
from crawler.context import ensure_source
from crawler.db.models import Article, Snapshot, Source, utcnow
from crawler.db.queries import (
    ARCHIVED,
    Outcome,
    archive_article,
    find_article,
    payload_bytes,
    record_urls,
    store_snapshot,
    supersede,
)
from crawler.db.session import Archive
from crawler.items import ArticleItem, FetchedPage
from crawler.pipelines.clean import clean_article
from crawler.pipelines.deduplicate import dedup_keys
from crawler.pipelines.validate import missing_fields
from crawler.read.warc import WarcPage
from crawler.spiders.base import ListingEntry, NewsSpider
from crawler.stories import index_article
from crawler.topics import TopicTagger

# Headers that describe how the bytes travelled, not the bytes as stored (already decoded).
TRANSPORT_HEADERS = frozenset({"content-encoding", "transfer-encoding", "content-length"})
BATCH = 500


class Skipped(Exception):
    """A page that is not re-archived; the message is the reason it is counted under."""


def _origin(url: str) -> tuple[str, int | None]:
    """Host without `www.` and the port unless it is the scheme's default."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower().removeprefix("www.")
    default = {"http": 80, "https": 443}.get(parts.scheme.lower())
    port = parts.port if parts.port != default else None
    return host, port


class Replayer:
    """The outlets' spiders, each made once without a crawl, to parse pages fetched earlier."""

    def __init__(self, sources: SourcesFile) -> None:
        self.sources = sources
        self.settings = project_settings()
        self.settings.set("CRAWLER_SOURCES", str(sources.path), priority="cmdline")
        self._loader = get_spider_loader(self.settings)
        self._spiders: dict[str, NewsSpider] = {}
        self._charset: dict[str, Any] = {}
        self._unusable: dict[str, ConfigError] = {}
        self.tagger = TopicTagger(self.settings.get("CRAWLER_TOPICS"))

    def open(self, archive: Archive) -> None:
        """Make sure the topics articles are tagged with have rows (as the store pipeline does)."""
        with archive.transaction() as session:
            self.tagger.open(session)

    def source_for(self, url: str) -> SourceConfig | None:
        """The configured source whose base URL is on the same host as `url`."""
        origin = _origin(url)
        for source in self.sources.sources.values():
            if _origin(source.base_url) == origin:
                return source
        return None

    def spider(self, name: str) -> NewsSpider:
        """The outlet's spider bound to a crawler that never crawls; ConfigError if unknown."""
        if name in self._unusable:
            raise self._unusable[name]
        if name not in self._spiders:
            try:
                spider_cls = self._loader.load(name)
            except KeyError:
                self._unusable[name] = ConfigError(f"no spider named {name!r}")
                raise self._unusable[name] from None
            crawler = Crawler(spider_cls, self.settings)
            # the spider counts its fallbacks in the stats, as in a crawl
            crawler.stats = MemoryStatsCollector(crawler)
            try:
                spider = spider_cls.from_crawler(crawler)
            except ConfigError as exc:  # the outlet is not in the sources file
                self._unusable[name] = exc
                raise
            assert isinstance(spider, NewsSpider)
            crawler.spider = spider
            self._spiders[name] = spider
            self._charset[name] = self._charset_check(crawler)
        return self._spiders[name]

    @staticmethod
    def _charset_check(crawler: Crawler) -> Any:
        # A crawl reads a page whose declared charset misreads its bytes in the right one
        # (a downloader middleware); a replayed page must be read the same way.
        from crawler.middlewares import CharsetMiddleware

        try:
            return CharsetMiddleware.from_crawler(crawler)
        except NotConfigured:
            return None

    def is_article(self, name: str, url: str) -> bool:
        """Whether the outlet's spider would follow `url` as an article."""
        path = re.sub(r"^https?://[^/]+", "", url)
        return bool(self.spider(name).article_path.search(path))

    def response(self, name: str, page: FetchedPage) -> Response:
        """The Scrapy response `page` was, read as the crawl would read it."""
        self.spider(name)  # made with its crawler's charset check
        headers = Headers(
            {k: v for k, v in page.headers.items() if k.lower() not in TRANSPORT_HEADERS}
        )
        response_cls = responsetypes.from_args(headers=headers, url=page.final_url, body=page.body)
        request = Request(page.requested_url)
        response = response_cls(
            url=page.final_url,
            status=page.status,
            headers=headers,
            body=page.body,
            request=request,
        )
        charset = self._charset.get(name)
        return charset.process_response(request, response) if charset is not None else response

    def parse(self, name: str, page: FetchedPage, entry: ListingEntry | None = None) -> ArticleItem:
        """The cleaned article the outlet's spider reads from `page`; Skipped if it is none."""
        spider = self.spider(name)
        response = self.response(name, page)
        if not isinstance(response, TextResponse):
            raise Skipped("not a text page")
        item = spider.build_article(response, entry or ListingEntry(url=page.requested_url))
        item.page = page  # the page as it was fetched then, not now
        return clean_article(item)

    def stats(self) -> Counter[str]:
        """What the spiders counted while parsing (fallbacks, overruled charsets)."""
        total: Counter[str] = Counter()
        for spider in self._spiders.values():
            for key, value in spider.crawler.stats.get_stats().items():
                if isinstance(value, int) and key.startswith(("fallback/", "charset/")):
                    total[key] += value
        return total


def _same_snapshot(session: Session, source_id: int, page: FetchedPage) -> Snapshot | None:
    """A snapshot of this very fetch archived before (importing a WARC twice adds nothing)."""
    return session.scalar(
        select(Snapshot)
        .where(
            Snapshot.source_id == source_id,
            Snapshot.requested_url == page.requested_url,
            Snapshot.fetched_at == page.fetched_at,
        )
        .limit(1)
    )


def archive_replayed(
    session: Session, replayer: Replayer, source_id: int, item: ArticleItem
) -> str:
    """Validate, key and store a replayed article with its snapshot; the outcome's name.

    The article is dated by its fetch: a capture older than the archived text of the same
    article keeps only its snapshot ("older") instead of turning the clock back.
    """
    page = item.page
    assert page is not None
    if missing_fields(item):
        return "invalid"
    known = _same_snapshot(session, source_id, page)
    if known is None:
        item.snapshot_id = store_snapshot(session, source_id, None, page).id
    else:
        item.snapshot_id = known.id
    item.page = None
    dedup_keys(item)
    assert item.canonical_url and item.content_hash
    article = find_article(session, source_id, item.canonical_url, item.content_hash)
    if (
        article is not None
        and article.content_hash != item.content_hash
        and article.updated_at > page.fetched_at
    ):
        if item.content_hash in {v.content_hash for v in article.versions}:
            return Outcome.UNCHANGED.value  # this text is an earlier version already
        return "older"
    # archive_article never moves last_seen_at backwards for an older capture
    outcome, stored = archive_article(session, source_id, item, seen_at=page.fetched_at)
    # its addresses are known now: a crawl does not fetch them again
    urls = {page.requested_url, page.final_url, item.url, item.canonical_url}
    record_urls(session, source_id, urls, ARCHIVED, stored.id, item.snapshot_id)
    if outcome is not Outcome.UNCHANGED:
        replayer.tagger.tag(session, stored.id, item, new=outcome is Outcome.NEW)
        index_article(session, stored.id, replayer.settings.get("CRAWLER_TOPICS"))
    return outcome.value


def import_pages(
    archive: Archive,
    replayer: Replayer,
    pages: Any,
    tick: Callable[[], None] = lambda: None,
) -> Counter[str]:
    """Re-archive fetched pages (FetchedPage, or a str: the reason a record is not a page)."""
    counts: Counter[str] = Counter()
    source_ids: dict[str, int] = {}
    replayer.open(archive)
    for read in pages:
        tick()
        if isinstance(read, str):
            counts[read] += 1
            continue
        page, metadata = (read.page, read.metadata) if isinstance(read, WarcPage) else (read, None)
        # the outlet the exporting archive filed the page under, else the one on its host
        named = (metadata or {}).get("outlet")
        source = replayer.sources.sources.get(named) if isinstance(named, str) else None
        source = source or replayer.source_for(page.requested_url)
        if source is None:
            counts["no configured source for the host"] += 1
            continue
        try:
            if not replayer.is_article(source.name, page.requested_url):
                counts["not an article page"] += 1
                continue
            if not 200 <= page.status < 300:
                counts[f"HTTP {page.status}"] += 1
                continue
            item = replayer.parse(source.name, page, listing_entry(page, metadata))
        except Skipped as skipped:
            counts[str(skipped)] += 1
            continue
        except ConfigError:
            counts["no spider for the source"] += 1
            continue
        if source.name not in source_ids:
            source_ids[source.name] = ensure_source(archive, source)
        with archive.transaction() as session:
            counts[archive_replayed(session, replayer, source_ids[source.name], item)] += 1
    return counts


def listing_entry(page: FetchedPage, metadata: dict[str, Any] | None) -> ListingEntry | None:
    """The page as a listing showed it, from a WARC's metadata record: its publication date
    (some outlets date an article only in their listings, which are not archived)."""
    if not metadata:
        return None
    day, at = metadata.get("published_date"), metadata.get("published_at")
    try:
        if metadata.get("published_precision") == "day" and isinstance(day, str):
            published = datetime.combine(date.fromisoformat(day), time(0))  # local midnight
        elif isinstance(at, str):
            published = datetime.fromisoformat(at)
        else:
            return None
    except ValueError:
        return None
    return ListingEntry(url=page.requested_url, published=published)


def reparse_article(
    session: Session, replayer: Replayer, outlet: str, article: Article, now: datetime
) -> str:
    """Parse and clean the article's stored snapshot again; a new version if its text changed."""
    if article.snapshot_id is None:
        return "no snapshot"
    snapshot = session.get(Snapshot, article.snapshot_id)
    assert snapshot is not None
    page = FetchedPage(
        requested_url=snapshot.requested_url,
        final_url=snapshot.final_url,
        status=snapshot.status,
        headers=snapshot.headers,
        body=payload_bytes(session, snapshot.sha256),
        fetched_at=snapshot.fetched_at,
    )
    # Some outlets date an article only in the listing it was found in: the stored date
    # stands in for that listing.
    stored_day = article.published_precision == "day" and article.published_date is not None
    published = (
        datetime.combine(article.published_date, time(0))  # the day, as the listing showed it
        if stored_day and article.published_date is not None
        else article.published_at
    )
    entry = ListingEntry(url=snapshot.requested_url, published=published)
    try:
        item = replayer.parse(outlet, page, entry)
    except Skipped as skipped:
        return str(skipped)
    if missing_fields(item):
        return "invalid"
    if item.published_at is None:
        item.published_at = article.published_at
        item.published_date = article.published_date
        item.published_precision = article.published_precision
    item.page = None
    item.snapshot_id = article.snapshot_id
    dedup_keys(item)
    # the text itself is compared too: a row edited by hand may carry a stale hash
    if item.content_hash == article.content_hash and "\n\n".join(item.body) == article.body:
        return Outcome.UNCHANGED.value
    seen = article.last_seen_at  # nothing was fetched: the article was not seen again
    supersede(session, article, item, now)
    article.last_seen_at = seen
    replayer.tagger.tag(session, article.id, item, new=False)
    index_article(session, article.id, replayer.settings.get("CRAWLER_TOPICS"))
    return Outcome.UPDATED.value


def reparse(
    archive: Archive,
    replayer: Replayer,
    outlet: str | None = None,
    tick: Callable[[], None] = lambda: None,
) -> Counter[str]:
    """Re-parse every archived article (of one outlet) from its stored snapshot."""
    counts: Counter[str] = Counter()
    now = utcnow()
    replayer.open(archive)
    with archive.sessions() as session:
        with session.begin():
            names = {i: n for i, n in session.execute(select(Source.id, Source.name))}
            statement = select(Article.id, Article.source_id).order_by(Article.id)
            if outlet:
                statement = statement.join(Source, Source.id == Article.source_id).where(
                    Source.name == outlet
                )
            # two machine integers an article: small even for millions of articles
            ids, source_ids = array("q"), array("q")
            for article_id, source_id in session.execute(statement):
                ids.append(article_id)
                source_ids.append(source_id)
        for done, (article_id, source_id) in enumerate(zip(ids, source_ids, strict=True)):
            name = names[source_id]
            try:
                replayer.spider(name)
            except ConfigError:
                counts["no spider or source configured"] += 1
                tick()
                continue
            with session.begin():  # one transaction per article
                article = session.get(Article, article_id)
                if article is not None:
                    counts[reparse_article(session, replayer, name, article, now)] += 1
            tick()
            if done % BATCH == BATCH - 1:
                session.expunge_all()  # constant memory however large the archive
    return counts


def count_articles(archive: Archive, outlet: str | None) -> int:
    """How many articles `reparse` goes through."""
    with archive.sessions() as session:
        statement = select(func.count(Article.id))
        if outlet:
            statement = statement.join(Source, Source.id == Article.source_id).where(
                Source.name == outlet
            )
        return session.scalar(statement) or 0
