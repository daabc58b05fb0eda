"""Word-level differences between two versions of an article, for the article page."""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from typing import Any

from crawler.read.show import VERSION_FIELDS

_TOKENS = re.compile(r"\s+|\w+|[^\w\s]")


@dataclass(frozen=True)
class Segment:
    kind: str  # "same", "ins" or "del"
    text: str


@dataclass(frozen=True)
class Block:
    """A stretch of the body: unchanged paragraphs (counted) or one changed passage."""

    unchanged: int
    segments: tuple[Segment, ...] = ()


@dataclass(frozen=True)
class FieldChange:
    label: str
    segments: tuple[Segment, ...]


@dataclass(frozen=True)
class VersionDiff:
    fields: tuple[FieldChange, ...]
    body: tuple[Block, ...]

    @property
    def empty(self) -> bool:
        return not self.fields and all(not b.segments for b in self.body)


def word_diff(old: str, new: str) -> tuple[Segment, ...]:
    """`new` against `old` word by word: the words kept, inserted and deleted, in reading order."""
    a, b = _TOKENS.findall(old), _TOKENS.findall(new)
    out: list[Segment] = []

    def add(kind: str, text: str) -> None:
        if not text:
            return
        if out and out[-1].kind == kind:
            out[-1] = Segment(kind, out[-1].text + text)
        else:
            out.append(Segment(kind, text))

    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        if op == "equal":
            add("same", "".join(a[i1:i2]))
            continue
        add("del", "".join(a[i1:i2]))
        add("ins", "".join(b[j1:j2]))
    return tuple(out)


def _shown(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    return "" if value is None else str(value)


def version_diff(older: dict[str, Any], newer: dict[str, Any]) -> VersionDiff:
    """What changed from one version (as `article_history` gives it) to the next: each changed
    field word by word, and the body's changed passages between runs of unchanged paragraphs."""
    fields = tuple(
        FieldChange(label, word_diff(_shown(older[name]), _shown(newer[name])))
        for name, label in VERSION_FIELDS
        if older[name] != newer[name]
    )
    old_paragraphs = older["body"].split("\n\n")
    new_paragraphs = newer["body"].split("\n\n")
    matcher = difflib.SequenceMatcher(None, old_paragraphs, new_paragraphs, autojunk=False)
    blocks: list[Block] = []
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        if op == "equal":
            blocks.append(Block(unchanged=i2 - i1))
        else:
            old_text = "\n\n".join(old_paragraphs[i1:i2])
            new_text = "\n\n".join(new_paragraphs[j1:j2])
            blocks.append(Block(unchanged=0, segments=word_diff(old_text, new_text)))
    return VersionDiff(fields, tuple(blocks))
