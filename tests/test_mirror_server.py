"""The project's local mirror server: templating, charsets, validators, test hooks."""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from crawler.mirror import SITE_NAMES, SITES_DIR, MirrorServer, MirrorSet

LISTING = "/newstream/"
TRAP = "/en/news/1148702/lebanons-caretaker-pm-meets-french-envoy-on-border-escalation"

Response = tuple[int, http.client.HTTPMessage, bytes]


def fetch(
    base_url: str, path: str, headers: dict[str, str] | None = None, method: str = "GET"
) -> Response:
    """One request over a fresh connection, straight to 127.0.0.1 (no proxy)."""
    port = urlsplit(base_url).port
    assert port is not None
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(method, path, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, resp.headers, resp.read()
    finally:
        conn.close()


@pytest.fixture
def islam_times() -> Iterator[MirrorServer]:
    with MirrorServer(SITES_DIR / "islam_times") as server:
        yield server


def test_bundled_sites() -> None:
    assert SITE_NAMES == (
        "al_mayadeen",
        "islam_times",
        "kcna_watch",
        "pyongyang_times",
        "urdupoint",
    )


def test_base_placeholder_replaced(kcna: MirrorServer) -> None:
    status, headers, body = fetch(kcna.base_url, LISTING)
    assert status == 200
    assert headers["Content-Type"] == "text/html; charset=utf-8"
    assert int(headers["Content-Length"]) == len(body)
    text = body.decode("utf-8")
    assert "{{BASE}}" not in text
    assert kcna.base_url + "/" in text
    assert kcna.base_url.startswith("http://127.0.0.1:")
    assert kcna.url(LISTING) == kcna.base_url + LISTING


def test_route_encoding_overrides_header_charset(islam_times: MirrorServer) -> None:
    status, headers, body = fetch(islam_times.base_url, TRAP)
    assert status == 200
    assert "iso-8859-1" in headers["Content-Type"]
    # The header lies on purpose: the bytes are UTF-8.
    text = body.decode("utf-8")
    assert "’" in text
    assert "’".encode() in body


def test_binary_sent_as_is(kcna: MirrorServer) -> None:
    routes = json.loads((kcna.site_dir / "routes.json").read_text(encoding="utf-8"))
    path, route = next((k, v) for k, v in routes.items() if v["content_type"] == "image/png")
    status, headers, body = fetch(kcna.base_url, path)
    assert status == 200
    assert body == (kcna.site_dir / route["file"]).read_bytes()
    assert headers["Cache-Control"] == route["headers"]["Cache-Control"]


def test_route_headers_and_status() -> None:
    with MirrorServer(SITES_DIR / "al_mayadeen") as server:
        status, headers, _ = fetch(server.base_url, "/rss")
    assert status == 403
    assert headers["X-Cache"] == "Error from cloudfront"
    assert "ETag" not in headers


def test_etag_gives_304(kcna: MirrorServer) -> None:
    _, headers, _ = fetch(kcna.base_url, LISTING)
    etag = headers["ETag"]
    assert etag.startswith('"') and etag.endswith('"')
    status, headers, body = fetch(kcna.base_url, LISTING, {"If-None-Match": etag})
    assert status == 304
    assert body == b""
    assert headers["ETag"] == etag
    status, _, _ = fetch(kcna.base_url, LISTING, {"If-None-Match": '"something-else"'})
    assert status == 200


def test_if_modified_since_gives_304(kcna: MirrorServer) -> None:
    _, headers, _ = fetch(kcna.base_url, LISTING)
    last_modified = headers["Last-Modified"]
    status, _, body = fetch(kcna.base_url, LISTING, {"If-Modified-Since": last_modified})
    assert status == 304
    assert body == b""
    long_ago = "Mon, 01 Jan 2001 00:00:00 GMT"
    status, _, _ = fetch(kcna.base_url, LISTING, {"If-Modified-Since": long_ago})
    assert status == 200


def test_head_has_headers_but_no_body(kcna: MirrorServer) -> None:
    _, _, full = fetch(kcna.base_url, LISTING)
    status, headers, body = fetch(kcna.base_url, LISTING, method="HEAD")
    assert status == 200
    assert body == b""
    assert int(headers["Content-Length"]) == len(full)


def test_unknown_path_is_404(kcna: MirrorServer) -> None:
    status, headers, body = fetch(kcna.base_url, "/no/such/page")
    assert status == 404
    assert headers["Content-Type"].startswith("text/html")
    assert b"Not Found" in body
    # Query strings are part of the route key.
    assert fetch(kcna.base_url, LISTING + "?page=99")[0] == 404


def test_override_changes_body_and_etag(kcna: MirrorServer) -> None:
    _, before, _ = fetch(kcna.base_url, LISTING)
    kcna.override(LISTING, "<html><body><a href='{{BASE}}/x'>x</a></body></html>")
    status, after, body = fetch(kcna.base_url, LISTING, {"If-None-Match": before["ETag"]})
    assert status == 200
    assert body.decode() == f"<html><body><a href='{kcna.base_url}/x'>x</a></body></html>"
    assert after["ETag"] != before["ETag"]
    status, _, _ = fetch(kcna.base_url, LISTING, {"If-Modified-Since": before["Last-Modified"]})
    assert status == 200


def test_override_adds_a_route(kcna: MirrorServer) -> None:
    kcna.override("/feed.json", b'{"a": 1}', content_type="application/json")
    status, headers, body = fetch(kcna.base_url, "/feed.json")
    assert (status, headers["Content-Type"], body) == (200, "application/json", b'{"a": 1}')


def test_edit_changes_body_and_etag(kcna: MirrorServer) -> None:
    _, before, original = fetch(kcna.base_url, LISTING)
    kcna.edit(LISTING, "<title>", "<title>Edited ")
    _, after, body = fetch(kcna.base_url, LISTING)
    assert b"<title>Edited Newstream" in body
    assert body.replace(b"Edited ", b"", 1) == original
    assert after["ETag"] != before["ETag"]
    # Edits build on each other.
    kcna.edit(LISTING, "Edited", "Twice edited")
    assert b"<title>Twice edited Newstream" in fetch(kcna.base_url, LISTING)[2]
    with pytest.raises(ValueError):
        kcna.edit(LISTING, "no such text anywhere", "x")
    kcna.reset()
    assert fetch(kcna.base_url, LISTING)[2] == original


def test_edit_keeps_charset_trap(islam_times: MirrorServer) -> None:
    islam_times.edit(TRAP, "</title>", " – edited</title>")
    _, headers, body = fetch(islam_times.base_url, TRAP)
    assert "iso-8859-1" in headers["Content-Type"]
    assert " – edited</title>" in body.decode("utf-8")


def test_fail(kcna: MirrorServer) -> None:
    kcna.fail(LISTING)
    status, _, body = fetch(kcna.base_url, LISTING)
    assert status == 500
    assert body.startswith(b"500")
    kcna.fail(LISTING, 503)
    assert fetch(kcna.base_url, LISTING)[0] == 503
    kcna.reset()
    assert fetch(kcna.base_url, LISTING)[0] == 200


def test_fail_a_number_of_times_with_headers(kcna: MirrorServer) -> None:
    kcna.fail(LISTING, 503, times=2, headers={"Retry-After": "2"})
    for _ in range(2):
        status, headers, _ = fetch(kcna.base_url, LISTING)
        assert status == 503 and headers["Retry-After"] == "2"
    assert fetch(kcna.base_url, LISTING)[0] == 200


def test_truncate_gives_short_read(kcna: MirrorServer) -> None:
    kcna.truncate(LISTING)
    port = urlsplit(kcna.base_url).port
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", LISTING)
        resp = conn.getresponse()
        assert resp.status == 200
        expected = int(resp.headers["Content-Length"])
        try:
            body = resp.read()
        except http.client.IncompleteRead as exc:
            body = exc.partial
        assert 0 < len(body) < expected
    finally:
        conn.close()


def test_delay(kcna: MirrorServer) -> None:
    kcna.delay(LISTING, 0.3)
    started = time.monotonic()
    assert fetch(kcna.base_url, LISTING)[0] == 200
    assert time.monotonic() - started >= 0.3


def test_requests_are_recorded(kcna: MirrorServer) -> None:
    fetch(kcna.base_url, LISTING, {"User-Agent": "archive-test/1.0"})
    fetch(kcna.base_url, "/missing?x=1")
    records = kcna.requests
    assert kcna.paths() == [LISTING, "/missing?x=1"]
    assert records[0].method == "GET"
    assert records[0].status == 200
    assert records[0].headers["User-Agent"] == "archive-test/1.0"
    assert records[0].header("user-agent") == "archive-test/1.0"
    assert records[1].status == 404
    assert records[0].time <= records[1].time
    kcna.clear_requests()
    assert kcna.requests == []


def test_mirror_set_serves_all_sites() -> None:
    with MirrorSet() as mirrors:
        assert set(mirrors.base_urls) == set(SITE_NAMES)
        assert len(set(mirrors.base_urls.values())) == len(SITE_NAMES)
        for name, base_url in mirrors.base_urls.items():
            routes = json.loads((SITES_DIR / name / "routes.json").read_text(encoding="utf-8"))
            path = next(k for k, v in routes.items() if v["status"] == 200)
            status, _, body = fetch(base_url, path)
            assert status == 200, name
            assert body
            assert mirrors.servers[name].paths() == [path]


def test_stopped_server_refuses_connections() -> None:
    server = MirrorServer(SITES_DIR / "kcna_watch").start()
    base_url = server.base_url
    server.stop()
    server.stop()
    with pytest.raises(OSError):
        fetch(base_url, LISTING)


def test_main_serves_until_sigterm() -> None:
    root = Path(__file__).resolve().parent.parent
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")])),
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "crawler.mirror", "kcna_watch", "urdupoint"],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None
        lines = [proc.stdout.readline().split() for _ in range(2)]
        assert [name for name, _ in lines] == ["kcna_watch", "urdupoint"]
        urls = dict(lines)
        assert fetch(urls["kcna_watch"], LISTING)[0] == 200
        assert fetch(urls["urdupoint"], "/en/")[0] == 200
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
