"""Archived text made safe to print on a terminal.

A page may hold terminal control sequences (clear screen, a window title, hyperlinks); the
cleaning pipeline drops control characters from what it stores, and everything printed from
the archive passes through `printable` too, for text archived before or imported from elsewhere.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime

# C0 controls but for newline and tab, DEL, and the C1 controls (CSI, OSC, ... as one byte).
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_CONTROL_OR_NEWLINE = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def _escaped(match: re.Match[str]) -> str:
    return f"\\x{ord(match.group()):02x}"


def printable(text: str, *, lines: bool = True) -> str:
    """`text` with every control character shown as `\\xNN` (newlines and tabs kept when
    `lines`), so that printing it cannot move the cursor, retitle the window or hide text."""
    return (_CONTROL if lines else _CONTROL_OR_NEWLINE).sub(_escaped, text)


def published_label(at: datetime | None, day: date | None, precision: str | None) -> str:
    """When an article was published, as precisely as its outlet said: the day shown on a
    page that gave only a day (not the UTC instant of its local midnight), else the time."""
    if precision == "day" and day is not None:
        return day.isoformat()
    if at is None:
        return "-"
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
