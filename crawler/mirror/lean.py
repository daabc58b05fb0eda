"""A mirror site served from memory, for benchmarks.

`MirrorServer` is built for tests: it reads each file at every request (a test may change it),
honours faults and overrides, and answers through `http.server`, a thread per connection. That
costs about 1.1 ms of CPU a page, on the machine whose cores the crawl being measured needs:
a real site's server does not share them. `LeanServer` renders every route once, when it
starts (the same bytes `MirrorServer` serves, links pointing at itself), and answers from an
asyncio protocol on a thread of its own: GET and HEAD, keep-alive and pipelined requests,
conditional requests (304) as `MirrorServer` answers them. It keeps the same request records.
It has no test hooks.
"""

from __future__ import annotations

import asyncio
import email.utils
import socket
import threading
import time
from http import HTTPStatus
from pathlib import Path
from types import TracebackType
from typing import Self

from crawler.mirror.server import (
    _DEFAULT_CONTENT_TYPE,
    _NOT_FOUND,
    MirrorServer,
    RequestRecord,
    _not_modified,
    route_key,
)

# A request head longer than this is refused (400) and its connection closed.
MAX_HEAD = 65536
_BAD_REQUEST = b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"


class _Headers(dict[str, str]):
    """Request headers by lower-cased name, looked up case-insensitively."""

    def get(self, name: str, default: str | None = None) -> str | None:  # type: ignore[override]
        return super().get(name.lower(), default)


class _Prepared:
    """One route's answer: its status line and headers (without Date) and its body."""

    __slots__ = ("body", "etag", "head", "mtime", "status")

    def __init__(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
        self.status = status
        self.body = body
        fields = dict((name.lower(), value) for name, value in headers)
        self.etag = fields.get("etag")
        modified = fields.get("last-modified")
        self.mtime = email.utils.parsedate_to_datetime(modified).timestamp() if modified else None
        lines = [f"HTTP/1.1 {status} {HTTPStatus(status).phrase}", "Server: mirror/1.0"]
        lines += [f"{name}: {value}" for name, value in headers]
        self.head = ("\r\n".join(lines) + "\r\n").encode("latin-1")


class LeanServer:
    """Serves one mirror site on 127.0.0.1 from memory (see the module's docstring)."""

    def __init__(self, site_dir: Path, host: str = "127.0.0.1") -> None:
        self.site_dir = Path(site_dir).resolve()
        self.host = host
        self._site = MirrorServer(self.site_dir)
        self._routes: dict[str, _Prepared] = {}
        self._not_found = _Prepared(
            404,
            [("Content-Type", _DEFAULT_CONTENT_TYPE), ("Content-Length", str(len(_NOT_FOUND)))],
            _NOT_FOUND,
        )
        self._lock = threading.Lock()
        self._requests: list[RequestRecord] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._base_url: str | None = None
        self._date = (0, b"")

    def start(self) -> Self:
        if self._loop is not None:
            raise RuntimeError(f"{self!r} is already running")
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((self.host, 0))
        listener.listen(128)
        self._base_url = f"http://{self.host}:{listener.getsockname()[1]}"
        for key in self._site.routes:
            found = self._site.render(key, self._base_url)
            if found is None:
                continue
            headers = [
                ("Content-Type", found.content_type),
                ("Content-Length", str(len(found.body))),
                *found.headers.items(),
            ]
            self._routes[key] = _Prepared(found.status, headers, found.body)
        loop = asyncio.new_event_loop()
        started = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(loop)
            server = loop.run_until_complete(
                loop.create_server(lambda: _Protocol(self), sock=listener)
            )
            started.set()
            loop.run_forever()
            server.close()
            for task in asyncio.all_tasks(loop):
                task.cancel()
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

        self._loop = loop
        self._thread = threading.Thread(target=run, name="lean-mirror", daemon=True)
        self._thread.start()
        started.wait()
        return self

    def stop(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=5)
        self._loop = self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<LeanServer {self.site_dir.name} {self._base_url or 'not started'}>"

    @property
    def base_url(self) -> str:
        if self._base_url is None:
            raise RuntimeError(f"{self!r} has not been started")
        return self._base_url

    @property
    def requests(self) -> list[RequestRecord]:
        """A snapshot of the requests received so far, oldest first."""
        with self._lock:
            return list(self._requests)

    def clear_requests(self) -> None:
        with self._lock:
            self._requests.clear()

    def answer(self, head: bytes) -> tuple[bytes, bool]:
        """The response to one request head (without its blank line), and whether the
        connection is to be closed after it."""
        arrived = time.time()
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/"):
            return _BAD_REQUEST, True
        method, target, version = parts
        headers = _Headers()
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        if method not in ("GET", "HEAD"):
            return b"HTTP/1.1 501 Not Implemented\r\nContent-Length: 0\r\n\r\n", False
        key = route_key(target)
        found = self._routes.get(key, self._not_found)
        status, send_body = found.status, method != "HEAD"
        if status == 200 and _not_modified(headers, found.etag, found.mtime):
            status, send_body = 304, False
        with self._lock:
            self._requests.append(RequestRecord(method, key, dict(headers), status, arrived))
        close = version == "HTTP/1.0" or (headers.get("connection") or "").lower() == "close"
        head_out = self._not_modified_head(found) if status == 304 else found.head
        answer = head_out + self._date_line(arrived) + (b"Connection: close\r\n" if close else b"")
        return answer + b"\r\n" + (found.body if send_body else b""), close

    def _not_modified_head(self, found: _Prepared) -> bytes:
        lines = [b"HTTP/1.1 304 Not Modified", b"Server: mirror/1.0"]
        for line in found.head.split(b"\r\n")[2:]:
            name = line.partition(b":")[0].lower()
            if line and name not in (b"content-type", b"content-length"):
                lines.append(line)
        return b"\r\n".join(lines) + b"\r\n"

    def _date_line(self, now: float) -> bytes:
        second, line = self._date
        if int(now) != second:
            line = f"Date: {email.utils.formatdate(now, usegmt=True)}\r\n".encode()
            self._date = (int(now), line)
        return line


class _Protocol(asyncio.Protocol):
    def __init__(self, server: LeanServer) -> None:
        self.server = server
        self.buffer = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        assert self.transport is not None
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(self.buffer) > MAX_HEAD:
                    self.transport.write(_BAD_REQUEST)
                    self.transport.close()
                return
            head, self.buffer = self.buffer[:end], self.buffer[end + 4 :]
            response, close = self.server.answer(head)
            self.transport.write(response)
            if close:
                self.transport.close()
                return
