"""Configuration: the archive's database URL and the sources file, from options or environment."""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

# The archive when none is named: one well-known file per user, wherever a command runs from
# (the platform's user data folder: ~/.local/share/news-archive-crawler/ on Linux, or under
# $XDG_DATA_HOME when set).
APP_NAME = "news-archive-crawler"
BUNDLED_SOURCES = Path(__file__).with_name("sources.toml")
BUNDLED_TOPICS = Path(__file__).with_name("topics.toml")

# A page larger than this (once decompressed) is not archived, unless its source says otherwise.
DEFAULT_MAX_PAGE_SIZE = 32 * 1024 * 1024

_DURATION_PART = re.compile(r"(\d+)\s*([smhdw])")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


class ConfigError(ValueError):
    """A configuration file or value that cannot be used; the message names it."""


def data_dir() -> Path:
    """The user's data folder for this program (platformdirs' user data dir)."""
    from platformdirs import user_data_path

    return user_data_path(APP_NAME, appauthor=False)


def log_dir() -> Path:
    """Where crawls write Scrapy's log: CRAWLER_LOG_DIR, else `logs` in the user data folder."""
    chosen = os.environ.get("CRAWLER_LOG_DIR")
    return Path(chosen) if chosen else data_dir() / "logs"


def run_log_file(run_id: int) -> Path:
    """The log file of a scheduled run."""
    return log_dir() / f"run-{run_id}.log"


def default_database_url() -> str:
    """The SQLite archive in the user's data folder."""
    return f"sqlite:///{data_dir() / 'archive.db'}"


def database_url(explicit: str | None = None) -> str:
    """The archive URL: the option, else CRAWLER_DATABASE_URL, else the SQLite default."""
    return explicit or os.environ.get("CRAWLER_DATABASE_URL") or default_database_url()


def sources_path(explicit: str | Path | None = None) -> Path:
    """The sources file: the option, else CRAWLER_SOURCES, else the bundled file."""
    chosen = explicit or os.environ.get("CRAWLER_SOURCES")
    return Path(chosen) if chosen else BUNDLED_SOURCES


def topics_path(explicit: str | Path | None = None) -> Path:
    """The topics file: the option, else CRAWLER_TOPICS, else the bundled file."""
    chosen = explicit or os.environ.get("CRAWLER_TOPICS")
    return Path(chosen) if chosen else BUNDLED_TOPICS


