"""`crawler show`: one article with its metadata, every version with the changes between
consecutive versions, and the snapshots it was archived from."""

from __future__ import annotations

import difflib
import itertools
from datetime import datetime
from typing import Any

from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text
from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from crawler.db.models import Article, ArticleVersion, Snapshot, Source
from crawler.urls import canonicalize

# Fields compared between versions, with the label the diff shows them under.
VERSION_FIELDS = (
    ("title", "Title"),
    ("author", "Author"),
    ("published_at", "Published"),
    ("summary", "Summary"),
    ("original_source", "Original source"),
    ("original_url", "Original URL"),
    ("partial", "Partial"),
)


def find_article(session: Session, ref: str) -> Article | None:
    """The article an id or a URL (as fetched or canonical) names, else None."""
    ref = ref.strip()
    if ref.isdigit():
        return session.get(Article, int(ref))
    if not ref.lower().startswith(("http://", "https://")):
        return None
    # (source_id, canonical_url) is indexed: try every outlet's canonical key first
    source_ids = list(session.scalars(select(Source.id)))
    found = session.scalar(
        select(Article)
        .where(Article.source_id.in_(source_ids), Article.canonical_url == canonicalize(ref))
        .order_by(Article.id)
        .limit(1)
    )
    if found is None:  # a URL the article was fetched under but is not its canonical one
        found = session.scalar(select(Article).where(Article.url == ref).order_by(Article.id))
    return found


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def version_text(version: dict[str, Any]) -> list[str]:
    """A version as lines: its metadata, a blank line, then one line per paragraph."""
    lines = []
    for name, label in VERSION_FIELDS:
        value = version[name]
        if isinstance(value, bool):
            value = "yes" if value else "no"
        lines.append(f"{label}: {value if value is not None else '-'}")
    lines.append("")
    for paragraph in version["body"].split("\n\n"):
        lines += [paragraph, ""]
    return lines[:-1] if lines[-1] == "" else lines


def unified_diff(older: dict[str, Any], newer: dict[str, Any]) -> str:
    """The changes from one version to the next, as a unified diff."""
    return "\n".join(
        difflib.unified_diff(
            version_text(older),
            version_text(newer),
            fromfile=f"version {older['version']}",
            tofile=f"version {newer['version']}",
            lineterm="",
        )
    )


def _version(row: Article | ArticleVersion, sha256: dict[int, str]) -> dict[str, Any]:
    return {
        "version": row.version,
        "title": row.title,
        "author": row.author,
        "published_at": _iso(row.published_at),
        "summary": row.summary,
        "body": row.body,
        "original_source": row.original_source,
        "original_url": row.original_url,
        "partial": row.partial,
        "content_hash": row.content_hash,
        "snapshot_sha256": sha256.get(row.snapshot_id) if row.snapshot_id else None,
    }


def article_snapshots(session: Session, article: Article) -> list[Snapshot]:
    """Every fetch of the article: those its versions came from and those of its URLs."""
    referenced = {article.snapshot_id} | {v.snapshot_id for v in article.versions}
    referenced.discard(None)
    urls = {article.url, article.canonical_url}
    return list(
        session.scalars(
            select(Snapshot)
            .where(
                or_(
                    Snapshot.id.in_(referenced),
                    # fetches that found the text unchanged made no version but are fetches too
                    Snapshot.final_url.in_(urls),
                )
            )
            .order_by(Snapshot.fetched_at, Snapshot.id)
        )
    )


def article_history(session: Session, article: Article) -> dict[str, Any]:
    """The article, its versions (oldest first, each with its diff) and snapshots, as JSON."""
    snapshots = article_snapshots(session, article)
    sha256 = {s.id: s.sha256 for s in snapshots}
    outlet = session.scalar(select(Source.name).where(Source.id == article.source_id))
    versions = []
    for old in article.versions:
        entry = _version(old, sha256)
        entry["first_seen_at"] = _iso(old.first_seen_at)
        entry["superseded_at"] = _iso(old.superseded_at)
        versions.append(entry)
    current = _version(article, sha256)
    current["first_seen_at"] = _iso(article.updated_at)
    current["superseded_at"] = None
    versions.append(current)
    from crawler.stories.queries import article_context

    for previous, entry in itertools.pairwise(versions):
        entry["diff"] = unified_diff(previous, entry)
    versions[0]["diff"] = None
    return {
        "id": article.id,
        "outlet": outlet,
        "url": article.url,
        "canonical_url": article.canonical_url,
        "title": article.title,
        "author": article.author,
        "published_at": _iso(article.published_at),
        "language": article.language,
        "summary": article.summary,
        "body": article.body,
        "original_source": article.original_source,
        "original_url": article.original_url,
        "outlet_article_id": article.outlet_article_id,
        "partial": article.partial,
        "content_hash": article.content_hash,
        "version": article.version,
        "first_seen_at": _iso(article.first_seen_at),
        "last_seen_at": _iso(article.last_seen_at),
        "updated_at": _iso(article.updated_at),
        "versions": versions,
        "snapshots": [
            {
                "id": s.id,
                "fetched_at": _iso(s.fetched_at),
                "status": s.status,
                "size": s.size,
                "sha256": s.sha256,
                "url": s.final_url,
                "requested_url": s.requested_url,
                "run_id": s.run_id,
            }
            for s in snapshots
        ],
        **article_context(session, article.id),
    }


