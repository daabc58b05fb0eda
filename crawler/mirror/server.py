"""A local HTTP mirror of the outlets' sites, so that spiders can be crawled and tested offline.

Each site is a folder holding ``routes.json``, which maps every URL the site answers
(``/path`` or ``/path?query``, matched exactly) to ``{"file", "status", "content_type",
"headers"}`` and optionally ``"encoding"``. Text bodies have ``{{BASE}}`` replaced by the
server's own origin and are encoded in the route's ``encoding``, else the charset its content
type names, else UTF-8; ``encoding`` exists for deliberate charset traps (a page whose header
says iso-8859-1 but whose bytes are UTF-8). Responses with status 200 carry an ETag and a
Last-Modified header and honour conditional requests with 304.

Tests change a running site through :meth:`MirrorServer.override`, :meth:`MirrorServer.edit`,
:meth:`MirrorServer.fail`, :meth:`MirrorServer.truncate` and :meth:`MirrorServer.delay`, and
inspect what the crawler asked for through :attr:`MirrorServer.requests`.
"""

from __future__ import annotations

import contextlib
import email.utils
import hashlib
import json
import logging
import math
import socket
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any, Self
from urllib.parse import urlsplit

__all__ = [
    "SITES_DIR",
    "SITE_NAMES",
    "MirrorServer",
    "MirrorSet",
    "RequestRecord",
]

log = logging.getLogger(__name__)

SITES_DIR: Path = Path(__file__).resolve().parent / "sites"
"""The mirror data bundled with the package, one folder per site."""


def _site_names(sites_dir: Path) -> tuple[str, ...]:
    """Sorted names of the subfolders of sites_dir that hold routes.json."""
    if not sites_dir.is_dir():
        return ()
    return tuple(sorted(p.name for p in sites_dir.iterdir() if (p / "routes.json").is_file()))


# Listing a folder is harmless at import time and gives callers a plain constant.
SITE_NAMES: tuple[str, ...] = _site_names(SITES_DIR)
"""Names of the bundled sites (the subfolders of :data:`SITES_DIR` holding routes.json)."""

BASE_PLACEHOLDER = "{{BASE}}"

_NOT_FOUND = (
    b'<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>404 Not Found</title>'
    b"</head>\n<body><h1>Not Found</h1><p>The requested URL was not found on this server."
    b"</p></body></html>\n"
)
_DEFAULT_CONTENT_TYPE = "text/html; charset=utf-8"
_TEXT_TYPES = frozenset({"application/json", "application/javascript", "application/xml"})
# Validators the server computes itself; a route's own values would pin them across overrides.
_VALIDATORS = frozenset({"etag", "last-modified"})


def is_text(content_type: str) -> bool:
    """Whether a body of this content type is a UTF-8 template rather than raw bytes."""
    ctype = content_type.split(";")[0].strip().lower()
    return (
        ctype.startswith("text/")
        or ctype.endswith("+xml")
        or ctype.endswith("+json")
        or ctype in _TEXT_TYPES
    )


def charset_of(content_type: str) -> str | None:
    """The charset parameter of a content type, if any."""
    for part in content_type.split(";")[1:]:
        name, _, value = part.strip().partition("=")
        if name.strip().lower() == "charset":
            return value.strip().strip('"') or None
    return None


def route_key(raw_path: str) -> str:
    """Turn a request target ('/a/b?x=1#f' or an absolute URI) into a route key ('/a/b?x=1')."""
    if raw_path.startswith("/") and not raw_path.startswith("//"):
        path, _, query = raw_path.split("#", 1)[0].partition("?")
    else:
        parts = urlsplit(raw_path)
        path, query = parts.path, parts.query
    return (path or "/") + ("?" + query if query else "")


def _etag(body: bytes) -> str:
    """A strong ETag derived from the body."""
    return '"' + hashlib.sha1(body).hexdigest()[:20] + '"'


def _not_modified(request_headers: Any, etag: str | None, mtime: float | None) -> bool:
    """Whether a conditional request still matches the current representation."""
    # If-None-Match wins over If-Modified-Since when both are sent (RFC 9110, 13.2.2).
    tags = request_headers.get("If-None-Match")
    if tags:
        if tags.strip() == "*":
            return True
        wanted = {t.strip().removeprefix("W/") for t in tags.split(",")}
        return etag is not None and etag.removeprefix("W/") in wanted
    since = request_headers.get("If-Modified-Since")
    if since and mtime is not None:
        try:
            return int(mtime) <= email.utils.parsedate_to_datetime(since).timestamp()
        except (TypeError, ValueError):
            return False
    return False


