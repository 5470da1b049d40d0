"""The web app's own HTTP routes: ``/healthz``, ``/notes/{source}?lines=A-B`` (the viewer), ``POST /api/ask``,
and the page's script (``/_na/app.js``).

Rejected requests get a short JSON error: FastAPI's validation handler is replaced
by ``validation_failed``, which never echoes the input (it can be 256 KB, hold
lone surrogates, or non-finite numbers that JSON cannot carry back).
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Iterator
from contextlib import closing

import anyio
from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response

from assistant.answer import Answer
from assistant.settings import SettingsError
from assistant.web.assets import APP_SCRIPT, APP_SCRIPT_PATH
from assistant.web.chat_state import AskRequest, replace_lone_surrogates
from assistant.web.context import AppContext
from assistant.web.viewer import content_security_policy, note_page, parse_line_range, read_indexed_note

__all__ = ["add_routes", "validation_failed", "excerpt"]

logger = logging.getLogger(__name__)

MAX_ERRORS = 5  # problems listed in a 422; the rest are counted
DISCONNECT_CHECK = 0.1  # seconds between looks at the client's connection while an LLM writes the answer


def excerpt(value: object, limit: int = 60) -> str:
    """A short, printable, valid-UTF-8 rendering of ``value`` for an error message.

    >>> excerpt("x" * 100, 10), excerpt("a\\ud800b")
    ('xxxxxxxxx…', 'a�b')
    """
    text, _ = replace_lone_surrogates(str(value))
    return text if len(text) <= limit else text[: limit - 1] + "…"


async def validation_failed(request: Request, error: RequestValidationError) -> JSONResponse:
    """422 with where and what, in a few lines: no ``input`` and no ``ctx`` echoed, long names cut."""
    problems = error.errors()
    detail = [
        {"type": excerpt(p.get("type", "invalid")), "msg": excerpt(p.get("msg", ""), 160),
         "loc": [part if isinstance(part, int) else excerpt(part, 40) for part in p.get("loc", ())][:8]}
        for p in problems[:MAX_ERRORS]
    ]
    body: dict = {"detail": detail}
    if len(problems) > MAX_ERRORS:
        body["more"] = len(problems) - MAX_ERRORS
    return JSONResponse(body, status_code=422)


def _answer_while_connected(request: Request, items: Iterator) -> Answer | None:
    """The final ``Answer`` of ``items`` (an ``Assistant.stream``), or None when the client left first.

    Runs on a worker thread. ``/api/ask`` does not stream, but an LLM writes for seconds: if the client
    disconnects meanwhile, closing the stream closes the request to the LLM, so the endpoint stops
    generating for nobody (it kept going to its token cap). The connection is looked at between
    streamed deltas, so while the LLM reads the prompt the first-token deadline bounds the wait.
    The chat needs none of this: Gradio closes its generator when the browser goes away.
    """
    checked = time.monotonic()
    with closing(items):
        for item in items:
            if isinstance(item, Answer):
                return item
            if time.monotonic() - checked >= DISCONNECT_CHECK:
                checked = time.monotonic()
                if anyio.from_thread.run(request.is_disconnected):
                    logger.info("api ask: the client went away mid-answer; closing the LLM request")
                    return None
    raise RuntimeError("the answer stream ended without an answer")


def add_routes(app: FastAPI, ctx: AppContext) -> None:
    app.add_exception_handler(RequestValidationError, validation_failed)
    guard = [Depends(ctx.authorize)]

    @app.get("/healthz", dependencies=guard)
    def healthz() -> dict:
        return ctx.health()

    @app.get("/notes/{source:path}", response_class=HTMLResponse, dependencies=guard)
    def note(source: str, lines: str | None = None) -> HTMLResponse:
        found = read_indexed_note(ctx.settings.notes_path, source, ctx.indexed_sources())
        if found is None:
            raise HTTPException(404, "no such note in the index")
        nonce = secrets.token_urlsafe(16)
        page = note_page(source, found.text, parse_line_range(lines), nonce, lambda link: ctx.link_href(link, source))
        return HTMLResponse(page, headers={
            "Content-Security-Policy": content_security_policy(nonce), "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer", "Cache-Control": "no-store",
        })

    @app.get(APP_SCRIPT_PATH, dependencies=guard)
    def app_script() -> Response:
        return Response(APP_SCRIPT, media_type="text/javascript", headers={"Cache-Control": "no-cache"})

    @app.post("/api/ask", dependencies=guard, response_model=None)
    async def api_ask(body: AskRequest, request: Request) -> dict | Response:
        if not body.question.strip():
            raise HTTPException(422, "the question is empty")
        history = [turn.model_dump() for turn in body.history]
        try:
            if (body.backend or ctx.settings.backend) == "extractive":  # CPU-bound, milliseconds: nothing to cancel
                answer = await anyio.to_thread.run_sync(ctx.assistant.ask, body.question, history, body.backend,
                                                        body.top_k, limiter=ctx.cpu_limiter)
            else:
                stream = ctx.assistant.stream(body.question, history, body.backend, body.top_k)
                answer = await anyio.to_thread.run_sync(_answer_while_connected, request, stream)
        except SettingsError as e:
            raise HTTPException(422, str(e)) from e
        if answer is None:
            return Response(status_code=499)  # "client closed request": nobody reads it
        return answer.to_json(with_text=True)