def parse_duration(text: str) -> timedelta:
    """'45s', '30m', '2h', '1d', '1h30m' -> timedelta; ValueError on anything else."""
    compact = text.strip().lower()
    if not compact:
        raise ValueError("empty duration")
    pos, seconds = 0, 0
    for match in _DURATION_PART.finditer(compact):
        if match.start() != pos:
            break
        seconds += int(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        pos = match.end()
    if pos != len(compact):
        raise ValueError(f"{text!r} is not a duration like 45s, 30m, 2h or 1d")
    if seconds <= 0:
        raise ValueError(f"{text!r} must be longer than zero")
    return timedelta(seconds=seconds)


@dataclass(frozen=True)
class SourceConfig:
    """One [sources.NAME] table of the sources file, validated."""

    name: str
    base_url: str
    every: timedelta | None = timedelta(hours=2)
    cron: str | None = None
    enabled: bool = True
    max_pages: int = 5
    render_js: bool = False
    timeout: timedelta = timedelta(hours=1)
    stale_after: timedelta = timedelta(days=3)
    # Hosts besides base_url's that the crawl may fetch from ("cdn.example.com", "host:8443").
    allowed_hosts: tuple[str, ...] = ()
    max_page_size: int | None = None  # bytes; None: the CRAWLER_MAX_PAGE_SIZE setting
    # the spider that crawls it (the table's name unless `spider = ...`; "article" is generic)
    spider: str = ""
    # entry points on the site; None leaves the spider's own (the generic one finds them itself)
    feeds: tuple[str, ...] | None = None
    sitemaps: tuple[str, ...] | None = None
    listings: tuple[str, ...] | None = None
    article_pattern: str | None = None
    # field -> CSS or XPath (an XPath starts with "/" or "(")
    selectors: dict[str, str] = field(default_factory=dict)
    timezone: str | None = None
    language: str | None = None

    def __post_init__(self) -> None:
        if not self.spider:
            object.__setattr__(self, "spider", self.name)

    @property
    def has_discovery(self) -> bool:
        """Whether the sources file names any entry point of this source."""
        return any(keys is not None for keys in (self.feeds, self.sitemaps, self.listings))

    def url(self, path: str) -> str:
        """An absolute URL on this source: base_url + path (an absolute URL is kept)."""
        if re.match(r"^https?://", path):
            return path
        return self.base_url + (path if path.startswith("/") else "/" + path)


@dataclass(frozen=True)
class SourcesFile:
    path: Path
    sources: dict[str, SourceConfig]

    def enabled(self) -> list[SourceConfig]:
        return [s for s in self.sources.values() if s.enabled]

    def select(self, names: Iterable[str]) -> list[SourceConfig]:
        """The named sources, in order; ConfigError naming any that is not configured."""
        chosen = []
        for name in names:
            if name not in self.sources:
                known = ", ".join(sorted(self.sources)) or "none"
                raise ConfigError(f"{self.path}: no source named {name!r} (configured: {known})")
            chosen.append(self.sources[name])
        return chosen


_KNOWN_KEYS = {
    "base_url",
    "every",
    "cron",
    "enabled",
    "max_pages",
    "render_js",
    "timeout",
    "stale_after",
    "allowed_hosts",
    "max_page_size",
    "spider",
    "feeds",
    "sitemaps",
    "listings",
    "article_pattern",
    "selectors",
    "timezone",
    "language",
}
GENERIC_SPIDER = "article"
SELECTOR_FIELDS = ("title", "body", "published", "author")


def _validate_cron(expression: str) -> None:
    # the scheduler's own parser: crontab's weekday numbers, not APScheduler 3's
    from crawler.scheduler.cron import cron_trigger

    cron_trigger(expression)


def _source(name: str, table: Any, known_spiders: set[str]) -> SourceConfig:
    if not isinstance(table, dict):
        raise ValueError("must be a table")
    spider = table.get("spider", name)
    if not isinstance(spider, str) or not spider.strip():
        raise ValueError(f"spider must be a spider's name, not {spider!r}")
    # A disabled source may name a spider that is not written yet; an enabled one may not.
    if spider not in known_spiders and table.get("enabled", True) is not False:
        raise ValueError(
            f"no spider named {spider!r} (spiders: {', '.join(sorted(known_spiders))})"
        )
    unknown = set(table) - _KNOWN_KEYS
    if unknown:
        raise ValueError(f"unknown setting(s) {', '.join(sorted(unknown))}")
    for generic_only in ("article_pattern", "selectors"):
        if generic_only in table and spider != GENERIC_SPIDER:
            raise ValueError(
                f'{generic_only} is for the generic spider (spider = "{GENERIC_SPIDER}"); '
                f"the {spider} spider has its own"
            )
    base_url = table.get("base_url")
    if not isinstance(base_url, str) or not base_url.strip():
        raise ValueError("base_url is missing")
    parts = urlsplit(base_url.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"base_url {base_url!r} is not an http(s) URL")
    if parts.query or parts.fragment:
        raise ValueError(f"base_url {base_url!r} must not carry a query or fragment")
    cron = table.get("cron")
    every_text = table.get("every")
    if cron is not None and every_text is not None:
        raise ValueError("give either every or cron, not both")
    every: timedelta | None = None
    if cron is not None:
        if not isinstance(cron, str):
            raise ValueError("cron must be a string such as '0 */2 * * *'")
        try:
            _validate_cron(cron)
        except ValueError as exc:
            raise ValueError(f"bad cron expression {cron!r}: {exc}") from None
    else:
        every = _duration_setting(table, "every", "2h")
    enabled = table.get("enabled", True)
    render_js = table.get("render_js", False)
    if not isinstance(enabled, bool) or not isinstance(render_js, bool):
        raise ValueError("enabled and render_js must be true or false")
    max_pages = table.get("max_pages", 5)
    if not isinstance(max_pages, int) or isinstance(max_pages, bool) or max_pages < 1:
        raise ValueError(f"max_pages must be a whole number of at least 1, not {max_pages!r}")
    return SourceConfig(
        name=name,
        base_url=base_url.strip().rstrip("/"),
        every=every,
        cron=cron,
        enabled=enabled,
        max_pages=max_pages,
        render_js=render_js,
        timeout=_duration_setting(table, "timeout", "1h"),
        stale_after=_duration_setting(table, "stale_after", "3d"),
        allowed_hosts=_allowed_hosts(table),
        max_page_size=_size_setting(table, "max_page_size"),
        spider=spider,
        feeds=_entry_points(table, "feeds"),
        sitemaps=_entry_points(table, "sitemaps"),
        listings=_entry_points(table, "listings"),
        article_pattern=_article_pattern(table),
        selectors=_selectors(table),
        timezone=_timezone(table),
        language=_optional_string(table, "language"),
    )


_HOST = re.compile(
    r"^(?:\[[0-9a-fA-F:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?)(?::\d{1,5})?$"
)
_SIZE = re.compile(r"^(\d+)\s*([kmg]i?b|b)?$", re.I)
_SIZE_UNITS = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9}
_SIZE_UNITS.update({"kib": 2**10, "mib": 2**20, "gib": 2**30})


