"""Serve the bundled mirror sites until interrupted.

    python -m crawler.mirror [SITE ...] [--port-base N]

Prints one line per site, "SITE http://127.0.0.1:PORT", then serves until SIGINT or SIGTERM.
"""

from __future__ import annotations

import argparse
import signal
import sys
from types import FrameType

from crawler.mirror.server import SITE_NAMES, MirrorSet
from crawler.wakeup import Wakeup


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(
        prog="python -m crawler.mirror",
        description="Serve the bundled mirror sites on 127.0.0.1 until interrupted.",
    )
    parser.add_argument(
        "sites",
        nargs="*",
        metavar="SITE",
        help=f"sites to serve (default: all of {', '.join(SITE_NAMES)})",
    )
    parser.add_argument(
        "--port-base",
        type=int,
        default=0,
        metavar="N",
        help="serve the sites on ports N, N+1, ... in the order given (default: free ports)",
    )
    args = parser.parse_args(argv)
    unknown = [s for s in args.sites if s not in SITE_NAMES]
    if unknown:
        parser.error(f"unknown site(s): {', '.join(unknown)}; choose from {', '.join(SITE_NAMES)}")
    if not 0 <= args.port_base <= 65535 - max(len(args.sites or SITE_NAMES) - 1, 0):
        parser.error("--port-base out of range")
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the mirror until SIGINT or SIGTERM; returns the exit status."""
    args = parse_args(argv)
    stop = Wakeup()  # not a threading.Event: see crawler.wakeup

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.ring()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        mirrors = MirrorSet(args.sites or None, port_base=args.port_base).start()
    except OSError as exc:
        print(f"crawler.mirror: cannot listen: {exc}", file=sys.stderr)
        return 1
    try:
        for name, url in mirrors.base_urls.items():
            print(f"{name} {url}")
        sys.stdout.flush()
        # timed: a signal the kernel hands to a server thread does not interrupt this wait
        while not stop.wait(1.0):
            pass
    finally:
        mirrors.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
