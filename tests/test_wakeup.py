"""The scheduler's and the mirror's main threads wait on a Wakeup that signals ring."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
import time

from crawler.wakeup import Wakeup

# The main thread waits and clears without pause while a thread signals it every millisecond
# and the handler rings. With a threading.Event in place of the Wakeup, within a few thousand
# signals the handler's set() waits for the lock its own thread holds in wait(): one signal
# would hang there for good; this storm re-enters the handler until the stack overflows.
STORM = textwrap.dedent(
    """
    import os, signal, sys, threading, time
    from crawler.wakeup import Wakeup

    wake = Wakeup()
    handled = 0

    def on_signal(signum, frame):
        global handled
        handled += 1
        wake.ring()

    signal.signal(signal.SIGUSR1, on_signal)
    done = threading.Event()

    def storm():
        while not done.is_set():
            os.kill(os.getpid(), signal.SIGUSR1)
            time.sleep(0.001)

    threading.Thread(target=storm, daemon=True).start()
    woken = 0
    end = time.monotonic() + 60
    while handled < int(sys.argv[1]) and time.monotonic() < end:
        woken += wake.wait(0)
    done.set()
    print(handled, woken)
    """
)


def test_a_signal_storm_never_hangs_the_waiting_thread():
    signals = 3000
    result = subprocess.run(
        [sys.executable, "-c", STORM, str(signals)],
        capture_output=True,
        text=True,
        timeout=120,  # a deadlock ends here, as a failure
    )
    assert result.returncode == 0, result.stderr
    handled, woken = map(int, result.stdout.split())
    assert handled >= signals, "the storm did not reach the waiting thread"
    assert woken > 0


def test_a_ring_from_another_thread_wakes_the_waiter_and_is_used_up():
    wake = Wakeup()
    assert wake.wait(0) is False
    started = time.monotonic()
    assert wake.wait(0.2) is False
    assert time.monotonic() - started >= 0.19
    threading.Timer(0.1, wake.ring).start()
    started = time.monotonic()
    assert wake.wait(30) is True
    assert time.monotonic() - started < 5
    for _ in range(100_000):  # more rings than the pipe holds: none blocks, one wake-up
        wake.ring()
    assert wake.wait(0) is True
    assert wake.wait(0) is False
