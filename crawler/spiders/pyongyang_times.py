"""The Pyongyang Times: a homepage drawn by JavaScript (rendered in Chromium), plain articles."""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import datetime
from urllib.parse import parse_qs, urlsplit

from scrapy.http import Response, TextResponse

from crawler.spiders.base import (
    ListingEntry,
    NewsSpider,
    paragraphs_of,
    parse_local_datetime,
    text_of,
)


class PyongyangTimesSpider(NewsSpider):
    name = "pyongyang_times"
    timezone = "Asia/Pyongyang"
    # `/` is an application shell: its headline rows exist only after app.js has run.
    listing_paths = ("/",)
    render_listing = True
    # the article's identity is its query string: /?bbs=40224
    article_path = re.compile(r"^/\?bbs=\d+$")

    def _parse_listing_entries(self, response: Response) -> Iterable[ListingEntry]:
        # Headlines are not links (a click handler opens /?bbs=N); the row shows the
        # publication date, which the article page itself never does.
        entries = []
        for row in response.css("div.d-flex"):
            bbs = row.css("h3.title::attr(data-bbs)").get("").strip()
            if not bbs.isdigit():
                continue
            entries.append(
                ListingEntry(
                    url=response.urljoin(f"/?bbs={bbs}"),
                    title=text_of(row.css("h3.title")),
                    # 'December 12, 2024': the day only, midnight local time
                    published=parse_local_datetime(text_of(row.css("span.date")), "%B %d, %Y"),
                )
            )
        if not entries:
            # the shell alone (its script did not run) or a changed layout: nothing to follow
            self.report_error(response.url, "no headlines on the rendered homepage")
        return entries

    def _parse_title(self, response: TextResponse) -> str | None:
        return text_of(response.css("div.content h2.title"))

    def _parse_body(self, response: TextResponse) -> list[str]:
        # `div.more-news` follows the content: other headlines, never this article's text
        return paragraphs_of(response.css("div.content > p"))

    def _parse_published(self, response: TextResponse, entry: ListingEntry) -> datetime | None:
        # `div.header-date` is the day the page was served; the listing gave the real date
        return entry.published

    def _parse_outlet_article_id(self, response: TextResponse) -> str | None:
        return parse_qs(urlsplit(response.url).query).get("bbs", [None])[0]
