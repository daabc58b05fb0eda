"""The sources file's spider, discovery, selector, timezone and language keys."""

from __future__ import annotations

from pathlib import Path

import pytest

from crawler.config import ConfigError, load_sources

SPIDERS = {"article", "urdupoint"}


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "sources.toml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("table", "reason"),
    [
        ('spider = "nope"', "no spider named 'nope'"),
        ("spider = 3", "spider must be a spider's name"),
        ('feeds = "/feed"', "feeds must be a list of paths or URLs"),
        ('sitemaps = ["ftp://x.org/s.xml"]', "sitemaps: 'ftp://x.org/s.xml' is neither"),
        ("listings = [1]", "listings must be a list"),
        ('spider = "article"\narticle_pattern = "(["', "is not a regular expression"),
        ('spider = "article"\nselectors = { headline = "h1" }', "unknown field(s) headline"),
        ('spider = "article"\nselectors = { title = "h1[" }', "selectors.title 'h1['"),
        ('spider = "article"\nselectors = { body = "//div[" }', "is not valid CSS or XPath"),
        ('spider = "article"\nselectors = "h1"', "selectors must be a table"),
        ('selectors = { title = "h1" }', "selectors is for the generic spider"),
        ('article_pattern = "/news/"', "article_pattern is for the generic spider"),
        ('timezone = "Mars/Olympus"', "timezone 'Mars/Olympus' is not a time zone"),
        ("language = 5", "language must be a non-empty string"),
    ],
)
def test_bad_key_is_rejected_naming_file_source_and_key(tmp_path, table, reason):
    path = write(tmp_path, f'[sources.urdupoint]\nbase_url = "https://x.org"\n{table}\n')
    with pytest.raises(ConfigError) as caught:
        load_sources(path, known_spiders=SPIDERS)
    message = str(caught.value)
    assert message.startswith(f"{path}: source 'urdupoint': ") and reason in message
    assert "\n" not in message


def test_several_sources_share_the_generic_spider(tmp_path):
    path = write(
        tmp_path,
        "# two outlets, no code\n"
        '[sources.desk_a]\nspider = "article"\nbase_url = "https://a.example"\n'
        'sitemaps = ["/news-sitemap.xml.gz", "https://cdn.a.example/sitemap.xml"]\n'
        'article_pattern = "^/20\\\\d\\\\d/"\ntimezone = "Asia/Karachi"\nlanguage = "ur"\n'
        'selectors = { title = "h1.headline", published = "//time/@datetime" }\n'
        '[sources.desk_b]\nspider = "article"\nbase_url = "https://b.example"\n'
        '[sources.urdupoint]\nbase_url = "https://www.urdupoint.com"\n'
        'listings = ["/en/news/pakistan.html"]\n',
    )
    sources = load_sources(path, known_spiders=SPIDERS).sources
    a, b, urdupoint = sources["desk_a"], sources["desk_b"], sources["urdupoint"]
    assert (a.spider, b.spider, urdupoint.spider) == ("article", "article", "urdupoint")
    assert a.sitemaps == ("/news-sitemap.xml.gz", "https://cdn.a.example/sitemap.xml")
    assert a.url(a.sitemaps[1]) == "https://cdn.a.example/sitemap.xml"
    assert a.url(a.sitemaps[0]) == "https://a.example/news-sitemap.xml.gz"
    assert a.article_pattern == "^/20\\d\\d/" and a.has_discovery and not b.has_discovery
    assert a.selectors == {"title": "h1.headline", "published": "//time/@datetime"}
    assert (a.timezone, a.language) == ("Asia/Karachi", "ur")
    assert b.feeds is None and b.selectors == {} and b.timezone is None
    assert urdupoint.listings == ("/en/news/pakistan.html",) and urdupoint.feeds is None
