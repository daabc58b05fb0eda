"""Speed of reading the archive: search, export and stats over a large synthetic SQLite archive.

Generates N synthetic articles (default 1,000,000) straight into a fresh SQLite archive made by
the project's own migrations (so the FTS5 index is filled by its triggers, as in production),
then measures:

- search: p50/p95 of `crawler.read.search.search()` for a one-word and a phrase query (many runs);
- export: `crawler export --format jsonl` of 10,000 and of 100,000 articles in a child process
  each, its time and peak RSS (memory must stay flat: 100k close to 10k);
- stats: `crawler.stats.collect_stats()` in-process, and the `crawler stats` command end to end.

Targets (issue 5): search p95 < 50 ms, export of 100k < 30 s with flat memory, stats < 2 s.

    python bench/query.py [--articles 1000000] [--db FILE] [--reuse] [--repeat 200]

Article texts are drawn from a vocabulary with the word frequencies of the bundled mirror pages
plus a Zipf-distributed long tail; bodies run 150 to 1,400 words (mean about 600); about 1.5% of
the articles report on North Korea and Russia (the query terms and the dprk-russia topic) and the
words of the phrase query also occur apart in about 4% of the articles each. The archive is left
as a crawl leaves it: no ANALYZE, no FTS5 'optimize'.
"""

from __future__ import annotations

import argparse
import hashlib
import html
import os
import random
import re
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

OUTLETS = ("kcna_watch", "pyongyang_times", "urdupoint", "islam_times", "al_mayadeen")
ONE_WORD = "Shoigu"
PHRASE = '"strategic partnership"'
# Reported for information, without a target: a common word, an AND and a phrase of common words.
EXTRA_QUERIES = ("government", "Russia Pyongyang", '"the government"')
TOPIC_SHARE = 0.015
TOPIC_SENTENCES = (
    "Russian Defence Minister Sergei Shoigu arrived in Pyongyang for talks with Kim Jong Un.",
    "Kim Jong Un received Shoigu and the Russian military delegation at the headquarters.",
    "The two sides discussed the comprehensive strategic partnership between the DPRK and Russia.",
    "Moscow and Pyongyang pledged to deepen their strategic partnership in every field.",
    "Shoigu conveyed the greetings of President Putin to the DPRK leadership.",
    "The treaty on comprehensive strategic partnership came into force after ratification.",
    "A Russian delegation led by Shoigu laid a wreath at the Friendship Tower.",
    "Officials of the DPRK and Russia signed agreements on trade and technology exchange.",
)
# The words of the phrase also occur apart, in about 4% of the articles each (news-like).
BACKGROUND_SHARE = 0.04
BACKGROUND = {
    "strategic": (
        "Officials reviewed the strategic grain reserves of the province.",
        "The plan was described as a strategic priority for the coming years.",
        "Analysts called the port a strategic asset.",
    ),
    "partnership": (
        "The universities announced a research partnership.",
        "A partnership between local firms will build the new bridge.",
        "The ministry praised its partnership with farmers.",
    ),
}
TOPIC_TITLES = (
    "Shoigu meets Kim Jong Un in Pyongyang",
    "DPRK and Russia hail strategic partnership",
    "Russian delegation arrives in Pyongyang",
    "Moscow, Pyongyang discuss military ties",
)
DAY = timedelta(days=1)
SQLITE_TIME = "%Y-%m-%d %H:%M:%S.%f"  # how SQLAlchemy keeps a DateTime in SQLite


def mirror_vocabulary() -> Counter[str]:
    """Word frequencies of the text of the bundled mirror pages."""
    words: Counter[str] = Counter()
    for page in (ROOT / "crawler" / "mirror" / "sites").rglob("*.html"):
        raw = page.read_text(encoding="utf-8", errors="ignore")
        raw = re.sub(r"(?s)<(script|style)\b.*?</\1>", " ", raw)
        text = html.unescape(re.sub(r"<[^>]+>", " ", raw))
        words.update(w for w in re.findall(r"[A-Za-z][a-z]+", text) if len(w) > 1)
    return words


