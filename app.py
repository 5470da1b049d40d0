"""The web chat's entry point: ``build_app(settings, assistant)`` and ``main()``.

``python app.py`` (``make run``, ``notes-assistant serve``) loads settings, builds or
updates the index with a progress bar, then serves on 127.0.0.1:7860. The pieces
live in ``assistant/web/``: routes (``/healthz``, ``/notes/…``, ``/api/ask``), the
Gradio tabs, rendering and sanitizing, the note viewer, access rules.
"""

from __future__ import annotations

from assistant.bootstrap import prepare_process

# The entry point prepares its process before gradio, huggingface_hub or numpy is imported.
prepare_process()

import argparse  # noqa: E402
import os  # noqa: E402
import logging  # noqa: E402
import sys  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

from typing import TYPE_CHECKING  # noqa: E402

from assistant.settings import BACKENDS, Settings, SettingsError, load_settings  # noqa: E402
from assistant.web.access import LoginThrottle, exposure_problem, is_loopback, port_available  # noqa: E402

if TYPE_CHECKING:
    from fastapi import FastAPI

__all__ = ["build_app", "main"]

logger = logging.getLogger("app")


def build_app(settings: Settings, assistant, indexer=None, *, eval_datasets: Path | None = None,
              login_throttle: LoginThrottle | None = None) -> "FastAPI":
    """The FastAPI app: our routes first, then the Gradio UI mounted at ``/``.

    Args:
        settings: the app's settings (``auth`` enables the login page and protects our routes).
        assistant: a ready ``Assistant``; its engine is shared by every request.
        eval_datasets: the folder whose ``*.jsonl`` files the Evals tab offers (default: the bundled ones).
        login_throttle: the backoff for wrong passwords when ``auth`` is set (default: 10 per minute per client).
    """
    import gradio as gr
    from fastapi import FastAPI
    from starlette.middleware.trustedhost import TrustedHostMiddleware
    from starlette.routing import Mount

    from assistant.web import render
    from assistant.web.assets import APP_CSS, APP_HEAD
    from assistant.web.chat_state import MAX_BODY_BYTES
    from assistant.web.context import AppContext
    from assistant.web.gate import AuthGate
    from assistant.web.routes import add_routes
    from assistant.web.security import BodyLimit, SecurityHeaders
    from assistant.web.ui import build_ui, theme

    ctx = AppContext(settings, assistant, indexer, eval_datasets=eval_datasets)
    app = FastAPI(title="notes-assistant", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.context = ctx
    # Middleware runs outermost-last-added: security headers on everything (refusals included), the host check,
    # the login gate (auth on: every route, Gradio's included), then the body caps (a login form is a few
    # hundred bytes; /api/ask's limit fits its schema).
    app.add_middleware(BodyLimit, limits={"/api/ask": MAX_BODY_BYTES, "/login": 16 * 1024, "/login/": 16 * 1024})
    if ctx.credentials is not None:
        app.add_middleware(AuthGate, ctx=ctx, throttle=login_throttle or LoginThrottle())
    if is_loopback(settings.host):
        # Against DNS rebinding: a page from elsewhere must not reach this server under its own host name.
        hosts = {"127.0.0.1", "localhost", "[::1]", f"[{settings.host}]" if ":" in settings.host else settings.host}
        app.add_middleware(TrustedHostMiddleware, allowed_hosts=sorted(hosts))
    app.add_middleware(SecurityHeaders, pages=["/"])
    add_routes(app, ctx)
    gr.mount_gradio_app(
        app, build_ui(ctx), path="/", auth=ctx.credentials, ssr_mode=False, theme=theme(),
        css=APP_CSS + render.ANSWER_CSS, head=APP_HEAD, footer_links=["api", "settings"], run_history=False,
        mcp_server=False, show_error=True, server_name=settings.host, server_port=settings.port,
    )
    ctx.gradio_app = next(r.app for r in app.routes if isinstance(r, Mount) and hasattr(r.app, "cookie_id"))
    return app


def _parse_args(argv) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m app", description="The notes-assistant web chat.")
    parser.add_argument("--host", help="bind address (default 127.0.0.1; others need NOTES_ASSISTANT_AUTH)")
    parser.add_argument("--port", type=int, help="port (default 7860)")
    parser.add_argument("--notes", type=Path, help="notes file or folder (default notes/)")
    parser.add_argument("--data-dir", type=Path, help="index folder (default .notes-index/)")
    parser.add_argument("--backend", choices=list(BACKENDS), help="default answerer")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="-v info logs, -vv debug")
    return parser.parse_args(argv)