def _when(value: str | None) -> str:
    return datetime.fromisoformat(value).strftime("%Y-%m-%d %H:%M:%S UTC") if value else "-"


def _diff_text(diff: str) -> Text:
    text = Text()
    for line in diff.splitlines():
        style = ""
        if line.startswith(("+++", "---")):
            style = "bold"
        elif line.startswith("@@"):
            style = "cyan"
        elif line.startswith("+"):
            style = "green"
        elif line.startswith("-"):
            style = "red"
        text.append(line + "\n", style=style)
    return text


def render(history: dict[str, Any]) -> RenderableType:
    """The article as the terminal shows it."""
    meta = Table.grid(padding=(0, 2))
    meta.add_column(style="bold")
    meta.add_column()
    for label, key in (
        ("id", "id"),
        ("outlet", "outlet"),
        ("url", "url"),
        ("canonical url", "canonical_url"),
        ("author", "author"),
        ("published", "published_at"),
        ("language", "language"),
        ("original source", "original_source"),
        ("original url", "original_url"),
        ("outlet article id", "outlet_article_id"),
        ("partial", "partial"),
        ("version", "version"),
        ("first seen", "first_seen_at"),
        ("last seen", "last_seen_at"),
        ("content hash", "content_hash"),
    ):
        value = history[key]
        if key.endswith("_at"):
            value = _when(value)
        elif isinstance(value, bool):
            value = "yes" if value else "no"
        meta.add_row(label, Text(str(value) if value is not None else "-"))
    parts: list[RenderableType] = [Text(history["title"], style="bold underline"), meta]
    if history["summary"]:
        parts += [Text(""), Text(history["summary"], style="italic")]
    parts += [Text(""), Text(history["body"]), Text("")]

    versions = Table(title=f"versions ({len(history['versions'])})", title_justify="left")
    for column in ("version", "from", "until", "content hash", "title"):
        versions.add_column(column)
    for v in history["versions"]:
        versions.add_row(
            str(v["version"]),
            _when(v["first_seen_at"]),
            _when(v["superseded_at"]) if v["superseded_at"] else "current",
            v["content_hash"][:16],
            Text(v["title"]),
        )
    parts.append(versions)
    for v in history["versions"][1:]:
        parts += [Text(f"changes in version {v['version']}", style="bold"), _diff_text(v["diff"])]

    snapshots = Table(title=f"snapshots ({len(history['snapshots'])})", title_justify="left")
    for column, justify in (
        ("fetched", "left"),
        ("status", "right"),
        ("size", "right"),
        ("sha256", "left"),
        ("url", "left"),
    ):
        snapshots.add_column(column, justify=justify, overflow="fold")  # type: ignore[arg-type]
    for s in history["snapshots"]:
        snapshots.add_row(
            _when(s["fetched_at"]), str(s["status"]), f"{s['size']:,}", s["sha256"], s["url"]
        )
    parts.append(snapshots)
    parts += _linked_tables(history)
    return Group(*parts)


def _linked_tables(history: dict[str, Any]) -> list[RenderableType]:
    """The article's copies ("also published by") and its story's articles."""
    tables: list[RenderableType] = []
    if history.get("copies"):
        copies = Table(title="also published by", title_justify="left")
        for column in ("id", "outlet", "published", "similarity", "url"):
            copies.add_column(column, overflow="fold")
        for c in history["copies"]:
            similarity = "original" if c["reprint_of"] is None else f"{c['similarity']:.2f}"
            copies.add_row(
                str(c["id"]), c["outlet"], _when(c["published_at"]), similarity, c["url"]
            )
        tables.append(copies)
    story = history.get("story")
    if story:
        table = Table(title=f"story #{story['id']}: {story['label']}", title_justify="left")
        for column in ("id", "outlet", "published", "title"):
            table.add_column(column, overflow="fold")
        for a in story["articles"]:
            marker = " (this article)" if a["id"] == history["id"] else ""
            table.add_row(str(a["id"]), a["outlet"], _when(a["published_at"]), a["title"] + marker)
        tables.append(table)
    return tables


def print_history(console: Console, history: dict[str, Any]) -> None:
    console.print(render(history), highlight=False)
