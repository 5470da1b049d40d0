"""What every route and UI handler of the web app shares: settings, one assistant, gates, status."""

from __future__ import annotations

import os
import tempfile
import threading
from collections.abc import Mapping
from pathlib import Path

import anyio
from fastapi import HTTPException, Request

from assistant.settings import Settings
from assistant.web import render
from assistant.web.access import basic_auth_ok, parse_auth
from assistant.web.viewer import note_directory, wikilink_href
from ingest.links import NoteDirectory, WikiLink

__all__ = ["AppContext"]


class AppContext:
    """What every route and UI handler shares: one engine, one assistant (the model loads once)."""

    def __init__(self, settings: Settings, assistant, indexer=None, *, eval_datasets: Path | None = None) -> None:
        self.settings = settings
        self.assistant = assistant
        self.indexer = indexer  # the background NotesWatcher (first index, re-index on change), or None
        self.eval_datasets = eval_datasets  # the Evals tab's dataset folder; None = the bundled evals/datasets/
        self.engine = assistant.engine
        self.credentials = parse_auth(settings.auth)
        self.gradio_app = None  # set after mounting; its session tokens authorize our routes too
        self.index_lock = threading.Lock()  # one UI-started index run at a time
        # Extractive answers are CPU-bound: at most one per core runs, the others wait their turn (less GIL
        # and cache thrashing; measured +40% answers/s under 16 clients). Network-bound LLM calls are not gated.
        self.cpu_limiter = anyio.CapacityLimiter(os.cpu_count() or 2)  # for /api/ask (async)
        self.cpu_gate = threading.BoundedSemaphore(os.cpu_count() or 2)  # for the Gradio handlers (threads)
        self.exports = tempfile.TemporaryDirectory(prefix="notes-assistant-exports-")
        self._sources: tuple[str | None, frozenset[str]] = (None, frozenset())
        self._links: tuple[object, NoteDirectory | None] = (None, None)  # (snapshot, its notes' names/headings)

    def indexed_sources(self) -> frozenset[str]:
        """Sources in the live search snapshot: exactly what an answer can cite."""
        snapshot = self.engine.retriever.snapshot
        version, sources = self._sources
        if version != snapshot.version:
            sources = frozenset(m["source"] for m in snapshot.metadatas)
            self._sources = (snapshot.version, sources)
        return sources

    def link_href(self, link: WikiLink, current: str | None = None) -> str | None:
        """The viewer URL of a ``[[wikilink]]`` (``current``: the note it is written in), None if unresolved.

        Resolved against the indexed notes only; the directory is read once per index
        version, and only when a link is first shown.
        """
        snapshot = self.engine.retriever.snapshot
        seen, directory = self._links
        if seen is not snapshot or directory is None:
            directory = note_directory(self.settings.notes_path, self.indexed_sources())
            self._links = (snapshot, directory)
        target = directory.resolve(link, current)
        return wikilink_href(target) if target else None

    @property
    def model_label(self) -> str:
        return Path(self.settings.embedding_model).name or "all-MiniLM-L6-v2 (bundled)"

    def health(self) -> dict:
        """``/healthz``: from metadata only — no note is read, nothing is logged (it is polled)."""
        fresh = self.engine.freshness()
        return {
            "status": "ok", "indexed": bool(fresh["last_indexed"]), "sources": fresh["sources"],
            "chunks": fresh["chunks"],
            "last_indexed": fresh["last_indexed"], "generation": fresh["generation"],
            "serving_generation": fresh["serving_generation"], "notes_newer": fresh["notes_newer"],
            "stale": fresh["notes_newer"] or fresh["serving_generation"] != fresh["generation"],
            "changed": fresh["changed"], "embedding_model": self.model_label, "backend": self.settings.backend,
            "indexing": self.indexing(), "query_vectors": dict(self.engine.query_cache_stats),
            "calibration": self.engine.calibration.to_json(),
        }

    def indexing(self) -> dict | None:
        """The background index run's progress and whether searches are keyword-only (None: no indexer)."""
        if self.indexer is None:
            return None
        return {**self.indexer.progress().to_json(), "keyword_only": self.engine.retriever.keyword_only}

    def banner_html(self) -> str:
        if self.indexer is None:
            return ""
        return render.indexing_banner_html(self.indexer.progress(), self.engine.retriever.keyword_only)

    def status_html(self) -> str:
        return render.index_status_html(self.engine.status(), self.settings.notes_path, self.model_label,
                                        self.engine.calibration)

    def header_html(self) -> str:
        return render.header_html(self.engine.status())

    def session_ok(self, cookies: Mapping[str, str]) -> bool:
        """Do ``cookies`` carry a login session this server issued (Gradio's ``/login`` cookie)?"""
        if self.gradio_app is None:
            return False
        cookie_id = self.gradio_app.cookie_id
        return any((token := cookies.get(name)) and token in self.gradio_app.tokens
                   for name in (f"access-token-{cookie_id}", f"access-token-unsecure-{cookie_id}"))

    def authorize(self, request: Request) -> None:
        """FastAPI dependency: with auth configured, a Gradio login cookie or HTTP Basic credentials.

        Behind ``gate.AuthGate`` (which also throttles wrong passwords) this only repeats its check.
        """
        if self.credentials is None or self.session_ok(request.cookies):
            return
        if basic_auth_ok(request.headers.get("authorization", ""), self.credentials):
            return
        raise HTTPException(401, "log in first", headers={"WWW-Authenticate": 'Basic realm="notes-assistant"'})
