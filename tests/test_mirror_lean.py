"""The benchmarks' LeanServer answers as MirrorServer does, from memory."""

from __future__ import annotations

import http.client
import socket
from pathlib import Path

import pytest

from crawler.mirror import SITES_DIR, MirrorServer
from crawler.mirror.generated import write_generated_site
from crawler.mirror.lean import LeanServer


def _get(
    connection: http.client.HTTPConnection, path: str, method: str = "GET", **headers: str
) -> tuple[int, dict[str, str], bytes]:
    connection.request(method, path, headers=headers)
    response = connection.getresponse()
    return response.status, dict(response.getheaders()), response.read()


def _connect(base_url: str) -> http.client.HTTPConnection:
    return http.client.HTTPConnection(base_url.removeprefix("http://"), timeout=10)


@pytest.mark.parametrize("site", ["kcna_watch", "islam_times", "generated"])
def test_every_route_as_mirror_server_serves_it(site: str, tmp_path: Path) -> None:
    folder = write_generated_site(tmp_path, 12) if site == "generated" else SITES_DIR / site
    with MirrorServer(folder) as mirror, LeanServer(folder) as lean:
        slow, fast = _connect(mirror.base_url), _connect(lean.base_url)
        for path in [*mirror.routes, "/not/there"]:
            status, headers, body = _get(slow, path)
            lean_status, lean_headers, lean_body = _get(fast, path)
            assert lean_status == status, path
            # the links point at each server's own address
            assert lean_body.replace(lean.base_url.encode(), b"@") == body.replace(
                mirror.base_url.encode(), b"@"
            ), path
            for name in ("Content-Type", "Content-Length", "Last-Modified"):
                assert lean_headers.get(name) == headers.get(name), (path, name)
            if status == 200 and mirror.base_url.encode() not in body:
                assert lean_headers["ETag"] == headers["ETag"], path
        # one keep-alive connection each carried every request
        assert [r.path for r in lean.requests] == mirror.paths()
        assert {r.status for r in lean.requests} == {r.status for r in mirror.requests}


def test_conditional_requests_get_304(tmp_path: Path) -> None:
    folder = write_generated_site(tmp_path, 3)
    with LeanServer(folder) as lean:
        connection = _connect(lean.base_url)
        page = next(r for r in MirrorServer(folder).routes if r.startswith("/newstream/1"))
        status, headers, _ = _get(connection, page)
        assert status == 200
        status, again, body = _get(connection, page, **{"If-None-Match": headers["ETag"]})
        assert (status, body) == (304, b"")
        assert again["ETag"] == headers["ETag"] and "Content-Length" not in again
        status, _, body = _get(connection, page, **{"If-None-Match": '"other"'})
        assert status == 200 and body
        since = headers["Last-Modified"]
        assert _get(connection, page, **{"If-Modified-Since": since})[0] == 304
        assert (
            _get(connection, page, **{"If-Modified-Since": "Mon, 01 Jan 2001 00:00:00 GMT"})[0]
            == 200
        )
        assert [r.status for r in lean.requests] == [200, 304, 200, 304, 200]
        lean.clear_requests()
        assert lean.requests == []


def test_head_pipelining_and_bad_requests(tmp_path: Path) -> None:
    folder = write_generated_site(tmp_path, 2)
    with LeanServer(folder) as lean:
        status, headers, body = _get(_connect(lean.base_url), "/robots.txt", method="HEAD")
        assert status == 200 and body == b"" and int(headers["Content-Length"]) > 0
        host, port = lean.base_url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=10) as raw:
            # two requests in one packet, the second closing the connection: both answered
            raw.sendall(
                b"GET /robots.txt HTTP/1.1\r\nHost: x\r\n\r\n"
                b"GET /nothing HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
            )
            answer = b""
            while chunk := raw.recv(65536):
                answer += chunk
        assert answer.startswith(b"HTTP/1.1 200 OK\r\n")
        assert b"HTTP/1.1 404 Not Found\r\n" in answer
        assert answer.count(b"HTTP/1.1 ") == 2
        with socket.create_connection((host, int(port)), timeout=10) as raw:
            raw.sendall(b"NONSENSE\r\n\r\n")
            assert raw.recv(65536).startswith(b"HTTP/1.1 400 Bad Request\r\n")
    with pytest.raises(RuntimeError, match="has not been started"):
        _ = LeanServer(folder).base_url