class TextMaker:
    """Sentences drawn from a fixed pool; the pool from a unigram model of news words."""

    def __init__(self, rng: random.Random, pool_size: int = 200_000) -> None:
        self.rng = rng
        real = mirror_vocabulary()
        # The query words occur only where this script puts them (in any letter case).
        for word in list(real):
            if word.lower() in ("shoigu", "strategic", "partnership"):
                del real[word]
        ranked = [w for w, _ in real.most_common()]
        syllables = (
            "ka",
            "ri",
            "po",
            "ne",
            "sun",
            "mal",
            "tor",
            "ve",
            "lin",
            "da",
            "gor",
            "pe",
            "sa",
        )
        tail = {
            "".join(rng.choice(syllables) for _ in range(rng.randint(2, 4))) for _ in range(40_000)
        }
        vocabulary = ranked + sorted(tail - set(ranked))
        weights = [1.0 / (rank + 2.7) for rank in range(len(vocabulary))]  # Zipf
        cumulative = []
        total = 0.0
        for weight in weights:
            total += weight
            cumulative.append(total)
        self.pool = []
        for _ in range(pool_size):
            words = rng.choices(vocabulary, cum_weights=cumulative, k=rng.randint(8, 28))
            self.pool.append(" ".join(words).capitalize() + ".")
        self.vocabulary = vocabulary[:3000]

    def title(self) -> str:
        return " ".join(self.rng.choices(self.vocabulary, k=self.rng.randint(5, 11))).capitalize()

    def body(self, topical: bool) -> str:
        sentences = self.rng.choices(self.pool, k=self.rng.randint(9, 50))
        extra = [
            self.rng.choice(choices)
            for choices in BACKGROUND.values()
            if self.rng.random() < BACKGROUND_SHARE
        ]
        if topical:
            extra += self.rng.sample(TOPIC_SENTENCES, self.rng.randint(1, 3))
        for sentence in extra:
            sentences.insert(self.rng.randrange(len(sentences) + 1), sentence)
        paragraphs = []
        while sentences:
            take = self.rng.randint(2, 5)
            paragraphs.append(" ".join(sentences[:take]))
            sentences = sentences[take:]
        return "\n\n".join(paragraphs)


def generate(path: Path, articles: int, seed: int = 5) -> None:
    """A fresh archive at `path` (migrated by the project) holding `articles` articles."""
    from crawler.db.session import Archive

    Archive(f"sqlite:///{path}").dispose()  # schema, FTS5 table and triggers
    rng = random.Random(seed)
    maker = TextMaker(rng)
    now = datetime.now(UTC).replace(microsecond=0)
    span = timedelta(days=1100)
    step = span / articles
    start = now - span
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=OFF")
    conn.execute("PRAGMA cache_size=-1000000")
    stamp = now.strftime(SQLITE_TIME)
    with conn:
        for n, name in enumerate(OUTLETS, 1):
            conn.execute(
                "INSERT INTO sources (id, name, base_url, created_at) VALUES (?, ?, ?, ?)",
                (n, name, f"https://{name}.example", stamp),
            )
            conn.execute(
                "INSERT INTO crawl_runs (source_id, started_at, finished_at, status, trigger, "
                "pages, articles_new, articles_updated, articles_unchanged, articles_skipped, "
                "articles_invalid, errors) VALUES (?, ?, ?, 'finished', 'scheduled', "
                "10, 5, 0, 0, 0, 0, 0)",
                (n, stamp, stamp),
            )
        conn.execute("INSERT INTO topics (id, name) VALUES (1, 'dprk-russia')")
    begun = time.perf_counter()
    batch: list[tuple[object, ...]] = []
    tags: list[tuple[int, int]] = []
    for article_id in range(1, articles + 1):
        topical = rng.random() < TOPIC_SHARE
        title = rng.choice(TOPIC_TITLES) if topical and rng.random() < 0.4 else maker.title()
        body = maker.body(topical)
        published = start + step * article_id + timedelta(seconds=rng.randint(0, 59))
        outlet = rng.randint(1, len(OUTLETS))
        url = f"https://{OUTLETS[outlet - 1]}.example/news/{article_id}"
        digest = hashlib.sha256(f"{article_id}".encode()).hexdigest()
        seen = published.strftime(SQLITE_TIME)
        batch.append(
            (article_id, outlet, url, url, title, published.strftime(SQLITE_TIME), "en", body,
             digest, seen, seen, seen)
        )  # fmt: skip
        if topical:
            tags.append((article_id, 1))
        if len(batch) == 20_000 or article_id == articles:
            with conn:
                conn.executemany(
                    "INSERT INTO articles (id, source_id, url, canonical_url, title, "
                    "published_at, language, body, partial, content_hash, version, "
                    "first_seen_at, last_seen_at, updated_at) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0, ?, 1, ?, ?, ?)",
                    batch,
                )
                conn.executemany(
                    "INSERT INTO article_topics (article_id, topic_id) VALUES (?, ?)", tags
                )
            batch, tags = [], []
            rate = article_id / (time.perf_counter() - begun)
            print(f"\r  generated {article_id:,} articles ({rate:,.0f}/s)", end="", flush=True)
    print()
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def time_search(url: str, query: str, repeat: int) -> tuple[float, float, float]:
    """(p50, p95, max) in ms of `repeat` searches for the top 20 hits."""
    from crawler.db.session import Archive
    from crawler.read.search import search

    archive = Archive(url)
    try:
        with archive.sessions() as session:
            search(session, query, limit=20)  # warm up
            times = []
            for _ in range(repeat):
                began = time.perf_counter()
                search(session, query, limit=20)
                times.append((time.perf_counter() - began) * 1000)
    finally:
        archive.dispose()
    return percentile(times, 0.5), percentile(times, 0.95), max(times)


