"""Run the `crawler` command under a pseudo-terminal and read back the screen it drew."""

from __future__ import annotations

import fcntl
import os
import pty
import select
import struct
import subprocess
import sys
import termios
import time
from dataclasses import dataclass
from pathlib import Path

import pyte

ROOT = Path(__file__).resolve().parents[1]
COLUMNS, LINES = 160, 60


@dataclass(frozen=True)
class TerminalRun:
    returncode: int
    raw: str  # every byte the command wrote, escape sequences included
    rows: tuple[str, ...]  # the terminal's rows at the end, scrolled-off ones included
    columns: int = COLUMNS

    @property
    def screen(self) -> str:
        """The text a person sees, one line per row."""
        return "\n".join(row.rstrip() for row in self.rows).rstrip("\n")

    @property
    def unwrapped(self) -> str:
        """The screen with the rows the terminal wrapped (filled to the last column) joined."""
        lines: list[str] = []
        joining = False
        for row in self.rows:
            if joining:
                lines[-1] += row.rstrip()
            else:
                lines.append(row.rstrip())
            joining = len(row) == self.columns and not row.endswith(" ")
        return "\n".join(lines).rstrip("\n")

    def __str__(self) -> str:
        return f"exit {self.returncode}\n{self.screen}"


def run_in_terminal(
    *args: str,
    env: dict[str, str] | None = None,
    timeout: float = 240,
    stop_when: str | None = None,
    cwd: Path = ROOT,
    columns: int = COLUMNS,
) -> TerminalRun:
    """Run `crawler ARGS` with stdin, stdout and stderr on a pseudo-terminal of 160x60.

    With `stop_when`, the command gets SIGINT once that text has appeared on the terminal
    (for the long-running `crawler schedule`)."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", LINES, columns, 0, 0))
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("CRAWLER_", "COLUMNS"))}
    full_env.update({"TERM": "xterm-256color", "LINES": str(LINES), "COLUMNS": str(columns)})
    full_env.update(env or {})
    process = subprocess.Popen(
        [sys.executable, "-m", "crawler.cli", *args],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        cwd=cwd,
        env=full_env,
        start_new_session=True,
    )
    os.close(slave)
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    interrupted = False
    try:
        while True:
            if time.monotonic() > deadline:
                process.kill()
                shown = b"".join(chunks).decode("utf-8", "replace")[-3000:]
                raise TimeoutError(
                    f"crawler {' '.join(args)} ran longer than {timeout}s; the terminal showed:"
                    f"\n{shown}"
                )
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                try:
                    data = os.read(master, 65536)
                except OSError:  # EIO: every writer closed the terminal
                    break
                if not data:
                    break
                chunks.append(data)
            if (
                stop_when is not None
                and not interrupted
                and stop_when in b"".join(chunks).decode("utf-8", "replace")
            ):
                process.send_signal(2)
                interrupted = True
        returncode = process.wait(timeout=60)
    finally:
        os.close(master)
        if process.poll() is None:
            process.kill()
    raw = b"".join(chunks).decode("utf-8", "replace")
    return TerminalRun(returncode, raw, screen_rows(raw, columns), columns)


def screen_rows(raw: str, columns: int = COLUMNS) -> tuple[str, ...]:
    """The rows a terminal of `columns` x LINES shows after `raw`, scrolled-off rows included."""
    screen = pyte.HistoryScreen(columns, LINES, history=10_000)
    pyte.Stream(screen).feed(raw)
    scrolled = ["".join(line[x].data for x in range(columns)) for line in screen.history.top]
    return tuple(scrolled + list(screen.display))
