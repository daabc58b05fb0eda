"""A wake-up call for a main thread that waits for threads and for signals.

`threading.Event` cannot be set from a signal handler: the handler runs in the main thread
between two bytecodes, possibly while that thread holds the Event's own (non-reentrant) lock
inside `wait()` or `clear()`, and `set()` then waits for that lock forever. A Ctrl-C could
hang `crawler schedule` that way. A pipe has no lock: ringing is one non-blocking `write`, safe
from a signal handler and from any thread, and waiting is a `select` on the pipe's other end.
"""

from __future__ import annotations

import contextlib
import os
import select
import weakref


class Wakeup:
    def __init__(self) -> None:
        self._read, self._write = os.pipe()
        os.set_blocking(self._read, False)
        os.set_blocking(self._write, False)
        # closed with the object, when nothing can ring it any more (a closed descriptor's
        # number may be reused by another file, which a late ring would then write into)
        # (not at interpreter exit: a daemon thread or a signal may still ring it then)
        weakref.finalize(self, _close, self._read, self._write).atexit = False

    def ring(self) -> None:
        """Wake the waiter (now, or at its next wait); safe from a signal handler."""
        with contextlib.suppress(BlockingIOError):  # full: a wake-up is pending already
            os.write(self._write, b"\0")

    def wait(self, timeout: float) -> bool:
        """Wait up to `timeout` seconds for a ring; True if rung. Clears the rings it saw."""
        ready, _, _ = select.select([self._read], [], [], timeout)
        if not ready:
            return False
        with contextlib.suppress(BlockingIOError):
            while os.read(self._read, 4096):
                pass
        return True


def _close(*fds: int) -> None:
    for fd in fds:
        with contextlib.suppress(OSError):
            os.close(fd)
