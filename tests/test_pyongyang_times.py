"""The pyongyang_times spider: fields on saved pages, and whole crawls of its mirror through a
real headless Chromium (Debian's package; a missing browser fails these tests, never skips them)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from scrapy import Request
from scrapy.http import Response
from scrapy.utils.test import get_crawler
from sqlalchemy import select

from crawler.db.models import CrawlRun, Snapshot
from crawler.db.session import Archive
from crawler.items import ArticleItem
from crawler.mirror import SITES_DIR, MirrorServer
from crawler.spiders.base import ListingEntry
from crawler.spiders.pyongyang_times import PyongyangTimesSpider
from tests.conftest import LOOPBACK, ROOT, crawl, export_jsonl, write_sources
from tests.expected import assert_matches_expected
from tests.pages import TEST_BASE, make_spider, page_response, page_text, parse_items

# the path the project's settings launch when CRAWLER_CHROMIUM is not set (as in run_cli)
CHROMIUM = Path("/usr/bin/chromium")
BBS = ("40311", "40224", "40402")

# What Chromium made of `#news-list` once app.js had run (page.inner_html of the mirror's `/`).
RENDERED_ROWS = (
    '<div class="d-flex news-row"><div class="news-body"><h3 class="title" data-bbs="40311">'
    "Russian ambassador hosts reception on ratification of DPRK-Russia treaty</h3>"
    '<span class="date">December 12, 2024</span><p class="summary">Russian Ambassador to the '
    "DPRK Alexandr Matsegora hosted a reception on December 10 on the occasion of the "
    "ratification of the Tre</p></div></div>"
    '<div class="d-flex news-row"><div class="news-body"><h3 class="title" data-bbs="40224">'
    "DPRK Ministry of National Defence hosts reception for Russian military delegation</h3>"
    '<span class="date">November 30, 2024</span><p class="summary">The DPRK Ministry of '
    "National Defence gave a reception at the April 25 House of Culture on the evening of "
    "November 29 in welcome o</p></div></div>"
    '<div class="d-flex news-row"><div class="news-body"><h3 class="title" data-bbs="40402">'
    "Kim Chaek University of Technology boosts R&amp;D links with industry</h3>"
    '<span class="date">November 25, 2024</span><p class="summary">Kim Chaek University of '
    "Technology is stepping up research and development in close cooperation with factories "
    "and enterprises acr</p></div></div>"
)
EMPTY_LIST = '<div id="news-list" class="news-list"></div>'


def rendered_homepage() -> str:
    """The homepage as the browser hands it over: the shell with its headline rows filled in."""
    shell = page_text("pyongyang_times", "/")
    return shell.replace(EMPTY_LIST, f'<div id="news-list" class="news-list">{RENDERED_ROWS}</div>')


@pytest.fixture
def spider() -> PyongyangTimesSpider:
    made = make_spider(PyongyangTimesSpider)
    assert isinstance(made, PyongyangTimesSpider)
    return made


def article(spider: PyongyangTimesSpider, bbs: str, published: datetime | None) -> ArticleItem:
    response = page_response("pyongyang_times", f"/?bbs={bbs}")
    entry = ListingEntry(url=response.url, published=published)
    items = parse_items(spider, response, entry)
    assert len(items) == 1 and isinstance(items[0], ArticleItem)
    return items[0]


# -- fields on saved pages ---------------------------------------------------------------------


def test_listing_entries_carry_url_title_and_date(spider):
    response = page_response("pyongyang_times", "/", body=rendered_homepage())
    entries = list(spider._parse_listing_entries(response))
    assert [e.url for e in entries] == [f"{TEST_BASE}/?bbs={n}" for n in BBS]
    assert [e.title for e in entries] == [
        "Russian ambassador hosts reception on ratification of DPRK-Russia treaty",
        "DPRK Ministry of National Defence hosts reception for Russian military delegation",
        "Kim Chaek University of Technology boosts R&D links with industry",
    ]
    assert [e.published for e in entries] == [
        datetime(2024, 12, 12),
        datetime(2024, 11, 30),
        datetime(2024, 11, 25),
    ]


def test_listing_requests_articles_without_the_browser(spider):
    response = page_response("pyongyang_times", "/", body=rendered_homepage())
    requests = list(spider.parse_listing(response, page=1))
    assert [r.url for r in requests] == [f"{TEST_BASE}/?bbs={n}" for n in BBS]
    for request in requests:
        assert not request.meta.get("playwright")
        assert request.callback == spider.parse_article
        assert request.cb_kwargs["entry"].published is not None
    assert spider.crawler.stats.get_value("discovery/listing_entries") == 3


def test_homepage_request_is_rendered_and_its_page_closed(spider):
    (request,) = list(spider.discovery_requests())
    assert request.url == TEST_BASE + "/"
    assert request.meta["playwright"] is True
    # the handler closes the page itself once it has read the content
    assert request.meta.get("playwright_include_page") is False


def test_unrendered_shell_yields_nothing_and_is_reported(spider):
    response = page_response("pyongyang_times", "/")
    assert list(spider.parse_listing(response, page=1)) == []
    assert spider.crawler.stats.get_value("archive/errors") == 1


def test_fields_of_an_article(spider):
    item = article(spider, "40311", published=datetime(2024, 12, 12))
    assert item.url == f"{TEST_BASE}/?bbs=40311"
    assert item.title == "Russian ambassador hosts reception on ratification of DPRK-Russia treaty"
    # the listing's date, read in Pyongyang time: the page's header date is the serving day
    assert item.published == datetime(2024, 12, 12)
    assert item.timezone == "Asia/Pyongyang"
    assert item.outlet_article_id == "40311"
    assert item.language == "en"
    assert item.author is None and item.summary is None and item.original_source is None
    assert item.partial is False
    assert len(item.body) == 14
    assert item.body[0].startswith("Russian Ambassador to the DPRK Alexandr Matsegora hosted")
    assert item.body[-1].startswith("The participants toasted the health of the respected")
    joined = "\n".join(item.body)
    for boilerplate in (
        "Latest News",
        "Saturday, February 7, 2026",
        "DPRK Ministry of National Defence hosts reception",  # a headline under more-news
        "Winter Games open in Mt Paektu area",
        "All Rights Reserved",
    ):
        assert boilerplate not in joined
    assert not [k for k in spider.crawler.stats.get_stats() if k.startswith("fallback/")]


def test_article_reached_without_a_listing_date_has_none(spider):
    item = article(spider, "40402", published=None)
    assert item.title == "Kim Chaek University of Technology boosts R&D links with industry"
    assert item.published is None  # never the serving day at the top of the page
    assert len(item.body) == 5


def test_only_query_string_articles_are_followed(spider):
    entries = [
        ListingEntry(url=f"{TEST_BASE}/?bbs=40224"),
        ListingEntry(url=f"{TEST_BASE}/pdf?num=12"),
        ListingEntry(url=f"{TEST_BASE}/"),
    ]
    assert [r.url for r in spider.article_requests(entries)] == [f"{TEST_BASE}/?bbs=40224"]


def test_missing_browser_is_named_with_how_to_install_it():
    crawler = get_crawler(
        PyongyangTimesSpider,
        {"PLAYWRIGHT_LAUNCH_OPTIONS": {"executable_path": "/nonexistent/chromium"}},
    )
    spider = PyongyangTimesSpider.from_crawler(crawler)
    assert isinstance(spider, PyongyangTimesSpider)
    problem = spider.browser_problem()
    assert problem is not None
    assert "/nonexistent/chromium" in problem and "Chromium" in problem
    assert "apt-get install chromium" in problem and "CRAWLER_CHROMIUM" in problem


def test_installed_browser_raises_no_problem(chromium):
    crawler = get_crawler(
        PyongyangTimesSpider, {"PLAYWRIGHT_LAUNCH_OPTIONS": {"executable_path": str(chromium)}}
    )
    spider = PyongyangTimesSpider.from_crawler(crawler)
    assert isinstance(spider, PyongyangTimesSpider)
    assert spider.browser_problem() is None


# -- whole crawls through headless Chromium ----------------------------------------------------


@pytest.fixture
def chromium() -> Path:
    """Debian's Chromium, which these crawls need (in CI too: a failure, not a skip)."""
    assert CHROMIUM.is_file() and os.access(CHROMIUM, os.X_OK), (
        f"no Chromium at {CHROMIUM}: `apt-get install chromium` (Playwright's own browser "
        "download is not used)"
    )
    return CHROMIUM


