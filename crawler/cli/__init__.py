"""The `crawler` command: crawl, export, inspect and operate the archive.

One module a command group; importing it registers its commands on `app`. `main()` imports
only the module of the command it runs, so that a query does not pay for the crawl's imports;
a query command's well-formed call does not even import typer (crawler/cli/quick.py).
"""

import gc
import os
import sys
from collections.abc import Sequence
from typing import Any

__all__ = ["COMMAND_MODULES", "app", "main", "register_commands"]

# The module (under crawler.cli) that defines each command or command group.
COMMAND_MODULES = {
    "crawl": "crawl",
    "demo": "crawl",
    "reparse": "crawl",
    "db": "db",
    "parse": "parse",
    "show": "query",
    "search": "query",
    "stats": "query",
    "export": "query",
    "schedule": "schedule",
    "runs": "schedule",
    "health": "schedule",
    "sources": "sources",
    "stories": "stories",
    "changes": "stories",
    "topics": "topics",
    "warc": "warc",
    "web": "web",
}


def register_commands(argv: Sequence[str]) -> None:
    """Register the command `argv` starts with; every command when it starts with none that
    is known (no arguments, `--help`, a mistyped name), so help and suggestions name them all."""
    modules = dict.fromkeys(COMMAND_MODULES.values())
    if argv and argv[0] in COMMAND_MODULES:
        modules = {COMMAND_MODULES[argv[0]]: None}
    for module in modules:
        # the import statement's own machinery (unlike importlib's), so -X importtime shows it
        __import__(f"crawler.cli.{module}")


# The youngest generation's collection threshold of a command (Python's is 700; a crawl sets
# its own once started, crawler/runner.py `crawl_gc`): starting a crawl imports and builds about
# 100,000 objects, and the collections they set off went through every one of them again and
# again, 0.09 s of its start-up. Reference counting frees nearly all of what a command makes;
# the collector still runs, less often.
START_GC_THRESHOLD = 50_000


def main() -> None:
    gc.set_threshold(START_GC_THRESHOLD, *gc.get_threshold()[1:])
    try:
        _main()
    finally:
        # The command is done: what it made is set apart from the collector before the
        # interpreter tears itself down, which otherwise went through all of it again (0.25 to
        # 0.35 s at the end of a crawl, against 0.03 s so). Objects are still freed as their
        # references go, and the files a command writes are closed before (the archive's
        # connections by the command, the log by logging's exit handler); only reference cycles
        # still standing then are left to the process's end, as the interpreter leaves some.
        gc.freeze()


def _main() -> None:
    undecodable = next((arg for arg in sys.argv[1:] if not _is_utf8(arg)), None)
    if undecodable is not None:
        # the shell passed bytes that are no text: refused before any command reads them
        from crawler.cli.output import err

        raw = os.fsencode(undecodable)
        err.print(f"error: argument {raw!r} is not valid UTF-8 text", highlight=False)
        raise SystemExit(2)
    from crawler.cli import quick

    if quick.run(sys.argv[1:]):
        return
    register_commands(sys.argv[1:])
    from crawler.cli.common import app

    app()


def __getattr__(name: str) -> Any:
    """`crawler.cli.app`, the typer application, imported when first asked for."""
    if name == "app":
        from crawler.cli.common import app

        return app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _is_utf8(arg: str) -> bool:
    """False for an argument holding bytes that were not UTF-8 (decoded as lone surrogates)."""
    try:
        arg.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
