"""Topics: named sets of keywords and aliases in any script, and the tags they put on articles.

The topics file (TOML, see the bundled crawler/topics.toml for the rules) is read into
`TopicDefinition`s; `Topics.matching()` tells which topics an article's text mentions. Articles are
tagged when stored (the store pipeline calls `tag_article`) and the whole archive is re-tagged by
`apply_topics` (`crawler topics apply`) after the file changed.
"""

from __future__ import annotations

import hashlib
import json
import re
import tomllib
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from crawler.config import ConfigError, topics_path

if TYPE_CHECKING:  # reading the topics file (`crawler stats`) imports no SQLAlchemy
    from sqlalchemy.orm import Session

    from crawler.items import ArticleItem

_NAME = re.compile(r"^\w[\w.-]*$")
_KNOWN_KEYS = {"description", "all", "any"}
# Variants folded before matching, in aliases and texts alike: typographic apostrophes and
# dashes, and Russian ё, which writers often spell е.
_VARIANTS = (
    ("ё", "е"),
    ("\u2018", "'"),
    ("\u2019", "'"),
    ("\u02bc", "'"),
    *((chr(code), "-") for code in (*range(0x2010, 0x2016), 0x2212)),
)
_SEPARATORS = re.compile(r"[\s-]+")
# Scripts written without spaces between a word and its particles: matched as substrings.
_UNSPACED_SCRIPTS = ("HANGUL", "CJK", "HIRAGANA", "KATAKANA")


def fold(text: str) -> str:
    """The form texts and aliases are compared in: NFKC, case-folded, variants unified."""
    if text.isascii():
        return text.lower()
    text = unicodedata.normalize("NFKC", text).casefold()
    for variant, plain in _VARIANTS:
        if variant in text:
            text = text.replace(variant, plain)
    return text


def _word_bounded(char: str) -> bool:
    """True for a letter of a script that separates words by spaces (Latin, Cyrillic, ...)."""
    return not unicodedata.name(char, "").startswith(_UNSPACED_SCRIPTS)


def alias_pattern(alias: str) -> str:
    """The regular expression (over folded text) of one alias; ValueError when it has no word."""
    words = [w for w in _SEPARATORS.split(fold(alias).strip()) if w]
    if not words or not any(ch.isalnum() for w in words for ch in w):
        raise ValueError(f"alias {alias!r} has no letters or digits")
    parts = []
    for word in words:
        core = word.strip("*")
        if not core:
            raise ValueError(f"alias {alias!r}: '*' must stand next to letters")
        if "*" in core:
            raise ValueError(f"alias {alias!r}: '*' may stand only at the start or end of a word")
        prefix = r"\w*" if word.startswith("*") else ""
        suffix = r"\w*" if word.endswith("*") else ""
        parts.append(prefix + re.escape(core) + suffix)
    first, last = words[0].strip("*")[0], words[-1].strip("*")[-1]
    if _word_bounded(first) and not words[0].startswith("*"):
        # "not after a letter", said after the first letter: `k(?<!\wk)im`, not `(?<!\w)kim`.
        # A pattern that starts with a literal lets the regex engine skip to the places where
        # that letter is; one that starts with a lookbehind is tried at every character
        # (measured: 0.5 ms a text for the default topics' Korea group, 0.01 ms this way).
        escaped = re.escape(first)
        parts[0] = escaped + rf"(?<!\w{escaped})" + parts[0].removeprefix(escaped)
    pattern = r"[\s-]+".join(parts)
    if _word_bounded(last) and not words[-1].endswith("*"):
        pattern += r"(?!\w)"
    return pattern


@dataclass(frozen=True)
class AliasSet:
    """Aliases of which one must appear: a cheap substring check first, then the exact pattern."""

    anchors: tuple[str, ...]
    pattern: re.Pattern[str]

    @classmethod
    def compile(cls, aliases: Sequence[str]) -> AliasSet:
        pattern = re.compile("|".join(f"(?:{alias_pattern(a)})" for a in aliases))
        # Every word of an alias appears verbatim in a text that mentions it: its longest does.
        anchors = {
            max((w.strip("*") for w in _SEPARATORS.split(fold(a).strip()) if w), key=len)
            for a in aliases
        }
        return cls(tuple(sorted(anchors)), pattern)

    def found_in(self, folded: str) -> bool:
        return any(a in folded for a in self.anchors) and self.pattern.search(folded) is not None


