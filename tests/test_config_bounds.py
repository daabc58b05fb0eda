"""The sources file's bounds on what a crawl may fetch: allowed_hosts and max_page_size."""

from __future__ import annotations

from pathlib import Path

import pytest

from crawler.config import ConfigError, load_sources, parse_size

SPIDERS = {"kcna_watch"}
BASE = '[sources.kcna_watch]\nbase_url = "https://kcnawatch.org"\n'


def load(tmp_path: Path, extra: str):
    path = tmp_path / "sources.toml"
    path.write_text(BASE + extra, encoding="utf-8")
    return load_sources(path, known_spiders=SPIDERS).sources["kcna_watch"]


def test_defaults_leave_the_size_to_the_setting_and_add_no_host(tmp_path):
    source = load(tmp_path, "")
    assert source.allowed_hosts == () and source.max_page_size is None


def test_allowed_hosts_and_max_page_size_are_read(tmp_path):
    source = load(
        tmp_path, 'allowed_hosts = ["CDN.example.com", "127.0.0.2:8443"]\nmax_page_size = "2MiB"\n'
    )
    assert source.allowed_hosts == ("cdn.example.com", "127.0.0.2:8443")
    assert source.max_page_size == 2 * 1024 * 1024


@pytest.mark.parametrize(
    ("extra", "reason"),
    [
        ('allowed_hosts = "cdn.example.com"\n', "allowed_hosts must be a list"),
        ('allowed_hosts = ["https://cdn.example.com/"]\n', "is not a host name"),
        ('allowed_hosts = ["cdn.example.com/path"]\n', "is not a host name"),
        ('max_page_size = "huge"\n', "bad max_page_size"),
        ("max_page_size = 0\n", "bad max_page_size"),
        ("max_page_size = true\n", "max_page_size must be a size"),
    ],
)
def test_bad_bounds_are_rejected_naming_file_source_and_reason(tmp_path, extra, reason):
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, extra)
    message = str(caught.value)
    assert "source 'kcna_watch'" in message and reason in message


@pytest.mark.parametrize(
    ("text", "size"),
    [("32MB", 32_000_000), ("32MiB", 32 * 2**20), ("512 kib", 512 * 1024), ("1048576", 2**20)],
)
def test_sizes(text, size):
    assert parse_size(text) == size
    assert parse_size(size) == size
