"""Speed of `crawler web` through HTTP over a large archive: the search page and the article page.

Builds the synthetic archive of bench/query.py (default 1,000,000 articles), then gives it what
the article page shows: a snapshot per article (the raw pages shared among 64 distinct payloads,
as a dedup'd archive has them) and, for one article in 20, an earlier version with a second
snapshot. Then starts `crawler web` on it in a child process (read-only, as a user would) and
requests, one at a time over one keep-alive connection:

- the search page `/search?q=...` for a one-word query and a phrase (total count, 20 ranked hits
  with snippets, the filters' lists) and the JSON `/api/search`;
- the article page `/articles/ID` for random articles, a third of them with two versions (the
  word diff) and two snapshots.

Targets (issue 13): search page p95 < 150 ms, article page p95 < 100 ms.

    python bench/web.py [--articles 1000000] [--db FILE] [--reuse] [--repeat 200]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import zstandard

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.query import (  # noqa: E402
    EXTRA_QUERIES,
    ONE_WORD,
    PHRASE,
    generate,
    percentile,
    verdict,
)

PAYLOADS = 64
VERSION_EVERY = 20
BATCH = 50_000
SEARCH_TARGET_MS = 150
ARTICLE_TARGET_MS = 100


def page_bytes(n: int) -> bytes:
    """A synthetic article page of about 40 KB."""
    rng = random.Random(n)
    words = [f"word{rng.randint(0, 5000)}" for _ in range(6000)]
    return (
        f"<!doctype html><html><head><title>page {n}</title></head><body>"
        f"<h1>page {n}</h1><p>{' '.join(words)}</p></body></html>"
    ).encode()


def add_history(path: Path) -> tuple[int, int]:
    """Snapshots for every article and an earlier version for one in VERSION_EVERY; the counts
    of snapshots and versions added."""
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=OFF")
    compressor = zstandard.ZstdCompressor(level=3)
    digests = []
    with conn:
        for n in range(PAYLOADS):
            body = page_bytes(n)
            digest = hashlib.sha256(body).hexdigest()
            digests.append((digest, len(body)))
            conn.execute(
                "INSERT OR IGNORE INTO payloads (sha256, size, content) VALUES (?, ?, ?)",
                (digest, len(body), compressor.compress(body)),
            )
    total = conn.execute("SELECT max(id) FROM articles").fetchone()[0]
    snapshots = versions = 0
    headers = '{"Content-Type": ["text/html; charset=utf-8"]}'
    rows = conn.execute(
        "SELECT id, source_id, url, first_seen_at, title, body, published_at, content_hash "
        "FROM articles ORDER BY id"
    )
    shots: list[tuple[object, ...]] = []
    older: list[tuple[object, ...]] = []
    for article_id, source_id, url, seen, title, body, published, digest in rows:
        sha, size = digests[article_id % PAYLOADS]
        shots.append((article_id, source_id, url, url, 200, headers, seen, sha, size))
        if article_id % VERSION_EVERY == 0:
            earlier = body.replace(" the ", " a ", 3).rsplit("\n\n", 1)[0]
            shot_id = total + article_id // VERSION_EVERY
            sha2, size2 = digests[(article_id + 1) % PAYLOADS]
            shots.append((shot_id, source_id, url, url, 200, headers, seen, sha2, size2))
            older.append(
                (article_id, 1, title, published, earlier, 0, digest[::-1], shot_id, seen, seen)
            )  # fmt: skip
        if len(shots) >= BATCH:
            snapshots += _flush(conn, shots, older)
            versions += len(older)
            shots, older = [], []
    snapshots += _flush(conn, shots, older)
    versions += len(older)
    with conn:
        conn.execute("UPDATE articles SET snapshot_id = id")
        conn.execute(f"UPDATE articles SET version = 2 WHERE id % {VERSION_EVERY} = 0")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    return snapshots, versions


def _flush(
    conn: sqlite3.Connection, shots: list[tuple[object, ...]], older: list[tuple[object, ...]]
) -> int:
    writer = sqlite3.connect(conn.execute("PRAGMA database_list").fetchone()[2])
    with writer:
        writer.executemany(
            "INSERT INTO snapshots (id, source_id, requested_url, final_url, status, headers, "
            "fetched_at, sha256, size) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            shots,
        )
        writer.executemany(
            "INSERT INTO article_versions (article_id, version, title, published_at, body, "
            "partial, content_hash, snapshot_id, first_seen_at, superseded_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            older,
        )
    writer.close()
    return len(shots)


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_web(path: Path, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRAWLER_")}
    env["CRAWLER_LOG_LEVEL"] = "warning"
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "crawler.cli", "web", "--db", f"sqlite:///{path}",
         "--port", str(port)],
        cwd=ROOT, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"crawler web exited: {log.read_text()}")
        try:
            httpx.get(url + "/static/style.css", timeout=2)
            return process, url
        except httpx.TransportError:
            time.sleep(0.3)
    process.kill()
    raise SystemExit("crawler web did not start within 120 s")


def timed(client: httpx.Client, paths: list[str]) -> list[float]:
    """Milliseconds of each GET, in order; a response other than 200 stops the bench."""
    times = []
    for path in paths:
        began = time.perf_counter()
        answer = client.get(path)
        times.append((time.perf_counter() - began) * 1000)
        if answer.status_code != 200:
            raise SystemExit(f"GET {path}: {answer.status_code} {answer.text[:300]}")
    return times


def report(label: str, times: list[float], target: float | None) -> bool:
    p50, p95 = percentile(times, 0.5), percentile(times, 0.95)
    goal = f"  [target p95 < {target:.0f} ms: {verdict(p95 < target)}]" if target else ""
    print(f"  {label:<34} p50 {p50:6.1f} ms  p95 {p95:6.1f} ms  max {max(times):6.1f} ms{goal}")
    return target is None or p95 < target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--articles", type=int, default=1_000_000)
    parser.add_argument("--db", type=Path, help="archive file (default: a temporary one)")
    parser.add_argument("--reuse", action="store_true", help="measure an existing --db as is")
    parser.add_argument("--repeat", type=int, default=200, help="requests per page kind")
    options = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-web-") as tmp:
        path = options.db or Path(tmp) / "archive.db"
        if not options.reuse:
            if path.exists():
                raise SystemExit(f"{path} exists: remove it or pass --reuse")
            print(f"generating {options.articles:,} articles into {path}")
            began = time.perf_counter()
            generate(path, options.articles)
            shots, versions = add_history(path)
            print(
                f"  + {shots:,} snapshots, {versions:,} earlier versions; took "
                f"{time.perf_counter() - began:,.0f} s, {path.stat().st_size / 1e9:.2f} GB"
            )
        conn = sqlite3.connect(path)
        total = conn.execute("SELECT count(*) FROM articles").fetchone()[0]
        conn.close()
        load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
        print(f"\narchive: {total:,} articles, SQLite {sqlite3.sqlite_version}, load {load}")
        process, url = start_web(path, Path(tmp) / "web.log")
        rng = random.Random(13)
        results = []
        try:
            with httpx.Client(base_url=url, timeout=60) as client:
                print(f"\n`crawler web` over HTTP ({options.repeat} requests each, warm cache)")
                for label, query in (("one word", ONE_WORD), ("phrase", PHRASE)):
                    paths = [f"/search?q={query}"] * options.repeat
                    timed(client, paths[:5])  # warm up
                    results.append(
                        report(f"search page, {label} {query}", timed(client, paths),
                               SEARCH_TARGET_MS)
                    )  # fmt: skip
                    api = [f"/api/search?q={query}"] * options.repeat
                    report(f"/api/search, {label}", timed(client, api), None)
                for query in EXTRA_QUERIES:  # common words: for information, no target
                    paths = [f"/search?q={query}"] * max(20, options.repeat // 10)
                    report(f"search page, (extra) {query}", timed(client, paths), None)
                second = [f"/search?q={ONE_WORD}&cursor=" + _cursor(client, ONE_WORD)]
                report("search page, one word, page 2", timed(client, second * options.repeat),
                       None)  # fmt: skip
                ids = [rng.randint(1, total) for _ in range(options.repeat)]
                ids[::3] = [i - i % VERSION_EVERY or VERSION_EVERY for i in ids[::3]]
                timed(client, [f"/articles/{i}" for i in ids[:5]])
                results.append(
                    report("article page (1/3 with 2 versions)",
                           timed(client, [f"/articles/{i}" for i in ids]), ARTICLE_TARGET_MS)
                )  # fmt: skip
                report("/api/articles/ID", timed(client, [f"/api/articles/{i}" for i in ids]),
                       None)  # fmt: skip
        finally:
            process.terminate()
            process.wait(timeout=30)
        print("\nall targets met" if all(results) else "\nsome targets MISSED")
        if options.db and not options.reuse:
            print(f"(archive kept at {path}; measure it again with --db {path} --reuse)")


def _cursor(client: httpx.Client, query: str) -> str:
    cursor = client.get("/api/search", params={"q": query}).json()["next_cursor"]
    if not cursor:
        raise SystemExit(f"{query!r} has a single page of hits")
    return str(cursor)


if __name__ == "__main__":
    main()
