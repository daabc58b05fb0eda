"""`crawler parse URL`: each field a spider reads from a saved or fetched page, and how."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from crawler.mirror import SITES_DIR, MirrorServer
from tests.conftest import run_cli

GENERIC = SITES_DIR / "generic_news"
ROUTES = json.loads((GENERIC / "routes.json").read_text("utf-8"))
WEWORK = "/2019/11/18/new-york-state-attorney-general-reportedly-investigating-wework/"
KCNA_PAGE = (
    "/newstream/1732523411-283960/"
    "kim-chaek-university-of-technology-boosts-r-d-links-with-industry/"
)
KCNA_FILE = SITES_DIR / "kcna_watch" / KCNA_PAGE.strip("/") / "index.html"


def parse(*args: str, sources: Path | None = None) -> dict:
    result = run_cli("parse", *args, "--json", sources=sources)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def saved(path: str) -> Path:
    return GENERIC / ROUTES[path]["file"]


def test_unknown_site_is_read_by_the_generic_spider_from_its_metadata(tmp_path):
    url = "https://techcrunch.com" + WEWORK
    record = parse(url, "--file", str(saved(WEWORK)))
    assert (record["source"], record["spider"]) == ("techcrunch", "article")
    fields = record["fields"]
    assert fields["title"] == {
        "value": "New York State Attorney General reportedly investigating WeWork",
        "how": "metadata: JSON-LD headline",
    }
    assert fields["published"] == {
        "value": "2019-11-19T04:58:46+00:00",
        "how": "metadata: JSON-LD datePublished",
    }
    assert fields["author"] == {"value": "Catherine Shu", "how": "metadata: JSON-LD author"}
    assert fields["language"]["value"] == "en"
    assert fields["body"]["how"] == "main text (trafilatura)"
    assert fields["body"]["value"][0].startswith("WeWork is reportedly being investigated")


def test_selectors_of_the_sources_file_come_first_and_say_so(tmp_path):
    sources = tmp_path / "sources.toml"
    sources.write_text(
        "[sources.techcrunch]\n"
        'spider = "article"\n'
        'base_url = "https://techcrunch.com"\n'
        "selectors = { title = \"//meta[@name='sailthru.title']/@content\", "
        'author = "nowhere-to-be-found" }\n',
        encoding="utf-8",
    )
    record = parse("https://techcrunch.com" + WEWORK, "--file", str(saved(WEWORK)), sources=sources)
    fields = record["fields"]
    assert record["source"] == "techcrunch"
    assert fields["title"]["how"] == "sources file selector //meta[@name='sailthru.title']/@content"
    assert fields["title"]["value"]
    # a selector that finds nothing gives way to the page's metadata
    assert fields["author"] == {"value": "Catherine Shu", "how": "metadata: JSON-LD author"}


def test_hand_written_spider_shows_its_selectors_and_its_fallbacks(tmp_path):
    sources = tmp_path / "sources.toml"
    sources.write_text(
        '[sources.kcna_watch]\nbase_url = "https://kcnawatch.org"\n', encoding="utf-8"
    )
    url = "https://kcnawatch.org" + KCNA_PAGE
    record = parse(url, "--file", str(KCNA_FILE), sources=sources)
    fields = record["fields"]
    assert record["spider"] == "kcna_watch"
    assert fields["title"]["how"] == "selector (crawler.spiders.kcna_watch)"
    assert fields["title"]["value"] == (
        "Kim Chaek University of Technology boosts R&D links with industry"
    )
    assert fields["body"]["how"] == "selector (crawler.spiders.kcna_watch)"
    assert fields["original_source"]["value"]
    # the outlet renamed its title class: the page's own metadata stands in, and says so
    changed = tmp_path / "changed.html"
    changed.write_text(
        KCNA_FILE.read_text("utf-8").replace('class="article-title"', 'class="headline"'),
        encoding="utf-8",
    )
    fields = parse(url, "--file", str(changed), sources=sources)["fields"]
    assert fields["title"]["how"] == "fallback: metadata og:title"
    assert fields["title"]["value"].startswith("Kim Chaek University")


def test_page_fetched_from_the_site_and_nothing_archived(tmp_path):
    db = tmp_path / "archive.db"
    with MirrorServer(GENERIC) as site:
        result = run_cli("parse", site.base_url + WEWORK, db_url=f"sqlite:///{db}")
        assert result.returncode == 0, result.stderr
        assert site.paths() == ["/robots.txt", WEWORK]
        ua = site.requests[1].header("User-Agent")
        assert ua and ua.startswith("news-archive-crawler/")
    assert "New York State Attorney General" in result.stdout
    assert "JSON-LD headline" in result.stdout and "nothing archived" in result.stdout
    assert not db.exists()


@pytest.mark.parametrize(
    ("robots", "args", "reason"),
    [
        ("User-agent: *\nDisallow: /2019/\n", (), "robots.txt forbids this crawler"),
        ("", ("--file", "/nonexistent/page.html"), "--file /nonexistent/page.html: cannot read"),
        ("", ("--source", "nope"), "no source named 'nope'"),
    ],
)
def test_bad_input_is_one_line_with_exit_2(robots, args, reason):
    with MirrorServer(GENERIC) as site:
        if robots:
            site.override("/robots.txt", robots, content_type="text/plain")
        result = run_cli("parse", site.base_url + WEWORK, *args)
    assert result.returncode == 2
    assert reason in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_source_timezone_and_language_apply_to_what_the_page_leaves_open(tmp_path):
    sources = tmp_path / "sources.toml"
    sources.write_text(
        "[sources.daily]\n"
        'spider = "article"\n'
        'base_url = "https://daily.example.pk"\n'
        'timezone = "Asia/Karachi"\n'
        'language = "ur"\n',
        encoding="utf-8",
    )
    page = tmp_path / "page.html"
    page.write_text(
        '<html lang="en"><head><title>Floods</title>'
        '<meta name="date" content="2024-07-19 10:00"></head>'
        "<body><h1>Floods</h1><article>"
        + "".join(f"<p>Paragraph {n} of the report on the floods in Sindh.</p>" for n in range(9))
        + "</article></body></html>",
        encoding="utf-8",
    )
    fields = parse("https://daily.example.pk/2024/07/floods", "--file", str(page), sources=sources)[
        "fields"
    ]
    # a time without an offset is the source's local time: 10:00 in Karachi is 05:00 UTC
    assert fields["published"] == {"value": "2024-07-19T05:00:00+00:00", "how": "metadata: date"}
    assert fields["language"] == {"value": "ur", "how": "sources file"}