@dataclass(frozen=True)
class RequestRecord:
    """One request the mirror received."""

    method: str
    path: str
    headers: dict[str, str]
    status: int
    time: float

    def header(self, name: str) -> str | None:
        """A request header looked up case-insensitively."""
        lowered = name.lower()
        for key, value in self.headers.items():
            if key.lower() == lowered:
                return value
        return None


@dataclass(frozen=True)
class _Route:
    """One entry of routes.json."""

    file: str
    status: int
    content_type: str
    headers: dict[str, str]
    encoding: str | None


@dataclass(frozen=True)
class _Override:
    """A body set by a test in place of the route's file."""

    body: str | bytes
    status: int
    content_type: str
    headers: dict[str, str]
    encoding: str | None
    mtime: float


@dataclass(frozen=True)
class _Response:
    """Everything needed to answer one request."""

    status: int
    content_type: str
    headers: dict[str, str]
    body: bytes
    mtime: float | None = None


def _load_routes(site_dir: Path) -> dict[str, _Route]:
    """Parse a site's routes.json."""
    raw = json.loads((site_dir / "routes.json").read_text(encoding="utf-8"))
    if not isinstance(raw, dict):
        raise ValueError(f"{site_dir / 'routes.json'}: expected a JSON object")
    routes: dict[str, _Route] = {}
    for key, entry in raw.items():
        routes[key] = _Route(
            file=str(entry["file"]),
            status=int(entry.get("status", 200)),
            content_type=str(entry.get("content_type", "application/octet-stream")),
            headers={str(k): str(v) for k, v in (entry.get("headers") or {}).items()},
            encoding=entry.get("encoding") or None,
        )
    return routes


