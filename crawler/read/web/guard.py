"""The token that guards every page and endpoint, and the headers every response carries."""

from __future__ import annotations

import hmac
import json
from collections.abc import Callable
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import parse_qsl, urlencode

from starlette.types import ASGIApp, Message, Receive, Scope, Send

COOKIE = "crawler_token"
# The interface's own stylesheet holds nothing of the archive, and the login page needs it.
PUBLIC_PREFIX = "/static/"
# The interface's own pages: its own styles only, no script, no frame but its snapshots.
PAGE_POLICY = (
    "default-src 'none'; style-src 'self'; img-src 'self' data:; frame-src 'self'; "
    "form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)


class Guard:
    """ASGI middleware: refuses requests without the token (when one is set) and adds the
    security headers to every response.

    The token is accepted as `Authorization: Bearer TOKEN`, or as the cookie a `?token=TOKEN`
    login sets (the URL is then redirected without it, so it does not stay in the history).
    Only the interface's stylesheet (/static/) is served without it.
    """

    def __init__(
        self,
        app: ASGIApp,
        token: str | None,
        login_page: Callable[[str, list[tuple[str, str]], bool], str],
    ) -> None:
        self.app = app
        self.token = token.encode() if token else None
        self.login_page = login_page

    def _valid(self, offered: str | None) -> bool:
        return bool(self.token and offered and hmac.compare_digest(offered.encode(), self.token))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        public = scope.get("path", "").startswith(PUBLIC_PREFIX)
        if self.token is not None and not public and not await self._admitted(scope, send):
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                names = {name.lower() for name, _ in headers}
                defaults = {
                    b"x-content-type-options": b"nosniff",
                    b"referrer-policy": b"no-referrer",
                    b"content-security-policy": PAGE_POLICY.encode(),
                    b"x-frame-options": b"DENY",
                }
                headers += [(k, v) for k, v in defaults.items() if k not in names]
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, with_headers)

    async def _admitted(self, scope: Scope, send: Send) -> bool:
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        scheme, _, credentials = headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and self._valid(credentials.strip()):
            return True
        cookie = SimpleCookie()
        try:
            cookie.load(headers.get("cookie", ""))
        except Exception:  # a malformed Cookie header is no token
            cookie = SimpleCookie()
        if COOKIE in cookie and self._valid(cookie[COOKIE].value):
            return True
        query = parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
        offered = next((value for name, value in query if name == "token"), None)
        path = scope.get("path", "/")
        if self._valid(offered):
            rest = urlencode([(name, value) for name, value in query if name != "token"])
            secure = "; Secure" if scope.get("scheme") == "https" else ""
            await _respond(
                send,
                303,
                b"",
                [
                    (b"location", (path + ("?" + rest if rest else "")).encode("latin-1")),
                    (
                        b"set-cookie",
                        f"{COOKIE}={offered}; Path=/; HttpOnly; SameSite=Strict{secure}".encode(),
                    ),
                ],
            )
            return False
        wrong = offered is not None
        if path.startswith("/api/"):
            message = "wrong token" if wrong else "this archive needs a token"
            body = json.dumps(
                {"error": f"{message}: send Authorization: Bearer TOKEN", "status": 401}
            ).encode()
            await _respond(
                send,
                401,
                body,
                [(b"content-type", b"application/json"), (b"www-authenticate", b"Bearer")],
            )
        else:
            kept = [(name, value) for name, value in query if name != "token"]
            page = self.login_page(path, kept, wrong).encode()
            await _respond(
                send,
                401,
                page,
                [
                    (b"content-type", b"text/html; charset=utf-8"),
                    (b"www-authenticate", b"Bearer"),
                    (b"content-security-policy", PAGE_POLICY.encode()),
                ],
            )
        return False


async def _respond(send: Send, status: int, body: bytes, headers: list[Any]) -> None:
    headers = [
        *headers,
        (b"content-length", str(len(body)).encode()),
        (b"cache-control", b"no-store"),
        (b"x-content-type-options", b"nosniff"),
        (b"referrer-policy", b"no-referrer"),
        (b"x-frame-options", b"DENY"),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
