"""Start-up of the query commands: what each costs before its own query.

Runs each query command (search, show, stats, runs, sources, export, changes, stories) against
an empty, migrated SQLite archive, where the query itself takes a millisecond, and a bare
`python -c pass` as the floor, ROUNDS times each in turn after one round that is not counted;
prints the medians of wall time and of CPU time (user + system, less sensitive to a busy
machine), the command's cost above the floor, and the modules whose import costs most in
`python -X importtime` of one of them. Modules run from their bytecode as in an installed
copy (cached in the bench's own folder, even where PYTHONDONTWRITEBYTECODE is set).

    python bench/startup.py [--rounds 7] [--command "stats"]
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
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
TARGET_MS = 150


def timed(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one run."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run(
        argv, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False
    )
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--command", action="append", help="a command line (repeatable)")
    args = parser.parse_args()
    commands = args.command or list(COMMANDS)
    with tempfile.TemporaryDirectory(prefix="bench-startup-") as tmp:
        url = f"sqlite:///{Path(tmp) / 'archive.db'}"
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("CRAWLER_") and k != "PYTHONDONTWRITEBYTECODE"
        }
        env["CRAWLER_DATABASE_URL"] = url
        # compiled once, in the first (uncounted) round, rather than in every run
        env["PYTHONPYCACHEPREFIX"] = str(Path(tmp) / "pycache")
        subprocess.run(
            [sys.executable, "-m", "crawler.cli", "db", "upgrade"],
            cwd=ROOT,
            env=env,
            check=True,
            stdout=subprocess.DEVNULL,
        )
        runs: dict[str, list[tuple[float, float]]] = {"python -c pass": []}
        argvs = {"python -c pass": [sys.executable, "-c", "pass"]}
        for command in commands:
            runs[command] = []
            argvs[command] = [sys.executable, "-m", "crawler.cli", *shlex.split(command)]
        for _ in range(args.rounds + 1):
            for name, argv in argvs.items():
                runs[name].append(timed(argv, env))
        for figures in runs.values():
            del figures[0]
        floor_wall = statistics.median(w for w, _ in runs["python -c pass"])
        floor_cpu = statistics.median(c for _, c in runs["python -c pass"])
        print(f"medians of {args.rounds} runs     wall ms  CPU ms   above python -c pass")
        for name, figures in runs.items():
            wall = statistics.median(w for w, _ in figures)
            cpu = statistics.median(c for _, c in figures)
            extra = (
                ""
                if name == "python -c pass"
                else f"{1000 * (wall - floor_wall):6.0f} ms wall {1000 * (cpu - floor_cpu):6.0f} "
                f"ms CPU (target < {TARGET_MS})"
            )
            print(f"  {name:26} {1000 * wall:7.0f} {1000 * cpu:7.0f}   {extra}")
        print(f"heaviest imports of `crawler {commands[0]}` (cumulative, one run):")
        for line in heaviest_imports(argvs[commands[0]], env):
            print(f"  {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
