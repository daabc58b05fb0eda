"""Memory of a crawl that meets a gzip bomb, against the same crawl without it.

Serves the kcna_watch mirror with one article replaced by a gzip response of about 1 MB that
inflates to `--inflated` MiB (default 1024), crawls it with `crawler crawl` in a child process
under the default maximum page size, then crawls the plain mirror the same way, and prints each
crawl's peak memory (RSS), what the run recorded for the bomb and how long each crawl took.

    python bench/gzip_bomb.py [--inflated 1024]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BOMB = (
    "/newstream/1733392519-286102/"
    "rodong-sinmun-calls-for-thorough-preparations-for-next-years-farming/"
)
LOOPBACK = ["-s", "AUTOTHROTTLE_ENABLED=False", "-s", "DOWNLOAD_DELAY=0"]


def gzip_bomb(mebibytes: int) -> bytes:
    """An HTML page of `mebibytes` MiB of spaces, gzipped chunk by chunk."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    parts = [packer.compress(b"<html><head><title>x</title></head><body><p>")]
    chunk = b" " * (1024 * 1024)
    parts += [packer.compress(chunk) for _ in range(mebibytes)]
    parts.append(packer.compress(b"</p></body></html>") + packer.flush())
    return b"".join(parts)


def crawl(base_url: str, workdir: Path, name: str) -> tuple[float, float, dict[str, object]]:
    """(peak RSS in MB, seconds, the run's record) of one `crawler crawl` child process."""
    sources = workdir / f"{name}.toml"
    sources.write_text(
        f'[sources.kcna_watch]\nbase_url = "{base_url}"\nevery = "1h"\n', encoding="utf-8"
    )
    database = f"sqlite:///{workdir / (name + '.db')}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRAWLER_")}
    env.update({"CRAWLER_DATABASE_URL": database, "CRAWLER_SOURCES": str(sources)})
    started = time.monotonic()
    child = subprocess.Popen(
        [sys.executable, "-m", "crawler.cli", "crawl", "kcna_watch", "--no-progress", *LOOPBACK],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    _, _, usage = os.wait4(child.pid, 0)
    seconds = time.monotonic() - started
    from sqlalchemy import select

    from crawler.db.models import CrawlRun
    from crawler.db.session import Archive

    archive = Archive(database)
    with archive.sessions() as session:
        run = session.scalars(select(CrawlRun).order_by(CrawlRun.id.desc())).first()
        assert run is not None, f"{name}: the crawl recorded no run"
        record = {"status": run.status, "error_log": run.error_log}
    archive.dispose()
    return usage.ru_maxrss / 1024, seconds, record


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inflated", type=int, default=1024, help="MiB the bomb inflates to")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    from crawler.config import DEFAULT_MAX_PAGE_SIZE
    from crawler.mirror import SITES_DIR, MirrorServer

    bomb = gzip_bomb(args.inflated)
    print(f"bomb: {len(bomb) / 1e6:.2f} MB served, {args.inflated} MiB once inflated")
    print(f"maximum page size: {DEFAULT_MAX_PAGE_SIZE // 2**20} MiB (the default)")
    with tempfile.TemporaryDirectory() as tmp, MirrorServer(SITES_DIR / "kcna_watch") as site:
        workdir = Path(tmp)
        site.override(
            BOMB,
            bomb,
            content_type="text/html; charset=utf-8",
            headers={"Content-Encoding": "gzip"},
        )
        peak, seconds, run = crawl(site.base_url, workdir, "bomb")
        log = [line for line in str(run.get("error_log") or "").splitlines() if BOMB in line]
        print(f"with the bomb:    peak RSS {peak:6.0f} MB, {seconds:5.1f} s, run {run['status']}")
        print(f"  error log: {log[0] if log else '(nothing about the bomb)'}")
        site.reset()
        peak, seconds, run = crawl(site.base_url, workdir, "plain")
        print(f"without the bomb: peak RSS {peak:6.0f} MB, {seconds:5.1f} s, run {run['status']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