def _log_reindex(report) -> None:
    if report.changed:  # shown at the default log level: the notes just changed under the server
        logger.warning("index updated: %s", report.summary())


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 2


def main(argv: list[str] | None = None) -> int:
    """Load settings, refuse unsafe exposure, serve at once while a background worker indexes. Returns the exit code."""
    args = _parse_args(argv)
    level = logging.WARNING if args.verbose == 0 else logging.INFO if args.verbose == 1 else logging.DEBUG
    logging.basicConfig(level=level, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    try:
        settings = load_settings(os.environ, host=args.host, port=args.port, notes_path=args.notes,
                                 data_dir=args.data_dir, backend=args.backend)
    except SettingsError as e:
        return _fail(str(e))
    problem = exposure_problem(settings.host, settings.auth)
    if problem:
        return _fail(problem)
    if not port_available(settings.host, settings.port):
        return _fail(f"port {settings.port} on {settings.host} is in use; stop the other server or pass --port")

    from assistant.engine import Engine
    from assistant.service import Assistant
    from assistant.watch import NotesWatcher
    from ingest.errors import IngestError
    from vectorstore.errors import VectorStoreError

    try:
        from ingest import read_notes

        engine = Engine(settings)
        notes, _ = read_notes(settings.notes_path)  # read once at start: a missing folder fails here, in one line
        status = engine.status(notes)
        replica = settings.server_mode and engine.maintained_elsewhere()
        if not status.indexed and not replica:
            # Answer first, embed after: keyword answers from the parsed notes right away.
            chunks = engine.preview(notes)
            print(f"notes-assistant: no index yet: answering by keywords now, embedding {chunks} chunks in the "
                  "background (progress: the page banner, /healthz)", file=sys.stderr)
    except (IngestError, VectorStoreError) as e:
        return _fail(str(e))
    except PermissionError as e:
        return _fail(f"permission denied: {e.filename}; fix its permissions or choose another --data-dir")

    import uvicorn

    # One background worker builds or updates the index (never blocking the port), re-indexes when a cited
    # line turns out stale, and with NOTES_ASSISTANT_WATCH=1 after every change. A read replica never writes.
    watcher = None if replica else NotesWatcher(
        engine, on_report=_log_reindex, on_error=lambda e: logger.warning("indexing failed: %s", e),
        initial=status.stale, watch_files=settings.watch)
    assistant = Assistant(engine, settings, on_stale=watcher.request if watcher else None)
    app = build_app(settings, assistant, indexer=watcher)
    if watcher is not None:
        watcher.start()
    threading.Thread(target=_warm_up, args=(assistant,), name="warm-up", daemon=True).start()
    shown = f"[{settings.host}]" if ":" in settings.host else settings.host
    print(f"notes-assistant: serving {settings.notes_path} at http://{shown}:{settings.port}/  (Ctrl+C to stop)",
          file=sys.stderr)
    try:
        uvicorn.run(app, host=settings.host, port=settings.port, log_level="warning", timeout_graceful_shutdown=3)
    finally:
        if watcher is not None:
            watcher.stop()
    return 0


def _warm_up(assistant) -> None:
    """Load the query encoder and build the search snapshot so the first user does not wait for them."""
    started = time.perf_counter()
    try:
        assistant.ask("warm up the query encoder and the search snapshot")
    except Exception as e:  # noqa: BLE001 - a failed warm-up only costs the first user some time
        logger.info("warm-up failed: %s", e)
    logger.info("warmed up ms=%.0f", (time.perf_counter() - started) * 1000)


if __name__ == "__main__":
    sys.exit(main())
