"""A generated mirror site: any number of KCNA Watch-style article pages (30-100 KB, about 65 KB
on average) behind a newstream listing of 50 links a page, written as a site folder that
:class:`~crawler.mirror.server.MirrorServer` serves like the bundled ones.

    write_generated_site(root, articles=3000)  # -> root / "kcna_watch", with routes.json

The pages have the markup the kcna_watch spider reads (title, date, paragraphs, original source)
and a long "more from" block, as the real pages do. The same seed writes the same site.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

__all__ = ["PER_LISTING", "article_paths", "write_generated_site"]

PER_LISTING = 50
"""Article links on one listing page."""

_SEED = 20241130
_WORDS = [
    "delegation",
    "ministry",
    "cooperation",
    "reception",
    "treaty",
    "partnership",
    "comrade",
    "government",
    "defence",
    "relations",
    "friendship",
    "military",
    "strategic",
    "economy",
    "development",
    "agricultural",
    "factory",
    "workers",
    "construction",
    "province",
    "county",
    "national",
    "committee",
    "party",
    "central",
    "people",
    "republic",
    "russian",
    "korean",
    "minister",
    "president",
    "visit",
    "talks",
    "agreement",
    "exchange",
    "culture",
    "science",
    "technology",
]


def _sentence(rng: random.Random, low: int, high: int) -> str:
    return " ".join(rng.choices(_WORDS, k=rng.randint(low, high))).capitalize() + "."


def article_path(index: int) -> str:
    """The route of the index-th generated article."""
    return f"/newstream/{1700000000 + index}-{100000 + index}/generated-item-{index}/"


def article_paths(count: int) -> list[str]:
    """The routes of the first `count` generated articles."""
    return [article_path(index) for index in range(count)]


def _article_page(index: int, rng: random.Random) -> tuple[str, str]:
    """(title, page) of one article page of 30-100 KB, shaped like the real ones."""
    path = article_path(index)
    title = f"Generated item {index}: " + " ".join(rng.choices(_WORDS, k=6))
    target = rng.randint(31_000, 98_000)
    body = "\n".join(f"<p>{_sentence(rng, 40, 90)}</p>" for _ in range(rng.randint(6, 14)))
    more = []
    size = len(body)
    while size < target:
        snippet = _sentence(rng, 20, 30)[:130]
        item = (
            f'<li class="more-from-item">\n<a class="more-from-link" '
            f'href="/newstream/1-{rng.randint(1, 10**6)}/x/">'
            f'{snippet}</a><span class="more-from-date">February 07, 2026</span>'
            f'<p class="more-from-excerpt">{snippet}</p></li>'
        )
        more.append(item)
        size += len(item)
    day = 1 + index % 28
    page = f"""<!DOCTYPE html><html lang="en-US"><head><meta charset="UTF-8">
<title>{title} | KCNA Watch</title>
<link rel="canonical" href="{{{{BASE}}}}{path}">
<meta property="og:title" content="{title}">
<meta property="article:published_time" content="2024-11-{day:02d}T09:55:12+00:00">
</head><body><header><nav><ul><li><a href="/newstream/">Newstream</a></li></ul></nav></header>
<main><article><header class="entry-header"><h1 class="article-title">{title}</h1>
<div class="article-meta"><span class="meta-date">Date:
<time datetime="2024-11-{day:02d}">{day:02d}/11/2024</time></span>
<span class="meta-source">Source: <span class="article-source">Pyongyang Times</span></span>
<a class="article-original" href="http://www.pyongyangtimes.com.kp/?bbs={40000 + index}">
Read original version at source</a>
</div></header><div class="article-content entry-content">{body}</div>
<section class="more-from"><h3>More From Pyongyang Times</h3><ul>{"".join(more)}</ul></section>
</article></main><footer><p>&copy; 2024 KCNA Watch. All rights reserved.</p></footer>
</body></html>"""
    return title, page


def _listing_page(links: list[tuple[str, str]], page: int, pages: int) -> str:
    items = "".join(
        f'<article class="newstream-item">\n<h2 class="entry-title"><a href="{p}">{t}</a></h2>'
        "</article>"
        for p, t in links
    )
    following = (
        f'<a class="next page-numbers" href="/newstream/page/{page + 1}/">Next</a>'
        if page < pages
        else ""
    )
    head = "<!DOCTYPE html><html><head><title>Newstream</title></head>"
    return f"{head}<body><main>{items}{following}</main></body></html>"


def write_generated_site(root: Path, articles: int, *, seed: int = _SEED) -> Path:
    """Write a kcna_watch-style site with `articles` article pages under root; its folder."""
    rng = random.Random(seed)
    site = root / "kcna_watch"
    (site / "pages").mkdir(parents=True, exist_ok=True)
    routes: dict[str, dict[str, object]] = {}
    html = "text/html; charset=utf-8"

    def add(route: str, name: str, text: str, content_type: str = html) -> None:
        (site / "pages" / name).write_text(text, encoding="utf-8")
        routes[route] = {"file": f"pages/{name}", "status": 200, "content_type": content_type}

    add("/robots.txt", "robots.txt", "User-agent: *\nDisallow: /wp-admin/\n", "text/plain")
    add(
        "/newstream/feed/",
        "feed.xml",
        '<?xml version="1.0"?><rss version="2.0"><channel><title>x</title></channel></rss>',
        "application/rss+xml; charset=utf-8",
    )
    links = []
    for index in range(articles):
        title, text = _article_page(index, rng)
        add(article_path(index), f"a{index}.html", text)
        links.append((article_path(index), title))
    pages = max(1, -(-articles // PER_LISTING))
    for page in range(1, pages + 1):
        chunk = links[(page - 1) * PER_LISTING : page * PER_LISTING]
        route = "/newstream/" if page == 1 else f"/newstream/page/{page}/"
        add(route, f"listing{page}.html", _listing_page(chunk, page, pages))
    (site / "routes.json").write_text(json.dumps(routes), encoding="utf-8")
    return site
