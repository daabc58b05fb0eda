"""Start-up of the query commands: what each costs before its own query.

Runs each query command (search, show, stats, runs, sources, export, changes, stories) against
an empty, migrated SQLite archive, where the query itself takes a millisecond, and a bare
`python -c pass` as the floor, ROUNDS times each in turn after one round that is not counted;
prints the medians of wall time and of CPU time (user + system, less sensitive to a busy
machine), the command's cost above the floor, and the modules whose import costs most in
`python -X importtime` of one of them. Modules run from their bytecode as in an installed
copy (cached in the bench's own folder, even where PYTHONDONTWRITEBYTECODE is set).

With `--baseline DIR` (another checkout of the project, e.g. made by `git worktree add`), every
command also runs from that tree, alternately with this one, so that both are measured under
the same load. With `--instructions`, each command also runs once under valgrind (cachegrind)
and the instructions it executes are printed: a figure a busy machine does not move.

With `--postgres URL` (a PostgreSQL server; the bench creates, migrates and drops a database
of its own there) the commands read a PostgreSQL archive instead.

    python bench/startup.py [--rounds 7] [--command "stats"] [--baseline DIR] [--instructions]
                            [--postgres URL]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import resource
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COMMANDS = (
    "search kim",
    "show 1",
    "stats",
    "runs",
    "sources",
    "export --format jsonl",
    "changes",
    "stories",
)
FLOOR = "python -c pass"
VALGRIND = "valgrind"
TARGET_MS = 150


def timed(argv: list[str], env: dict[str, str], cwd: Path) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one run."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run(
        argv, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False
    )
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def instructions(argv: list[str], env: dict[str, str], cwd: Path) -> int:
    """The instructions one run executes (valgrind's cachegrind, user space)."""
    result = subprocess.run(
        [VALGRIND, "--tool=cachegrind", "--cache-sim=no", "--cachegrind-out-file=/dev/null", *argv],
        cwd=cwd,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        check=False,
    )
    match = re.search(r"I\s+refs:\s+([\d,]+)", result.stderr)
    if match is None:
        raise SystemExit(f"valgrind printed no instruction count: {result.stderr[-500:]}")
    return int(match.group(1).replace(",", ""))


def heaviest_imports(argv: list[str], env: dict[str, str], count: int = 12) -> list[str]:
    """The top-level imports of a run, by cumulative microseconds."""
    result = subprocess.run(
        [argv[0], "-X", "importtime", *argv[1:]],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    found = []
    for line in result.stderr.splitlines():
        match = re.match(r"import time:\s+\d+ \|\s+(\d+) \|( +)(\S+)", line)
        if match and len(match.group(2)) <= 3:  # imported by the program, not by a module
            found.append((int(match.group(1)), match.group(3)))
    found.sort(reverse=True)
    return [f"{name} {micros / 1000:.0f} ms" for micros, name in found[:count]]


@contextlib.contextmanager
def archive_url(server: str | None, folder: Path) -> Iterator[str]:
    """The URL of an empty archive: a SQLite file in `folder`, or a database of its own on the
    PostgreSQL server, dropped afterwards."""
    if server is None:
        yield f"sqlite:///{folder / 'archive.db'}"
        return
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    name = f"bench_startup_{uuid.uuid4().hex[:8]}"
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(server).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--command", action="append", help="a command line (repeatable)")
    parser.add_argument("--baseline", type=Path, help="another checkout, measured alternately")
    parser.add_argument(
        "--instructions", action="store_true", help="count instructions with valgrind too"
    )
    parser.add_argument(
        "--postgres", help="a PostgreSQL server URL: read an archive there instead of SQLite"
    )
    args = parser.parse_args()
    commands = args.command or list(COMMANDS)
    if args.instructions and shutil.which(VALGRIND) is None:
        parser.error("--instructions needs valgrind")
    trees = {"this": ROOT}
    if args.baseline is not None:
        if not (args.baseline / "crawler" / "cli" / "__init__.py").exists():
            parser.error(f"--baseline {args.baseline}: not a checkout of this project")
        trees["baseline"] = args.baseline.resolve()
    with (
        tempfile.TemporaryDirectory(prefix="bench-startup-") as tmp,
        archive_url(args.postgres, Path(tmp)) as url,
    ):
        common = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("CRAWLER_") and k not in ("PYTHONDONTWRITEBYTECODE", "PYTHONPATH")
        }
        common["CRAWLER_DATABASE_URL"] = url
        envs = {}
        for tree, folder in trees.items():
            # each tree's own package first, its bytecode compiled once in the uncounted round
            envs[tree] = {
                **common,
                "PYTHONPATH": str(folder),
                "PYTHONPYCACHEPREFIX": str(Path(tmp) / f"pycache-{tree}"),
            }
        subprocess.run(
            [sys.executable, "-m", "crawler.cli", "db", "upgrade"],
            cwd=ROOT,
            env=envs["this"],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        argvs = {FLOOR: [sys.executable, "-c", "pass"]}
        for command in commands:
            argvs[command] = [sys.executable, "-m", "crawler.cli", *shlex.split(command)]
        runs: dict[tuple[str, str], list[tuple[float, float]]] = {}
        for _ in range(args.rounds + 1):
            for name, argv in argvs.items():
                for tree, folder in trees.items():
                    runs.setdefault((name, tree), []).append(timed(argv, envs[tree], folder))
        for figures in runs.values():
            del figures[0]
        counted = {
            (name, tree): instructions(argv, envs[tree], folder)
            for name, argv in argvs.items()
            for tree, folder in trees.items()
            if args.instructions
        }
        floor_wall = statistics.median(w for w, _ in runs[FLOOR, "this"])
        floor_cpu = statistics.median(c for _, c in runs[FLOOR, "this"])
        print(f"medians of {args.rounds} runs{'':18}wall ms  CPU ms   above python -c pass")
        for (name, tree), figures in runs.items():
            wall = statistics.median(w for w, _ in figures)
            cpu = statistics.median(c for _, c in figures)
            label = name if len(trees) == 1 else f"{name} ({tree})"
            extra = (
                ""
                if name == FLOOR
                else f"{1000 * (wall - floor_wall):6.0f} ms wall {1000 * (cpu - floor_cpu):6.0f} "
                f"ms CPU (target < {TARGET_MS})"
            )
            if counted and name == FLOOR:
                extra += f"{counted[name, tree] / 1e6:41.0f} M instructions"
            elif counted:
                above = counted[name, tree] - counted[FLOOR, tree]
                extra += f"  {above / 1e6:6.0f} M instructions"
            print(f"  {label:36} {1000 * wall:7.0f} {1000 * cpu:7.0f}   {extra}")
        print(f"heaviest imports of `crawler {commands[0]}` (cumulative, one run):")
        for line in heaviest_imports(argvs[commands[0]], envs["this"]):
            print(f"  {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