@dataclass(frozen=True)
class TopicDefinition:
    """One [topics.NAME] table: tagged when every `all` group or any `any` alias matches."""

    name: str
    description: str = ""
    all: tuple[tuple[str, ...], ...] = ()
    any: tuple[str, ...] = ()
    _groups: tuple[AliasSet, ...] = field(default=(), repr=False, compare=False)
    _any: AliasSet | None = field(default=None, repr=False, compare=False)

    @classmethod
    def build(
        cls, name: str, description: str, all_groups: Iterable[Sequence[str]], any_of: Sequence[str]
    ) -> TopicDefinition:
        groups = tuple(tuple(group) for group in all_groups)
        return cls(
            name=name,
            description=description,
            all=groups,
            any=tuple(any_of),
            _groups=tuple(AliasSet.compile(group) for group in groups),
            _any=AliasSet.compile(any_of) if any_of else None,
        )

    @property
    def fingerprint(self) -> str:
        """A digest of what the topic matches (changes when its aliases change)."""
        text = json.dumps({"all": self.all, "any": self.any}, ensure_ascii=False)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()

    def matches(self, folded: str) -> bool:
        """Whether an already folded text mentions the topic."""
        if self._any is not None and self._any.found_in(folded):
            return True
        return bool(self._groups) and all(group.found_in(folded) for group in self._groups)


@dataclass(frozen=True)
class Topics:
    path: Path
    topics: dict[str, TopicDefinition]

    def matching(self, title: str | None, summary: str | None, body: str | None) -> set[str]:
        """Names of the topics an article with this text is tagged with."""
        folded = fold("\n".join(part for part in (title, summary, body) if part))
        return {name for name, topic in self.topics.items() if topic.matches(folded)}


def _strings(value: Any, what: str) -> list[str]:
    if not isinstance(value, list) or not value:
        raise ValueError(f"{what} must be a non-empty list of strings")
    if not all(isinstance(item, str) and item.strip() for item in value):
        raise ValueError(f"{what} must hold only non-empty strings")
    return value


def _topic(name: str, table: Any) -> TopicDefinition:
    if not isinstance(table, dict):
        raise ValueError("must be a table")
    if not _NAME.match(name) or len(name) > 100:
        raise ValueError("a topic name is letters, digits, '-', '_' or '.' (up to 100)")
    unknown = set(table) - _KNOWN_KEYS
    if unknown:
        raise ValueError(f"unknown key(s) {', '.join(sorted(unknown))} (use all, any)")
    description = table.get("description", "")
    if not isinstance(description, str):
        raise ValueError("description must be a string")
    groups = table.get("all", [])
    if not isinstance(groups, list):
        raise ValueError("all must be a list of lists of aliases")
    all_groups = [_strings(group, f"all[{i}]") for i, group in enumerate(groups)]
    any_of = _strings(table["any"], "any") if "any" in table else []
    if not all_groups and not any_of:
        raise ValueError("give `all` (groups of aliases) or `any` (aliases), or both")
    return TopicDefinition.build(name, description, all_groups, any_of)


def load_topics(path: str | Path | None = None) -> Topics:
    """Read and validate a topics file; ConfigError names the file, the topic and the reason."""
    file = topics_path(path)
    try:
        raw = tomllib.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{file}: topics file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{file}: cannot read: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{file}: not valid TOML: {exc}") from None
    tables = raw.get("topics", {})
    if not isinstance(tables, dict) or set(raw) - {"topics"}:
        raise ConfigError(f"{file}: expected only [topics.NAME] tables")
    topics = {}
    for name, table in tables.items():
        try:
            topics[name] = _topic(name, table)
        except (ValueError, re.error) as exc:
            raise ConfigError(f"{file}: topic {name!r}: {exc}") from None
    return Topics(path=file, topics=topics)


def ensure_topics(session: Session, names: Iterable[str]) -> dict[str, int]:
    """The ids of the named topics' rows, creating the missing ones (safe against a race)."""
    from sqlalchemy import insert, select

    from crawler.db.models import Topic

    wanted = sorted(set(names))
    if not wanted:
        return {}
    dialect = session.get_bind().dialect.name
    rows = [{"name": name} for name in wanted]
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as postgresql_insert

        session.execute(postgresql_insert(Topic).values(rows).on_conflict_do_nothing())
    elif dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        session.execute(sqlite_insert(Topic).values(rows).on_conflict_do_nothing())
    else:
        known = set(session.scalars(select(Topic.name).where(Topic.name.in_(wanted))))
        missing = [row for row in rows if row["name"] not in known]
        if missing:
            session.execute(insert(Topic), missing)
    found = session.execute(select(Topic.name, Topic.id).where(Topic.name.in_(wanted)))
    return {name: topic_id for name, topic_id in found}


def tag_article(
    session: Session,
    article_id: int,
    matched: Iterable[str],
    topic_ids: dict[str, int],
    current: set[int] | None = None,
) -> tuple[set[int], set[int]]:
    """Make the article's tags among `topic_ids` exactly `matched`; (added, removed) topic ids.

    `current` is the article's present tags when the caller already knows them.
    """
    from sqlalchemy import Table, delete, insert, select

    from crawler.db.models import ArticleTopic

    want = {topic_ids[name] for name in matched if name in topic_ids}
    if current is None:
        current = set(
            session.scalars(
                select(ArticleTopic.topic_id).where(ArticleTopic.article_id == article_id)
            )
        )
    current = current & set(topic_ids.values())
    added, removed = want - current, current - want
    if removed:
        session.execute(
            delete(ArticleTopic).where(
                ArticleTopic.article_id == article_id, ArticleTopic.topic_id.in_(removed)
            )
        )
    if added:
        session.execute(
            insert(cast(Table, ArticleTopic.__table__)),  # Core: no ORM bulk-insert machinery
            [{"article_id": article_id, "topic_id": topic_id} for topic_id in sorted(added)],
        )
    return added, removed


