"""Look at a site before adding it (`crawler sources add`): the generic spider finds its entry
points and reads a handful of articles, with the usual politeness, archiving nothing.

Runs a Scrapy crawl in this process (one reactor per process, like `crawler crawl`).
"""

from __future__ import annotations

import re
import tempfile
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from scrapy import signals
from scrapy.crawler import CrawlerProcess

from crawler.config import GENERIC_SPIDER, project_settings
from crawler.items import ArticleItem
from crawler.pipelines.clean import clean_article
from crawler.signals import page_error

PROBE_SOURCE = "probe"
# What each entry-point stat of the generic spider means, for people.
ENTRY_POINTS = {
    "robots_sitemaps": "sitemaps named in robots.txt",
    "homepage_feeds": "feeds the homepage links",
    "usual_paths": "a feed or sitemap at a usual path",
    "homepage_links": "the homepage's links (no feed or sitemap found)",
}


@dataclass(frozen=True)
class ProbedArticle:
    url: str
    title: str | None
    published_at: datetime | None
    author: str | None
    body: list[str]
    found_by: str


@dataclass
class ProbeResult:
    base_url: str
    articles: list[ProbedArticle] = field(default_factory=list)
    entry_points: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    stats: dict[str, Any] = field(default_factory=dict)

    @property
    def reason(self) -> str | None:
        """Why the site cannot be crawled, or None when articles were found."""
        if self.articles:
            return None
        if self.stats.get("robotstxt/forbidden"):
            return (
                f"{self.base_url}/robots.txt forbids this crawler "
                f"({self.stats['robotstxt/forbidden']} page(s) refused)"
            )
        if self.stats.get("discovery/not_article") and not self.stats.get("item_scraped_count"):
            return (
                f"{self.base_url}: none of the {self.stats['discovery/not_article']} linked "
                "pages fetched is an article"
            )
        if not self.stats.get("response_received_count"):
            detail = f" ({self.errors[0]})" if self.errors else ""
            return f"{self.base_url} cannot be reached{detail}"
        if self.errors:
            return self.errors[0]
        return f"{self.base_url}: no articles found"


def site_origin(url: str) -> str:
    """scheme://host[:port] of a URL given on the command line (https:// when none)."""
    text = url.strip()
    if not re.match(r"^[a-z][a-z0-9+.-]*://", text, re.I):
        text = "https://" + text
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{url!r} is not an http(s) URL")
    return f"{parts.scheme}://{parts.netloc.lower()}"


def source_name_for(base_url: str) -> str:
    """A source name from a site's host: www.example-news.org -> example_news."""
    host = urlsplit(base_url).hostname or "site"
    labels = host.removeprefix("www.").split(".")
    if len(labels) > 1 and not host.replace(".", "").isdigit():
        labels = labels[:-1]  # the top-level domain says nothing
    name = re.sub(r"[^a-z0-9]+", "_", "_".join(labels).lower()).strip("_") or "site"
    port = urlsplit(base_url).port
    return f"{name}_{port}" if port else name


def probe_site(
    base_url: str, *, articles: int = 5, overrides: dict[str, Any] | None = None
) -> ProbeResult:
    """Run the generic spider over the site until `articles` articles were read."""
    result = ProbeResult(base_url)
    with tempfile.TemporaryDirectory(prefix="crawler-probe-") as tmp:
        sources = Path(tmp) / "sources.toml"
        sources.write_text(
            f'[sources.{PROBE_SOURCE}]\nspider = "{GENERIC_SPIDER}"\nbase_url = "{base_url}"\n',
            encoding="utf-8",
        )
        settings = project_settings()
        for key, value in {
            "CRAWLER_SOURCES": str(sources),
            "ITEM_PIPELINES": {},  # nothing is archived
            "CRAWLER_RECORD_RUNS": False,
            "CLOSESPIDER_ITEMCOUNT": articles,
            "LOG_LEVEL": "WARNING",
            **(overrides or {}),
        }.items():
            settings.set(key, value, priority="cmdline")
        process = CrawlerProcess(settings)
        crawler = process.create_crawler(GENERIC_SPIDER)

        def collect(item: Any, response: Any, spider: Any) -> None:
            if isinstance(item, ArticleItem) and len(result.articles) < articles:
                cleaned = clean_article(item)
                result.articles.append(
                    ProbedArticle(
                        url=cleaned.url,
                        title=cleaned.title,
                        published_at=cleaned.published_at,
                        author=cleaned.author,
                        body=cleaned.body,
                        found_by=response.meta.get("found_by", "?"),
                    )
                )

        def note_error(url: str, reason: str) -> None:
            result.errors.append(f"{url}: {reason}")

        crawler.signals.connect(collect, signal=signals.item_scraped, weak=False)
        crawler.signals.connect(note_error, signal=page_error, weak=False)
        process.crawl(crawler, source_name=PROBE_SOURCE, probe=True)
        process.start()
        result.stats = dict(crawler.stats.get_stats()) if crawler.stats else {}
    prefix = "discovery/entry_points/"
    result.entry_points = [
        ENTRY_POINTS.get(key.removeprefix(prefix), key.removeprefix(prefix))
        for key in result.stats
        if key.startswith(prefix)
    ]
    return result
