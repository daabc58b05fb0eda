"""`scrapy crawl` and `scrapy parse` from the project folder: the same spiders and settings as
the `crawler` command, with an exit status that tells a failed run, and a parse that leaves no
trace in the archive."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from crawler.mirror import MirrorServer
from tests.conftest import LOOPBACK, ROOT, crawl_runs, write_sources

TREATY_RECEPTION = (
    "/newstream/1734001822-287305/"
    "russian-ambassador-hosts-reception-on-ratification-of-dprk-russia-treaty/"
)


def scrapy(*args: str, db_url: str, sources: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRAWLER_")}
    env |= {"CRAWLER_DATABASE_URL": db_url, "CRAWLER_SOURCES": str(sources)}
    return subprocess.run(
        [sys.executable, "-m", "scrapy", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )


def test_scrapy_crawl_exits_1_when_its_run_failed(db_url, tmp_path, sources_file):
    closed = write_sources(tmp_path / "closed.toml", {"kcna_watch": "http://127.0.0.1:9"})
    failed = scrapy("crawl", "kcna_watch", "-s", "RETRY_TIMES=0", db_url=db_url, sources=closed)
    assert failed.returncode == 1, failed.stderr[-2000:]
    finished = scrapy("crawl", "kcna_watch", *LOOPBACK, db_url=db_url, sources=sources_file)
    assert finished.returncode == 0, finished.stderr[-2000:]
    assert [run.status for run in crawl_runs(db_url)] == ["failed", "finished"]


def test_scrapy_parse_of_an_article_works_and_records_nothing(
    db_url, kcna: MirrorServer, sources_file
):
    url = kcna.url(TREATY_RECEPTION)
    result = scrapy(
        "parse",
        "--spider",
        "kcna_watch",
        "-c",
        "parse_article",
        url,
        db_url=db_url,
        sources=sources_file,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Russian ambassador hosts reception on ratification of DPRK-Russia" in result.stdout
    assert "Traceback" not in result.stderr
    assert crawl_runs(db_url) == []
