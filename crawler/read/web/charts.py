"""Small bar charts as inline SVG, drawn on the server (no script, no external asset)."""

from __future__ import annotations

from html import escape

from markupsafe import Markup

# Colours of run outcomes; also named in the legend of the page.
OUTCOME_COLOURS = {
    "finished": "#2e7d32",
    "failed": "#c62828",
    "timed_out": "#ef6c00",
    "interrupted": "#757575",
    "running": "#1565c0",
}
_WIDTH, _HEIGHT, _GAP = 300, 60, 1


def _svg(label: str, bars: list[str], count: int) -> Markup:
    return Markup(
        f'<svg class="chart" viewBox="0 0 {_WIDTH} {_HEIGHT}" width="100%" height="{_HEIGHT}" '
        f'preserveAspectRatio="none" role="img" aria-label="{escape(label)}" '
        f'data-bars="{count}"><title>{escape(label)}</title>'
        f'<line x1="0" y1="{_HEIGHT - 0.5}" x2="{_WIDTH}" y2="{_HEIGHT - 0.5}" '
        f'stroke="#bbb" stroke-width="1"/>{"".join(bars)}</svg>'
    )


def _bar(x: float, width: float, y: float, height: float, colour: str, tip: str) -> str:
    return (
        f'<rect x="{x:.2f}" y="{y:.2f}" width="{width:.2f}" height="{height:.2f}" '
        f'fill="{colour}"><title>{escape(tip)}</title></rect>'
    )


def per_day_bars(label: str, per_day: dict[str, int], colour: str = "#37474f") -> Markup:
    """One bar per day, its height the day's count; a tooltip names the day and count."""
    days = list(per_day)
    peak = max(per_day.values(), default=0) or 1
    slot = _WIDTH / max(len(days), 1)
    bars = []
    for n, day in enumerate(days):
        count = per_day[day]
        height = (_HEIGHT - 2) * count / peak
        tip = f"{day}: {count}"
        if count:
            bars.append(_bar(n * slot, slot - _GAP, _HEIGHT - 1 - height, height, colour, tip))
    return _svg(label, bars, len(bars))


def outcome_bars(label: str, per_day: dict[str, dict[str, int]]) -> Markup:
    """One stacked bar per day: how many runs ended in each outcome."""
    days = list(per_day)
    peak = max((sum(c.values()) for c in per_day.values()), default=0) or 1
    slot = _WIDTH / max(len(days), 1)
    bars = []
    for n, day in enumerate(days):
        top = _HEIGHT - 1.0
        for status, colour in OUTCOME_COLOURS.items():
            count = per_day[day].get(status, 0)
            if not count:
                continue
            height = (_HEIGHT - 2) * count / peak
            top -= height
            bars.append(
                _bar(n * slot, slot - _GAP, top, height, colour, f"{day}: {count} {status}")
            )
    return _svg(label, bars, len(bars))
