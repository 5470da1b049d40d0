"""HTTP-level protections of the web app, as ASGI middleware: security headers and body-size caps.

``SecurityHeaders`` puts a Content-Security-Policy, ``X-Frame-Options``,
``X-Content-Type-Options`` and ``Referrer-Policy`` on every response; a response
that brings its own CSP (the note viewer's nonce policy, the login page) keeps it.
``BodyLimit`` refuses oversized request bodies with 413 before anything parses them.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Iterable, Mapping

from starlette.datastructures import Headers, MutableHeaders
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["SecurityHeaders", "BodyLimit", "ui_policy", "inline_script_hashes"]

# The Gradio UI's policy, directive by directive. Everything is same-origin; nothing comes from elsewhere.
# The relaxations, each because the UI does not work without it (checked in Chromium, tests/test_e2e_browser.py):
# - script-src 'unsafe-eval': Gradio 6's gr.HTML renders its template through Handlebars and `new Function`
#   (the header, the index and eval panels are gr.HTML). Inline scripts are *not* allowed wholesale: the
#   page's own inline scripts (Gradio's index.html: config, API info, loader) are allowed by their sha256,
#   computed per response, so injected markup (an `onerror=` attribute, a `<script>` in a note) cannot run.
# - style-src 'unsafe-inline': Svelte components set `style=` attributes and Gradio injects <style> elements
#   (theme, our CSS) at run time; there is no nonce or hash hook for them.
# - img-src data: : Gradio's icons (settings gear, logo, checkbox marks) are data: SVG URIs in its CSS.
_UI_DIRECTIVES = {
    "default-src": "'self'",
    "script-src": "'self' 'unsafe-eval'",
    "style-src": "'self' 'unsafe-inline'",
    "img-src": "'self' data:",
    "font-src": "'self'",
    "connect-src": "'self'",
    "media-src": "'self'",
    "worker-src": "'self'",
    "frame-src": "'self'",  # the note viewer panel (/notes/...)
    "object-src": "'none'",
    "base-uri": "'self'",
    "form-action": "'self'",
    "frame-ancestors": "'self'",  # other sites may not frame us (clickjacking); our own viewer iframe may
}
_FIXED_HEADERS = {
    "x-frame-options": "SAMEORIGIN",  # frame-ancestors for browsers without CSP level 2
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
}
_INLINE_SCRIPT = re.compile(rb"<script(?![^>]*\ssrc=)[^>]*>(.*?)</script\s*>", re.DOTALL | re.IGNORECASE)


def ui_policy(script_hashes: Iterable[str] = ()) -> str:
    """The Content-Security-Policy for the UI, allowing the inline scripts with these ``'sha256-…'`` sources.

    >>> "script-src 'self' 'unsafe-eval' 'sha256-x'" in ui_policy(["'sha256-x'"]), "*" in ui_policy()
    (True, False)
    """
    directives = dict(_UI_DIRECTIVES)
    directives["script-src"] = " ".join([directives["script-src"], *script_hashes])
    return "; ".join(f"{name} {value}" for name, value in directives.items())


def inline_script_hashes(html: bytes) -> list[str]:
    """CSP hash sources of the inline ``<script>`` elements of a page (those without ``src``).

    Only for pages whose scripts we trust: Gradio's template JSON-escapes ``<`` in the data it
    embeds, so nothing from a note or a request can open a script element of its own.

    >>> inline_script_hashes(b'<script src="a.js"></script><script>x()</script>')
    ["'sha256-D6IGS8VMvCoyaR/l0h9tERrBTATY01CoPS7l6xDv0kI='"]
    """
    return [f"'sha256-{base64.b64encode(hashlib.sha256(body).digest()).decode()}'"
            for body in _INLINE_SCRIPT.findall(html)]


class SecurityHeaders:
    """ASGI middleware: security headers on every HTTP response.

    Pages at ``pages`` (the Gradio UI at ``/``) are buffered so their inline scripts
    can be hashed into the policy; they are asked for uncompressed (the page is ~80 KB).

    Args:
        app: the wrapped ASGI app.
        pages: paths whose HTML responses carry inline scripts to allow by hash.
    """

    def __init__(self, app: ASGIApp, pages: Iterable[str] = ("/",)) -> None:
        self.app = app
        self.pages = frozenset(pages)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        page = scope["path"] in self.pages and scope["method"] in ("GET", "HEAD")
        if page:  # the body must be readable to hash its scripts
            scope = {**scope, "headers": [(k, v) for k, v in scope["headers"] if k != b"accept-encoding"]}
        held: list[Message] = []

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in _FIXED_HEADERS.items():
                    headers.setdefault(name, value)
                hashable = page and headers.get("content-type", "").startswith("text/html") \
                    and "content-encoding" not in headers
                if "content-security-policy" in headers or not hashable:
                    headers.setdefault("content-security-policy", ui_policy())
                    await send(message)
                else:
                    held.append(message)
                return
            if held and message["type"] == "http.response.body":
                held.append(message)
                if message.get("more_body"):
                    return
                start, body = held[0], b"".join(m.get("body", b"") for m in held[1:])
                MutableHeaders(scope=start)["content-security-policy"] = ui_policy(inline_script_hashes(body))
                held.clear()
                await send(start)
                await send({"type": "http.response.body", "body": body})
                return
            await send(message)

        await self.app(scope, receive, send_with_headers)


class BodyLimit:
    """ASGI middleware: request bodies above a per-path limit get 413, unparsed.

    A declared ``Content-Length`` above the limit is refused before a byte is read;
    otherwise the body is read (at most limit + one chunk) and handed on in one piece,
    so a missing or understated length cannot slip past.

    Args:
        app: the wrapped ASGI app.
        limits: path → maximum body size in bytes.
    """

    def __init__(self, app: ASGIApp, limits: Mapping[str, int]) -> None:
        self.app = app
        self.limits = dict(limits)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        limit = self.limits.get(scope["path"]) if scope["type"] == "http" else None
        if limit is None:
            await self.app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            await self._refuse(scope, receive, send, limit, declared)
            return
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return  # the client went away mid-body: nobody to answer
            body += message.get("body", b"")
            if len(body) > limit:
                await self._refuse(scope, receive, send, limit, declared)
                return
            if not message.get("more_body"):
                break
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()  # after the body: the disconnect, when it comes
            replayed = True
            return {"type": "http.request", "body": bytes(body), "more_body": False}

        await self.app(scope, replay, send)

    @staticmethod
    async def _refuse(scope: Scope, receive: Receive, send: Send, limit: int, declared: str | None) -> None:
        if declared is not None and not declared.isdigit():
            response = JSONResponse({"detail": "invalid Content-Length"}, status_code=400)
        else:
            response = JSONResponse({"detail": f"the request body is larger than {limit} bytes"}, status_code=413,
                                    headers={"Connection": "close"})
        await response(scope, receive, send)
