"""Generated KCNA Watch-style sites of any size, served by `MirrorServer` like the saved ones.

    site = generate_kcna_site(folder, articles=2000)
    with MirrorServer(site) as server: ...

The site has a robots.txt, a feed of the newest items, a newest-first listing `/newstream/`,
`/newstream/page/N/` of `per_page` items each, and the article pages, with the markup the
kcna_watch spider reads. `add_articles` puts new articles on top afterwards, as the outlet
publishes, pushing older ones to later listing pages. Pages are deterministic for a seed.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path

__all__ = ["GeneratedSite", "generate_kcna_site", "write_generated_site"]

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
_HTML = "text/html; charset=utf-8"


@dataclass
class GeneratedSite:
    """A generated site's folder and its articles' paths, newest first."""

    folder: Path
    paths: list[str]
    per_page: int
    seed: int
    paragraphs: tuple[int, int]

    def add_articles(self, count: int) -> list[str]:
        """Publish `count` new articles (on top of the listing); their paths."""
        first = len(self.paths)
        added = [_article_path(first + i) for i in range(count)]
        self.paths = list(reversed(added)) + self.paths
        self._write(range(first, first + count))
        return added

    def _write(self, new: range) -> None:
        pages = self.folder / "pages"
        pages.mkdir(parents=True, exist_ok=True)
        routes: dict[str, dict[str, object]] = {}

        def add(route: str, name: str, text: str, content_type: str = _HTML) -> None:
            (pages / name).write_text(text, encoding="utf-8")
            routes[route] = {"file": f"pages/{name}", "status": 200, "content_type": content_type}

        add("/robots.txt", "robots.txt", "User-agent: *\nDisallow: /wp-admin/\n", "text/plain")
        add("/newstream/feed/", "feed.xml", _feed(self.paths[:10]), "application/rss+xml")
        for index in new:
            rng = random.Random(self.seed * 1_000_003 + index)
            (pages / f"a{index}.html").write_text(
                _article(index, rng, self.paragraphs), encoding="utf-8"
            )
        for index in range(len(self.paths)):
            routes[_article_path(index)] = {
                "file": f"pages/a{index}.html",
                "status": 200,
                "content_type": _HTML,
            }
        count = max(1, -(-len(self.paths) // self.per_page))
        for page in range(1, count + 1):
            chunk = self.paths[(page - 1) * self.per_page : page * self.per_page]
            route = "/newstream/" if page == 1 else f"/newstream/page/{page}/"
            add(route, f"listing{page}.html", _listing(chunk, page, count))
        (self.folder / "routes.json").write_text(json.dumps(routes), encoding="utf-8")


def generate_kcna_site(
    folder: Path,
    articles: int,
    *,
    per_page: int = 50,
    seed: int = 20241130,
    paragraphs: tuple[int, int] = (3, 8),
) -> GeneratedSite:
    """Write a site of `articles` articles into `folder` (a MirrorServer site folder)."""
    site = GeneratedSite(Path(folder), [], per_page, seed, paragraphs)
    site.add_articles(articles)
    return site


def _article_path(index: int) -> str:
    return f"/newstream/{1700000000 + index}-{100000 + index}/generated-item-{index}/"


def _title(index: int) -> str:
    return f"Generated item {index}"


def _article(index: int, rng: random.Random, paragraphs: tuple[int, int]) -> str:
    title = _title(index) + ": " + " ".join(rng.choice(_WORDS) for _ in range(6))
    body = "\n".join(
        "<p>"
        + " ".join(rng.choice(_WORDS) for _ in range(rng.randint(40, 90))).capitalize()
        + ".</p>"
        for _ in range(rng.randint(*paragraphs))
    )
    day = 1 + index % 28
    return f"""<!DOCTYPE html><html lang="en-US"><head><meta charset="UTF-8">
<title>{title} | KCNA Watch</title>
<link rel="canonical" href="{{{{BASE}}}}{_article_path(index)}">
</head><body><main><article><header class="entry-header"><h1 class="article-title">{title}</h1>
<div class="article-meta"><span class="meta-date">Date:
<time datetime="2024-11-{day:02d}">{day:02d}/11/2024</time></span>
<span class="meta-source">Source: <span class="article-source">Pyongyang Times</span></span>
<a class="article-original" href="http://www.pyongyangtimes.com.kp/?bbs={40000 + index}">
Read original version at source</a></div></header>
<div class="article-content entry-content">{body}</div></article></main></body></html>
"""


def _listing(paths: list[str], page: int, pages: int) -> str:
    items = "".join(
        f'<article class="newstream-item"><h2 class="entry-title"><a href="{path}">'
        f"{path.rsplit('-', 1)[-1].strip('/')}</a></h2></article>\n"
        for path in paths
    )
    following = (
        f'<a class="next page-numbers" href="/newstream/page/{page + 1}/">Next</a>'
        if page < pages
        else ""
    )
    return (
        "<!DOCTYPE html><html><head><title>Newstream | KCNA Watch</title></head>"
        f"<body><main>{items}{following}</main></body></html>"
    )


def _feed(paths: list[str]) -> str:
    items = "".join(
        f"<item><title>{path}</title><link>{{{{BASE}}}}{path}</link></item>" for path in paths
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?><rss version="2.0"><channel>'
        f"<title>KCNA Watch</title>{items}</channel></rss>"
    )


# -- full-size pages, for bench/throughput.py ----------------------------------------------

_PER_LISTING = 50


def _sentence(rng: random.Random, low: int, high: int) -> str:
    return " ".join(rng.choices(_WORDS, k=rng.randint(low, high))).capitalize() + "."


def _article_page(index: int, rng: random.Random) -> tuple[str, str]:
    """(title, page) of one article page of 30-100 KB, shaped like the real ones."""
    path = _article_path(index)
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


def _full_listing_page(links: list[tuple[str, str]], page: int, pages: int) -> str:
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


def write_generated_site(root: Path, articles: int, *, seed: int = 20241130) -> Path:
    """Write a kcna_watch-style site of `articles` full-size pages (30-100 KB, about 65 KB,
    with the long "more from" block of the real ones) into root / "kcna_watch"; its folder
    (bench/throughput.py). Newest-first order does not matter there: one listing walk."""
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
        add(_article_path(index), f"a{index}.html", text)
        links.append((_article_path(index), title))
    pages = max(1, -(-articles // _PER_LISTING))
    for page in range(1, pages + 1):
        chunk = links[(page - 1) * _PER_LISTING : page * _PER_LISTING]
        route = "/newstream/" if page == 1 else f"/newstream/page/{page}/"
        add(route, f"listing{page}.html", _full_listing_page(chunk, page, pages))
    (site / "routes.json").write_text(json.dumps(routes), encoding="utf-8")
    return site
