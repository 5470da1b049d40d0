"""The login gate: with ``NOTES_ASSISTANT_AUTH`` set, nothing is served to a visitor who has not logged in.

Deny by default: every route — ours, Gradio's pages, API, config, OpenAPI schema,
files and static assets — needs a login session (the cookie Gradio's ``/login``
sets) or HTTP Basic credentials. Without them a visitor gets our small login page
at ``/`` (no Gradio config, no API description) and 401 everywhere else. Wrong
passwords, on the form or in Basic credentials, go through ``LoginThrottle``.
"""

from __future__ import annotations

import html
import logging
import math
import secrets

from starlette.requests import HTTPConnection
from starlette.responses import HTMLResponse, JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from assistant.web.access import LoginThrottle, basic_auth_ok
from assistant.web.context import AppContext

__all__ = ["AuthGate", "LOGIN_PATHS", "PUBLIC_PATHS", "login_page"]

logger = logging.getLogger(__name__)

LOGIN_PATHS = frozenset({"/login", "/login/"})  # Gradio's login endpoint (POST): checks, sets the session cookie
# Static, data-free, and fetched by browsers without cookies (a web app manifest is requested with credentials
# omitted): behind the gate they could only fail.
PUBLIC_PATHS = frozenset({"/favicon.ico", "/manifest.json", "/robots.txt"})


class AuthGate:
    """ASGI middleware: a login session or HTTP Basic credentials for everything, with backoff on wrong passwords.

    Args:
        app: the wrapped ASGI app (FastAPI with Gradio mounted).
        ctx: what tells a valid session and the credentials.
        throttle: per-client backoff for wrong passwords.
    """

    def __init__(self, app: ASGIApp, ctx: AppContext, throttle: LoginThrottle) -> None:
        self.app = app
        self.ctx = ctx
        self.throttle = throttle

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or self.ctx.credentials is None:
            await self.app(scope, receive, send)
            return
        connection = HTTPConnection(scope)
        client = connection.client.host if connection.client else "unknown"
        method, path = scope.get("method", "GET"), scope["path"]
        if scope["type"] == "http" and method == "POST" and path in LOGIN_PATHS:
            await self._login(scope, receive, send, client)
            return
        if self.ctx.session_ok(connection.cookies):
            await self.app(scope, receive, send)
            return
        header = connection.headers.get("authorization")
        if header:
            wait = self.throttle.retry_after(client)
            if wait:
                await self._refuse(scope, receive, send, _too_many(wait))
                return
            if basic_auth_ok(header, self.ctx.credentials):
                self.throttle.succeeded(client)
                await self.app(scope, receive, send)
                return
            self.throttle.failed(client)
            logger.info("wrong basic credentials client=%s path=%s", client, path)
        elif scope["type"] == "http" and path in PUBLIC_PATHS:
            await self.app(scope, receive, send)
            return
        elif scope["type"] == "http" and path == "/" and method in ("GET", "HEAD"):
            nonce = secrets.token_urlsafe(16)
            page = HTMLResponse(login_page(nonce), headers={
                "Content-Security-Policy": _login_policy(nonce), "Cache-Control": "no-store"})
            await page(scope, receive, send)
            return
        await self._refuse(scope, receive, send, JSONResponse(
            {"detail": "log in first"}, status_code=401, headers={"WWW-Authenticate": 'Basic realm="notes-assistant"'}))

    async def _login(self, scope: Scope, receive: Receive, send: Send, client: str) -> None:
        """Gradio's ``/login``, unless ``client`` is locked out; its answer feeds the throttle."""
        wait = self.throttle.retry_after(client)
        if wait:
            await _too_many(wait)(scope, receive, send)
            return
        status = 0

        async def watch(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        await self.app(scope, receive, watch)
        if status == 200:
            self.throttle.succeeded(client)
        elif status in (400, 401, 403):  # Gradio answers 400 "Incorrect credentials."
            self.throttle.failed(client)
            logger.info("wrong password on the login page client=%s", client)

    @staticmethod
    async def _refuse(scope: Scope, receive: Receive, send: Send, response: JSONResponse) -> None:
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})  # policy violation: not logged in
        else:
            await response(scope, receive, send)


def _too_many(wait: float) -> JSONResponse:
    seconds = math.ceil(wait)
    return JSONResponse({"detail": f"too many wrong passwords; try again in {seconds} s"}, status_code=429,
                        headers={"Retry-After": str(seconds)})


def _login_policy(nonce: str) -> str:
    return (f"default-src 'none'; style-src 'nonce-{nonce}'; script-src 'nonce-{nonce}'; connect-src 'self'; "
            "form-action 'self'; base-uri 'none'; frame-ancestors 'self'")


def login_page(nonce: str, title: str = "Notes assistant") -> str:
    """The login page: a form that posts to ``/login`` and reloads into the app; says when to retry after a 429.

    Self-contained (its own nonce'd style and script) so that it needs nothing that sits behind the gate.
    """
    return f"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>Log in · {html.escape(title)}</title>
<style nonce="{nonce}">{_CSS}</style></head><body><main>
<h1>{html.escape(title)}</h1><p>Log in to ask your notes.</p>
<form id="na-login" method="post" action="/login">
<label>User name <input name="username" autocomplete="username" required autofocus></label>
<label>Password <input name="password" type="password" autocomplete="current-password" required></label>
<button type="submit">Log in</button><p id="na-login-message" role="alert"></p></form></main>
<script nonce="{nonce}">{_SCRIPT}</script></body></html>"""


_SCRIPT = """
document.getElementById("na-login").addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = event.target, message = document.getElementById("na-login-message");
  message.textContent = "";
  const response = await fetch("/login", {method: "POST", body: new URLSearchParams(new FormData(form))});
  if (response.ok) { location.reload(); return; }
  message.textContent = response.status === 429
    ? `Too many wrong passwords. Try again in ${response.headers.get("Retry-After")} seconds.`
    : "Wrong user name or password.";
});
"""

_CSS = """
:root { color-scheme: light dark; font: 16px/1.5 ui-sans-serif, system-ui, -apple-system, "Segoe UI", sans-serif; }
body { margin: 0; min-height: 100vh; display: grid; place-items: center; }
main { width: min(22rem, 90vw); padding: 2rem; border: 1px solid #8884; border-radius: 12px; }
h1 { font-size: 1.4rem; margin: 0 0 .2rem; } p { margin: 0 0 1rem; color: #888; }
label { display: block; margin: .8rem 0; font-weight: 600; }
input { display: block; width: 100%; box-sizing: border-box; margin-top: .3rem; padding: .5rem; font: inherit; }
button { width: 100%; margin-top: .6rem; padding: .6rem; font: inherit; font-weight: 600; cursor: pointer;
  border: 0; border-radius: 8px; background: #4f46e5; color: #fff; }
#na-login-message { margin: .8rem 0 0; color: #dc2626; min-height: 1.5em; }
"""
