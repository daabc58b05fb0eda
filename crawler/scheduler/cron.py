"""Crontab lines as APScheduler triggers, with crontab's own day-of-week numbers.

APScheduler 3's `CronTrigger.from_crontab` counts weekdays from Monday = 0, so `1-5` would mean
Tuesday to Saturday; crontab counts from Sunday = 0 (7 is Sunday too). The day-of-week field is
therefore expanded here into day names, which mean the same to both.
"""

from __future__ import annotations

from datetime import UTC

from apscheduler.triggers.cron import CronTrigger

_CRON_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")


def _day_number(text: str) -> int:
    lowered = text.strip().lower()
    if lowered[:3] in _CRON_DAYS and len(lowered) >= 3:
        return _CRON_DAYS.index(lowered[:3])
    if not lowered.isdigit() or int(lowered) > 7:
        raise ValueError(f"day of week {text!r} is not 0-7 or sun-sat")
    return int(lowered) % 7


def crontab_days(field: str) -> str:
    """A crontab day-of-week field ('1-5', '0,6', '*/2', 'mon-fri') as APScheduler day names."""
    if field == "*":
        return "*"
    days: set[int] = set()
    for part in field.split(","):
        span, _, step_text = part.partition("/")
        step = 1
        if step_text:
            if not step_text.isdigit() or int(step_text) == 0:
                raise ValueError(f"step {step_text!r} in day of week {field!r} is not a number")
            step = int(step_text)
        if span == "*":
            first, last = 0, 6
        elif "-" in span:
            start, _, end = span.partition("-")
            first, last = _day_number(start), _day_number(end)
            if end.strip() == "7":
                last = 7  # '5-7' is Friday to Sunday
            if last < first:
                raise ValueError(f"day-of-week range {span!r} runs backwards")
        else:
            first = _day_number(span)
            last = 6 if step_text else first
        days.update(day % 7 for day in range(first, last + 1, step))
    return ",".join(_CRON_DAYS[day] for day in sorted(days))


def cron_trigger(expression: str, jitter: float | None = None) -> CronTrigger:
    """A trigger for a five-field crontab line, evaluated in UTC; ValueError when it is not one."""
    fields = expression.split()
    if len(fields) != 5:
        raise ValueError(f"expected 5 fields (minute hour day month weekday), got {len(fields)}")
    minute, hour, day, month, day_of_week = fields
    return CronTrigger(
        minute=minute,
        hour=hour,
        day=day,
        month=month,
        day_of_week=crontab_days(day_of_week),
        timezone=UTC,
        jitter=jitter,
    )
