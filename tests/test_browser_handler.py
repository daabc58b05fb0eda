"""The browser (scrapy-playwright's node driver and Chromium) only for crawls whose source renders:
its download handler is registered per crawl, and a crawl of a plain outlet starts no browser."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import psutil
from scrapy.utils.test import get_crawler

from crawler import settings as project_settings
from crawler.mirror import MirrorServer
from crawler.spiders.kcna_watch import KcnaWatchSpider
from crawler.spiders.pyongyang_times import PyongyangTimesSpider
from tests.conftest import LOOPBACK, ROOT, crawl_runs, write_sources

PLAYWRIGHT_HANDLER = "scrapy_playwright.handler.ScrapyPlaywrightDownloadHandler"
BROWSER_NAMES = ("node", "chromium", "chrome", "headless_shell")


def handlers_of(spider_class: type, sources: Path) -> dict[str, str]:
    crawler = get_crawler(
        spider_class,
        settings_dict={
            "CRAWLER_SOURCES": str(sources),
            "PLAYWRIGHT_DOWNLOAD_HANDLERS": project_settings.PLAYWRIGHT_DOWNLOAD_HANDLERS,
        },
    )
    return dict(crawler.settings.getdict("DOWNLOAD_HANDLERS"))


def test_plain_outlet_gets_no_browser_handler(tmp_path):
    sources = write_sources(tmp_path / "sources.toml", {"kcna_watch": "http://127.0.0.1:9"})
    handlers = handlers_of(KcnaWatchSpider, sources)
    assert PLAYWRIGHT_HANDLER not in handlers.values()


def test_rendered_listing_gets_the_browser_handler(tmp_path):
    sources = write_sources(tmp_path / "sources.toml", {"pyongyang_times": "http://127.0.0.1:9"})
    handlers = handlers_of(PyongyangTimesSpider, sources)
    assert handlers["http"] == handlers["https"] == PLAYWRIGHT_HANDLER


def test_source_with_render_js_gets_the_browser_handler(tmp_path):
    sources = write_sources(
        tmp_path / "sources.toml", {"kcna_watch": "http://127.0.0.1:9"}, render_js=True
    )
    handlers = handlers_of(KcnaWatchSpider, sources)
    assert handlers["http"] == handlers["https"] == PLAYWRIGHT_HANDLER


def browser_processes(root: psutil.Process) -> set[str]:
    """Names of the browser-like processes under root, now."""
    found = set()
    try:
        children = root.children(recursive=True)
    except psutil.NoSuchProcess:
        return found
    for child in children:
        try:
            name = child.name().lower()
        except psutil.NoSuchProcess:
            continue
        if any(part in name for part in BROWSER_NAMES):
            found.add(name)
    return found


def test_crawl_of_a_plain_outlet_starts_no_browser_process(tmp_path, db_url, kcna: MirrorServer):
    sources = write_sources(tmp_path / "sources.toml", {"kcna_watch": kcna.base_url})
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRAWLER_")}
    env |= {"CRAWLER_DATABASE_URL": db_url, "CRAWLER_SOURCES": str(sources)}
    child = subprocess.Popen(
        [sys.executable, "-m", "crawler.cli", "crawl", "kcna_watch", "--no-progress", *LOOPBACK],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    seen: set[str] = set()
    watched = psutil.Process(child.pid)
    samples = 0
    while child.poll() is None:
        seen |= browser_processes(watched)
        samples += 1
        time.sleep(0.02)
    _, stderr = child.communicate()
    assert child.returncode == 0, stderr
    assert samples > 10  # the tree was watched during the crawl, not only after it
    assert seen == set()
    [run] = crawl_runs(db_url)
    assert run.status == "finished" and run.articles_new > 0
