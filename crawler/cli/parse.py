"""`crawler parse URL`: what a source's spider reads from one page, and how, archiving nothing.

The tool for checking a spider after an outlet changed its markup: every field with the value
that would be archived and where it came from (the spider's selector, the page's metadata, or
the generic fallback).
"""

from __future__ import annotations

import json
import sys
import tempfile
import urllib.error
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

import typer
from rich.markup import escape
from rich.table import Table

from crawler.cli.common import SourcesOption, app, fail, out, sources_file
from crawler.config import GENERIC_SPIDER, ConfigError, SourceConfig, SourcesFile, load_sources
from crawler.items import FetchedPage

FIELDS = ("title", "published", "author", "summary", "language", "body")
EXTRA_FIELDS = ("original_source", "original_url", "outlet_article_id", "partial")
FETCH_TIMEOUT = 30


@app.command("parse")
def parse_page(
    url: Annotated[str, typer.Argument(help="The page's URL (also with --file: its address).")],
    source: Annotated[
        str | None,
        typer.Option("--source", help="Source whose spider reads it (default: by the host)."),
    ] = None,
    file: Annotated[
        Path | None, typer.Option("--file", help="Read the page from this file, not the web.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON object.")] = False,
    sources: SourcesOption = None,
) -> None:
    """Print the fields a source's spider reads from one page and how, archiving nothing."""
    from crawler.pipelines.clean import clean_article
    from crawler.replay import Replayer
    from crawler.spiders.base import ListingEntry

    if not urlsplit(url).scheme.startswith("http") or not urlsplit(url).hostname:
        raise fail(f"{url!r} is not an http(s) URL")
    config = sources_file(sources)
    with tempfile.TemporaryDirectory(prefix="crawler-parse-") as tmp:
        config, chosen = _source_for(config, url, source, Path(tmp))
        page = _read_page(url, file)
        replayer = Replayer(config)
        try:
            spider = replayer.spider(chosen.name)
        except ConfigError as exc:
            raise fail(str(exc)) from None
        response = replayer.response(chosen.name, page)
        from scrapy.http import TextResponse

        if not isinstance(response, TextResponse):
            raise fail(f"{url}: not a text page ({page.headers.get('Content-Type')})")
        how = explain(spider, response)
        entry = ListingEntry(url=url)
        item = clean_article(spider.build_article(response, entry))
    values: dict[str, Any] = {
        "title": item.title,
        "published": item.published_at.isoformat() if item.published_at else None,
        "author": item.author,
        "summary": item.summary,
        "language": item.language,
        "body": item.body,
        "original_source": item.original_source,
        "original_url": item.original_url,
        "outlet_article_id": item.outlet_article_id,
        "partial": item.partial,
    }
    if as_json:
        record = {
            "url": url,
            "source": chosen.name,
            "spider": chosen.spider,
            "fields": {k: {"value": v, "how": how.get(k)} for k, v in values.items()},
        }
        sys.stdout.write(json.dumps(record, ensure_ascii=False, indent=2) + "\n")
        return
    table = Table(
        title=escape(f"{url} — source {chosen.name} (spider {chosen.spider}); nothing archived"),
        title_justify="left",
    )
    table.add_column("field")
    table.add_column("value", overflow="fold")
    table.add_column("how")
    for key, value in values.items():
        if key in EXTRA_FIELDS and not value:
            continue
        table.add_row(key, escape(_shown(value)), escape(how.get(key) or "-"))
    out.print(table)


def _shown(value: Any) -> str:
    if isinstance(value, list):
        text = "\n\n".join(value[:3])
        more = f"\n… {len(value)} paragraphs, {sum(len(p) for p in value)} characters"
        return text + (more if len(value) > 3 else "")
    if value is None or value == "":
        return "(none)"
    return str(value)


