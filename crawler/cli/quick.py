"""The query commands' and `crawl`'s short way in: their options parsed without typer.

Importing typer (with click, rich's help renderer and pydantic, through which typer 0.29 checks
every option) costs a query command more than its query, and a crawl about 35 ms of its
start-up; so `crawler.cli.main()` first hands a query command's or a crawl's arguments to
`run()` here, which parses the options each command declares in crawler/cli (same names,
defaults and bounds) and calls its work in crawler/cli/querying.py (`crawl` in
crawler/cli/crawling.py).
Whatever is not a well-formed call of a query command (--help, a subcommand, an option or value
typer would refuse) is left to typer, so that help and usage errors stay typer's own.
"""

from __future__ import annotations

import errno
import os
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_NUMBER = re.compile(r"[1-9][0-9]*")  # every number option's least value is 1


@dataclass(frozen=True)
class Option:
    """An option as a typer command declares it: its parameter and what it takes."""

    dest: str
    kind: str = "text"  # text, path, many (repeatable), flag, unflag (--no-...), int
    default: Any = None
    low: int | None = None
    high: int | None = None


_COMMON = {"--db": Option("db"), "--sources": Option("sources", "path")}
_JSON = {"--json": Option("as_json", "flag", False)}
_SINCE_UNTIL = {"--since": Option("since"), "--until": Option("until")}
_TOPIC = {"--topic": Option("topic")}
_OUTLETS = {"--outlet": Option("outlet", "many")}


@dataclass(frozen=True)
class Command:
    """A query command: its positional parameters and its options (by every name of each)."""

    run: str  # the function in crawler/cli/querying.py (`module`)
    arguments: tuple[str, ...]
    options: dict[str, Option]
    module: str = "querying"
    # the last argument takes every positional value left (none: None, as typer passes it)
    variadic: bool = False


COMMANDS = {
    "search": Command(
        "search",
        ("query",),
        _OUTLETS
        | _SINCE_UNTIL
        | _TOPIC
        | _JSON
        | _COMMON
        | {
            "--limit": Option("limit", "int", 20, 1, 1000),
            "--all-copies": Option("all_copies", "flag", False),
        },
    ),
    "show": Command("show", ("ref",), _JSON | _COMMON),
    "stats": Command("stats", (), _TOPIC | _JSON | _COMMON),
    "runs": Command(
        "runs",
        (),
        {"--source": Option("source"), "--limit": Option("limit", "int", 20, 1)} | _JSON | _COMMON,
    ),
    "sources": Command("list_sources", (), _JSON | _COMMON),
    "export": Command(
        "export",
        (),
        {
            "--format": Option("format", "text", "jsonl"),
            "-f": Option("format", "text", "jsonl"),
            "--output": Option("output", "path"),
            "-o": Option("output", "path"),
        }
        | _OUTLETS
        | _SINCE_UNTIL
        | _TOPIC
        | _COMMON,
    ),
    "changes": Command(
        "changes",
        (),
        {
            "--since": Option("since", "text", "7d"),
            "--outlet": Option("outlet"),
            "--limit": Option("limit", "int", 100, 1, 10000),
        }
        | _TOPIC
        | _JSON
        | _COMMON,
    ),
    "stories": Command(
        "stories",
        (),
        _SINCE_UNTIL
        | _TOPIC
        | {
            "--outlet": Option("outlet"),
            "--min-outlets": Option("min_outlets", "int", 1, 1),
            "--limit": Option("limit", "int", 50, 1, 10000),
        }
        | _JSON
        | _COMMON,
    ),
    "crawl": Command(
        "crawl",
        ("source",),
        {
            "--all": Option("all_sources", "flag", False),
            "--refresh": Option("refresh", "flag", False),
            "--progress": Option("progress", "flag", True),
            "--no-progress": Option("progress", "unflag", True),
            "--set": Option("setting", "many"),
            "-s": Option("setting", "many"),
            "--run-id": Option("run_id", "int", None, 1),
            "--parent-pid": Option("parent_pid", "int", None, 1),
            "--verbose": Option("verbose", "flag", False),
            "-v": Option("verbose", "flag", False),
        }
        | _COMMON,
        module="crawling",
        variadic=True,
    ),
}


def parse(command: Command, args: Sequence[str]) -> dict[str, Any] | None:
    """The command's parameters from its arguments, as typer would pass them; None for
    anything typer must answer (help, an unknown option, a missing or refused value)."""
    values: dict[str, Any] = {option.dest: option.default for option in command.options.values()}
    positional: list[str] = []
    pending = list(args)
    while pending:
        arg = pending.pop(0)
        if arg == "--":
            positional += pending
            break
        if not arg.startswith("-") or arg == "-":
            positional.append(arg)
            continue
        name, attached = arg, None
        if arg.startswith("--") and "=" in arg:
            name, attached = arg.split("=", 1)
        elif not arg.startswith("--") and len(arg) > 2:
            name, attached = arg[:2], arg[2:]  # -fcsv
        option = command.options.get(name)
        if option is None:
            return None
        if option.kind in ("flag", "unflag"):
            if attached is not None:
                return None
            values[option.dest] = option.kind == "flag"
            continue
        if attached is None:
            if not pending:
                return None
            attached = pending.pop(0)
        value = _value(option, attached)
        if value is None:
            return None
        if option.kind == "many":
            values[option.dest] = [*(values[option.dest] or []), value]
        else:
            values[option.dest] = value
    if command.variadic:
        *single, rest = command.arguments
        if len(positional) < len(single):
            return None
        taken = positional[len(single) :]
        values[rest] = taken or None
        positional = positional[: len(single)]
        arguments: Sequence[str] = single
    else:
        arguments = command.arguments
    if len(positional) != len(arguments):
        return None
    return values | dict(zip(arguments, positional, strict=True))


def _value(option: Option, text: str) -> Any:
    """An option's value, or None where typer refuses it (or reads it in a way of its own)."""
    if option.kind == "path":
        return Path(text)
    if option.kind != "int":
        return text
    if not _NUMBER.fullmatch(text):
        return None  # "+5", " 5", "5_000", "٥", ...: typer's to read (or refuse)
    number = int(text)
    too_low = option.low is not None and number < option.low
    if too_low or (option.high is not None and number > option.high):
        return None
    return number


def run(argv: Sequence[str]) -> bool:
    """Run `argv` when it is a well-formed call of a query command; False to leave it to typer."""
    command = COMMANDS.get(argv[0]) if argv else None
    parameters = parse(command, argv[1:]) if command is not None else None
    if command is None or parameters is None:
        return False
    name = f"crawler.cli.{command.module}"
    __import__(name)  # the import statement's own machinery, so -X importtime shows it
    work: Callable[..., None] | None = getattr(sys.modules[name], command.run, None)
    if work is None:
        return False
    try:
        work(**parameters)
    except BrokenPipeError:
        # the reader (`| head`) stopped reading: exit as click does, without a traceback
        _quiet_stdout()
        raise SystemExit(1) from None
    except OSError as exc:
        if exc.errno != errno.EPIPE:
            raise
        _quiet_stdout()
        raise SystemExit(1) from None
    except KeyboardInterrupt:
        print("\nAborted!", file=sys.stderr)
        raise SystemExit(1) from None
    return True


def _quiet_stdout() -> None:
    """Send what is left to print to nowhere: the pipe is closed."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
