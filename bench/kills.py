"""Random SIGKILLs of a crawl, then an unkilled one: is anything lost, doubled or corrupt?

Serves a generated KCNA Watch-style site (`crawler/mirror/generated.py`) on loopback and crawls
it with `crawler crawl kcna_watch` in a child process, killed with SIGKILL (its whole process
group) at a random moment, N times over; then crawls it once more to the end. Prints the kills,
the articles archived, and what a reader of the archive would call damage:

    lost      generated articles not archived after the final crawl
    doubled   articles archived more than once (same URL or same text)
    corrupt   payloads whose bytes no longer hash to their sha256, or sized otherwise
    halves    articles without their snapshot, article snapshots without an article
    open      runs still `running` after the final crawl

    python bench/kills.py [--kills 20] [--articles 2000] [--max-delay 15]
                          [--postgres postgresql+psycopg://postgres@127.0.0.1:54329/postgres]

Exits 1 when anything was lost, doubled, corrupt, half-written or left open.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@contextmanager
def archive_url(tmp: Path, postgres: str | None) -> Iterator[str]:
    """A fresh, migrated archive: a SQLite file, or a database made on a PostgreSQL server."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    from crawler.db.session import Archive

    if postgres is None:
        url = f"sqlite:///{tmp / 'archive.db'}"
        Archive(url).dispose()
        yield url
        return
    name = f"kills_{uuid.uuid4().hex[:10]}"
    admin = create_engine(postgres, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(postgres).set(database=name).render_as_string(hide_password=False)
    try:
        Archive(url, migrate=True).dispose()
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def crawl_command() -> list[str]:
    return [
        sys.executable,
        "-m",
        "crawler.cli",
        "crawl",
        "kcna_watch",
        "--no-progress",
        "-s",
        "AUTOTHROTTLE_ENABLED=False",
        "-s",
        "DOWNLOAD_DELAY=0",
        "-s",
        "CONCURRENT_REQUESTS_PER_DOMAIN=8",
        "-s",
        "CRAWLER_RUN_SAVE_INTERVAL=1",
        "-s",
        "LOG_LEVEL=WARNING",
    ]


def start_crawl(db_url: str, sources: Path, log: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRAWLER_")}
    env.update(CRAWLER_DATABASE_URL=db_url, CRAWLER_SOURCES=str(sources))
    with log.open("ab") as out:
        return subprocess.Popen(
            crawl_command(),
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own group: the kill takes any browser with it
        )


def audit(db_url: str, expected: set[str]) -> dict[str, int]:
    """What the archive holds against what the site serves."""
    from sqlalchemy import func, select

    from crawler.db.models import Article, CrawlRun, Payload, Snapshot
    from crawler.db.queries import payload_bytes
    from crawler.db.session import Archive

    archive = Archive(db_url)
    try:
        with archive.sessions() as session:
            rows = session.execute(select(Article.url, Article.content_hash, Article.snapshot_id))
            urls, hashes, halves = [], [], 0
            for url, digest, snapshot_id in rows:
                urls.append(url)
                hashes.append(digest)
                halves += snapshot_id is None
            used = select(Article.snapshot_id).where(Article.snapshot_id.is_not(None))
            halves += (
                session.scalar(select(func.count(Snapshot.id)).where(Snapshot.id.not_in(used))) or 0
            )
            corrupt = 0
            for digest, size in session.execute(select(Payload.sha256, Payload.size)).all():
                body = payload_bytes(session, digest)
                corrupt += hashlib.sha256(body).hexdigest() != digest or len(body) != size
            open_runs = session.scalar(
                select(func.count(CrawlRun.id)).where(CrawlRun.status == "running")
            )
            snapshots = session.scalar(select(func.count(Snapshot.id))) or 0
    finally:
        archive.dispose()
    missing = sorted(expected - set(urls))
    if missing:
        print("lost, for instance:", *missing[:5], sep="\n  ")
    return {
        "archived": len(set(urls) & expected),
        "lost": len(expected - set(urls)),
        "doubled": (len(urls) - len(set(urls))) + (len(hashes) - len(set(hashes))),
        "corrupt": corrupt,
        "halves": halves,
        "open": int(open_runs or 0),
        "snapshots": snapshots,
    }


def run(kills: int, articles: int, max_delay: float, postgres: str | None, seed: int) -> int:
    from crawler.mirror import MirrorServer
    from crawler.mirror.generated import generate_kcna_site

    rng = random.Random(seed)
    with tempfile.TemporaryDirectory(prefix="bench-kills-") as name:
        tmp = Path(name)
        site = generate_kcna_site(tmp / "site", articles)
        log = tmp / "crawl.log"
        with MirrorServer(site.folder) as server, archive_url(tmp, postgres) as db_url:
            sources = tmp / "sources.toml"
            pages = -(-articles // site.per_page)
            sources.write_text(
                f'[sources.kcna_watch]\nbase_url = "{server.base_url}"\nevery = "1h"\n'
                f"max_pages = {pages + 1}\n",
                encoding="utf-8",
            )
            expected = {server.url(path) for path in site.paths}
            backend = "PostgreSQL" if postgres else "SQLite"
            print(f"{articles} generated articles, {pages} listing pages, archive on {backend}")
            for number in range(1, kills + 1):
                crawl = start_crawl(db_url, sources, log)
                delay = rng.uniform(1.0, max_delay)
                time.sleep(delay)
                if crawl.poll() is None:
                    os.killpg(crawl.pid, signal.SIGKILL)
                crawl.wait()
                figures = audit(db_url, expected)
                print(
                    f"kill {number:2d} after {delay:4.1f}s (exit {crawl.returncode}): "
                    f"{figures['archived']} archived so far",
                    flush=True,
                )
            started = time.monotonic()
            final = start_crawl(db_url, sources, log)
            final.wait()
            took = time.monotonic() - started
            figures = audit(db_url, expected)
            if final.returncode != 0:
                print(log.read_text(errors="replace")[-3000:])
    print(f"final crawl: exit {final.returncode} in {took:.1f}s")
    print(
        f"kills {kills}  archived {figures['archived']} of {articles}  lost {figures['lost']}  "
        f"doubled {figures['doubled']}  corrupt {figures['corrupt']}  "
        f"halves {figures['halves']}  open runs {figures['open']}  "
        f"snapshots {figures['snapshots']}"
    )
    damage = sum(figures[k] for k in ("lost", "doubled", "corrupt", "halves", "open"))
    return 0 if damage == 0 and final.returncode == 0 else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=20, help="SIGKILLs before the final crawl")
    parser.add_argument("--articles", type=int, default=2000, help="articles on the site")
    parser.add_argument(
        "--max-delay", type=float, default=15.0, help="latest kill, seconds after start"
    )
    parser.add_argument("--postgres", help="a PostgreSQL server URL (default: SQLite)")
    parser.add_argument("--seed", type=int, default=8, help="random seed of the kill times")
    args = parser.parse_args()
    return run(args.kills, args.articles, args.max_delay, args.postgres, args.seed)


if __name__ == "__main__":
    sys.exit(main())
