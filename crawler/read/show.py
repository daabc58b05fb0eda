"""`crawler show`: one article with its metadata, every version with the changes between
consecutive versions, and the snapshots it was archived from."""

from __future__ import annotations

import difflib
import itertools
from datetime import date, datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from rich.console import Console
from rich.table import Table
from rich.text import Text

from crawler.db.reader import Reader
from crawler.read.terminal import printable, published_label
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


# The largest id a database column of 64 bits holds: a longer number names no article.
MAX_ID = 2**63 - 1


def is_article_id(ref: str) -> bool:
    """Whether `ref` is written as an id: ASCII digits only (`²` is a digit to Python)."""
    return ref.strip().isascii() and ref.strip().isdigit()


def find_article_id(db: Any, ref: str) -> int | None:
    """The id of the article an id or a URL (as fetched or canonical) names, else None. `db`:
    a Reader or a SQLAlchemy session."""
    reader = Reader.of(db)
    ref = ref.strip()
    if is_article_id(ref):
        number = int(ref)
        if number > MAX_ID:
            return None
        found: int | None = reader.scalar("SELECT id FROM articles WHERE id = :id", {"id": number})
        return found
    if not ref.lower().startswith(("http://", "https://")):
        return None
    # (source_id, canonical_url) is indexed: try every outlet's canonical key first
    source_ids = reader.column("SELECT id FROM sources")
    for url in (ref, _other_slash(ref)):  # the URL as given first, then with(out) its slash
        found = reader.scalar(
            "SELECT id FROM articles WHERE source_id IN :sources AND canonical_url = :canonical"
            " ORDER BY id LIMIT 1",
            {"sources": source_ids, "canonical": canonicalize(url)},
        )
        if found is None:  # a URL the article was fetched under but is not its canonical one
            found = reader.scalar(
                "SELECT id FROM articles WHERE url = :url ORDER BY id LIMIT 1", {"url": url}
            )
        if found is not None:
            return found
    return None


def _other_slash(url: str) -> str:
    """The URL with a trailing slash on its path added, or removed when it has one."""
    parts = urlsplit(url)
    path = parts.path[:-1] if parts.path.endswith("/") else parts.path + "/"
    return urlunsplit(parts._replace(path=path))


def _iso(value: date | None) -> str | None:
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


def _version(row: Any, sha256: dict[int, str]) -> dict[str, Any]:
    return {
        "version": row.version,
        "title": row.title,
        "author": row.author,
        "published_at": _iso(row.published_at),
        "published_date": _iso(row.published_date),
        "published_precision": row.published_precision,
        "summary": row.summary,
        "body": row.body,
        "original_source": row.original_source,
        "original_url": row.original_url,
        "partial": bool(row.partial),  # SQLite keeps 0 or 1
        "content_hash": row.content_hash,
        "snapshot_sha256": sha256.get(row.snapshot_id) if row.snapshot_id else None,
    }


# What a version and the article's current text share (models.ArticleVersion, models.Article).
_TEXT_COLUMNS = (
    "version, title, author, published_at, published_date, published_precision, summary, body,"
    " original_source, original_url, partial, content_hash, snapshot_id, first_seen_at"
)


def article_snapshots(db: Any, article: Any, versions: list[Any]) -> list[Any]:
    """Every fetch of the article: those its versions came from and those of its URLs."""
    referenced = {article.snapshot_id} | {v.snapshot_id for v in versions}
    referenced.discard(None)
    return Reader.of(db).rows(
        "SELECT id, fetched_at, status, size, sha256, final_url, requested_url, run_id"
        " FROM snapshots WHERE id IN :referenced"
        # fetches that found the text unchanged made no version but are fetches too
        " OR final_url IN :urls ORDER BY fetched_at, id",
        {"referenced": sorted(referenced), "urls": sorted({article.url, article.canonical_url})},
    )


