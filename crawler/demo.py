"""`crawler demo`: the whole path, offline: bundled mirror -> crawl -> archive -> listing."""

from __future__ import annotations

import shlex
from pathlib import Path

from rich.console import Console
from rich.table import Table
from sqlalchemy import select

from crawler.config import data_dir, known_spider_names, load_sources
from crawler.db.models import Article, Source
from crawler.db.session import Archive
from crawler.mirror import SITE_NAMES, MirrorSet
from crawler.progress import summary_table
from crawler.read.terminal import published_label
from crawler.runner import crawl_settings, run_crawls

# The mirror is on loopback: no need to wait between requests.
LOOPBACK_SETTINGS = {"AUTOTHROTTLE_ENABLED": False, "DOWNLOAD_DELAY": 0, "LOG_LEVEL": "WARNING"}


def fresh_demo_archive() -> str:
    """The demo's own archive in the user data folder, emptied: its URL."""
    path = data_dir() / "demo.db"
    for leftover in (path, path.with_name("demo.db-wal"), path.with_name("demo.db-shm")):
        leftover.unlink(missing_ok=True)
    return f"sqlite:///{path}"


def next_commands(db_url: str, *, default: bool) -> str:
    """Where the demo's archive is kept and what to try on it next."""
    option = f"--db {shlex.quote(db_url)}"
    kept = "kept" if not default else "kept (made afresh by the next `crawler demo`)"
    return "\n".join(
        [
            f"The demo archive is {kept} at {db_url}. Try next:",
            f'  crawler search "Russia" {option}',
            f"  crawler show 1 {option}",
            f"  crawler stats {option}",
            f"  crawler export --format csv -o articles.csv {option}",
        ]
    )


def write_sources(path: Path, base_urls: dict[str, str]) -> Path:
    """A sources file pointing every outlet at its local mirror."""
    lines = []
    for name, base in base_urls.items():
        lines += [f"[sources.{name}]", f'base_url = "{base}"', 'every = "1h"']
        if name == "pyongyang_times":
            lines.append("render_js = true")
        lines.append("")
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def run_demo(db_url: str, workdir: Path, out: Console, err: Console) -> int:
    spiders = sorted(known_spider_names() & set(SITE_NAMES))
    with MirrorSet(spiders) as mirrors:
        sources_file = write_sources(workdir / "sources.toml", mirrors.base_urls)
        for name, base in mirrors.base_urls.items():
            err.print(f"serving the {name} mirror on {base}")
        sources = load_sources(sources_file).enabled()
        Archive(db_url).dispose()  # a fresh archive, migrated
        settings = crawl_settings(db_url, sources_file, overrides=LOOPBACK_SETTINGS)
        summaries = run_crawls(sources, settings)
    out.print(summary_table(summaries))
    archive = Archive(db_url)
    try:
        with archive.sessions() as session:
            rows = session.execute(
                select(Source.name, Article)
                .join(Source, Source.id == Article.source_id)
                .order_by(Source.name, Article.published_at.desc())
            ).all()
    finally:
        archive.dispose()
    table = Table(title=f"archived articles ({db_url})")
    for column in ("outlet", "published", "title", "words", "partial", "source"):
        table.add_column(column)
    for outlet, article in rows:
        table.add_row(
            outlet,
            published_label(
                article.published_at, article.published_date, article.published_precision
            ),
            article.title,
            str(len(article.body.split())),
            "yes" if article.partial else "",
            article.original_source or "",
        )
    out.print(table)
    return 0 if rows and all(s.status == "finished" for s in summaries) else 1