def _allowed_hosts(table: dict[str, Any]) -> tuple[str, ...]:
    hosts = table.get("allowed_hosts", [])
    if not isinstance(hosts, list) or not all(isinstance(h, str) for h in hosts):
        raise ValueError('allowed_hosts must be a list of host names such as ["cdn.example.com"]')
    for host in hosts:
        if not _HOST.match(host.strip()):
            raise ValueError(f"allowed_hosts: {host!r} is not a host name (with an optional :port)")
    return tuple(h.strip().lower() for h in hosts)


def parse_size(text: str | int) -> int:
    """'32MB', '512KiB', '1048576' or an int -> bytes; ValueError on anything else."""
    if isinstance(text, int) and not isinstance(text, bool):
        number, unit = text, ""
    else:
        match = _SIZE.match(str(text).strip())
        if not match:
            raise ValueError(f"{text!r} is not a size like 32MB, 512KiB or 1048576")
        number, unit = int(match.group(1)), (match.group(2) or "").lower()
    size = number * _SIZE_UNITS[unit]
    if size <= 0:
        raise ValueError(f"{text!r} must be larger than zero")
    return size


def _size_setting(table: dict[str, Any], key: str) -> int | None:
    value = table.get(key)
    if value is None:
        return None
    if not isinstance(value, (str, int)) or isinstance(value, bool):
        raise ValueError(f"{key} must be a size such as '32MB', not {value!r}")
    try:
        return parse_size(value)
    except ValueError as exc:
        raise ValueError(f"bad {key}: {exc}") from None


def _optional_string(table: dict[str, Any], key: str) -> str | None:
    value = table.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{key} must be a non-empty string, not {value!r}")
    return value.strip()


def _entry_points(table: dict[str, Any], key: str) -> tuple[str, ...] | None:
    """A list of paths ("/feed") or absolute http(s) URLs."""
    value = table.get(key)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise ValueError(f'{key} must be a list of paths or URLs, like ["/feed"], not {value!r}')
    for entry in value:
        parts = urlsplit(entry.strip())
        if parts.scheme and (parts.scheme not in ("http", "https") or not parts.netloc):
            raise ValueError(f"{key}: {entry!r} is neither a path nor an http(s) URL")
    return tuple(v.strip() for v in value)