def matches(url: str, query: str) -> int:
    """How many articles the query matches (its document frequency)."""
    conn = sqlite3.connect(url.removeprefix("sqlite:///"))
    try:
        from crawler.read.search import fts5_query

        row = conn.execute(
            "SELECT count(*) FROM articles_fts WHERE articles_fts MATCH ?", (fts5_query(query),)
        ).fetchone()
        return int(row[0])
    finally:
        conn.close()


# Runs the command and writes its own peak RSS (VmHWM, which starts afresh at exec) to a file;
# the rusage of a child would also count the memory of this process it was forked from.
_MEASURED = """
import atexit, runpy, sys
target = sys.argv[1]
def report():
    with open("/proc/self/status") as status, open(target, "w") as out:
        out.write(next(l for l in status if l.startswith("VmHWM")).split()[1])
atexit.register(report)
sys.argv = ["crawler", *sys.argv[2:]]
runpy.run_module("crawler.cli", run_name="__main__")
"""


def run_measured(args: list[str]) -> tuple[float, float]:
    """(seconds, peak RSS in MB) of the `crawler` command in a child process."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRAWLER_")}
    with tempfile.NamedTemporaryFile("r", suffix=".rss") as report:
        began = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-c", _MEASURED, report.name, *args],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            check=False,
        )
        elapsed = time.perf_counter() - began
        if done.returncode:
            raise SystemExit(f"crawler {' '.join(args)} failed: {done.stderr.strip()}")
        return elapsed, int(report.read()) / 1024


def oldest_until(path: Path, count: int) -> str | None:
    """An --until instant selecting exactly the `count` oldest articles (None: all of them)."""
    conn = sqlite3.connect(path)
    try:
        row = conn.execute(
            "SELECT published_at FROM articles ORDER BY published_at LIMIT 1 OFFSET ?", (count,)
        ).fetchone()
    finally:
        conn.close()
    if row is None:
        return None
    return datetime.strptime(row[0], SQLITE_TIME).replace(tzinfo=UTC).isoformat()


def time_export(path: Path, count: int, out_dir: Path) -> tuple[float, float, int]:
    """(seconds, peak RSS MB, lines) of exporting the `count` oldest articles to JSONL."""
    target = out_dir / f"export-{count}.jsonl"
    args = ["export", "--format", "jsonl", "-o", str(target), "--db", f"sqlite:///{path}"]
    until = oldest_until(path, count)
    if until:
        args += ["--until", until]
    seconds, peak = run_measured(args)
    with target.open("rb") as lines:
        written = sum(1 for _ in lines)
    target.unlink()
    return seconds, peak, written


def time_stats(url: str, repeat: int = 5) -> float:
    """The slowest of `repeat` in-process collect_stats() runs, in seconds."""
    from crawler.db.session import Archive
    from crawler.read.stats import collect_stats

    archive = Archive(url)
    try:
        times = []
        for _ in range(repeat):
            with archive.sessions() as session:
                began = time.perf_counter()
                collect_stats(session)
                times.append(time.perf_counter() - began)
    finally:
        archive.dispose()
    return max(times)


def verdict(ok: bool) -> str:
    return "ok" if ok else "MISSED"


def measure_search(url: str, repeat: int) -> list[bool]:
    print(f"\nsearch (top 20 with snippets, {repeat} runs each, warm cache)")
    met = []
    for label, query in (("one word", ONE_WORD), ("phrase", PHRASE)):
        p50, p95, worst = time_search(url, query, repeat)
        print(
            f"  {label:<9} {query:<24} matches {matches(url, query):>8,}  p50 {p50:6.1f} ms  "
            f"p95 {p95:6.1f} ms  max {worst:6.1f} ms  [target p95 < 50 ms: {verdict(p95 < 50)}]"
        )
        met.append(p95 < 50)
    words = ", ".join(f"{w} {matches(url, w):,}" for w in PHRASE.strip('"').split())
    print(f"            (articles holding the phrase's words: {words})")
    for query in EXTRA_QUERIES:
        p50, p95, worst = time_search(url, query, max(20, repeat // 10))
        print(
            f"  (extra)   {query:<24} matches {matches(url, query):>8,}  p50 {p50:6.1f} ms  "
            f"p95 {p95:6.1f} ms  max {worst:6.1f} ms"
        )
    return met


def measure_export(path: Path, out_dir: Path) -> list[bool]:
    print("\nexport to JSONL (child process each)")
    figures = {}
    for count in (10_000, 100_000):
        seconds, peak, lines = time_export(path, count, out_dir)
        figures[count] = (seconds, peak)
        print(f"  {lines:>7,} articles  {seconds:6.1f} s  peak RSS {peak:6.0f} MB")
    small, large = figures[10_000][1], figures[100_000][1]
    flat = large < small * 1.25 + 10
    fast = figures[100_000][0] < 30
    print(
        f"  memory 100k / 10k: {large / small:.2f}x  [target: export 100k < 30 s "
        f"{verdict(fast)}, flat memory {verdict(flat)}]"
    )
    return [fast, flat]


def measure_stats(url: str) -> list[bool]:
    print("\nstats")
    in_process = time_stats(url)
    command, _ = run_measured(["stats", "--json", "--db", url])
    print(
        f"  collect_stats() {in_process:.2f} s (slowest of 5); `crawler stats` command "
        f"{command:.2f} s end to end  [target < 2 s: {verdict(command < 2)}]"
    )
    return [command < 2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--articles", type=int, default=1_000_000)
    parser.add_argument("--db", type=Path, help="archive file (default: a temporary one)")
    parser.add_argument("--reuse", action="store_true", help="measure an existing --db as is")
    parser.add_argument("--repeat", type=int, default=200, help="searches per query")
    parser.add_argument(
        "--only", choices=("search", "export", "stats"), action="append", help="(repeatable)"
    )
    options = parser.parse_args()
    parts = options.only or ["search", "export", "stats"]

    with tempfile.TemporaryDirectory(prefix="bench-query-") as tmp:
        path = options.db or Path(tmp) / "archive.db"
        if not options.reuse:
            if path.exists():
                raise SystemExit(f"{path} exists: remove it or pass --reuse")
            print(f"generating {options.articles:,} articles into {path}")
            began = time.perf_counter()
            generate(path, options.articles)
            print(
                f"  took {time.perf_counter() - began:,.0f} s, {path.stat().st_size / 1e9:.2f} GB"
            )
        url = f"sqlite:///{path}"
        conn = sqlite3.connect(path)
        total = conn.execute("SELECT count(*) FROM articles").fetchone()[0]
        conn.close()
        load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
        print(f"\narchive: {total:,} articles, SQLite {sqlite3.sqlite_version}, load {load}")
        results = []
        if "search" in parts:
            results += measure_search(url, options.repeat)
        if "export" in parts:
            results += measure_export(path, Path(tmp))
        if "stats" in parts:
            results += measure_stats(url)
        print("\nall targets met" if all(results) else "\nsome targets MISSED")
        if options.db and not options.reuse:
            print(f"(archive kept at {path}; measure it again with --db {path} --reuse)")


if __name__ == "__main__":
    main()
