"""`crawler sources`: the sources file and each source's schedule and last run."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from crawler.cli.common import (
    DbOption,
    SourcesOption,
    app,
    err,
    fail,
    out,
    sources_file,
)
from crawler.config import ConfigError

sources_app = typer.Typer(
    help="The configured sources (with no command: schedule, next run, last run).",
    invoke_without_command=True,
)
app.add_typer(sources_app, name="sources")


@sources_app.callback()
def list_sources(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON list.")] = False,
    db: DbOption = None,
    sources: SourcesOption = None,
) -> None:
    """The configured sources: schedule, next run, last run and the last new article."""
    if ctx.invoked_subcommand is not None:
        return
    from crawler.cli.querying import list_sources as listed

    listed(as_json, db, sources)


@sources_app.command("add")
def add_source(
    url: Annotated[str, typer.Argument(help="The site's address (https:// when none is given).")],
    name: Annotated[
        str | None, typer.Option("--name", help="The source's name (default: from the host).")
    ] = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Add it without asking.")] = False,
    articles: Annotated[
        int, typer.Option("--articles", min=1, max=50, help="How many articles to read.")
    ] = 5,
    setting: Annotated[
        list[str] | None,
        typer.Option("--set", "-s", help="Scrapy setting NAME=VALUE for the probe (repeatable)."),
    ] = None,
    sources: SourcesOption = None,
) -> None:
    """Probe a site (robots.txt, feeds, sitemaps, homepage), show the articles it would give,
    and append a generic-spider source for it to the sources file."""
    from rich.markup import escape

    from crawler.probe import probe_site, site_origin, source_name_for

    config = sources_file(sources)
    try:
        base_url = site_origin(url)
    except ValueError as exc:
        raise fail(str(exc)) from None
    chosen = name or source_name_for(base_url)
    if not re.fullmatch(r"[A-Za-z0-9_-]+", chosen):
        raise fail(f"--name {chosen!r}: use letters, digits, _ and - only")
    for existing in config.sources.values():
        if site_origin(existing.base_url) == base_url:
            raise fail(f"{config.path}: {base_url} is already source {existing.name!r}")
    if chosen in config.sources:
        raise fail(f"{config.path}: a source named {chosen!r} exists already")
    err.print(f"probing {escape(base_url)} ...", highlight=False)
    result = probe_site(base_url, articles=articles, overrides=setting_overrides(setting))
    if result.reason:
        raise fail(f"{base_url} cannot be added: {result.reason}", code=1)
    out.print(
        f"[bold]{escape(base_url)}[/]: entry points: {escape(', '.join(result.entry_points))}",
        highlight=False,
    )
    for article in result.articles:
        out.print(article_preview(article), highlight=False)
    if not yes:
        if not sys.stdin.isatty():
            raise fail("not added: confirm on a terminal, or give --yes", code=1)
        if not typer.confirm(f"Add [sources.{chosen}] to {config.path}?", default=False):
            raise fail("not added", code=1)
    try:
        append_source(config.path, chosen, base_url)
    except ConfigError as exc:
        raise fail(str(exc)) from None
    out.print(escape(f"added [sources.{chosen}] to {config.path}"), highlight=False)


def setting_overrides(pairs: list[str] | None) -> dict[str, str]:
    """--set NAME=VALUE options as Scrapy setting overrides."""
    overrides = {}
    for pair in pairs or []:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise fail(f"--set {pair!r}: expected NAME=VALUE")
        overrides[name.strip()] = value
    return overrides


def article_preview(article: Any) -> str:
    """An article as `sources add` shows it: title, date, author, how found, first lines."""
    from rich.markup import escape

    from crawler.scheduler.display import format_time

    first = " ".join(article.body)[:240]
    return "\n".join(
        [
            f"\n[bold]{escape(article.title or '(no title)')}[/]",
            f"  {escape(article.url)}",
            f"  date: {format_time(article.published_at) if article.published_at else '-'}"
            f" · author: {escape(article.author or '-')} · found in: {article.found_by}",
            f"  {escape(first)}{'…' if len(' '.join(article.body)) > 240 else ''}",
        ]
    )


def append_source(path: Path, name: str, base_url: str) -> None:
    """Append a generic-spider table to the sources file, its comments and layout kept.

    The new text is validated as a whole before it replaces the file (atomically)."""
    import os

    import tomlkit

    from crawler.config import GENERIC_SPIDER, load_sources

    text = path.read_text(encoding="utf-8")
    document = tomlkit.parse(text)
    table = tomlkit.table()
    table.add("spider", GENERIC_SPIDER)
    table.add("base_url", base_url)
    table.add("every", "2h")
    sources_table = document.get("sources")
    if sources_table is None:
        sources_table = tomlkit.table(is_super_table=True)
        document.add("sources", sources_table)
    sources_table.append(name, table)
    new_text = tomlkit.dumps(document)
    staged = path.with_name(f".{path.name}.adding")
    staged.write_text(new_text, encoding="utf-8")
    try:
        load_sources(staged)
        os.replace(staged, path)
    finally:
        staged.unlink(missing_ok=True)
