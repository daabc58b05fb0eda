"""The feed of edits: every article whose text changed since a moment, with what changed.

An edit is a version superseded by the next one (`article_versions.superseded_at`, indexed):
the diff goes from that version to the next (a later version, or the article as it is now).
Title and body are compared word by word; the publication date as a whole.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from crawler.db.reader import Reader

# Unchanged words kept around a change in the body's diff.
CONTEXT_WORDS = 8


@dataclass(frozen=True)
class WordChange:
    """One run of the word diff: '=' kept, '-' removed, '+' added."""

    op: str
    text: str


@dataclass(frozen=True)
class FieldChange:
    field: str
    old: str | None
    new: str | None
    words: list[WordChange]

    def word_diff(self) -> str:
        """The change as text: [-removed-] {+added+}, long unchanged runs cut to `…`."""
        parts = []
        for change in self.words:
            if change.op == "-":
                parts.append(f"[-{change.text}-]")
            elif change.op == "+":
                parts.append(f"{{+{change.text}+}}")
            else:
                parts.append(change.text)
        return " ".join(parts)

    def as_dict(self) -> dict[str, Any]:
        record: dict[str, Any] = {"field": self.field, "diff": self.word_diff()}
        if self.field != "body":  # the whole bodies are in `crawler show`
            record |= {"old": self.old, "new": self.new}
        return record


@dataclass(frozen=True)
class Edit:
    article_id: int
    outlet: str
    url: str
    title: str
    changed_at: datetime
    from_version: int
    to_version: int
    fields: list[FieldChange]
    version_id: int  # the edited version's row: with changed_at, the edit's place in the feed
    # the article's publication after the edit, as its outlet gave it
    published_at: datetime | None = None
    published_date: date | None = None
    published_precision: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "article_id": self.article_id,
            "outlet": self.outlet,
            "url": self.url,
            "title": self.title,
            "changed_at": self.changed_at.isoformat(),
            "from_version": self.from_version,
            "to_version": self.to_version,
            "published_at": self.published_at.isoformat() if self.published_at else None,
            "published_date": self.published_date.isoformat() if self.published_date else None,
            "published_precision": self.published_precision,
            "changes": [f.as_dict() for f in self.fields],
        }


def word_changes(old: str, new: str, context: int | None = None) -> list[WordChange]:
    """The word-level diff of two texts; unchanged runs longer than 2*context cut in the middle
    (None: kept whole)."""
    before, after = old.split(), new.split()
    runs: list[WordChange] = []
    matcher = difflib.SequenceMatcher(a=before, b=after, autojunk=False)
    opcodes = matcher.get_opcodes()
    for number, (tag, i1, i2, j1, j2) in enumerate(opcodes):
        if tag == "equal":
            kept = before[i1:i2]
            if context is not None and len(kept) > 2 * context:
                head = kept[:context] if number > 0 else []
                tail = kept[-context:] if number < len(opcodes) - 1 else []
                text = " ".join([*head, "…", *tail])
            else:
                text = " ".join(kept)
            runs.append(WordChange("=", text))
            continue
        if i2 > i1:
            runs.append(WordChange("-", " ".join(before[i1:i2])))
        if j2 > j1:
            runs.append(WordChange("+", " ".join(after[j1:j2])))
    return runs


def _field_changes(old: dict[str, Any], new: dict[str, Any]) -> list[FieldChange]:
    changed = []
    for name in ("title", "body"):
        if (old[name] or "") != (new[name] or ""):
            context = CONTEXT_WORDS if name == "body" else None
            words = word_changes(old[name] or "", new[name] or "", context)
            changed.append(FieldChange(name, old[name], new[name], words))
    if old["published_at"] != new["published_at"]:
        before = old["published_at"].isoformat() if old["published_at"] else None
        after = new["published_at"].isoformat() if new["published_at"] else None
        words = [WordChange("-", before or "none"), WordChange("+", after or "none")]
        changed.append(FieldChange("published_at", before, after, words))
    return changed


def _text(row: Any) -> dict[str, Any]:
    return {"title": row.title, "body": row.body, "published_at": row.published_at}


# What an edit compares, and the publication shown with it.
_TEXT = ("title", "body", "published_at", "published_date", "published_precision")


def _columns(table: str) -> str:
    return ", ".join(f"{table}.{column}" for column in _TEXT)


def changes_since(
    db: Any,
    since: datetime,
    outlet: str | None = None,
    topic: str | None = None,
    limit: int = 100,
    before: tuple[datetime, int] | None = None,
) -> list[Edit]:
    """Every edit made since `since`, newest first (at most `limit`); after `before` (the
    `changed_at` and `version_id` of the previous page's last edit) when given. `db`: a Reader
    or a SQLAlchemy session."""
    reader = Reader.of(db)
    where = ["article_versions.superseded_at >= :since"]
    params: dict[str, Any] = {"since": since, "limit": limit}
    if outlet:
        where.append("sources.name = :outlet")
        params["outlet"] = outlet
    if topic:
        where.append(
            "articles.id IN (SELECT article_topics.article_id FROM article_topics"
            " JOIN topics ON topics.id = article_topics.topic_id WHERE topics.name = :topic)"
        )
        params["topic"] = topic
    if before is not None:
        where.append(
            "(article_versions.superseded_at < :before_at OR (article_versions.superseded_at"
            " = :before_at AND article_versions.id < :before_id))"
        )
        params |= {"before_at": before[0], "before_id": before[1]}
    found = reader.rows(
        "SELECT article_versions.id, article_versions.article_id, article_versions.version,"
        " article_versions.superseded_at, sources.name AS outlet,"
        f" {_columns('article_versions')}"
        " FROM article_versions JOIN articles ON articles.id = article_versions.article_id"
        f" JOIN sources ON sources.id = articles.source_id WHERE {' AND '.join(where)}"
        " ORDER BY article_versions.superseded_at DESC, article_versions.id DESC LIMIT :limit",
        params,
    )
    if not found:
        return []
    # the version that followed each edited one: a later version, or the current text
    edited = {"ids": sorted({v.article_id for v in found})}
    wanted = {(v.article_id, v.version + 1) for v in found}
    following = {
        (v.article_id, v.version): v
        for v in reader.rows(
            f"SELECT article_id, version, {_columns('article_versions')} FROM article_versions"
            " WHERE article_id IN :ids",
            edited,
        )
        if (v.article_id, v.version) in wanted
    }
    articles = {
        a.id: a
        for a in reader.rows(
            f"SELECT id, url, {_columns('articles')} FROM articles WHERE id IN :ids", edited
        )
    }
    edits = []
    for version in found:
        article = articles[version.article_id]
        after = following.get((version.article_id, version.version + 1), article)
        edits.append(
            Edit(
                article_id=article.id,
                outlet=version.outlet,
                url=article.url,
                title=article.title,
                changed_at=version.superseded_at,
                from_version=version.version,
                to_version=version.version + 1,
                fields=_field_changes(_text(version), _text(after)),
                version_id=version.id,
                published_at=after.published_at,
                published_date=after.published_date,
                published_precision=after.published_precision,
            )
        )
    return edits
