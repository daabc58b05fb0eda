"""Throughput of the archive path against the bare fetch-and-parse baseline.

Serves N generated kcna_watch-style article pages (30-100 KB each) from a local mirror and, in
one run, crawls them with the same spider twice, each crawl in its own process: once with no
item pipelines (the baseline) and once through the whole archive path into SQLite. Prints
pages per second for both, their ratio, and each crawl's peak memory (RSS).

    python bench/throughput.py [--pages 2000] [--rounds 3] [--keep DIR]

With several rounds the two crawls alternate, each on a fresh archive, and the medians are
reported: on a 2-core machine one crawl's speed varies by a tenth from run to run.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PER_LISTING = 50
WORDS = [
    "delegation",
    "ministry",
    "cooperation",
    "reception",
    "treaty",
    "partnership",
    "comrade",
    "government",
    "defence",
    "relations",
    "friendship",
    "military",
    "strategic",
    "economy",
    "development",
    "agricultural",
    "factory",
    "workers",
    "construction",
    "province",
    "county",
    "national",
    "committee",
    "party",
    "central",
    "people",
    "republic",
    "russian",
    "korean",
    "minister",
    "president",
    "visit",
    "talks",
    "agreement",
    "exchange",
    "culture",
    "science",
    "technology",
]


def paragraph(rng: random.Random) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(40, 90))).capitalize() + "."


def article_html(index: int, rng: random.Random) -> tuple[str, str, str]:
    """(path, title, page) of one article page of 30-100 KB, shaped like the real ones."""
    path = f"/newstream/{1700000000 + index}-{100000 + index}/generated-item-{index}/"
    title = f"Generated item {index}: " + " ".join(rng.choice(WORDS) for _ in range(6))
    target = rng.randint(31_000, 98_000)
    body = "\n".join(f"<p>{paragraph(rng)}</p>" for _ in range(rng.randint(6, 14)))
    more = []
    size = len(body)
    while size < target:
        snippet = paragraph(rng)[:130]
        item = (
            f'<li class="more-from-item">\n<a class="more-from-link" '
            f'href="/newstream/1-{rng.randint(1, 10**6)}/x/">'
            f'{snippet}</a><span class="more-from-date">February 07, 2026</span>'
            f'<p class="more-from-excerpt">{snippet}</p></li>'
        )
        more.append(item)
        size += len(item)
    day = 1 + index % 28
    page = f"""<!DOCTYPE html><html lang="en-US"><head><meta charset="UTF-8">
