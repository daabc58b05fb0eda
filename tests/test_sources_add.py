"""`crawler sources add URL` against the generic_news mirror: probe, preview, append."""

from __future__ import annotations

import os
import re
import select
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from crawler.config import load_sources
from crawler.mirror import SITES_DIR, MirrorServer
from tests.conftest import LOOPBACK, ROOT, run_cli

SOURCES = """\
# Our outlets.  Keep this comment!
[sources.urdupoint]
base_url = "https://www.urdupoint.com"   # the English edition
every   = "1h"
"""


@pytest.fixture
def site() -> Iterator[MirrorServer]:
    with MirrorServer(SITES_DIR / "generic_news") as server:
        yield server


@pytest.fixture
def sources(tmp_path: Path) -> Path:
    path = tmp_path / "sources.toml"
    path.write_text(SOURCES, encoding="utf-8")
    return path


def add(url: str, sources: Path, *options: str) -> subprocess.CompletedProcess[str]:
    return run_cli("sources", "add", url, *options, *LOOPBACK, sources=sources)


def test_add_shows_the_articles_and_appends_keeping_comments(site, sources):
    result = add(site.base_url, sources, "--name", "world_desk", "--yes")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "entry points: sitemaps named in robots.txt" in result.stdout
    assert result.stdout.count("found in: sitemap") == 5
    # which five articles the probe previews depends on the order their pages arrive in
    assert len(re.findall(r"date: \d{4}-\d{2}-\d{2}", result.stdout)) == 5
    assert result.stdout.count("author: ") == 5
    assert "added [sources.world_desk]" in result.stdout
    text = sources.read_text(encoding="utf-8")
    assert text.startswith(SOURCES)  # comments, spacing and order untouched
    assert text.endswith(
        f'\n[sources.world_desk]\nspider = "article"\nbase_url = "{site.base_url}"\nevery = "2h"\n'
    )
    added = load_sources(sources).sources["world_desk"]
    assert added.spider == "article" and added.base_url == site.base_url
    # only the discovery pages and a handful of articles were fetched, nothing else
    assert site.paths()[0] == "/robots.txt" and "/" not in site.paths()


def test_site_whose_robots_forbids_us_is_refused_with_the_reason(site, sources):
    site.override("/robots.txt", "User-agent: *\nDisallow: /\n", content_type="text/plain")
    result = add(site.base_url, sources, "--yes")
    assert result.returncode == 1
    assert "cannot be added" in result.stderr and "robots.txt forbids this crawler" in result.stderr
    assert sources.read_text(encoding="utf-8") == SOURCES


def test_site_without_articles_is_refused_with_the_reason(site, sources):
    site.override("/robots.txt", "User-agent: *\n", content_type="text/plain")
    site.override("/", "<html><body><p>Coming soon.</p></body></html>")
    for path in ("/feed.xml", "/sitemap.xml"):
        site.fail(path, 404)
    result = add(site.base_url, sources, "--yes")
    assert result.returncode == 1
    assert "no feed, sitemap or article link found" in result.stderr
    assert sources.read_text(encoding="utf-8") == SOURCES


@pytest.mark.parametrize(
    ("options", "reason"),
    [
        (("--name", "urdupoint"), "a source named 'urdupoint' exists already"),
        (("--name", "no spaces"), "use letters, digits"),
    ],
)
def test_bad_name_is_refused_before_probing(site, sources, options, reason):
    result = add(site.base_url, sources, *options, "--yes")
    assert result.returncode == 2 and reason in result.stderr
    assert site.paths() == []


def test_site_already_configured_is_refused(sources):
    result = add("www.urdupoint.com", sources, "--yes")
    assert result.returncode == 2
    assert "https://www.urdupoint.com is already source 'urdupoint'" in result.stderr


def test_without_yes_off_a_terminal_nothing_is_added(site, sources):
    result = add(site.base_url, sources, "--name", "world_desk")
    assert result.returncode == 1 and "give --yes" in result.stderr
    assert sources.read_text(encoding="utf-8") == SOURCES


def run_on_terminal(args: list[str], sources: Path, answer: str) -> tuple[int, str]:
    """Run the command under a pseudo-terminal, answer its question, return status and screen."""
    controller, terminal = os.openpty()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRAWLER_")}
    env.update(CRAWLER_SOURCES=str(sources), COLUMNS="120", TERM="xterm")
    child = subprocess.Popen(
        [sys.executable, "-m", "crawler.cli", *args],
        cwd=ROOT,
        env=env,
        stdin=terminal,
        stdout=terminal,
        stderr=terminal,
        close_fds=True,
    )
    os.close(terminal)
    screen, answered, deadline = b"", False, time.monotonic() + 120
    while time.monotonic() < deadline:
        ready, _, _ = select.select([controller], [], [], 0.5)
        if ready:
            try:
                chunk = os.read(controller, 4096)
            except OSError:  # the child closed the terminal
                break
            if not chunk:
                break
            screen += chunk
        if not answered and b"[y/N]" in screen:
            os.write(controller, answer.encode() + b"\r")
            answered = True
        if child.poll() is not None and not ready:
            break
    status = child.wait(timeout=30)
    os.close(controller)
    return status, screen.decode("utf-8", "replace")


@pytest.mark.parametrize(("answer", "added"), [("y", True), ("n", False)])
def test_confirmation_on_a_terminal(site, sources, answer, added):
    status, screen = run_on_terminal(
        ["sources", "add", site.base_url, "--name", "world_desk", *LOOPBACK], sources, answer
    )
    assert "Add [sources.world_desk] to" in screen and "found in: sitemap" in screen
    assert status == (0 if added else 1), screen
    assert ("[sources.world_desk]" in sources.read_text(encoding="utf-8")) is added
