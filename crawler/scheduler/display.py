"""How the scheduler writes times and durations: UTC instants, compact durations."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta


def format_duration(delta: timedelta) -> str:
    """'3d4h', '12m5s', '45s', '0s'."""
    seconds = int(delta.total_seconds())
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    units = ((days, "d"), (hours, "h"), (minutes, "m"), (seconds, "s"))
    return "".join(f"{value}{unit}" for value, unit in units if value) or "0s"


def format_time(moment: datetime | None) -> str:
    """'2026-11-23 13:09:45 UTC', or '-' for none."""
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC") if moment else "-"


def iso(moment: datetime | None) -> str | None:
    """An ISO 8601 UTC instant for JSON, or None."""
    return moment.astimezone(UTC).isoformat() if moment else None
