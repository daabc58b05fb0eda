"""The `crawler` command: crawl, export, inspect and operate the archive.

One module a command group; importing them registers their commands on `app`.
"""

from crawler.cli import crawl, db, parse, query, schedule, sources, topics, warc
from crawler.cli.common import app

__all__ = ["app", "crawl", "db", "main", "parse", "query", "schedule", "sources", "topics", "warc"]


def main() -> None:
    app()
