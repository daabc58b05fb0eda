"""The `crawler` command: crawl, export, inspect and operate the archive.

One module a command group; importing them registers their commands on `app`.
"""

import os
import sys

from crawler.cli import crawl, db, query, schedule, sources, stories, topics, warc, web
from crawler.cli.common import app, err

__all__ = [
    "app",
    "crawl",
    "db",
    "main",
    "query",
    "schedule",
    "sources",
    "stories",
    "topics",
    "warc",
    "web",
]


def main() -> None:
    undecodable = next((arg for arg in sys.argv[1:] if not _is_utf8(arg)), None)
    if undecodable is not None:
        # the shell passed bytes that are no text: refused before any command reads them
        raw = os.fsencode(undecodable)
        err.print(f"error: argument {raw!r} is not valid UTF-8 text", highlight=False)
        raise SystemExit(2)
    app()


def _is_utf8(arg: str) -> bool:
    """False for an argument holding bytes that were not UTF-8 (decoded as lone surrogates)."""
    try:
        arg.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