def article_history(db: Any, article_id: int) -> dict[str, Any] | None:
    """The article, its versions (oldest first, each with its diff) and snapshots, as JSON;
    None when there is no such article. `db`: a Reader or a SQLAlchemy session."""
    reader = Reader.of(db)
    article = reader.first(
        f"SELECT id, source_id, url, canonical_url, language, outlet_article_id, updated_at,"
        f" last_seen_at, {_TEXT_COLUMNS} FROM articles WHERE id = :id",
        {"id": article_id},
    )
    if article is None:
        return None
    older = reader.rows(
        f"SELECT {_TEXT_COLUMNS}, superseded_at FROM article_versions"
        " WHERE article_id = :id ORDER BY version",
        {"id": article_id},
    )
    snapshots = article_snapshots(reader, article, older)
    sha256 = {s.id: s.sha256 for s in snapshots}
    outlet = reader.scalar("SELECT name FROM sources WHERE id = :id", {"id": article.source_id})
    versions = []
    for old in older:
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
        "published_date": _iso(article.published_date),
        "published_precision": article.published_precision,
        "language": article.language,
        "summary": article.summary,
        "body": article.body,
        "original_source": article.original_source,
        "original_url": article.original_url,
        "outlet_article_id": article.outlet_article_id,
        "partial": bool(article.partial),
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
        **article_context(reader, article.id),
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


def _meta_lines(history: dict[str, Any]) -> Text:
    """The article's metadata, a field a line; printed without wrapping, so that a long URL
    stays whole (the terminal wraps it, and a copy of it is the URL)."""
    text = Text()
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
        if key == "published_at":
            at = datetime.fromisoformat(value) if value else None
            day = (
                date.fromisoformat(history["published_date"]) if history["published_date"] else None
            )
            value = published_label(at, day, history["published_precision"])
        elif key.endswith("_at"):
            value = _when(value)
        elif isinstance(value, bool):
            value = "yes" if value else "no"
        text.append(f"{label:<19}", style="bold")
        text.append(printable(str(value), lines=False) if value is not None else "-")
        text.append("\n")
    return text


def _snapshot_lines(history: dict[str, Any]) -> Text:
    text = Text(f"snapshots ({len(history['snapshots'])})\n", style="italic")
    for s in history["snapshots"]:
        text.append(f"  {_when(s['fetched_at'])}  {s['status']}  {s['size']:>9,} B  ")
        text.append(s["sha256"], style="dim")
        text.append(f"  {printable(s['url'], lines=False)}\n")
    return text


def print_history(console: Console, history: dict[str, Any]) -> None:
    """The article as the terminal shows it: metadata, text, versions, changes, snapshots."""
    console.print(Text(printable(history["title"], lines=False), style="bold underline"))
    console.print(_meta_lines(history), soft_wrap=True, highlight=False)
    if history["summary"]:
        console.print(Text(printable(history["summary"]), style="italic"), highlight=False)
        console.print()
    console.print(Text(printable(history["body"])), highlight=False)
    console.print()

    versions = Table(title=f"versions ({len(history['versions'])})", title_justify="left")
    for column in ("version", "from", "until", "content hash", "title"):
        versions.add_column(column)
    for v in history["versions"]:
        versions.add_row(
            str(v["version"]),
            _when(v["first_seen_at"]),
            _when(v["superseded_at"]) if v["superseded_at"] else "current",
            v["content_hash"][:16],
            Text(printable(v["title"], lines=False)),
        )
    console.print(versions, highlight=False)
    for v in history["versions"][1:]:
        console.print(Text(f"changes in version {v['version']}", style="bold"))
        console.print(_diff_text(printable(v["diff"])), highlight=False, soft_wrap=True)
    console.print(_snapshot_lines(history), soft_wrap=True, highlight=False, end="")
    for table in _linked_tables(history):
        console.print(table, highlight=False)


def _linked_tables(history: dict[str, Any]) -> list[Table]:
    """The article's copies ("also published by") and its story's articles."""
    tables: list[Table] = []
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
            table.add_row(
                str(a["id"]),
                a["outlet"],
                _when(a["published_at"]),
                Text(printable(a["title"], lines=False) + marker),
            )
        tables.append(table)
    return tables
