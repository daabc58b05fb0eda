"""What a page declares about itself (JSON-LD, OpenGraph, meta) and generic main-text extraction.

These are the fallbacks a spider uses when its outlet-specific selectors find nothing.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property, partial
from typing import Any

from dateutil import parser as dateparser
from lxml import etree
from scrapy.http import TextResponse

from crawler.text import normalize_text

_ARTICLE_TYPES = {
    "NewsArticle",
    "Article",
    "ReportageNewsArticle",
    "BlogPosting",
    "OpinionNewsArticle",
}


def parse_datetime(value: str | None) -> datetime | None:
    """An ISO-8601 or RFC-2822 date; None when absent or unreadable."""
    if not value or not value.strip():
        return None
    try:
        parsed = dateparser.parse(value.strip())
    except (ValueError, OverflowError):
        return None
    # placeholders such as 0001-01-01 say there is no date
    return parsed if 1800 <= parsed.year <= 2200 else None


def script_json(response: TextResponse, css: str) -> dict[str, Any]:
    """The JSON object in the first script matched by `css` (empty if absent or unreadable)."""
    raw = response.css(f"{css}::text").get()
    if not raw or not raw.strip():
        return {}
    try:
        data = json.loads(raw)
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _flatten_jsonld(data: Any) -> list[dict[str, Any]]:
    if isinstance(data, list):
        return [node for item in data for node in _flatten_jsonld(item)]
    if isinstance(data, dict):
        if "@graph" in data:
            return _flatten_jsonld(data["@graph"])
        return [data]
    return []


def _name_of(value: Any) -> str | None:
    if isinstance(value, list):
        names = [n for n in (_name_of(v) for v in value) if n]
        return ", ".join(names) or None
    if isinstance(value, dict):
        return normalize_text(value.get("name"))
    if isinstance(value, str):
        return normalize_text(value)
    return None


@dataclass(frozen=True)
class Found:
    """A field's value and where on the page it was found ("JSON-LD headline", "og:title"...)."""

    value: Any
    how: str


def _author_name(value: str | None) -> str | None:
    """An author meta's text, unless it is a profile URL (article:author often is)."""
    if not value or re.match(r"^(?:https?:)?//", value):
        return None
    return value