class _HTTPServer(ThreadingHTTPServer):
    """A ThreadingHTTPServer that knows its MirrorServer and reports errors quietly."""

    def __init__(self, address: tuple[str, int], mirror: MirrorServer) -> None:
        self.mirror = mirror
        super().__init__(address, _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Log a handler's exception instead of printing it to stderr."""
        log.debug("mirror: error while serving %s", client_address, exc_info=True)


class _Handler(BaseHTTPRequestHandler):
    """Answers requests from a MirrorServer's routes and test hooks."""

    protocol_version = "HTTP/1.1"
    server_version = "mirror/1.0"
    # Idle keep-alive connections must not pin handler threads for ever.
    timeout = 30

    @property
    def mirror(self) -> MirrorServer:
        """The MirrorServer this handler serves."""
        server = self.server
        assert isinstance(server, _HTTPServer)
        return server.mirror

    def version_string(self) -> str:
        """The Server header, without the Python version."""
        return self.server_version

    def setup(self) -> None:
        """Register the connection so that stop() can cut it."""
        super().setup()
        self.mirror._track(self.connection, add=True)

    def finish(self) -> None:
        """Unregister the connection."""
        try:
            super().finish()
        finally:
            self.mirror._track(self.connection, add=False)

    def do_GET(self) -> None:
        """Answer a GET."""
        self._respond(send_body=True)

    def do_HEAD(self) -> None:
        """Answer a HEAD."""
        self._respond(send_body=False)

    def log_message(self, format: str, *args: Any) -> None:
        """Keep quiet; the request list replaces the access log."""
        log.debug("mirror %s: " + format, self.address_string(), *args)

    def _respond(self, send_body: bool) -> None:
        """Build the response for this request, honouring the test hooks."""
        mirror = self.mirror
        arrived = time.time()
        key = route_key(self.path)
        faults = mirror._faults_for(key)
        if faults.delay > 0:
            mirror._wait(faults.delay)
        if faults.fail is not None:
            response = _fault_response(faults.fail, faults.fail_headers)
        else:
            try:
                found = mirror._render(key)
            except (OSError, ValueError) as exc:  # a file removed or broken while serving
                log.warning("mirror: cannot serve %s: %s", key, exc)
                found = _fault_response(500)
            response = found or _Response(404, _DEFAULT_CONTENT_TYPE, {}, _NOT_FOUND)
        status, body = response.status, response.body
        if status == 200 and _not_modified(
            self.headers, response.headers.get("ETag"), response.mtime
        ):
            status, body, send_body = 304, b"", False
        # Record before answering, so a client that has its response can already see the record.
        mirror._record(
            RequestRecord(
                method=self.command,
                path=key,
                headers=_header_dict(self.headers),
                status=status,
                time=arrived,
            )
        )
        truncated = faults.truncate and send_body and len(body) > 0
        try:
            self.send_response(status)
            if status != 304:
                self.send_header("Content-Type", response.content_type)
                self.send_header("Content-Length", str(len(body)))
            for name, value in response.headers.items():
                self.send_header(name, value)
            if truncated:
                self.send_header("Connection", "close")
            self.end_headers()
            if send_body:
                self.wfile.write(body[: len(body) // 2] if truncated else body)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        if truncated:
            # Closing after half the announced bytes is what a dropped connection looks like.
            self.close_connection = True


def _header_dict(headers: Any) -> dict[str, str]:
    """Request headers as a plain dict, repeated headers joined with ', '."""
    result: dict[str, str] = {}
    for name, value in headers.items():
        result[name] = f"{result[name]}, {value}" if name in result else str(value)
    return result


def _fault_response(status: int, headers: dict[str, str] | None = None) -> _Response:
    """A short plain-text answer for a failed request."""
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Error"
    body = f"{status} {phrase}\n".encode()
    return _Response(status, "text/plain; charset=utf-8", dict(headers or {}), body)


@dataclass(frozen=True)
class _Faults:
    """The faults a test set on one route."""

    fail: int | None = None
    fail_headers: dict[str, str] | None = None
    truncate: bool = False
    delay: float = 0.0


class MirrorServer:
    """Serves one mirror site on 127.0.0.1, with hooks for tests to change it while it runs."""

    def __init__(self, site_dir: Path, host: str = "127.0.0.1", port: int = 0) -> None:
        self.site_dir = Path(site_dir).resolve()
        self.name = self.site_dir.name
        self.host = host
        self._requested_port = port
        self._routes = _load_routes(self.site_dir)
        self._lock = threading.Lock()
        self._overrides: dict[str, _Override] = {}
        self._fail: dict[str, tuple[int, dict[str, str], int | None]] = {}
        self._truncate: set[str] = set()
        self._delay: dict[str, float] = {}
        self._requests: list[RequestRecord] = []
        self._connections: set[socket.socket] = set()
        self._stopping = threading.Event()
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._base_url: str | None = None

    def __repr__(self) -> str:
        where = self._base_url or "not started"
        return f"<MirrorServer {self.name} {where}>"

    # -- life cycle ---------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        """Whether the server is listening."""
        return self._httpd is not None

    def start(self) -> Self:
        """Start listening in a daemon thread; returns self."""
        if self._httpd is not None:
            raise RuntimeError(f"{self!r} is already running")
        self._stopping.clear()
        httpd = _HTTPServer((self.host, self._requested_port), self)
        port = httpd.server_address[1]
        host = self.host if self.host not in ("", "0.0.0.0", "::") else "127.0.0.1"
        if ":" in host:
            host = f"[{host}]"
        self._base_url = f"http://{host}:{port}"
        self._httpd = httpd
        self._thread = threading.Thread(
            target=httpd.serve_forever,
            kwargs={"poll_interval": 0.1},
            name=f"mirror-{self.name}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening and cut open connections; safe to call twice."""
        httpd, thread = self._httpd, self._thread
        if httpd is None:
            return
        self._stopping.set()
        httpd.shutdown()
        httpd.server_close()
        with self._lock:
            connections = list(self._connections)
        # Keep-alive connections would otherwise go on being served after stop().
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        if thread is not None:
            thread.join(timeout=5)
        self._httpd = self._thread = None

    def __enter__(self) -> Self:
        if not self.running:
            self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        """The origin the site is served at, 'http://127.0.0.1:PORT'."""
        if self._base_url is None:
            raise RuntimeError(f"{self!r} has not been started")
        return self._base_url

    @property
    def port(self) -> int:
        """The port the site is served on."""
        return int(self.base_url.rsplit(":", 1)[1])

    def url(self, path: str) -> str:
        """The absolute URL of a path on this site."""
        return self.base_url + path

    @property
    def routes(self) -> list[str]:
        """The route keys served, from routes.json and overrides."""
        with self._lock:
            return sorted(set(self._routes) | set(self._overrides))

    # -- requests -----------------------------------------------------------------------------

    @property
    def requests(self) -> list[RequestRecord]:
        """A snapshot of the requests received so far, oldest first."""
        with self._lock:
            return list(self._requests)

    def paths(self) -> list[str]:
        """The route keys requested so far, oldest first, repeats included."""
        with self._lock:
            return [r.path for r in self._requests]

    def clear_requests(self) -> None:
        """Forget the requests received so far."""
        with self._lock:
            self._requests.clear()

    # -- test hooks ---------------------------------------------------------------------------

    def override(
        self,
        path: str,
        body: str | bytes,
        *,
        status: int = 200,
        content_type: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        """Serve this body at path instead of the route's file, adding the route if need be."""
        route = self._routes.get(path)
        # A route's charset trap belongs to its content type: keep it only with that type.
        encoding = route.encoding if route and content_type is None else None
        if content_type is None:
            content_type = route.content_type if route else _DEFAULT_CONTENT_TYPE
        merged = {
            k: v
            for k, v in (route.headers if route else {}).items()
            if k.lower() not in _VALIDATORS
        }
        merged.update(headers or {})
        self._set_override(path, body, status, content_type, merged, encoding)

    def edit(self, path: str, old: str, new: str) -> None:
        """Replace old by new in the current template text of path, and serve the result."""
        with self._lock:
            current = self._overrides.get(path)
        route = self._routes.get(path)
        if current is not None:
            body = current.body
            text = body if isinstance(body, str) else body.decode("utf-8")
        elif route is not None:
            text = (self.site_dir / route.file).read_text(encoding="utf-8")
        else:
            raise KeyError(f"{self.name}: no route {path!r}")
        if old not in text:
            raise ValueError(f"{self.name}: {old!r} does not occur in {path!r}")
        edited = text.replace(old, new)
        if current is not None:
            # Only the body changes; status, type and headers stay as the earlier override set them.
            self._set_override(
                path,
                edited,
                current.status,
                current.content_type,
                current.headers,
                current.encoding,
            )
        else:
            assert route is not None
            self.override(path, edited, status=route.status)

    def fail(
        self,
        path: str,
        status: int = 500,
        *,
        times: int | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        """Answer requests for path with this status, these headers and a short body (only the
        next `times` requests when given)."""
        with self._lock:
            self._fail[path] = (status, dict(headers or {}), times)

    def truncate(self, path: str) -> None:
        """Send the full Content-Length for path but only half the body, then hang up."""
        with self._lock:
            self._truncate.add(path)

    def delay(self, path: str, seconds: float) -> None:
        """Wait this long before answering requests for path."""
        with self._lock:
            self._delay[path] = seconds

    def reload(self) -> None:
        """Read routes.json again (a generated site that published new pages)."""
        routes = _load_routes(self.site_dir)
        with self._lock:
            self._routes = routes

    def reset(self) -> None:
        """Drop every override and fault, back to the site as routes.json describes it."""
        with self._lock:
            self._overrides.clear()
            self._fail.clear()
            self._truncate.clear()
            self._delay.clear()

    # -- used by the handler ------------------------------------------------------------------

    def _set_override(
        self,
        path: str,
        body: str | bytes,
        status: int,
        content_type: str,
        headers: dict[str, str],
        encoding: str | None,
    ) -> None:
        """Store an override, moving the route's Last-Modified on."""
        if isinstance(body, str) and is_text(content_type):
            # Fail in the test that sets the body rather than as a 500 during the crawl.
            body.encode(encoding or charset_of(content_type) or "utf-8")
        with self._lock:
            previous = self._last_modified(path)
            # Last-Modified has one-second resolution: move it on by at least a second so that a
            # client revalidating with the old date always sees the change.
            mtime = time.time()
            if previous is not None:
                mtime = max(mtime, math.floor(previous) + 1.0)
            self._overrides[path] = _Override(
                body=body,
                status=status,
                content_type=content_type,
                headers=dict(headers),
                encoding=encoding,
                mtime=mtime,
            )

    def _track(self, conn: socket.socket, *, add: bool) -> None:
        """Remember or forget an open connection."""
        with self._lock:
            if add:
                self._connections.add(conn)
            else:
                self._connections.discard(conn)

    def _record(self, record: RequestRecord) -> None:
        """Append a request record."""
        with self._lock:
            self._requests.append(record)

    def _faults_for(self, key: str) -> _Faults:
        """The faults currently set on a route (a failure set for some times used up once)."""
        with self._lock:
            fail = self._fail.get(key)
            if fail is not None:
                status, headers, times = fail
                if times is None:
                    pass
                elif times <= 1:
                    del self._fail[key]
                else:
                    self._fail[key] = (status, headers, times - 1)
            return _Faults(
                fail=fail[0] if fail else None,
                fail_headers=fail[1] if fail else None,
                truncate=key in self._truncate,
                delay=self._delay.get(key, 0.0),
            )

    def _wait(self, seconds: float) -> None:
        """Sleep, but wake up early when the server stops."""
        self._stopping.wait(seconds)

    def _last_modified(self, key: str) -> float | None:
        """When the route's body last changed; call with the lock held."""
        current = self._overrides.get(key)
        if current is not None:
            return current.mtime
        route = self._routes.get(key)
        if route is None:
            return None
        try:
            return (self.site_dir / route.file).stat().st_mtime
        except OSError:
            return None

    def render(self, key: str, base_url: str | None = None) -> _Response | None:
        """The response for a route as it would be served now, with the site's links pointing
        at `base_url` (by default this server's); None when nothing is served there."""
        return self._render(key, base_url)

    def _render(self, key: str, base_url: str | None = None) -> _Response | None:
        """The response for a route, or None when nothing is served there."""
        with self._lock:
            current = self._overrides.get(key)
        route = self._routes.get(key)
        if current is not None:
            raw: str | bytes = current.body
            status, content_type = current.status, current.content_type
            own_headers, encoding, mtime = current.headers, current.encoding, current.mtime
        elif route is not None:
            # Read at each request so that a file changed on disk is served as it now is.
            path = self.site_dir / route.file
            raw, mtime = path.read_bytes(), path.stat().st_mtime
            status, content_type = route.status, route.content_type
            own_headers, encoding = route.headers, route.encoding
        else:
            return None
        if isinstance(raw, bytes) and (current is not None or not is_text(content_type)):
            body = raw
        else:
            text = raw if isinstance(raw, str) else raw.decode("utf-8")
            text = text.replace(BASE_PLACEHOLDER, base_url or self.base_url)
            body = text.encode(encoding or charset_of(content_type) or "utf-8")
        headers: dict[str, str] = {}
        if status == 200:
            headers["Last-Modified"] = email.utils.formatdate(mtime, usegmt=True)
            headers["ETag"] = _etag(body)
        headers.update(own_headers)
        return _Response(status, content_type, headers, body, mtime)


class MirrorSet:
    """Several MirrorServers, one per site, started and stopped together."""

    def __init__(
        self,
        names: Iterable[str] | None = None,
        *,
        sites_dir: Path = SITES_DIR,
        host: str = "127.0.0.1",
        port_base: int = 0,
    ) -> None:
        chosen = list(names) if names is not None else list(_site_names(sites_dir))
        unknown = [n for n in chosen if not (sites_dir / n / "routes.json").is_file()]
        if unknown:
            raise ValueError(f"unknown mirror sites: {', '.join(unknown)}")
        self.servers: dict[str, MirrorServer] = {
            name: MirrorServer(sites_dir / name, host=host, port=port_base + i if port_base else 0)
            for i, name in enumerate(chosen)
        }

    def __repr__(self) -> str:
        return f"<MirrorSet {', '.join(self.servers)}>"

    def __getitem__(self, name: str) -> MirrorServer:
        return self.servers[name]

    @property
    def base_urls(self) -> dict[str, str]:
        """Each site's origin, by site name."""
        return {name: server.base_url for name, server in self.servers.items()}

    def start(self) -> Self:
        """Start every server; if one cannot start, stop the others and re-raise."""
        try:
            for server in self.servers.values():
                server.start()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop every server."""
        for server in self.servers.values():
            server.stop()

    def reset(self) -> None:
        """Drop every server's overrides and faults."""
        for server in self.servers.values():
            server.reset()

    def clear_requests(self) -> None:
        """Forget every server's recorded requests."""
        for server in self.servers.values():
            server.clear_requests()

    def __enter__(self) -> Self:
        if not any(s.running for s in self.servers.values()):
            self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
