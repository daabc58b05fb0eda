"""CPU per page of the crawl's own process without its store stage, against a bare Scrapy spider.

The store stage (snapshot, article, topics, stories, known URLs) is meant to run beside the crawl
(issue 10); what stays on the crawl's process is Scrapy's engine, the project's middlewares,
extensions, spider and the clean, validate and deduplicate stages. This bench measures that part
alone: `crawler crawl kcna_watch` with ITEM_PIPELINES set to the first three stages, into a fresh
SQLite archive (the run is still recorded, the walks still read and written), against
bench/bare_spider.py, in alternating rounds on the same generated site (bench/throughput.py's),
each measured from outside (user + system CPU of the process tree per article page).

    python bench/crawl_side.py [--pages 3000] [--rounds 3] [--store]

`--store` keeps the store stage (the whole crawl, as bench/throughput.py runs it).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.throughput import (
    BARE_SPIDER,
    CONCURRENCY,
    SqliteArchives,
    crawl_command,
    crawler_env,
    measure,
)

CRAWL_SIDE_PIPELINES = {
    "crawler.pipelines.clean.CleanPipeline": 200,
    "crawler.pipelines.validate.ValidatePipeline": 300,
    "crawler.pipelines.deduplicate.DeduplicatePipeline": 400,
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pages", type=int, default=3000, help="article pages to serve")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds")
    parser.add_argument("--store", action="store_true", help="keep the store stage")
    args = parser.parse_args()

    import os

    from crawler.mirror import MirrorServer
    from crawler.mirror.generated import write_generated_site

    with tempfile.TemporaryDirectory(prefix="bench-crawl-side-") as tmp:
        workdir = Path(tmp)
        site = write_generated_site(workdir / "site", args.pages)
        archives = SqliteArchives(workdir)
        bare_env = {k: v for k, v in os.environ.items() if not k.startswith("CRAWLER_")}
        log = workdir / "stderr.log"
        bare: list[float] = []
        side: list[float] = []
        label = "crawl (whole)" if args.store else "crawl (no store)"
        with MirrorServer(site) as server:
            sources = workdir / "sources.toml"
            sources.write_text(
                f'[sources.kcna_watch]\nbase_url = "{server.base_url}"\n'
                f"max_pages = {-(-args.pages // 50) + 1}\n",
                encoding="utf-8",
            )
            bare_command = [
                sys.executable,
                str(BARE_SPIDER),
                server.base_url,
                "--concurrency",
                str(CONCURRENCY),
            ]
            command = crawl_command()
            if not args.store:
                command += ["-s", f"ITEM_PIPELINES={json.dumps(CRAWL_SIDE_PIPELINES)}"]
            for number in range(1, args.rounds + 1):
                env = crawler_env(archives.fresh(f"round{number}"), sources)
                for step in ("bare", "crawl") if number % 2 else ("crawl", "bare"):
                    if step == "bare":
                        figures = measure(bare_command, server, bare_env, log)
                        bare.append(figures.cpu_ms_per_page)
                        print(figures.line(f"round {number} bare Scrapy"), flush=True)
                    else:
                        figures = measure(command, server, env, log)
                        side.append(figures.cpu_ms_per_page)
                        print(figures.line(f"round {number} {label}"), flush=True)
    b, s = statistics.median(bare), statistics.median(side)
    print(
        f"\nCPU ms/page, medians of {args.rounds} rounds: bare {b:.2f}, {label} {s:.2f}, "
        f"difference {s - b:+.2f} ms ({s / b:.2f}x)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
