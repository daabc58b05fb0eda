"""`crawler web`: the archive in a browser and its JSON API, read-only."""

from __future__ import annotations

import ipaddress
import os
import socket
from typing import Annotated

import typer

from crawler.cli.common import DbOption, SourcesOption, app, err, fail, sources_file
from crawler.config import ConfigError, database_url

TOKEN_ENV = "CRAWLER_WEB_TOKEN"


def is_loopback(host: str) -> bool:
    """Whether `host` only listens on this machine (localhost, 127.0.0.0/8, ::1)."""
    if host.lower() in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def cannot_listen(host: str, port: int) -> str | None:
    """Why the server could not listen on host:port (in use, no such address), or None."""
    try:
        infos = socket.getaddrinfo(host.strip("[]"), port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        return exc.strerror
    family, kind, proto, _, address = infos[0]
    try:
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(address)
    except OSError as exc:
        return exc.strerror or str(exc)
    return None


@app.command()
def web(
    host: Annotated[
        str, typer.Option(help=f"Address to listen on; other than loopback needs {TOKEN_ENV}.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port to listen on.")] = 8000,
    db: DbOption = None,
    sources: SourcesOption = None,
) -> None:
    """Serve the archive read-only: search, articles and their history, the pages as archived,
    the outlets' runs, and the JSON API (/api/openapi.json)."""
    from rich.markup import escape

    token = os.environ.get(TOKEN_ENV) or None
    if not is_loopback(host) and token is None:
        raise fail(
            f"--host {host} is reachable from other machines: set {TOKEN_ENV} to a secret "
            "token first (it then guards every page and endpoint)"
        )
    if token is not None and len(token) < 16:
        raise fail(f"{TOKEN_ENV} is too short: use at least 16 characters")
    config_file = sources_file(sources)
    problem = cannot_listen(host, port)
    if problem:
        raise fail(f"cannot listen on {host}:{port}: {problem}")

    import uvicorn

    from crawler.read.web.app import WebConfig, create_app
    from crawler.read.web.archive import ReadOnlyArchive

    url = database_url(db)
    try:
        archive = ReadOnlyArchive(url)
    except ConfigError as exc:
        raise fail(escape(str(exc))) from None
    except Exception as exc:  # a server that is down, a file that is not a database, ...
        raise fail(escape(f"cannot open the archive {url!r}: {exc}")) from None
    application = create_app(WebConfig(url, config_file, token), archive)
    shown = f"[{host}]" if ":" in host else host
    guarded = f"; token required ({TOKEN_ENV})" if token else ""
    err.print(
        escape(f"serving {archive.shown_url} read-only on http://{shown}:{port}/{guarded}"),
        highlight=False,
        soft_wrap=True,
    )
    try:
        uvicorn.run(
            application,
            host=host,
            port=port,
            log_level=os.environ.get("CRAWLER_LOG_LEVEL", "info").lower(),
            proxy_headers=False,
            server_header=False,
        )
    finally:
        archive.dispose()