def _source_for(
    config: SourcesFile, url: str, name: str | None, workdir: Path
) -> tuple[SourcesFile, SourceConfig]:
    """The named source, else the one on the URL's host, else a generic one for that host."""
    from crawler.probe import site_origin, source_name_for

    if name is not None:
        try:
            return config, config.select([name])[0]
        except ConfigError as exc:
            raise fail(str(exc)) from None
    origin = site_origin(url)
    for candidate in config.sources.values():
        if site_origin(candidate.base_url) == origin:
            return config, candidate
    adhoc = source_name_for(origin)
    path = workdir / "sources.toml"
    path.write_text(
        f'[sources.{adhoc}]\nspider = "{GENERIC_SPIDER}"\nbase_url = "{origin}"\n',
        encoding="utf-8",
    )
    generic = load_sources(path)
    return generic, generic.sources[adhoc]


def _read_page(url: str, file: Path | None) -> FetchedPage:
    """The page from --file (served as HTML at `url`), else fetched now (robots.txt obeyed)."""
    now = datetime.now(UTC)
    if file is not None:
        try:
            body = file.read_bytes()
        except OSError as exc:
            raise fail(f"--file {file}: cannot read: {exc.strerror or exc}") from None
        headers = {"Content-Type": ["text/html"]}
        return FetchedPage(url, url, 200, headers, body, now)
    from protego import Protego

    from crawler.config import project_settings
    from crawler.probe import site_origin

    agent = project_settings().get("USER_AGENT")
    robots_url = site_origin(url) + "/robots.txt"
    try:
        robots = _fetch(robots_url, agent)[2].decode("utf-8", "replace")
    except urllib.error.HTTPError:
        robots = ""  # no robots.txt: everything allowed
    except (urllib.error.URLError, OSError) as exc:
        raise fail(f"{url}: cannot be fetched: {_reason(exc)}") from None
    if not Protego.parse(robots).can_fetch(url, agent):
        raise fail(f"{url}: {robots_url} forbids this crawler to fetch it")
    try:
        final_url, headers, body = _fetch(url, agent)
    except urllib.error.HTTPError as exc:
        raise fail(f"{url}: HTTP {exc.code}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise fail(f"{url}: cannot be fetched: {_reason(exc)}") from None
    return FetchedPage(url, final_url, 200, headers, body, now)


def _fetch(url: str, agent: str) -> tuple[str, dict[str, list[str]], bytes]:
    import urllib.request  # 13 ms that every other command would pay at start-up

    request = urllib.request.Request(url, headers={"User-Agent": agent})
    with urllib.request.urlopen(request, timeout=FETCH_TIMEOUT) as answer:
        headers: dict[str, list[str]] = {}
        for key, value in answer.headers.items():
            headers.setdefault(key, []).append(value)
        return answer.geturl(), headers, answer.read()


def _reason(exc: Exception) -> str:
    return str(getattr(exc, "reason", None) or exc)


def explain(spider: Any, response: Any) -> dict[str, str]:
    """Where the spider takes each field from on this page (the build_article order)."""
    from crawler.extract import PageMetadata, main_text
    from crawler.spiders.article import ArticleSpider
    from crawler.spiders.base import ListingEntry

    page = PageMetadata(response)
    entry = ListingEntry(url=response.url)
    how: dict[str, str] = {}
    source = spider.source
    for field in FIELDS:
        if field == "language":
            if spider._parse_language(response):
                how[field] = "spider"
            elif source.language:
                how[field] = "sources file"
            else:
                found = page.found("language")
                how[field] = f"metadata: {found.how}" if found else "not found"
            continue
        if isinstance(spider, ArticleSpider):
            found = spider.field(response, field)
            if found is None:
                how[field] = "not found"
            elif found.how.startswith("selector"):
                how[field] = f"sources file {found.how}"
            else:
                how[field] = found.how if field == "body" else f"metadata: {found.how}"
            continue
        own = (
            spider._parse_published(response, entry)
            if field == "published"
            else getattr(spider, f"_parse_{field}")(response)
        )
        if own:
            how[field] = f"selector ({type(spider).__module__})"
        elif field == "body":
            how[field] = "fallback: main text" if main_text(response.text) else "not found"
        elif field in spider.metadata_fallbacks:
            found = page.found(field)
            how[field] = f"fallback: metadata {found.how}" if found else "not found"
        else:
            how[field] = "not found"
    for field in EXTRA_FIELDS:
        if getattr(spider, f"_parse_{field}")(response):
            how[field] = f"selector ({type(spider).__module__})"
    return how