@pytest.fixture
def pyongyang() -> Iterator[MirrorServer]:
    with MirrorServer(SITES_DIR / "pyongyang_times") as server:
        yield server


@pytest.fixture
def sources_file(tmp_path: Path, pyongyang: MirrorServer) -> Path:
    return write_sources(tmp_path / "sources.toml", {"pyongyang_times": pyongyang.base_url})


def runs(db_url: str) -> list[CrawlRun]:
    archive = Archive(db_url)
    try:
        with archive.sessions() as session:
            found = session.scalars(select(CrawlRun).order_by(CrawlRun.id)).all()
            session.expunge_all()
            return list(found)
    finally:
        archive.dispose()


def test_crawl_through_chromium_matches_expected(db_url, chromium, pyongyang, sources_file):
    result = crawl("pyongyang_times", db_url=db_url, sources_file=sources_file)
    assert result.returncode == 0, result.stdout + result.stderr
    records = export_jsonl(db_url)
    assert_matches_expected(records, "pyongyang_times", pyongyang.base_url)
    assert {r["canonical_url"] for r in records} == {pyongyang.url(f"/?bbs={n}") for n in BBS}
    assert {r["outlet_article_id"] for r in records} == set(BBS)

    paths = pyongyang.paths()
    assert paths[0] == "/robots.txt"
    # the homepage went through the browser once (its script fetched the headline list) ...
    assert paths.count("/") == 1
    assert paths.count("/static/app.js") == paths.count("/api/latest.json") == 1
    # ... the articles were fetched plainly, once each; "more news" links were not followed
    assert sorted(p for p in paths if p.startswith("/?")) == sorted(f"/?bbs={n}" for n in BBS)
    for request in pyongyang.requests:
        assert (request.header("User-Agent") or "").startswith("news-archive-crawler/")

    archive = Archive(db_url)
    with archive.sessions() as session:
        snapshots = session.scalars(select(Snapshot)).all()
        # no listing page archived: the homepage is not an article
        assert sorted(s.final_url for s in snapshots) == sorted(
            pyongyang.url(f"/?bbs={n}") for n in BBS
        )
    archive.dispose()
    (run,) = runs(db_url)
    assert run.status == "finished" and run.articles_new == 3 and run.errors == 0
    assert run.stats["playwright/request_count/navigation"] == 1
    assert run.stats["playwright/page_count"] == run.stats["playwright/page_count/closed"] == 1