<title>{title} | KCNA Watch</title>
<link rel="canonical" href="{{{{BASE}}}}{path}">
<meta property="og:title" content="{title}">
<meta property="article:published_time" content="2024-11-{day:02d}T09:55:12+00:00">
</head><body><header><nav><ul><li><a href="/newstream/">Newstream</a></li></ul></nav></header>
<main><article><header class="entry-header"><h1 class="article-title">{title}</h1>
<div class="article-meta"><span class="meta-date">Date:
<time datetime="2024-11-{day:02d}">{day:02d}/11/2024</time></span>
<span class="meta-source">Source: <span class="article-source">Pyongyang Times</span></span>
<a class="article-original" href="http://www.pyongyangtimes.com.kp/?bbs={40000 + index}">
Read original version at source</a>
</div></header><div class="article-content entry-content">{body}</div>
<section class="more-from"><h3>More From Pyongyang Times</h3><ul>{"".join(more)}</ul></section>
</article></main><footer><p>&copy; 2024 KCNA Watch. All rights reserved.</p></footer>
</body></html>"""
    return path, title, page


def listing_html(paths: list[tuple[str, str]], page: int, pages: int) -> str:
    items = "".join(
        f'<article class="newstream-item">\n<h2 class="entry-title"><a href="{p}">{t}</a></h2>'
        "</article>"
        for p, t in paths
    )
    nxt = (
        f'<a class="next page-numbers" href="/newstream/page/{page + 1}/">Next</a>'
        if page < pages
        else ""
    )
    head = "<!DOCTYPE html><html><head><title>Newstream</title></head>"
    return f"{head}<body><main>{items}{nxt}</main></body></html>"


def build_site(root: Path, count: int) -> Path:
    """A mirror site folder (routes.json + files) with `count` articles."""
    rng = random.Random(20241130)
    site = root / "kcna_watch"
    (site / "pages").mkdir(parents=True)
    routes: dict[str, dict[str, object]] = {}
    html = "text/html; charset=utf-8"

    def add(route: str, name: str, text: str, content_type: str = html) -> None:
        (site / "pages" / name).write_text(text, encoding="utf-8")
        routes[route] = {
            "file": f"pages/{name}",
            "status": 200,
            "content_type": content_type,
            "headers": {},
        }

    add(
        "/robots.txt",
        "robots.txt",
        "User-agent: *\nDisallow: /wp-admin/\n",
        "text/plain; charset=utf-8",
    )
    add(
        "/newstream/feed/",
        "feed.xml",
        '<?xml version="1.0"?><rss version="2.0"><channel><title>x</title></channel></rss>',
        "application/rss+xml; charset=utf-8",
    )
    articles = []
    for index in range(count):
        path, title, page = article_html(index, rng)
        add(path, f"a{index}.html", page)
        articles.append((path, title))
    pages = max(1, -(-count // PER_LISTING))
    for page in range(1, pages + 1):
        chunk = articles[(page - 1) * PER_LISTING : page * PER_LISTING]
        route = "/newstream/" if page == 1 else f"/newstream/page/{page}/"
        add(route, f"listing{page}.html", listing_html(chunk, page, pages))
    (site / "routes.json").write_text(json.dumps(routes), encoding="utf-8")
    return site


def run_child(mode: str, base: str, workdir: Path, pages: int) -> dict[str, float]:
    """Crawl in a child process (one reactor per process) and return its figures."""
    result = workdir / f"{mode}.json"
    for stale in workdir.glob(f"{mode}.db*"):  # every round starts from an empty archive
        stale.unlink()
    subprocess.run(
        [
            sys.executable,
            __file__,
            "--child",
            mode,
            "--base",
            base,
            "--workdir",
            str(workdir),
            "--pages",
            str(pages),
        ],
        check=True,
    )
    return json.loads(result.read_text())


def child(mode: str, base: str, workdir: Path, pages: int) -> None:
    from scrapy.crawler import CrawlerProcess

    from crawler.runner import crawl_settings

    sources = workdir / "sources.toml"
    sources.write_text(
        f'[sources.kcna_watch]\nbase_url = "{base}"\nmax_pages = {pages}\n', encoding="utf-8"
    )
    overrides = {
        "AUTOTHROTTLE_ENABLED": False,
        "DOWNLOAD_DELAY": 0,
        "CONCURRENT_REQUESTS": 16,
        "CONCURRENT_REQUESTS_PER_DOMAIN": 16,
        "LOG_LEVEL": "WARNING",
        "MEMUSAGE_ENABLED": True,
    }
    if mode == "baseline":
        overrides.update({"ITEM_PIPELINES": {}, "CRAWLER_RECORD_RUNS": False})
    settings = crawl_settings(f"sqlite:///{workdir / (mode + '.db')}", sources, overrides=overrides)
    process = CrawlerProcess(settings)
    crawler = process.create_crawler("kcna_watch")
    process.crawl(crawler)
    started = time.perf_counter()
    process.start()
    elapsed = time.perf_counter() - started
    stats = crawler.stats.get_stats() if crawler.stats else {}
    articles = int(stats.get("archive/articles_fetched", 0))
    figures = {
        "articles": articles,
        "stored": int(stats.get("archive/articles_new", 0)),
        "seconds": elapsed,
        "pages_per_second": articles / elapsed if elapsed else 0.0,
        "peak_rss_mb": int(stats.get("memusage/max", 0)) / 2**20,
    }
    (workdir / f"{mode}.json").write_text(json.dumps(figures))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pages", type=int, default=2000, help="article pages to serve")
    parser.add_argument("--rounds", type=int, default=3, help="alternating baseline/archive pairs")
    parser.add_argument("--keep", type=Path, help="keep the generated site and archives here")
    parser.add_argument("--child", choices=("baseline", "archive"), help=argparse.SUPPRESS)
    parser.add_argument("--base", help=argparse.SUPPRESS)
    parser.add_argument("--workdir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.base, args.workdir, args.pages)
        return 0

    from crawler.mirror import MirrorServer

    with tempfile.TemporaryDirectory(prefix="bench-throughput-") as tmp:
        workdir = args.keep or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        site = build_site(workdir / "site", args.pages)
        sizes = [p.stat().st_size for p in (site / "pages").glob("a*.html")]
        print(
            f"serving {len(sizes)} article pages, {min(sizes) // 1024}-{max(sizes) // 1024} KB "
            f"(mean {sum(sizes) // len(sizes) // 1024} KB)"
        )
        listing_pages = -(-args.pages // PER_LISTING)
        rounds: list[tuple[dict[str, float], dict[str, float]]] = []
        with MirrorServer(site) as server:
            for number in range(1, args.rounds + 1):
                baseline = run_child("baseline", server.base_url, workdir, listing_pages)
                archive = run_child("archive", server.base_url, workdir, listing_pages)
                rounds.append((baseline, archive))
                for name, figures in (
                    ("baseline (fetch + parse)", baseline),
                    ("archive path", archive),
                ):
                    print(
                        f"round {number}  {name:24} {figures['articles']:6d} articles "
                        f"{figures['seconds']:6.1f} s {figures['pages_per_second']:7.1f} pages/s "
                        f"peak RSS {figures['peak_rss_mb']:6.1f} MB"
                    )
    ratios = [a["pages_per_second"] / b["pages_per_second"] for b, a in rounds]
    base_speed = statistics.median(b["pages_per_second"] for b, _ in rounds)
    archive_speed = statistics.median(a["pages_per_second"] for _, a in rounds)
    print(f"median pages/s: baseline {base_speed:.1f}, archive path (SQLite) {archive_speed:.1f}")
    print(
        f"ratio archive/baseline: median {statistics.median(ratios):.2f} "
        f"(rounds: {', '.join(f'{r:.2f}' for r in ratios)})  (target >= 0.60)"
    )
    stored = [int(a["stored"]) for _, a in rounds]
    print(f"archived {min(stored)} of {args.pages} articles in every round")
    peak = max(max(b["peak_rss_mb"], a["peak_rss_mb"]) for b, a in rounds)
    print(f"peak RSS: {peak:.1f} MB (target < 300 MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
