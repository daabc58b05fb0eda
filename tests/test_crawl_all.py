"""All five outlets at once: `crawler crawl --all` against the five mirrors."""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy import select

from crawler.db.models import CrawlRun, Source
from crawler.db.session import Archive
from crawler.mirror import MirrorSet
from tests.conftest import crawl, run_cli, write_sources
from tests.expected import EXPECTED, assert_matches_expected

OUTLETS = ("kcna_watch", "pyongyang_times", "urdupoint", "islam_times", "al_mayadeen")


def test_crawl_all_reproduces_expected_and_second_crawl_fetches_no_article(
    db_url: str, mirrors: MirrorSet, tmp_path: Path
) -> None:
    sources = write_sources(tmp_path / "sources.toml", mirrors.base_urls)
    result = crawl("--all", db_url=db_url, sources_file=sources)
    assert result.returncode == 0, result.stdout + result.stderr
    exported = run_cli("export", "--format", "jsonl", db_url=db_url)
    assert exported.returncode == 0, exported.stderr
    records = [json.loads(line) for line in exported.stdout.splitlines()]
    expected_lines = EXPECTED.read_text(encoding="utf-8").splitlines()
    assert len(records) == len(expected_lines)
    for outlet in OUTLETS:
        assert_matches_expected(records, outlet, mirrors.base_urls[outlet])
    # the same story reaches the archive twice: verbatim through KCNA Watch, and from its publisher
    kcna = {r["title"] for r in records if r["outlet"] == "kcna_watch"}
    pt = {r["title"] for r in records if r["outlet"] == "pyongyang_times"}
    assert len(kcna & pt) >= 2

    mirrors.clear_requests()
    again = crawl("--all", db_url=db_url, sources_file=sources)
    assert again.returncode == 0, again.stdout + again.stderr
    for outlet in OUTLETS:
        server = mirrors[outlet]
        fetched_articles = {r["url"] for r in records if r["outlet"] == outlet} & {
            server.url(p) for p in server.paths()
        }
        assert not fetched_articles, f"{outlet} fetched known articles again"
    archive = Archive(db_url)
    with archive.sessions() as session:
        runs = session.execute(
            select(Source.name, CrawlRun).join(Source).order_by(CrawlRun.id)
        ).all()
    archive.dispose()
    assert len(runs) == 10 and all(run.status == "finished" for _, run in runs)
    second = {name: run for name, run in runs[5:]}
    assert set(second) == set(OUTLETS)
    assert all(run.articles_new == 0 and run.articles_skipped > 0 for run in second.values())
    kcna_row = next(line for line in again.stdout.splitlines() if "kcna_watch" in line)
    cells = [cell.strip() for cell in kcna_row.split("│")[1:-1]]
    # source, run, status, pages, new, updated, unchanged, skipped, invalid, errors
    assert cells[2] == "finished" and cells[4:] == ["0", "0", "0", "4", "0", "0"]