def test_second_crawl_renders_the_homepage_and_fetches_no_article(
    db_url, chromium, pyongyang, sources_file
):
    assert crawl("pyongyang_times", db_url=db_url, sources_file=sources_file).returncode == 0
    pyongyang.clear_requests()
    result = crawl("pyongyang_times", db_url=db_url, sources_file=sources_file)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "/api/latest.json" in pyongyang.paths()
    assert not [p for p in pyongyang.paths() if p.startswith("/?bbs=")]
    _, second = runs(db_url)
    assert (second.status, second.articles_new, second.articles_skipped) == ("finished", 0, 3)
    assert len(export_jsonl(db_url)) == 3


def test_robots_txt_is_obeyed_for_query_string_articles(db_url, chromium, pyongyang, sources_file):
    pyongyang.override("/robots.txt", "User-agent: *\nDisallow: /?bbs=40402\n")
    result = crawl("pyongyang_times", db_url=db_url, sources_file=sources_file)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "/?bbs=40402" not in pyongyang.paths()
    urls = {r["url"] for r in export_jsonl(db_url)}
    assert urls == {pyongyang.url("/?bbs=40311"), pyongyang.url("/?bbs=40224")}


def test_the_listing_date_is_the_publication_date(db_url, chromium, pyongyang, sources_file):
    # the publisher re-dates a headline: the archive follows the listing, not the page's header
    pyongyang.edit("/api/latest.json", '"2024-11-25"', '"2024-11-26"')
    result = crawl("pyongyang_times", db_url=db_url, sources_file=sources_file)
    assert result.returncode == 0, result.stdout + result.stderr
    record = next(r for r in export_jsonl(db_url) if r["url"].endswith("/?bbs=40402"))
    # midnight in Pyongyang (UTC+9) is 15:00 UTC the day before
    assert record["published_at"] == "2024-11-25T15:00:00+00:00"


class RepeatedHomepageSpider(PyongyangTimesSpider):
    """Renders the homepage `renders` times in one crawl, noting the browser processes it saw."""

    renders: Any = 8

    def discovery_requests(self) -> Iterator[Request]:
        for _ in range(int(self.renders)):
            yield self.listing_request(self.source.url("/"), page=1).replace(dont_filter=True)

    def parse_listing(self, response: Response, page: int) -> Iterator[Request]:
        BROWSER_PIDS.update(chromium_descendants(os.getpid()))
        yield from super().parse_listing(response, page)


