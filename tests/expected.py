"""The mirror's expected.jsonl and the comparison of an export against it."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from scrapy.spiderloader import SpiderLoader
from scrapy.utils.project import get_project_settings

EXPECTED = Path(__file__).parent / "fixtures" / "expected.jsonl"


def load_expected(spider: str, base: str) -> list[dict[str, Any]]:
    rows = []
    for line in EXPECTED.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        if row["spider"] == spider:
            row["url"] = row["url"].replace("{{BASE}}", base)
            rows.append(row)
    return rows


def spider_timezone(spider: str) -> ZoneInfo:
    loader = SpiderLoader.from_settings(get_project_settings())
    return ZoneInfo(loader.load(spider).timezone)


def assert_matches_expected(records: list[dict[str, Any]], spider: str, base: str) -> None:
    """The export of one outlet equals its lines of expected.jsonl, field by field."""
    expected = load_expected(spider, base)
    got = {r["url"]: r for r in records if r["outlet"] == spider}
    assert sorted(got) == sorted(e["url"] for e in expected), "archived URLs differ"
    zone = spider_timezone(spider)
    for want in expected:
        record = got[want["url"]]
        where = f"{spider} {want['url']}"
        assert record["title"] == want["title"], where
        assert record["author"] == want["author"], where
        assert record["original_source"] == want["original_source"], where
        assert record["partial"] == want["partial"], where
        assert record["summary"] == want["summary"], where
        assert record["body"].split("\n\n") == want["body"], where
        published = datetime.fromisoformat(record["published_at"])
        assert published.utcoffset() is not None and published.utcoffset().total_seconds() == 0
        if want["published_at"]:
            assert published == datetime.fromisoformat(want["published_at"]), where
        else:
            local = published.astimezone(zone)
            assert local.date().isoformat() == want["published_date"], where
            assert (local.hour, local.minute) == (0, 0), where
        for text in want["must_not_contain"]:
            assert text not in record["body"], f"{where}: boilerplate {text!r} in body"