class PageMetadata:
    """Lazily read metadata of one response, each field with where it was found."""

    def __init__(self, response: TextResponse) -> None:
        self.response = response

    def meta(self, *names: str) -> str | None:
        """The first non-empty <meta property|name=...> content among `names`."""
        found = self._meta_found(*names)
        return found.value if found else None

    def _meta_found(self, *names: str) -> Found | None:
        for name in names:
            value = self.response.xpath("//meta[@property=$n or @name=$n]/@content", n=name).get()
            if value and value.strip():
                return Found(normalize_text(value), name)
        return None

    def _xpath_text(self, xpath: str) -> str | None:
        node = self.response.xpath(xpath)
        return (
            normalize_text(" ".join(node[0].xpath("./@content|./@datetime|.//text()").getall()))
            if node
            else None
        )

    @cached_property
    def jsonld_article(self) -> dict[str, Any]:
        """The first JSON-LD node that describes an article (empty if none)."""
        for raw in self.response.xpath('//script[@type="application/ld+json"]/text()').getall():
            try:
                nodes = _flatten_jsonld(json.loads(raw))
            except ValueError:
                continue
            for node in nodes:
                kind = node.get("@type")
                kinds = set(kind) if isinstance(kind, list) else {kind}
                if kinds & _ARTICLE_TYPES:
                    return node
        return {}

    def _candidates(self, field: str) -> Iterator[tuple[str, Callable[[], Any]]]:
        """Where each field may be found, most trustworthy first (each read only when asked:
        a page whose <html lang> says its language has its JSON-LD left unparsed)."""
        ld = self._jsonld
        if field == "title":
            yield "JSON-LD headline", lambda: normalize_text(ld("headline"))
            yield "og:title", lambda: self.meta("og:title")
            yield "twitter:title", lambda: self.meta("twitter:title")
            yield "microdata headline", lambda: self._xpath_text('//*[@itemprop="headline"]')
            yield "<h1>", lambda: self._xpath_text("//h1")
            yield "<title>", lambda: normalize_text(self.response.xpath("//title/text()").get())
        elif field == "published":
            yield "JSON-LD datePublished", lambda: parse_datetime(ld("datePublished"))
            for name in _PUBLISHED_METAS:
                yield name, partial(self._meta_datetime, name)
            yield (
                "microdata datePublished",
                lambda: parse_datetime(self._xpath_text('//*[@itemprop="datePublished"]')),
            )
        elif field == "published_guess":
            # what the page shows rather than declares: after a feed's or sitemap's date
            yield (
                "<time datetime>",
                lambda: parse_datetime(
                    self.response.xpath("(//article//time|//main//time|//time)/@datetime").get()
                ),
            )
            yield "htmldate", self._htmldate
        elif field == "author":
            yield "JSON-LD author", lambda: _name_of(ld("author"))
            yield "author", lambda: _author_name(self.meta("author"))
            yield "article:author", lambda: _author_name(self.meta("article:author"))
            yield (
                "microdata author",
                lambda: self._xpath_text(
                    '//*[@itemprop="author"]//*[@itemprop="name"]|//*[@itemprop="author"]'
                ),
            )
            yield "rel=author", lambda: self._xpath_text('//a[@rel="author"]')
        elif field == "summary":
            yield "JSON-LD description", lambda: normalize_text(ld("description"))
            yield "og:description", lambda: self.meta("og:description")
            yield "description", lambda: self.meta("description")
        elif field == "language":
            yield "<html lang>", lambda: _language_code(self.response.xpath("/html/@lang").get())
            yield "JSON-LD inLanguage", lambda: _language_code(_text_of(ld("inLanguage")))
            yield "og:locale", lambda: _language_code(self.meta("og:locale"))
            yield (
                "content-language",
                lambda: _language_code(
                    self.response.xpath('//meta[@http-equiv="content-language"]/@content').get()
                ),
            )

    def _jsonld(self, key: str) -> Any:
        return self.jsonld_article.get(key)

    def _meta_datetime(self, name: str) -> datetime | None:
        return parse_datetime(self.meta(name))

    def found(self, field: str) -> Found | None:
        """The field's value and where it was found, or None when the page does not say."""
        for how, value_of in self._candidates(field):
            value = value_of()
            if value:
                return Found(value, how)
        return None

    def _htmldate(self) -> datetime | None:
        """The publication day htmldate's heuristics find (URL, markup, text): naive midnight."""
        from htmldate import find_date

        try:
            day = find_date(
                self.response.text,
                url=self.response.url,
                original_date=True,
                extensive_search=False,
            )
        except Exception:  # htmldate raises several types on odd markup
            return None
        return datetime.fromisoformat(day) if day else None

    @property
    def title(self) -> str | None:
        found = self.found("title")
        return found.value if found else None

    @property
    def published(self) -> datetime | None:
        found = self.found("published")
        return found.value if found else None

    @property
    def author(self) -> str | None:
        found = self.found("author")
        return found.value if found else None

    @property
    def summary(self) -> str | None:
        found = self.found("summary")
        return found.value if found else None

    @property
    def language(self) -> str | None:
        found = self.found("language")
        return found.value if found else None

    @property
    def canonical(self) -> str | None:
        href = _canonical_href(self.response)
        return self.response.urljoin(href.strip()) if href and href.strip() else None

    @property
    def is_article(self) -> str | None:
        """How the page declares itself an article (JSON-LD type, og:type), or None."""
        if self.jsonld_article:
            kind = self.jsonld_article.get("@type")
            return f"JSON-LD {kind if isinstance(kind, str) else '/'.join(map(str, kind or []))}"
        og_type = (self.meta("og:type") or "").lower()
        if og_type in ("article", "news", "blog", "news_article") or og_type.startswith("article"):
            return f"og:type {og_type}"
        return None