BROWSER_PIDS: set[int] = set()


def chromium_descendants(root: int) -> set[int]:
    """The pids of live Chromium processes started (through Playwright's driver) by `root`."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        if fields[0] != "Z":
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    found: set[int] = set()
    stack = [root]
    while stack:
        for child in children.get(stack.pop(), []):
            stack.append(child)
            try:
                command = (Path("/proc") / str(child) / "cmdline").read_bytes()
            except OSError:
                continue
            if b"chrom" in command.split(b"\0")[0].lower():
                found.add(child)
    return found


def alive(pid: int) -> bool:
    try:
        state = (Path("/proc") / str(pid) / "stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return False
    return state != "Z"


def render_repeatedly(db_url: str, sources_file: str, renders: str) -> None:
    """Child-process entry point: crawl with RepeatedHomepageSpider, print what outlived it."""
    from scrapy.crawler import CrawlerProcess

    from crawler.runner import crawl_settings

    settings = crawl_settings(
        db_url,
        Path(sources_file),
        overrides={"AUTOTHROTTLE_ENABLED": False, "DOWNLOAD_DELAY": 0, "LOG_LEVEL": "WARNING"},
    )
    process = CrawlerProcess(settings)
    process.crawl(RepeatedHomepageSpider, renders=renders)
    process.start()
    seen = sorted(BROWSER_PIDS)
    print(json.dumps({"seen": seen, "alive": [pid for pid in seen if alive(pid)]}))


def test_pages_and_contexts_do_not_pile_up_over_many_renders(
    db_url, chromium, pyongyang, sources_file
):
    renders = 10  # more than PLAYWRIGHT_MAX_PAGES_PER_CONTEXT: a leaked page would stall
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRAWLER_")}
    code = (
        "import sys; from tests.test_pyongyang_times import render_repeatedly; "
        "render_repeatedly(*sys.argv[1:])"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, db_url, str(sources_file), str(renders)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    processes = json.loads(result.stdout.strip().splitlines()[-1])
    assert processes["seen"], "no Chromium process was seen while the homepage was rendered"
    assert processes["alive"] == [], "Chromium processes outlived the crawl"
    assert pyongyang.paths().count("/") == renders
    (run,) = runs(db_url)
    stats = run.stats
    assert run.status == "finished" and run.articles_new == 3
    # every page opened was closed again, and one browser context served all of them
    assert stats["playwright/page_count"] == renders
    assert stats["playwright/page_count/closed"] == renders
    assert stats["playwright/page_count/max_concurrent"] <= 4
    assert stats["playwright/context_count"] == 1
    assert stats["playwright/browser_count"] == 1


def test_missing_browser_fails_only_its_own_source(db_url, tmp_path, pyongyang):
    with MirrorServer(SITES_DIR / "kcna_watch") as kcna:
        sources = write_sources(
            tmp_path / "both.toml",
            {"pyongyang_times": pyongyang.base_url, "kcna_watch": kcna.base_url},
        )
        env = {k: v for k, v in os.environ.items() if not k.startswith("CRAWLER_")}
        env.update(
            CRAWLER_CHROMIUM=str(tmp_path / "no-such-chromium"),
            CRAWLER_DATABASE_URL=db_url,
            CRAWLER_SOURCES=str(sources),
            COLUMNS="200",
        )
        command = [sys.executable, "-m", "crawler.cli", "crawl", "pyongyang_times", "kcna_watch"]
        result = subprocess.run(
            [*command, "--no-progress", *LOOPBACK],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=240,
            check=False,
        )
        assert len([r for r in kcna.paths() if r.startswith("/newstream/17")]) == 4
    assert result.returncode == 1, result.stdout + result.stderr
    assert "no-such-chromium" in result.stderr and "apt-get install chromium" in result.stderr
    # the run failed at once: not even robots.txt was asked for
    assert pyongyang.paths() == []
    recorded = runs(db_url)
    assert sorted((r.status, r.articles_new) for r in recorded) == [("failed", 0), ("finished", 4)]
    failed = next(r for r in recorded if r.status == "failed")
    assert failed.error_log is not None
    assert "no-such-chromium" in failed.error_log
    assert "apt-get install chromium" in failed.error_log and "CRAWLER_CHROMIUM" in failed.error_log
    assert {r["outlet"] for r in export_jsonl(db_url)} == {"kcna_watch"}