def _article_pattern(table: dict[str, Any]) -> str | None:
    pattern = _optional_string(table, "article_pattern")
    if pattern is not None:
        try:
            re.compile(pattern)
        except re.error as exc:
            raise ValueError(
                f"article_pattern {pattern!r} is not a regular expression: {exc}"
            ) from None
    return pattern


def _selectors(table: dict[str, Any]) -> dict[str, str]:
    value = table.get("selectors", {})
    if not isinstance(value, dict):
        raise ValueError('selectors must be a table like {title = "h1"}')
    unknown = set(value) - set(SELECTOR_FIELDS)
    if unknown:
        raise ValueError(
            f"selectors: unknown field(s) {', '.join(sorted(unknown))} "
            f"(fields: {', '.join(SELECTOR_FIELDS)})"
        )
    if not value:
        return {}
    from parsel import Selector
    from parsel.csstranslator import HTMLTranslator

    probe = Selector(text="<html></html>")
    for key, selector in value.items():
        if not isinstance(selector, str) or not selector.strip():
            raise ValueError(f"selectors.{key} must be a CSS or XPath string, not {selector!r}")
        try:
            if is_xpath(selector):
                probe.xpath(selector)
            else:
                HTMLTranslator().css_to_xpath(selector)
        except Exception as exc:  # parsel and cssselect raise several types
            raise ValueError(
                f"selectors.{key} {selector!r} is not valid CSS or XPath: {exc}"
            ) from None
    return {k: v.strip() for k, v in value.items()}


def is_xpath(selector: str) -> bool:
    """Whether a selector of the sources file is XPath (it starts with / or ( ) rather than CSS."""
    return selector.lstrip().startswith(("/", "("))


def _timezone(table: dict[str, Any]) -> str | None:
    zone = _optional_string(table, "timezone")
    if zone is not None:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"timezone {zone!r} is not a time zone like 'Asia/Karachi'") from None
    return zone


def _duration_setting(table: dict[str, Any], key: str, default: str) -> timedelta:
    value = table.get(key, default)
    if not isinstance(value, str):
        raise ValueError(f"{key} must be a string such as '30m', not {value!r}")
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise ValueError(f"bad {key}: {exc}") from None


def project_settings() -> Any:
    """The project's Scrapy settings, wherever the command runs from (no scrapy.cfg needed)."""
    from scrapy.utils.project import get_project_settings

    os.environ.setdefault("SCRAPY_SETTINGS_MODULE", "crawler.settings")
    return get_project_settings()


SPIDERS_DIR = Path(__file__).resolve().parent / "spiders"
# A spider class's `name = "..."` line (tests/test_startup.py checks these are the names
# Scrapy's spider loader finds).
_SPIDER_NAME = re.compile(r"^class \w+\(.*?^    name = [\"'](\w+)[\"']$", re.M | re.S)


def known_spider_names() -> set[str]:
    """Names of the spiders this project ships, read from their modules' text: importing them
    (and Scrapy) to ask would cost a command that only checks a sources file half a second."""
    names = set()
    for path in SPIDERS_DIR.glob("*.py"):
        for chunk in re.split(r"^(?=class )", path.read_text("utf-8"), flags=re.M):
            match = _SPIDER_NAME.match(chunk)
            if match:
                names.add(match.group(1))
    return names


def load_sources(
    path: str | Path | None = None, known_spiders: set[str] | None = None
) -> SourcesFile:
    """Read and validate a sources file; ConfigError names the file, the source and the reason."""
    file = sources_path(path)
    try:
        raw = tomllib.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{file}: sources file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{file}: cannot read: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{file}: not valid TOML: {exc}") from None
    tables = raw.get("sources")
    if not isinstance(tables, dict) or not tables:
        raise ConfigError(f"{file}: no [sources.NAME] tables")
    spiders = known_spiders if known_spiders is not None else known_spider_names()
    sources = {}
    for name, table in tables.items():
        try:
            sources[name] = _source(name, table, spiders)
        except ValueError as exc:
            raise ConfigError(f"{file}: source {name!r}: {exc}") from None
    return SourcesFile(path=file, sources=sources)
