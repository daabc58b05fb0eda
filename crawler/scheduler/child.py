"""A scheduled run's crawl process: `python -m crawler.cli crawl SOURCE --run-id N`.

A Twisted reactor cannot be restarted, so every run gets a process of its own. It runs in its
own session (a Ctrl-C meant for the scheduler does not reach it; the scheduler decides when to
stop it), asks the kernel to kill it when the scheduler dies (so that it never crawls on
unsupervised), and is stopped with SIGTERM (Scrapy closes the spider and records the run), then
SIGKILL.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from pathlib import Path
from typing import IO

_PR_SET_PDEATHSIG = 1
TAIL_LINES = 20


def die_with_parent(parent_pid: int) -> None:
    """In the child: be killed when the scheduler dies; exit now if it already has.

    A crawl must not outlive its scheduler: its lease would no longer be renewed, so another
    scheduler could start the same source while it still runs. Its row is closed by the next
    scheduler that releases the dead holder's lease.
    """
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
    if os.getppid() != parent_pid:
        raise SystemExit(f"the scheduler (pid {parent_pid}) is gone; not crawling")


def crawl_command(source: str, run_id: int, extra_args: list[str]) -> list[str]:
    return [
        sys.executable,
        "-m",
        "crawler.cli",
        "crawl",
        source,
        "--no-progress",
        "--run-id",
        str(run_id),
        "--parent-pid",
        str(os.getpid()),
        *extra_args,
    ]


class CrawlChild:
    """One running crawl process; its stderr is passed through with the source's name."""

    def __init__(
        self,
        source: str,
        run_id: int,
        *,
        db_url: str,
        sources_file: Path,
        extra_args: list[str],
        cwd: Path | None = None,
    ) -> None:
        self.source = source
        self.run_id = run_id
        env = dict(os.environ)
        env["CRAWLER_DATABASE_URL"] = db_url
        env["CRAWLER_SOURCES"] = str(sources_file)
        env["PYTHONUNBUFFERED"] = "1"
        self.tail: deque[str] = deque(maxlen=TAIL_LINES)
        self.started = time.monotonic()
        self.terminated_at: float | None = None
        self.killed = False
        self.process = subprocess.Popen(
            crawl_command(source, run_id, extra_args),
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            errors="replace",
            start_new_session=True,
        )
        self._reader = threading.Thread(
            target=self._pass_through,
            args=(self.process.stderr,),
            name=f"crawl-{source}-stderr",
            daemon=True,
        )
        self._reader.start()

    def _pass_through(self, stream: IO[str] | None) -> None:
        if stream is None:
            return
        for line in stream:
            self.tail.append(line.rstrip())
            sys.stderr.write(f"[{self.source} run {self.run_id}] {line}")
            sys.stderr.flush()
        stream.close()

    def wait(self, seconds: float) -> int | None:
        """The exit code, or None when still running after `seconds`."""
        try:
            return self.process.wait(timeout=seconds)
        except subprocess.TimeoutExpired:
            return None

    def terminate(self) -> None:
        """Ask the crawl to stop (Scrapy closes the spider and records the run)."""
        if self.terminated_at is None and self.process.poll() is None:
            self.terminated_at = time.monotonic()
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(signal.SIGTERM)

    def kill_if_overdue(self, grace: float) -> None:
        """SIGKILL the whole process group once `grace` seconds passed since terminate()."""
        if self.killed or self.terminated_at is None:
            return
        if time.monotonic() - self.terminated_at >= grace and self.process.poll() is None:
            self.killed = True
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.process.pid, signal.SIGKILL)

    def finish(self) -> None:
        """Reap the process and the stderr reader (after the process exited)."""
        self.process.wait()
        self._reader.join(timeout=5)
        # a browser left behind in the group would otherwise outlive the run
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)
