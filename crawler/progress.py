"""The live crawl display and the end-of-crawl summary table (rich)."""

from __future__ import annotations

import threading
from collections.abc import Iterable

from rich.console import Console
from rich.live import Live
from rich.table import Table

from crawler.runner import RunSummary

COLUMNS = ("pages", "new", "updated", "unchanged", "skipped", "errors")


class LiveBoard:
    """Counters per source, drawn by rich's refresh thread (updates only touch a dict)."""

    def __init__(self, console: Console, sources: Iterable[str]) -> None:
        self.console = console
        self.lock = threading.Lock()
        self.counters: dict[str, dict[str, int]] = {name: {} for name in sources}
        self.live = Live(self, console=console, refresh_per_second=4, transient=True)

    def update(self, source: str, counters: dict[str, int]) -> None:
        with self.lock:
            self.counters[source] = dict(counters)

    def __rich__(self) -> Table:
        table = Table(title="crawling", expand=False)
        table.add_column("source")
        for column in COLUMNS:
            table.add_column(column, justify="right")
        with self.lock:
            for name, counters in self.counters.items():
                table.add_row(name, *(str(counters.get(c, 0)) for c in COLUMNS))
        return table

    def __enter__(self) -> LiveBoard:
        self.live.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.live.stop()


def summary_table(summaries: Iterable[RunSummary]) -> Table:
    table = Table(title="crawl summary")
    for column, justify in (
        ("source", "left"),
        ("run", "right"),
        ("status", "left"),
        ("pages", "right"),
        ("new", "right"),
        ("updated", "right"),
        ("unchanged", "right"),
        ("skipped", "right"),
        ("invalid", "right"),
        ("errors", "right"),
    ):
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    for s in summaries:
        style = (
            "green"
            if s.status == "finished" and not s.errors
            else "red"
            if s.status != "finished"
            else "yellow"
        )
        table.add_row(
            s.source,
            str(s.run_id or "-"),
            f"[{style}]{s.status}[/]",
            str(s.pages),
            str(s.new),
            str(s.updated),
            str(s.unchanged),
            str(s.skipped),
            str(s.invalid),
            str(s.errors),
        )
    return table
