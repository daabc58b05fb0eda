"""`crawler web`'s pages in a real headless Chromium: search and open an article, the diff
between versions, a snapshot whose scripts must not run, hostile text, the outlets page, the
token, a phone's screen. A screenshot of each main page is kept in tests/artifacts/web/."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.conftest import BACKEND, ROOT, fresh_archive_url
from tests.web import (
    RECENT_ARTICLES,
    SHOIGU_ARTICLES,
    TOKEN,
    CallHome,
    Served,
    serve,
    serve_stories,
    start_web,
)

ARTIFACTS = ROOT / "tests" / "artifacts" / "web"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="module")
def served(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Served]:
    folder = tmp_path_factory.mktemp("web-pages")
    archive_urls = fresh_archive_url(request, folder / "archive.db")
    db_url = next(archive_urls)
    with CallHome() as home:
        yield from serve(db_url, folder / "web.log", home)
    next(archive_urls, None)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"Chromium is needed at {CHROMIUM} (apt-get install chromium)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A desktop-sized page with JavaScript off: reading must not need it."""
    context = browser.new_context(
        viewport={"width": 1200, "height": 900}, java_script_enabled=False
    )
    opened = context.new_page()
    yield opened
    context.close()


@pytest.fixture
def scripted_page(browser: Browser) -> Iterator[Page]:
    """A page with JavaScript on, as a browser has it: an archived page's scripts would run
    there if the sandbox let them."""
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    opened = context.new_page()
    yield opened
    context.close()


