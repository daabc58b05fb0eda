"""Extraction quality and speed of the generic spider on the generic_news pages.

    python bench/extraction.py [--rounds 3] [--worst 10]

Each of the 91 pages of the bundled generic_news mirror (real pages of 91 publishers, from the
Article Extraction Benchmark) is read by the generic spider exactly as in a crawl
(`build_article` on the page as served: metadata fields and main text), timed, and its body
scored against the hand-checked text with the benchmark's metric: 4-token shingles of the \\w+
runs, precision and recall averaged over pages, F1 of the two (the same as score.py beside the
pages). Prints precision, recall, F1, the median/p95 time per page (best of `--rounds`; CPU
time of this process, which other work on the machine does not inflate, and wall clock), and
the worst pages.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(ROOT))

from scrapy.http import HtmlResponse  # noqa: E402

from crawler.config import load_sources  # noqa: E402
from crawler.mirror import SITES_DIR  # noqa: E402
from crawler.replay import Replayer  # noqa: E402
from crawler.spiders.base import ListingEntry, NewsSpider  # noqa: E402

SITE = SITES_DIR / "generic_news"
EXPECTED = ROOT / "tests" / "fixtures" / "generic_news" / "expected.jsonl"
BASE = "http://127.0.0.1:8000"
WORD = re.compile(r"\w+")


@dataclass(frozen=True)
class Page:
    path: str
    html: bytes
    expected: str


@dataclass(frozen=True)
class PageScore:
    path: str
    precision: float | None
    recall: float | None
    seconds: float  # wall clock
    cpu_seconds: float  # this process's CPU: what other processes on the machine do not inflate

    @property
    def f1(self) -> float:
        p, r = self.precision or 0.0, self.recall or 0.0
        return 2 * p * r / (p + r) if p + r else 0.0


def shingles(text: str, n: int = 4) -> Counter[tuple[str, ...]]:
    """The text's multiset of n-token shingles (a text shorter than n is one shingle)."""
    tokens = WORD.findall(text or "")
    if len(tokens) < n:
        return Counter([tuple(tokens)]) if tokens else Counter()
    return Counter(tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1))


def page_scores(expected: str, extracted: str) -> tuple[float | None, float | None]:
    """Precision and recall of one page's extracted text (None where undefined)."""
    truth, found = shingles(expected), shingles(extracted)
    tp = sum((truth & found).values())
    fp = sum((found - truth).values())
    fn = sum((truth - found).values())
    if fp == 0 and fn == 0:
        return 1.0, 1.0
    precision = tp / (tp + fp) if tp + fp else None
    recall = tp / (tp + fn) if tp + fn else None
    return precision, recall


def totals(scores: list[PageScore]) -> tuple[float, float, float]:
    """Precision and recall averaged over pages (an empty body enters recall only), and F1."""
    precisions = [s.precision for s in scores if s.precision is not None]
    recalls = [s.recall for s in scores if s.recall is not None]
    p = sum(precisions) / len(precisions) if precisions else 0.0
    r = sum(recalls) / len(recalls) if recalls else 0.0
    return p, r, (2 * p * r / (p + r) if p + r else 0.0)


def pages() -> Iterator[Page]:
    """The benchmark pages as the mirror serves them, with their hand-checked text."""
    routes = json.loads((SITE / "routes.json").read_text("utf-8"))
    for line in EXPECTED.read_text("utf-8").splitlines():
        row = json.loads(line)
        path = row["url"].replace("{{BASE}}", "")
        html = (SITE / routes[path]["file"]).read_text("utf-8").replace("{{BASE}}", BASE)
        yield Page(path, html.encode("utf-8"), row["body"])


def generic_spider(workdir: Path) -> NewsSpider:
    """The generic spider of a source with nothing but base_url, outside any crawl."""
    sources = workdir / "sources.toml"
    sources.write_text(f'[sources.world_desk]\nspider = "article"\nbase_url = "{BASE}"\n')
    return Replayer(load_sources(sources)).spider("world_desk")


def score_pages(spider: NewsSpider, rounds: int = 1) -> list[PageScore]:
    """Each page read by the spider as in a crawl: its scores and its best time of `rounds`."""
    scores = []
    for page in pages():
        best, best_cpu, body = float("inf"), float("inf"), ""
        for _ in range(rounds):
            response = HtmlResponse(
                BASE + page.path,
                body=page.html,
                headers={"Content-Type": "text/html; charset=utf-8"},
            )
            started, started_cpu = time.perf_counter(), time.process_time()
            item = spider.build_article(response, ListingEntry(url=response.url))
            best = min(best, time.perf_counter() - started)
            best_cpu = min(best_cpu, time.process_time() - started_cpu)
            body = "\n\n".join(item.body)
        precision, recall = page_scores(page.expected, body)
        scores.append(PageScore(page.path, precision if body else None, recall, best, best_cpu))
    return scores


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="timings per page (best kept)")
    parser.add_argument("--worst", type=int, default=10, help="how many worst pages to list")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        scores = score_pages(generic_spider(Path(tmp)), rounds=max(1, args.rounds))
    p, r, f1 = totals(scores)
    print(f"pages {len(scores)}  precision {p:.4f}  recall {r:.4f}  F1 {f1:.4f}")
    for label, times in (
        ("CPU", sorted(s.cpu_seconds * 1000 for s in scores)),
        ("wall clock", sorted(s.seconds * 1000 for s in scores)),
    ):
        print(
            f"extraction per page ({label}): median {statistics.median(times):.1f} ms, "
            f"p95 {times[int(len(times) * 0.95)]:.1f} ms, max {times[-1]:.1f} ms"
        )
    print(f"load average while measuring: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print(f"worst {args.worst} pages (F1, precision, recall):")
    for score in sorted(scores, key=lambda s: s.f1)[: args.worst]:
        print(
            f"  {score.f1:.3f}  {score.precision or 0:.3f}  {score.recall or 0:.3f}  {score.path}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