@dataclass
class TopicCounts:
    tagged: int = 0
    added: int = 0
    removed: int = 0


@dataclass
class ApplyReport:
    """What `apply_topics` did: articles read, per-topic counts, topics no longer in the file."""

    articles: int = 0
    topics: dict[str, TopicCounts] = field(default_factory=dict)
    dropped: dict[str, int] = field(default_factory=dict)


def apply_topics(
    sessions: Callable[[], Session],
    topics: Topics,
    *,
    batch: int = 2000,
    progress: Callable[[int], None] | None = None,
    now: datetime | None = None,
) -> ApplyReport:
    """Re-tag the whole archive with `topics` (idempotent), one transaction per batch.

    Topics no longer in the file are removed with their tags. `sessions` is a session factory.
    """
    from sqlalchemy import delete, select

    from crawler.db.models import Article, ArticleTopic, Topic, utcnow

    report = ApplyReport(topics={name: TopicCounts() for name in topics.topics})
    with sessions() as session, session.begin():
        gone = session.execute(
            select(Topic.id, Topic.name).where(Topic.name.not_in(topics.topics))
        ).all()
        for topic_id, name in gone:
            untagged = session.execute(
                delete(ArticleTopic).where(ArticleTopic.topic_id == topic_id)
            )
            report.dropped[name] = getattr(untagged, "rowcount", 0)
            session.execute(delete(Topic).where(Topic.id == topic_id))
        topic_ids = ensure_topics(session, topics.topics)
    names_by_id = {topic_id: name for name, topic_id in topic_ids.items()}
    last_id = 0
    while True:
        with sessions() as session, session.begin():
            rows = session.execute(
                select(Article.id, Article.title, Article.summary, Article.body)
                .where(Article.id > last_id)
                .order_by(Article.id)
                .limit(batch)
            ).all()
            if not rows:
                break
            first_id, last_id = rows[0].id, rows[-1].id
            current: dict[int, set[int]] = {}
            for article_id, topic_id in session.execute(
                select(ArticleTopic.article_id, ArticleTopic.topic_id).where(
                    ArticleTopic.article_id.between(first_id, last_id)
                )
            ):
                current.setdefault(article_id, set()).add(topic_id)
            for row in rows:
                matched = topics.matching(row.title, row.summary, row.body)
                added, removed = tag_article(
                    session, row.id, matched, topic_ids, current.get(row.id, set())
                )
                for topic_id in added:
                    report.topics[names_by_id[topic_id]].added += 1
                for topic_id in removed:
                    report.topics[names_by_id[topic_id]].removed += 1
                for name in matched:
                    report.topics[name].tagged += 1
            report.articles += len(rows)
        if progress is not None:
            progress(len(rows))
    with sessions() as session, session.begin():
        for topic in session.scalars(select(Topic).where(Topic.name.in_(topics.topics))):
            topic.fingerprint = topics.topics[topic.name].fingerprint
            topic.applied_at = now or utcnow()
    return report


def stale_topics(session: Session, topics: Topics) -> list[str]:
    """Topics of the file the archive was not (fully) tagged with in their present form."""
    from sqlalchemy import select

    from crawler.db.models import Topic

    applied = {name: fp for name, fp in session.execute(select(Topic.name, Topic.fingerprint))}
    return sorted(
        name for name, topic in topics.topics.items() if applied.get(name) != topic.fingerprint
    )


class TopicTagger:
    """Tags articles as they are stored (by a crawl, a WARC import or a reparse)."""

    def __init__(self, path: str | Path | None = None) -> None:
        self.topics = load_topics(path)
        self.topic_ids: dict[str, int] = {}

    def open(self, session: Session) -> None:
        """Make sure every topic of the file has its row.

        On an archive without articles the tags are complete for the topics as they are now
        (and stay so, articles being tagged as they are stored): their fingerprints say so."""
        from sqlalchemy import select

        from crawler.db.models import Article, Topic, utcnow

        self.topic_ids = ensure_topics(session, self.topics.topics)
        if session.scalar(select(Article.id).limit(1)) is None:
            for topic in session.scalars(select(Topic).where(Topic.name.in_(self.topics.topics))):
                if topic.fingerprint != self.topics.topics[topic.name].fingerprint:
                    topic.fingerprint = self.topics.topics[topic.name].fingerprint
                    topic.applied_at = utcnow()

    def tag(self, session: Session, article_id: int, item: ArticleItem, new: bool) -> set[str]:
        """Make a new or changed article's tags the topics its text matches; their names."""
        matched = set(self.topics.matching(item.title, item.summary, "\n\n".join(item.body)))
        tag_article(session, article_id, matched, self.topic_ids, set() if new else None)
        return matched