def screenshot(page: Page, name: str) -> Path:
    """Keep a full-page screenshot as a test artefact."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}-{BACKEND}.png"
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 5000
    return path


def test_search_then_open_an_article(page, served):
    page.goto(served.url + "/search")
    page.get_by_label("Search query").fill("Shoigu")
    page.get_by_role("button", name="Search").click()
    expect(page.locator("#total")).to_contain_text(f"{SHOIGU_ARTICLES + 1} articles match")
    hits = page.locator("li.hit")
    expect(hits).to_have_count(20)
    expect(page.locator("li.hit mark").first).to_have_text(re.compile("Shoigu", re.I))
    screenshot(page, "search")
    page.get_by_role("link", name="Next →").click()
    expect(hits).to_have_count(SHOIGU_ARTICLES + 1 - 20)
    expect(page.locator("#total")).to_contain_text("21–26 shown")
    page.get_by_role("link", name="← Previous").click()
    expect(hits).to_have_count(20)
    page.goto(served.url + "/search?q=%22visit+report+3%22")
    expect(hits).to_have_count(1)
    page.locator("li.hit a.title").click()
    expect(page.locator("h1#title")).to_have_text("Shoigu visit report 3")
    expect(page.locator("#published")).to_have_text("2024-07-04 05:00 (PKT)")
    expect(page.locator("dl.facts")).to_contain_text("dprk-russia")


def test_search_filters_by_outlet_and_date(page, served):
    page.goto(served.url + "/search?q=Shoigu")
    page.locator("select[name=outlet]").select_option("urdupoint")
    page.locator("input[name=since]").fill("2024-07-10")
    page.get_by_role("button", name="Search").click()
    expect(page.locator("#total")).to_contain_text("6 articles match")
    for meta in page.locator("li.hit .meta").all_inner_texts():
        assert meta.startswith("urdupoint")


def test_a_bad_query_is_explained_on_the_page(page, served):
    response = page.goto(served.url + "/search?q=%21%21%21")
    assert response is not None and response.status == 400
    expect(page.get_by_role("alert")).to_contain_text("cannot search for '!!!'")


def test_article_shows_the_word_diff_between_versions(page, served):
    page.goto(f"{served.url}/articles/{served.corpus.edited}")
    expect(page.locator("#versions table tbody tr")).to_have_count(2)
    diff = page.locator("#diff-2")
    expect(diff.locator("del").first).to_have_text("30")
    expect(diff.locator("ins").first).to_have_text("40")
    expect(diff.locator("ins").nth(1)).to_contain_text("has")
    expect(diff).to_contain_text("1 unchanged paragraph")
    expect(page.locator("#snapshots tbody tr")).to_have_count(2)
    screenshot(page, "article")


def test_a_day_only_date_is_shown_as_the_local_date(page, served):
    page.goto(f"{served.url}/articles/{served.corpus.day_only}")
    expect(page.locator("#published")).to_contain_text("2024-12-12")
    expect(page.locator("#published")).not_to_contain_text("2024-12-11")
    expect(page.locator("#published")).to_contain_text("date only, Asia/Pyongyang")


def test_hostile_text_is_shown_as_text(page, served):
    page.goto(f"{served.url}/articles/{served.corpus.hostile}")
    title = page.locator("h1#title")
    expect(title).to_contain_text("<script>document.title='pwned'</script>")
    expect(title).to_contain_text(r"Kim \x1b[31mRED\x1b[0m meets Shoigu")
    expect(title.locator("span.ctl")).to_have_count(2)
    expect(page.locator("#body")).to_contain_text(r"\x1b[2J a terminal escape and <b>markup</b>")
    assert page.locator("#body b").count() == 0
    assert page.title().startswith(r"<script>document.title='pwned'</script> Kim \x1b[31m")
    screenshot(page, "hostile-article")


def test_a_snapshot_is_shown_without_running_its_scripts(scripted_page, served):
    page = scripted_page
    served.home.paths.clear()
    console: list[str] = []
    page.on("console", lambda message: console.append(message.text))
    address = f"{served.url}/snapshots/{served.corpus.hostile_snapshot}"
    page.goto(address)
    frame = page.frame_locator("iframe#archived")
    expect(frame.locator("h1")).to_have_text("Kim meets Shoigu")
    marker = frame.locator("#marker")
    expect(marker).to_have_text("as archived")  # the script did not run
    expect(marker).to_have_css("color", "rgb(0, 0, 200)")  # inline styles are kept
    time.sleep(1.5)
    assert page.url == address  # no top navigation
    expect(page.locator("body")).not_to_contain_text("PWNED")
    expect(page.locator("h1").first).to_have_text("The page as archived")
    assert served.home.paths == []  # no image, stylesheet, script, fetch or form reached home
    download = page.get_by_role("link", name="download the exact bytes")
    expect(download).to_have_attribute(
        "href", f"/raw/snapshots/{served.corpus.hostile_snapshot}/download"
    )
    expect(page.get_by_role("link", name="the article")).to_have_attribute(
        "href", f"/articles/{served.corpus.hostile}"
    )
    screenshot(page, "snapshot")


def test_a_snapshot_opened_on_its_own_is_sandboxed_too(scripted_page, served):
    page = scripted_page
    served.home.paths.clear()
    page.goto(f"{served.url}/raw/snapshots/{served.corpus.hostile_snapshot}")
    expect(page.locator("#marker")).to_have_text("as archived")
    time.sleep(1.0)
    assert page.evaluate("() => self.origin") == "null"  # opaque: never the interface's
    assert served.home.paths == []


def test_the_outlets_page_shows_schedule_health_fallbacks_charts_and_runs(page, served):
    page.goto(served.url + "/sources")
    kcna = page.locator("#source-kcna_watch")
    expect(kcna).to_contain_text("every 2h")
    expect(kcna).to_contain_text("healthy")
    expect(kcna).to_contain_text("generic/body: 3")
    expect(kcna).to_contain_text("1 of 3")
    expect(kcna.locator("table.runs tbody tr")).to_have_count(3)
    expect(kcna.locator("td.status-failed")).to_have_text("failed")
    expect(kcna.locator("svg.chart")).to_have_count(2)
    outcomes = kcna.locator("svg.chart").nth(1)
    expect(outcomes.locator("rect")).to_have_count(3)
    expect(page.locator("#source-pyongyang_times")).to_contain_text("No run yet.")
    recent = page.locator("#source-urdupoint svg.chart").first
    expect(recent.locator("rect")).to_have_count(RECENT_ARTICLES)
    screenshot(page, "sources")
    page.get_by_role("link", name="every run of kcna_watch").click()
    expect(page.locator("table.runs tbody tr")).to_have_count(3)
    expect(page.locator("table.runs")).to_contain_text("generic/body: 2")
    screenshot(page, "runs")


def test_pages_fit_a_phone_screen(browser, served):
    context = browser.new_context(
        viewport={"width": 390, "height": 844}, device_scale_factor=2, is_mobile=True
    )
    phone = context.new_page()
    try:
        for path, name in (
            ("/search?q=Shoigu", "phone-search"),
            (f"/articles/{served.corpus.edited}", "phone-article"),
            ("/sources", "phone-sources"),
        ):
            phone.goto(served.url + path)
            overflow = phone.evaluate(
                "() => document.documentElement.scrollWidth - window.innerWidth"
            )
            assert overflow <= 0, f"{path} is {overflow}px wider than the phone"
            screenshot(phone, name)
    finally:
        context.close()


def test_the_token_refuses_a_page_without_it(browser, served, tmp_path):
    guarded = start_web(served.db_url, tmp_path / "web.log", token=TOKEN)
    context = browser.new_context()
    page = context.new_page()
    try:
        response = page.goto(guarded.url + "/search?q=Shoigu")
        assert response is not None and response.status == 401
        expect(page.locator("h1")).to_have_text("This archive needs a token")
        assert page.locator("li.hit").count() == 0
        screenshot(page, "login")
        page.get_by_label("Token").fill("wrong")
        page.get_by_role("button", name="Enter").click()
        expect(page.get_by_role("alert")).to_have_text("That token is wrong.")
        page.get_by_label("Token").fill(TOKEN)
        page.get_by_role("button", name="Enter").click()
        # back on the page asked for, the token in a cookie rather than in the URL
        expect(page.locator("#total")).to_contain_text(f"{SHOIGU_ARTICLES + 1} articles match")
        assert page.url == guarded.url + "/search?q=Shoigu"
        page.goto(f"{guarded.url}/articles/{served.corpus.edited}")
        expect(page.locator("#diff-2 ins").first).to_have_text("40")
    finally:
        context.close()
        guarded.stop()


def test_stories_and_changes_in_a_browser(browser, page, request, tmp_path):
    """The stories archive (tests/web.py): /stories with its filters, a story, search within
    it, and /changes with its word diffs, all without JavaScript."""
    archive_urls = fresh_archive_url(request, tmp_path / "stories.db")
    db_url = next(archive_urls)
    try:
        for served in serve_stories(db_url, tmp_path / "web.log"):
            page.goto(served.url + "/search")
            page.get_by_role("link", name="Stories").click()
            stories = page.locator("section.story")
            expect(stories).to_have_count(5)
            expect(page.locator("li.copy .copy-of")).to_have_count(4)
            # KCNA Watch's 12/12/2024 (midnight in Pyongyang) as the date it gave, as on the
            # article page; a time as the outlet's local time
            ids = served.corpus.articles
            kcna = page.locator(f"li:has(> a[href='/articles/{ids['287305']}'])")
            expect(kcna.locator(".published")).to_have_text("2024-12-12")
            meeting_first = page.locator(
                f"li:has(> a[href='/articles/{ids['kim-jong-un-hosts-russia']}'])"
            )
            expect(meeting_first.locator(".published")).to_have_text("2024-07-19 14:59 (EEST)")
            hostile = page.locator(f"li.copy:has(a[href='/articles/{served.corpus.hostile_copy}'])")
            expect(hostile).to_contain_text("<script>document.title='pwned'</script>")
            expect(hostile.locator("span.ctl")).to_have_count(2)
            assert page.title() == "Stories · News archive"
            screenshot(page, "stories")
            page.locator("select[name=outlet]").select_option("al_mayadeen")
            page.get_by_role("button", name="Show").click()
            expect(stories).to_have_count(1)
            meeting = stories.first
            expect(meeting.locator(".first")).to_have_text("al_mayadeen")
            expect(meeting).to_contain_text(
                "3 articles · 3 outlets (al_mayadeen, wire_h, islam_times)"
            )
            meeting.locator("h2 a").click()
            expect(page.locator("h1.label")).to_be_visible()
            page.get_by_role("link", name="search within").click()
            expect(page.locator("#within-story")).to_contain_text("Within story")
            expect(page.locator("li.hit")).to_have_count(3)
            page.get_by_label("Search query").fill("Kim")
            page.get_by_role("button", name="Search").click()
            expect(page.locator("#within-story")).to_be_visible()  # the story is kept
            expect(page.locator("li.hit").first).to_be_visible()
            # two reprint pairs match: two hits and a total of two, four with every copy
            page.goto(served.url + "/search?q=ambassador+reception")
            expect(page.locator("li.hit")).to_have_count(2)
            expect(page.locator("#total")).to_have_text("2 articles match")
            expect(page.locator("li.hit .copies")).to_have_text(["and 1 copy"] * 2)
            screenshot(page, "search-copies")
            page.get_by_label("every copy").check()
            page.get_by_role("button", name="Search").click()
            expect(page.locator("li.hit")).to_have_count(4)
            expect(page.locator("#total")).to_have_text("4 articles match")
            expect(page.get_by_label("every copy")).to_be_checked()
            page.get_by_role("link", name="Changes").click()
            expect(page.locator("section.edit")).to_have_count(3)
            expect(page.locator("#total")).to_contain_text("3 edits since")
            title = page.locator(f"#edit-{served.corpus.edited}-3")
            expect(title.locator(".published")).to_have_text("2024-12-12")
            expect(title.locator("del")).to_have_text("fulfils")
            expect(title.locator("ins")).to_have_text("overfulfils")
            body = page.locator(f"#edit-{served.corpus.edited}-2")
            expect(body.locator("del")).to_have_text("30")
            expect(body.locator("ins")).to_have_text("40")
            hostile_edit = page.locator(f"#edit-{served.corpus.hostile_edit}-2 ins")
            expect(hostile_edit).to_contain_text("<script>alert(1)</script>")
            screenshot(page, "changes")
            page.locator("input[name=since]").fill("60d")
            page.locator("select[name=outlet]").select_option("islam_times")
            page.get_by_role("button", name="Show").click()
            expect(page.locator("section.edit")).to_have_count(1)
            expect(page.locator("section.edit ins")).to_have_text("later")
            # two edits a page: the newest two, then `Older →` to the other two
            page.goto(served.url + "/changes?since=60d&limit=2")
            expect(page.locator("section.edit")).to_have_count(2)
            expect(page.locator("#total")).to_contain_text("older ones on the next page")
            newest = page.locator("section.edit").evaluate_all("(s) => s.map((e) => e.id)")
            page.get_by_role("link", name="Older →").click()
            expect(page.locator("section.edit")).to_have_count(2)
            expect(page.locator("#total")).to_contain_text("2 older edits since")
            older = page.locator("section.edit").evaluate_all("(s) => s.map((e) => e.id)")
            assert not set(newest) & set(older)
            assert f"edit-{served.corpus.old_edit}-2" in older
            expect(page.get_by_role("link", name="Older →")).to_have_count(0)
            screenshot(page, "changes-older")
            phone = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
            try:
                small = phone.new_page()
                for path, name in (("/stories", "phone-stories"), ("/changes", "phone-changes")):
                    small.goto(served.url + path)
                    overflow = small.evaluate(
                        "() => document.documentElement.scrollWidth - window.innerWidth"
                    )
                    assert overflow <= 0, f"{path} is {overflow}px wider than the phone"
                    screenshot(small, name)
            finally:
                phone.close()
    finally:
        next(archive_urls, None)