def _canonical_href(response: TextResponse) -> str | None:
    """The href of the page's first <link rel="canonical"> (`//link[@rel="canonical"]/@href`).

    Walked with lxml's own iterator over the page's link elements: five times quicker than
    the XPath, which runs for every article page a crawl reads."""
    root = response.selector.root
    if not etree.iselement(root):  # a JSON body: parsel's own refusal of an XPath
        found: str | None = response.xpath('//link[@rel="canonical"]/@href').get()
        return found
    for link in root.iter("link"):
        if link.get("rel") == "canonical" and link.get("href") is not None:
            return str(link.get("href"))
    return None


def _text_of(value: Any) -> str | None:
    if isinstance(value, dict):
        value = value.get("name") or value.get("alternateName")
    return value if isinstance(value, str) else None


def _language_code(lang: str | None) -> str | None:
    """'en-US', 'en_GB', 'EN' -> 'en'."""
    if not lang or not lang.strip():
        return None
    return lang.strip().replace("_", "-").split("-")[0].lower() or None


_PUBLISHED_METAS = (
    "article:published_time",
    "pubdate",
    "date",
    "publish-date",
    "parsely-pub-date",
    "sailthru.date",
    "dc.date",
    "DC.date.issued",
    "og:published_time",
)


def generic_paragraphs(response: TextResponse) -> list[str]:
    """The page's main text as paragraphs, found without any site knowledge."""
    return main_text(response.text, response.url)


# Lines that are a page's furniture wherever they stand: comment counters, update stamps,
# copyright and sharing prompts, newsletter pitches.
_BOILERPLATE = re.compile(
    r"^(?:\d+\s+comments?|comments?|no comments|leave a (?:comment|reply).*|updated\b.{0,40}"
    r"|(?:©|copyright\b).*|all rights reserved.*|tell us what you think.*|click here\b.*"
    r"|share (?:this|on)\b.*|read more\W*|related(?: articles| stories| posts)?\W*"
    r"|advertisement|(?:sign up|subscribe)\b.{0,80}(?:newsletter|inbox).*"
    r"|get the latest\b.{0,60}inbox.*|(?:see more|also read|read also|more)\s*:.*"
    r"|don'?t miss\W*|recommended(?: for you)?\W*)$",
    re.I,
)
# A paragraph that is nothing but one link's text, at most this many words: a related-link list.
_LINK_ONLY_WORDS = 12


def _words(text: str) -> str:
    return " ".join(re.findall(r"\w+", text)).casefold()


def _texts(tree: Any, xpath: str) -> set[str]:
    return {w for w in (_words(" ".join(node.itertext())) for node in tree.xpath(xpath)) if w}


def main_text(html: str, url: str | None = None) -> list[str]:
    """The main text of an article page as paragraphs, without headline, captions and furniture.

    trafilatura in its precision mode finds the text; lines that repeat the page's headline or
    title, a caption, or the whole text of a short link (related-article lists), and lines of
    common page furniture, are then left out: a news body has none of them (measured on the
    generic_news benchmark pages, F1 0.975 -> 0.978).
    """
    import trafilatura

    tree = trafilatura.load_html(html)
    if tree is None:
        return []
    headings = _texts(tree, "//h1|//title")
    captions = _texts(tree, "//figcaption|//caption")
    link_texts = _texts(tree, "//a")
    text = trafilatura.extract(
        tree, url=url, favor_precision=True, include_comments=False, include_images=False
    )
    if not text:
        return []
    paragraphs = []
    for line in text.split("\n"):
        paragraph = normalize_text(line)
        if not paragraph:
            continue
        words = _words(paragraph)
        if words in headings or words in captions:
            continue
        if _BOILERPLATE.match(paragraph):
            continue
        if words in link_texts and 2 <= words.count(" ") + 1 <= _LINK_ONLY_WORDS:
            continue
        paragraphs.append(paragraph)
    return paragraphs
