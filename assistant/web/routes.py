"""The web app's own HTTP routes: ``/healthz``, ``/notes/{source}?lines=A-B`` (the viewer), ``POST /api/ask``."""

from __future__ import annotations

import secrets

import anyio
from fastapi import Depends, FastAPI, HTTPException
from fastapi.responses import HTMLResponse

from assistant.settings import SettingsError
from assistant.web.chat_state import AskRequest
from assistant.web.context import AppContext
from assistant.web.viewer import content_security_policy, note_page, parse_line_range, read_indexed_note

__all__ = ["add_routes"]


def add_routes(app: FastAPI, ctx: AppContext) -> None:
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
        return HTMLResponse(note_page(source, found.text, parse_line_range(lines), nonce), headers={
            "Content-Security-Policy": content_security_policy(nonce), "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer", "Cache-Control": "no-store",
        })

    @app.post("/api/ask", dependencies=guard)
    async def api_ask(body: AskRequest) -> dict:
        if not body.question.strip():
            raise HTTPException(422, "the question is empty")
        history = [turn.model_dump() for turn in body.history]
        cpu_bound = (body.backend or ctx.settings.backend) == "extractive"
        try:
            answer = await anyio.to_thread.run_sync(ctx.assistant.ask, body.question, history, body.backend,
                                                    body.top_k, limiter=ctx.cpu_limiter if cpu_bound else None)
        except SettingsError as e:
            raise HTTPException(422, str(e)) from e
        return answer.to_json(with_text=True)
