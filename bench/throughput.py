"""Throughput, start-up and memory of `crawler crawl` against a bare Scrapy spider.

Serves N generated kcna_watch-style article pages (about 65 KB each, crawler/mirror/generated.py)
from a local mirror and, in alternating rounds, crawls them with

- the baseline: bench/bare_spider.py, a plain `scrapy.Spider` with none of the project's code or
  settings, the same selectors, yielding dicts to no pipeline;
- `crawler crawl kcna_watch` into a fresh archive (every page snapshotted, every article stored),
  then `crawler crawl kcna_watch --refresh` of the now fully archived outlet;

each in its own process (the project's modules compiled to bytecode first, as installed),
measured from outside: pages/s from the first article request to the process's exit, CPU ms per
page (user + system of the process and its children, start-up included; of it, what the crawl's
children used, the archive writer, sampled every 0.1 s), start-up (launch to first article
request, as the mirror saw it) and the peak RSS of the whole process tree (psutil, sampled every
0.1 s). Same concurrency (16), no delay, no AutoThrottle, robots.txt obeyed. Then the
archive-size case, in rounds of its own: the same first crawl and refresh into an archive
already holding BIG articles of the outlet (bulk-inserted, not crawled), alternated with a first
crawl into a fresh archive. Every measured run starts on a settled machine (`Archives.settle`).

All of it on SQLite and, given a PostgreSQL server URL (--postgres, or CRAWLER_BENCH_POSTGRES_URL
or CRAWLER_TEST_POSTGRES_URL), on PostgreSQL, in databases the bench creates and drops.

    python bench/throughput.py [--pages 3000] [--rounds 3] [--big 200000] [--postgres URL]
                               [--databases sqlite,postgresql] [--keep DIR]

Prints every run's figures, then medians and the ratios measured in this run.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psutil

from crawler.mirror import MirrorServer
from crawler.mirror.lean import LeanServer

ROOT = Path(__file__).resolve().parents[1]
BARE_SPIDER = Path(__file__).with_name("bare_spider.py")
ARTICLE = re.compile(r"^/newstream/\d+-\d+/[^/]+/$")
CONCURRENCY = 16
SAMPLE_EVERY = 0.1
SETTLE_SECONDS = 1.0
CRAWL_SETTINGS = (
    "AUTOTHROTTLE_ENABLED=False",
    "DOWNLOAD_DELAY=0",
    f"CONCURRENT_REQUESTS={CONCURRENCY}",
    f"CONCURRENT_REQUESTS_PER_DOMAIN={CONCURRENCY}",
    "LOG_LEVEL=WARNING",
)


@dataclass(frozen=True)
class Figures:
    """One crawl, measured from outside its process."""

    articles: int
    not_modified: int
    startup: float
    seconds: float
    pages_per_second: float
    cpu_ms_per_page: float
    peak_rss_mb: float
    # of the CPU, what the crawl's child processes used (the archive writer), sampled
    children_cpu_ms_per_page: float = 0.0
    # the bench's own process meanwhile: the site's server (and the sampling), on the same cores
    server_cpu_ms_per_page: float = 0.0
    # a PostgreSQL server on this machine meanwhile (all of its processes), else 0
    database_cpu_ms_per_page: float = 0.0

    def line(self, label: str) -> str:
        children = (
            f" (writer {self.children_cpu_ms_per_page:4.2f})"
            if self.children_cpu_ms_per_page
            else " " * 14
        )
        return (
            f"  {label:28} {self.articles:6d} pages ({self.not_modified:5d} x 304) "
            f"{self.pages_per_second:7.1f} pages/s {self.cpu_ms_per_page:6.2f} CPU ms/page"
            f"{children} start-up {self.startup:5.2f} s  wall {self.seconds:6.1f} s  "
            f"peak RSS {self.peak_rss_mb:6.1f} MB  "
            f"server {self.server_cpu_ms_per_page:4.2f} CPU ms/page"
            + (
                f"  PostgreSQL {self.database_cpu_ms_per_page:4.2f} CPU ms/page"
                if self.database_cpu_ms_per_page
                else ""
            )
        )


def tree_rss(root: psutil.Process, children_cpu: dict[int, float] | None = None) -> int:
    """Resident bytes of a process and all its descendants, now; the CPU seconds each
    descendant has used so far go into `children_cpu` (by pid)."""
    total = 0
    try:
        children = root.children(recursive=True)
    except psutil.NoSuchProcess:
        return 0
    for process in [root, *children]:
        try:
            total += process.memory_info().rss
            if children_cpu is not None and process is not root:
                times = process.cpu_times()
                children_cpu[process.pid] = times.user + times.system
        except psutil.NoSuchProcess:
            continue
    return total


def database_cpu() -> float | None:
    """CPU seconds used so far by the PostgreSQL servers running on this machine (each
    postmaster, the backends it reaped and those still running); None when there is none."""
    total, found = 0.0, False
    for process in psutil.process_iter(["name", "ppid"]):
        try:
            if process.info["name"] != "postgres":
                continue
            parent = psutil.Process(process.info["ppid"])
            if parent.name() == "postgres":
                continue  # a backend: counted below, with its postmaster
            times = process.cpu_times()
            total += times.user + times.system + times.children_user + times.children_system
            for child in process.children():
                child_times = child.cpu_times()
                total += child_times.user + child_times.system
            found = True
        except psutil.Error:
            continue
    return total if found else None


def measure(command: list[str], server: object, env: dict[str, str], log: Path) -> Figures:
    """Run a crawl to its end and measure it from outside."""
    assert isinstance(server, MirrorServer | LeanServer)
    server.clear_requests()
    own = resource.getrusage(resource.RUSAGE_SELF)
    database_before = (
        database_cpu() if "postgresql" in env.get("CRAWLER_DATABASE_URL", "") else None
    )
    launched = time.time()
    with log.open("w") as errors:
        child = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=errors
        )
    root = psutil.Process(child.pid)
    peak = 0
    children_cpu: dict[int, float] = {}
    while True:
        pid, status, usage = os.wait4(child.pid, os.WNOHANG)
        if pid:
            break
        peak = max(peak, tree_rss(root, children_cpu))
        time.sleep(SAMPLE_EVERY)
    exited = time.time()
    own_after = resource.getrusage(resource.RUSAGE_SELF)
    server_cpu = (own_after.ru_utime + own_after.ru_stime) - (own.ru_utime + own.ru_stime)
    database_after = database_cpu() if database_before is not None else None
    database = (
        database_after - database_before
        if database_before is not None and database_after is not None
        else 0.0
    )
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        raise SystemExit(f"{' '.join(command)} exited {child.returncode}:\n{log.read_text()}")
    articles = [r for r in server.requests if r.time >= launched and ARTICLE.match(r.path)]
    if not articles:
        raise SystemExit(f"{' '.join(command)} requested no article:\n{log.read_text()}")
    first = min(r.time for r in articles)
    cpu = usage.ru_utime + usage.ru_stime
    return Figures(
        articles=len(articles),
        not_modified=sum(1 for r in articles if r.status == 304),
        startup=first - launched,
        seconds=exited - launched,
        pages_per_second=len(articles) / (exited - first),
        cpu_ms_per_page=1000 * cpu / len(articles),
        peak_rss_mb=peak / 2**20,
        children_cpu_ms_per_page=1000 * sum(children_cpu.values()) / len(articles),
        server_cpu_ms_per_page=1000 * server_cpu / len(articles),
        database_cpu_ms_per_page=1000 * database / len(articles),
    )


# -- archives ----------------------------------------------------------------------------------


class Archives:
    """Fresh archives of one database kind, made from a migrated template."""

    kind = ""

    def fresh(self, name: str, *, big: bool = False) -> str:
        raise NotImplementedError

    def build_big(self, base_url: str, articles: int) -> None:
        """Make the template of the large archive."""
        raise NotImplementedError

    def drop(self, url: str) -> None:
        raise NotImplementedError

    def settle(self) -> None:
        """Before each measured run: what the archives' copies wrote is on disk, and the machine
        quiet. A crawl started while the kernel (or PostgreSQL's checkpointer) still writes out
        a 200,000-article copy took 0.1 to 0.2 s longer to start than one into a fresh archive;
        settled, the two start alike (alternated, 6 rounds each: medians 0.90 and 0.92 s)."""
        os.sync()
        time.sleep(SETTLE_SECONDS)

    def close(self) -> None:
        """Remove every database made."""


class SqliteArchives(Archives):
    kind = "SQLite"

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.template = workdir / "template.db"
        self.big_template = workdir / "big-template.db"
        migrate(f"sqlite:///{self.template}")

    def fresh(self, name: str, *, big: bool = False) -> str:
        target = self.workdir / f"{name}.db"
        for stale in self.workdir.glob(f"{name}.db*"):
            stale.unlink()
        # settled on disk before the crawl (`settle`), as a long-kept archive is: otherwise the
        # crawl's first commit (SQLite syncs the file at a checkpoint) writes the whole fresh
        # copy out, 0.18 s of its start-up at 200,000 articles
        shutil.copyfile(self.big_template if big else self.template, target)
        return f"sqlite:///{target}"

    def build_big(self, base_url: str, articles: int) -> None:
        shutil.copyfile(self.template, self.big_template)
        bulk_insert(f"sqlite:///{self.big_template}", base_url, articles)

    def drop(self, url: str) -> None:
        path = Path(url.removeprefix("sqlite:///"))
        for file in path.parent.glob(path.name + "*"):
            file.unlink()


class PostgresArchives(Archives):
    kind = "PostgreSQL"

    def __init__(self, server_url: str) -> None:
        from sqlalchemy.engine import make_url

        self.server = make_url(server_url)
        self.prefix = f"bench_tp_{os.getpid()}"
        self.made: list[str] = []
        self.template = self._create("template")
        migrate(self._url(self.template))
        self._admin("VACUUM ANALYZE", self.template)
        self.big_template: str | None = None

    def _url(self, database: str) -> str:
        return self.server.set(database=database).render_as_string(hide_password=False)

    def _admin(self, statement: str, database: str | None = None) -> None:
        import psycopg

        server = self.server.set(drivername="postgresql")
        if database:
            server = server.set(database=database)
        url = server.render_as_string(hide_password=False)
        with psycopg.connect(url, autocommit=True) as connection:
            connection.execute(statement.encode())

    def _create(self, name: str, template: str | None = None) -> str:
        database = f"{self.prefix}_{name}"
        self._admin(f'DROP DATABASE IF EXISTS "{database}"')
        self._admin(
            f'CREATE DATABASE "{database}"' + (f' TEMPLATE "{template}"' if template else "")
        )
        self.made.append(database)
        return database

    def fresh(self, name: str, *, big: bool = False) -> str:
        template = self.big_template if big else self.template
        return self._url(self._create(name, template))

    def build_big(self, base_url: str, articles: int) -> None:
        self.big_template = self._create("big_template", self.template)
        bulk_insert(self._url(self.big_template), base_url, articles)
        # vacuumed and analysed, as autovacuum leaves a long-kept archive, and so not vacuumed
        # by autovacuum while the crawls run
        self._admin("VACUUM ANALYZE", self.big_template)

    def drop(self, url: str) -> None:
        from sqlalchemy.engine import make_url

        database = make_url(url).database
        self._admin(f'DROP DATABASE IF EXISTS "{database}"')
        if database in self.made:
            self.made.remove(database)

    def settle(self) -> None:
        # the copies' pages written out by a checkpoint, not by the checkpointer during a crawl
        self._admin("CHECKPOINT")
        super().settle()

    def close(self) -> None:
        for database in list(self.made):
            self._admin(f'DROP DATABASE IF EXISTS "{database}"')
        self.made.clear()


def migrate(url: str) -> None:
    from crawler.db.session import make_engine, upgrade

    engine = make_engine(url)
    try:
        upgrade(engine)
    finally:
        engine.dispose()


def bulk_insert(url: str, base_url: str, count: int) -> None:
    """`count` archived articles of kcna_watch, each with its snapshot, by direct inserts."""
    from sqlalchemy import insert

    from crawler.db.models import Article, Payload, Snapshot, Source
    from crawler.db.session import make_engine

    engine = make_engine(url)
    words = [
        "ministry",
        "delegation",
        "treaty",
        "cooperation",
        "factory",
        "harvest",
        "province",
        "reception",
    ]
    now = datetime.now(UTC) - timedelta(days=1)
    body = b"<html><body><p>archived</p></body></html>"
    try:
        with engine.begin() as connection:
            source_id = connection.execute(
                insert(Source)
                .values(name="kcna_watch", base_url=base_url, created_at=now)
                .returning(Source.id)
            ).scalar_one()
            connection.execute(
                insert(Payload).values(sha256="0" * 64, size=len(body), content=body)
            )
        chunk = 5000
        for start in range(0, count, chunk):
            indexes = range(start, min(start + chunk, count))
            with engine.begin() as connection:
                snapshot_ids = [
                    row[0]
                    for row in connection.execute(
                        insert(Snapshot).returning(Snapshot.id, sort_by_parameter_order=True),
                        [
                            {
                                "source_id": source_id,
                                "run_id": None,
                                "requested_url": archived_url(base_url, index),
                                "final_url": archived_url(base_url, index),
                                "status": 200,
                                "headers": {"ETag": [f'"{index:020d}"']},
                                "fetched_at": now,
                                "sha256": "0" * 64,
                                "size": len(body),
                            }
                            for index in indexes
                        ],
                    )
                ]
                connection.execute(
                    insert(Article),
                    [
                        {
                            "source_id": source_id,
                            "url": archived_url(base_url, index),
                            "canonical_url": archived_url(base_url, index),
                            "title": f"Archived item {index}",
                            "published_at": now - timedelta(minutes=index),
                            "body": " ".join(words[(index + k) % len(words)] for k in range(60)),
                            "content_hash": f"{index:064x}",
                            "partial": False,
                            "version": 1,
                            "first_seen_at": now,
                            "last_seen_at": now,
                            "updated_at": now,
                            "snapshot_id": snapshot_id,
                        }
                        for index, snapshot_id in zip(indexes, snapshot_ids, strict=True)
                    ],
                )
    finally:
        engine.dispose()


def archived_url(base_url: str, index: int) -> str:
    return f"{base_url}/newstream/{1600000000 + index}-{index}/archived-item-{index}/"


def archive_counts(url: str) -> tuple[int, int]:
    """(articles, snapshots) in an archive."""
    from sqlalchemy import func, select

    from crawler.db.models import Article, Snapshot
    from crawler.db.session import make_engine

    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            articles = connection.scalar(select(func.count()).select_from(Article))
            snapshots = connection.scalar(select(func.count()).select_from(Snapshot))
            return int(articles or 0), int(snapshots or 0)
    finally:
        engine.dispose()


# -- the runs ----------------------------------------------------------------------------------


@dataclass
class Results:
    bare: list[Figures]
    crawl: list[Figures]
    refresh: list[Figures]
    big_crawl: list[Figures]
    big_refresh: list[Figures]
    size_fresh: list[Figures]


def compile_project() -> None:
    """The project's modules compiled to bytecode beside them, as an installed copy has them
    and as any run from a checkout leaves them: where PYTHONDONTWRITEBYTECODE is set (as on
    the machine this bench was written on) every crawl compiled them again at its start, about
    75 ms of start-up the bare spider (a single file; Scrapy's modules are compiled when
    installed) does not pay."""
    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", "crawler", "migrations"],
        cwd=ROOT,
        check=True,
        stdout=subprocess.DEVNULL,
    )


def crawler_env(db_url: str, sources: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRAWLER_")}
    return env | {"CRAWLER_DATABASE_URL": db_url, "CRAWLER_SOURCES": str(sources)}


def crawl_command(refresh: bool = False) -> list[str]:
    command = [sys.executable, "-m", "crawler.cli", "crawl", "kcna_watch", "--no-progress"]
    for setting in CRAWL_SETTINGS:
        command += ["-s", setting]
    return command + (["--refresh"] if refresh else [])


def bench_database(
    archives: Archives, server: object, workdir: Path, pages: int, rounds: int, big: int
) -> Results:
    assert isinstance(server, MirrorServer | LeanServer)
    sources = workdir / "sources.toml"
    listing_pages = -(-pages // 50) + 1
    sources.write_text(
        f'[sources.kcna_watch]\nbase_url = "{server.base_url}"\nmax_pages = {listing_pages}\n',
        encoding="utf-8",
    )
    bare_env = {k: v for k, v in os.environ.items() if not k.startswith("CRAWLER_")}
    bare_command = [sys.executable, str(BARE_SPIDER), server.base_url, "--concurrency", "16"]
    log = workdir / "stderr.log"
    results = Results([], [], [], [], [], [])
    print(f"{archives.kind}:")
    for number in range(1, rounds + 1):
        url = archives.fresh(f"round{number}")
        env = crawler_env(url, sources)
        # alternate which goes first: on a shared 2-core machine the load drifts
        for step in ("bare", "archive") if number % 2 else ("archive", "bare"):
            archives.settle()
            if step == "bare":
                results.bare.append(measure(bare_command, server, bare_env, log))
                print(results.bare[-1].line(f"round {number} bare Scrapy"))
                continue
            results.crawl.append(measure(crawl_command(), server, env, log))
            print(results.crawl[-1].line(f"round {number} crawler crawl"))
            stored = archive_counts(url)
            if stored[0] != pages or stored[1] < pages:
                raise SystemExit(f"archived {stored[0]} articles, {stored[1]} snapshots")
            results.refresh.append(measure(crawl_command(refresh=True), server, env, log))
            print(results.refresh[-1].line(f"round {number} crawl --refresh"))
        archives.drop(url)
    if big:
        started = time.perf_counter()
        archives.build_big(server.base_url, big)
        print(f"  (built a {big:,}-article archive in {time.perf_counter() - started:.0f} s)")
        # the archive-size case in rounds of its own, each a crawl into a fresh archive and one
        # into a copy of the large one, alternating, both copies settled on disk first: start-up
        # is a fraction of a second, and one run against the earlier rounds' medians measured the
        # machine's state after the bulk load as much as the archive's size
        for number in range(1, rounds + 1):
            for step in ("fresh", "big") if number % 2 else ("big", "fresh"):
                url = archives.fresh(f"size{number}{step}", big=step == "big")
                env = crawler_env(url, sources)
                archives.settle()
                figures = measure(crawl_command(), server, env, log)
                if step == "fresh":
                    results.size_fresh.append(figures)
                    print(figures.line(f"size {number} fresh: crawl"))
                else:
                    results.big_crawl.append(figures)
                    print(figures.line(f"size {number} {big:,} archived: crawl"))
                    results.big_refresh.append(
                        measure(crawl_command(refresh=True), server, env, log)
                    )
                    print(results.big_refresh[-1].line(f"size {number} {big:,}: --refresh"))
                archives.drop(url)
    return results


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def span(values: list[float]) -> str:
    return f"{min(values):.2f}-{max(values):.2f}" if values else "-"


def summarise(kind: str, results: Results, big: int) -> None:
    bare, crawl, refresh = results.bare, results.crawl, results.refresh
    speed = [c.pages_per_second / b.pages_per_second for b, c in zip(bare, crawl, strict=True)]
    cpu = [c.cpu_ms_per_page / b.cpu_ms_per_page for b, c in zip(bare, crawl, strict=True)]
    again = [r.pages_per_second / c.pages_per_second for c, r in zip(crawl, refresh, strict=True)]
    target = 0.8 if kind == "SQLite" else 0.7

    def m(runs: list[Figures], field: str) -> float:
        return median([getattr(run, field) for run in runs])

    print(f"\n{kind}, medians of {len(bare)} rounds          bare Scrapy  crawler crawl  ratio")
    print(
        f"  pages/s                          {m(bare, 'pages_per_second'):10.1f} "
        f"{m(crawl, 'pages_per_second'):14.1f}  {median(speed):.2f} ({span(speed)}) "
        f"target >= {target}"
    )
    print(
        f"  CPU ms/page                      {m(bare, 'cpu_ms_per_page'):10.2f} "
        f"{m(crawl, 'cpu_ms_per_page'):14.2f}  {median(cpu):.2f}x"
    )
    print(
        f"    of which the archive writer    {'':10} {m(crawl, 'children_cpu_ms_per_page'):14.2f}"
    )
    startup_gap = m(crawl, "startup") - m(bare, "startup")
    print(
        f"  start-up to first article (s)    {m(bare, 'startup'):10.2f} "
        f"{m(crawl, 'startup'):14.2f}  +{startup_gap:.2f} s (target <= +0.3 s)"
    )
    print(
        f"  the site's server, CPU ms/page   {m(bare, 'server_cpu_ms_per_page'):10.2f} "
        f"{m(crawl, 'server_cpu_ms_per_page'):14.2f}"
    )
    if m(crawl, "database_cpu_ms_per_page"):
        print(
            f"  PostgreSQL server, CPU ms/page   {'':10} "
            f"{m(crawl, 'database_cpu_ms_per_page'):14.2f}  (on the same cores)"
        )
    print(
        f"  peak RSS, process tree (MB)      {m(bare, 'peak_rss_mb'):10.1f} "
        f"{m(crawl, 'peak_rss_mb'):14.1f}"
    )
    print(
        f"  --refresh / first crawl, {len(bare) and crawl[0].articles:,} archived: "
        f"{m(refresh, 'pages_per_second'):.1f} / {m(crawl, 'pages_per_second'):.1f} pages/s = "
        f"{median(again):.2f} ({span(again)}) target >= 1.0"
    )
    if big and results.big_crawl:
        bigs, fresh = results.big_crawl, results.size_fresh
        again_big = [
            r.pages_per_second / c.pages_per_second
            for c, r in zip(bigs, results.big_refresh, strict=True)
        ]
        gaps = [b.startup - f.startup for f, b in zip(fresh, bigs, strict=True)]
        print(
            f"  {big:,} archived, medians of {len(bigs)} rounds against a fresh archive"
            " in the same rounds:"
        )
        print(
            f"    --refresh / first crawl: {m(results.big_refresh, 'pages_per_second'):.1f} / "
            f"{m(bigs, 'pages_per_second'):.1f} pages/s = {median(again_big):.2f} "
            f"({span(again_big)}) target >= 1.0"
        )
        print(
            f"    start-up {m(bigs, 'startup'):.2f} s, fresh {m(fresh, 'startup'):.2f} s: "
            f"{median(gaps):+.2f} s ({span(gaps)}) target: the same"
        )
        print(
            f"    pages/s {m(bigs, 'pages_per_second'):.1f}, fresh "
            f"{m(fresh, 'pages_per_second'):.1f}; peak RSS {m(bigs, 'peak_rss_mb'):.1f} MB, "
            f"fresh {m(fresh, 'peak_rss_mb'):.1f} MB (target < 250 MB)"
        )


@contextmanager
def workspace(keep: Path | None) -> Iterator[Path]:
    if keep:
        keep.mkdir(parents=True, exist_ok=True)
        yield keep
        return
    with tempfile.TemporaryDirectory(prefix="bench-throughput-") as tmp:
        yield Path(tmp)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pages", type=int, default=3000, help="article pages to serve")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds per database")
    parser.add_argument(
        "--big", type=int, default=200_000, help="articles of the large archive (0: skip)"
    )
    parser.add_argument(
        "--postgres",
        default=os.environ.get("CRAWLER_BENCH_POSTGRES_URL")
        or os.environ.get("CRAWLER_TEST_POSTGRES_URL"),
        help="a PostgreSQL server URL (the bench creates and drops its own databases)",
    )
    parser.add_argument("--databases", default="sqlite,postgresql", help="which to bench")
    parser.add_argument("--keep", type=Path, help="keep the generated site and archives here")
    parser.add_argument(
        "--server",
        choices=("lean", "mirror"),
        default="lean",
        help="serve the site from memory (lean, the default: about a tenth of the CPU a page) or"
        " through the tests' MirrorServer, which shares the cores with the crawls it serves",
    )
    args = parser.parse_args()
    wanted = {name.strip() for name in args.databases.split(",")}
    if "postgresql" in wanted and not args.postgres:
        print("no PostgreSQL URL (--postgres): SQLite only", file=sys.stderr)
        wanted.discard("postgresql")

    from crawler.mirror.generated import write_generated_site

    compile_project()
    with workspace(args.keep) as workdir:
        site = write_generated_site(workdir / "site", args.pages)
        sizes = [p.stat().st_size for p in (site / "pages").glob("a*.html")]
        print(
            f"{len(sizes)} article pages, {min(sizes) // 1024}-{max(sizes) // 1024} KB "
            f"(mean {sum(sizes) // len(sizes) // 1024} KB), concurrency {CONCURRENCY}, "
            "no delay, AutoThrottle off, robots.txt obeyed"
        )
        summaries: list[tuple[str, Results]] = []
        serving = LeanServer if args.server == "lean" else MirrorServer
        with serving(site) as server:
            for kind in ("sqlite", "postgresql"):
                if kind not in wanted:
                    continue
                archives: Archives = (
                    SqliteArchives(workdir) if kind == "sqlite" else PostgresArchives(args.postgres)
                )
                try:
                    results = bench_database(
                        archives, server, workdir, args.pages, args.rounds, args.big
                    )
                finally:
                    archives.close()
                summaries.append((archives.kind, results))
        for kind, results in summaries:
            summarise(kind, results, args.big)
    return 0


if __name__ == "__main__":
    sys.exit(main())
