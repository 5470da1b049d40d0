"""The web chat: a FastAPI app with the Gradio UI mounted at ``/`` plus our own routes.

``python app.py`` (``make run``, ``notes-assistant serve``) loads settings, builds or
updates the index with a progress bar, then serves on 127.0.0.1:7860.
``build_app(settings, assistant)`` is the factory tests use. Routes:
``/notes/{source}?lines=A-B`` (the note viewer), ``/healthz``, ``POST /api/ask``.
"""

from __future__ import annotations

import os

# Before gradio (and numpy) is imported in this process: no analytics pings, no model hub downloads.
os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
os.environ["HF_HUB_OFFLINE"] = "1"
# One BLAS thread per request: the server runs many queries at once, and OpenBLAS's own thread pool on a
# busy 2-core machine made one query encoding 10x slower (bench/load_test.py).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import logging  # noqa: E402
import secrets  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from datetime import datetime  # noqa: E402
from pathlib import Path  # noqa: E402

import anyio  # noqa: E402
import gradio as gr  # noqa: E402
from fastapi import Depends, FastAPI, HTTPException, Request  # noqa: E402
from fastapi.responses import HTMLResponse  # noqa: E402

from assistant import render  # noqa: E402
from assistant.answer import RESET, Answer  # noqa: E402
from assistant.settings import Settings, SettingsError, load_settings  # noqa: E402
from assistant.viewer import content_security_policy, note_page, parse_line_range, read_indexed_note  # noqa: E402
from assistant.web_assets import APP_CSS, APP_HEAD, VIEWER_PANEL  # noqa: E402
from assistant.web_chat import AskRequest, chat_history, conversation_markdown, example_questions  # noqa: E402
from assistant.web_security import (  # noqa: E402
    basic_auth_ok,
    exposure_problem,
    is_loopback,
    parse_auth,
    port_available,
)

__all__ = ["build_app", "main"]

logger = logging.getLogger("app")

BACKENDS = ["extractive", "openai", "ollama"]
DATASETS = Path(__file__).resolve().parent / "evals" / "datasets"


class _Context:
    """What every route and UI handler shares: one engine, one assistant (the model loads once)."""

    def __init__(self, settings: Settings, assistant) -> None:
        self.settings = settings
        self.assistant = assistant
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

    def indexed_sources(self) -> frozenset[str]:
        """Sources in the live search snapshot: exactly what an answer can cite."""
        snapshot = self.engine.retriever.snapshot
        version, sources = self._sources
        if version != snapshot.version:
            sources = frozenset(m["source"] for m in snapshot.metadatas)
            self._sources = (snapshot.version, sources)
        return sources

    @property
    def model_label(self) -> str:
        return Path(self.settings.embedding_model).name or "all-MiniLM-L6-v2 (bundled)"

    def health(self) -> dict:
        status = self.engine.status()
        return {
            "status": "ok", "indexed": status.indexed, "sources": status.sources, "chunks": status.chunks,
            "last_indexed": status.last_indexed, "stale": status.stale, "embedding_model": self.model_label,
            "backend": self.settings.backend,
        }

    def status_html(self) -> str:
        return render.index_status_html(self.engine.status(), self.settings.notes_path, self.model_label)

    def header_html(self) -> str:
        return render.header_html(self.engine.status())

    def authorize(self, request: Request) -> None:
        """FastAPI dependency: with auth configured, a Gradio login cookie or HTTP Basic credentials."""
        if self.credentials is None:
            return
        if self.gradio_app is not None:
            cookie_id = self.gradio_app.cookie_id
            for name in (f"access-token-{cookie_id}", f"access-token-unsecure-{cookie_id}"):
                token = request.cookies.get(name)
                if token and token in self.gradio_app.tokens:
                    return
        if basic_auth_ok(request.headers.get("authorization", ""), self.credentials):
            return
        raise HTTPException(401, "log in first", headers={"WWW-Authenticate": 'Basic realm="notes-assistant"'})


def _add_routes(app: FastAPI, ctx: _Context) -> None:
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


# -- the Gradio UI -----------------------------------------------------------------


def _example_text(evt: gr.SelectData) -> str:
    return evt.value["text"]


def _export(ctx: _Context, turns: list[dict]) -> str:
    folder = Path(ctx.exports.name) / uuid.uuid4().hex
    folder.mkdir()
    path = folder / f"conversation-{datetime.now():%Y%m%d-%H%M%S}.md"
    path.write_text(conversation_markdown(turns), encoding="utf-8")
    return str(path)


def _chat_tab(ctx: _Context) -> None:
    """The chat (streaming answers, sources, export) beside the note viewer panel; settings below."""
    s = ctx.settings

    def respond(question, chat, turns, backend, base_url, model, top_k, search_only):
        question = " ".join((question or "").split())
        if not question:
            gr.Info("Type a question first.")
            yield "", chat, turns, gr.update()
            return
        if len(question) > s.max_question_chars:
            gr.Warning(f"Questions are limited to {s.max_question_chars} characters; yours was shortened.")
            question = question[: s.max_question_chars]
        chat = [*chat, {"role": "user", "content": render.question_html(question)},
                {"role": "assistant", "content": render.streaming_html("")}]
        yield "", chat, turns, gr.update()
        try:
            if search_only:
                with ctx.cpu_gate:
                    results = ctx.engine.search(question, int(top_k))
                chat[-1]["content"] = render.search_html(question, results)
                turns = [*turns, {"kind": "search", "question": question, "results": [r.to_json() for r in results]}]
            else:
                per_request = s.with_overrides(llm_base_url=(base_url or "").strip(), llm_model=(model or "").strip())
                text, answer, last = "", None, 0.0
                stream = ctx.assistant.stream(question, chat_history(turns), backend, int(top_k), per_request)
                if backend == "extractive":  # one CPU-bound step, nothing to stream: run it under the gate
                    with ctx.cpu_gate:
                        stream = list(stream)
                for item in stream:
                    if isinstance(item, Answer):
                        answer = item
                    elif item is RESET:
                        text = ""  # the LLM failed mid-answer: drop its partial text
                    else:
                        text += item
                        if time.monotonic() - last > 0.08:  # re-render at most ~12 times a second
                            last = time.monotonic()
                            chat[-1]["content"] = render.streaming_html(text)
                            yield "", chat, turns, gr.update()
                chat[-1]["content"] = render.answer_html(answer)
                turns = [*turns, {"kind": "answer", **answer.to_json(with_text=True)}]
        except Exception as e:  # noqa: BLE001 - the UI edge: a message in the chat, never a traceback
            hint = " Fix it under Settings." if isinstance(e, SettingsError) else ""
            logger.warning("chat failed: %s", e, exc_info=not isinstance(e, SettingsError))
            chat[-1]["content"] = render.error_html(f"Could not answer: {e}.{hint}")
            yield "", chat, turns, gr.update()
            return
        yield "", chat, turns, gr.update(value=_export(ctx, turns), interactive=True)

    examples = [{"text": q} for q in example_questions(ctx.engine.retriever.snapshot.metadatas)]
    turns = gr.State([])
    with gr.Row(equal_height=False):
        with gr.Column(scale=3, min_width=420):
            chat = gr.Chatbot(
                # Messages are HTML we rendered and sanitized; Gradio must not render markdown or raw HTML
                # of its own on top, and its DOMPurify pass (sanitize_html) stays on as a second lock.
                value=[], elem_id="na-chat", show_label=False, height=600, render_markdown=False, sanitize_html=True,
                allow_tags=False, latex_delimiters=[], buttons=[], feedback_options=None, examples=examples,
                placeholder="Ask anything about your notes — every answer cites the lines it comes from.",
            )
            with gr.Row(equal_height=True):
                question = gr.Textbox(show_label=False, placeholder="Ask your notes…", lines=1, max_lines=6, scale=6,
                                      autofocus=True, elem_id="na-question")
                send = gr.Button("Ask", variant="primary", scale=1, min_width=90, elem_id="na-send")
            with gr.Row():
                clear = gr.Button("Clear", size="sm", elem_id="na-clear")
                export = gr.DownloadButton("Export conversation (.md)", size="sm", interactive=False,
                                           elem_id="na-export")
            with gr.Accordion("Settings", open=False, elem_id="na-settings"):
                with gr.Row():
                    backend = gr.Radio(BACKENDS, value=s.backend, label="Answerer")
                    top_k = gr.Slider(1, 20, value=min(s.top_k, 20), step=1, label="Sections retrieved (top-k)")
                with gr.Row():
                    base_url = gr.Textbox(s.llm_base_url, label="LLM endpoint URL",
                                          placeholder="http://127.0.0.1:11434 or http://127.0.0.1:8080/v1")
                    model = gr.Textbox(s.llm_model, label="LLM model", placeholder="e.g. llama3.2")
                search_only = gr.Checkbox(False, label="Search only: show ranked sections, no answer",
                                          elem_id="na-search-only")
        with gr.Column(scale=2, min_width=360):
            gr.HTML(VIEWER_PANEL, elem_id="na-viewer")

    ask = dict(fn=respond, inputs=[question, chat, turns, backend, base_url, model, top_k, search_only],
               outputs=[question, chat, turns, export], concurrency_id="chat")
    question.submit(**ask)
    send.click(**ask)
    chat.example_select(_example_text, None, question, queue=False).then(**ask)
    cleared = ("", [], [], gr.update(value=None, interactive=False))
    clear.click(lambda: cleared, None, [question, chat, turns, export], queue=False)
    chat.clear(lambda: cleared, None, [question, chat, turns, export], queue=False)


def _index_tab(ctx: _Context, demo: gr.Blocks, header: gr.HTML) -> None:
    """Index status and an incremental Re-index with a progress bar; queries keep working meanwhile."""

    def reindex(progress=gr.Progress()):  # noqa: B008 - Gradio's way to ask for a progress tracker
        if not ctx.index_lock.acquire(blocking=False):
            raise gr.Error("An index run is already in progress; wait for it to finish.")
        try:
            progress(0, desc="Reading notes")
            report = ctx.engine.index(
                progress=lambda done, total: progress((done, total), desc="Embedding", unit="chunks"))
        except Exception as e:  # noqa: BLE001 - the UI edge; IngestError/IndexError_ messages say the fix
            logger.warning("re-index failed: %s", e, exc_info=True)
            raise gr.Error(str(e)) from e
        finally:
            ctx.index_lock.release()
        return ctx.status_html(), render.index_report_html(report), ctx.header_html()

    status = gr.HTML(ctx.status_html(), elem_id="na-index-status")
    with gr.Row():
        start = gr.Button("Re-index", variant="primary", elem_id="na-reindex", scale=0, min_width=140)
        refresh = gr.Button("Refresh status", scale=0, min_width=140)
    report = gr.HTML("", elem_id="na-index-report")
    start.click(reindex, None, [status, report, header], concurrency_limit=1)
    refreshed = lambda: (ctx.status_html(), ctx.header_html())  # noqa: E731
    refresh.click(refreshed, None, [status, header])
    demo.load(refreshed, None, [status, header], show_progress="hidden")


def _build_ui(ctx: _Context) -> gr.Blocks:
    with gr.Blocks(title="Notes assistant", analytics_enabled=False, delete_cache=(3600, 3600)) as demo:
        header = gr.HTML(ctx.header_html(), elem_id="na-header-block")
        with gr.Tabs():
            with gr.Tab("Chat", id="chat"):
                _chat_tab(ctx)
            with gr.Tab("Index", id="index"):
                _index_tab(ctx, demo, header)
            with gr.Tab("Evals", id="evals"):
                _evals_tab(ctx)
    demo.queue(default_concurrency_limit=16)  # ≥ 16 people asking at once; one shared engine and model
    return demo


def _evals_tab(ctx: _Context) -> None:
    """Run ``evals.runner.run_eval`` on a dataset; show the report, charts and worst questions."""
    choices = sorted(p.name for p in DATASETS.glob("*.jsonl")) if DATASETS.is_dir() else []

    def run(choice, path_text, ablate, backend, progress=gr.Progress()):  # noqa: B008
        path_text = (path_text or "").strip()
        target = Path(path_text).expanduser() if path_text else (DATASETS / choice if choice else None)
        if target is None or target.suffix != ".jsonl" or not target.is_file():
            raise gr.Error(f"Pick a dataset, or give the path of an existing .jsonl file (got {target or 'nothing'}).")
        try:
            from evals.runner import run_eval  # noqa: PLC0415 - heavy (ranx, matplotlib): only when asked
        except ImportError as e:
            raise gr.Error(f"The evaluation runner is not available: {e}") from e
        progress(0, desc="Starting")
        out_dir = Path(ctx.exports.name) / f"eval-{uuid.uuid4().hex[:12]}"  # temp: Gradio may serve the charts
        try:
            result = run_eval(ctx.assistant, target, out_dir=out_dir, ablate=bool(ablate), backend=backend,
                              progress=lambda done, total: progress((done, total), desc="Evaluating", unit="questions"))
        except Exception as e:  # noqa: BLE001 - the UI edge; DatasetError says what is wrong with the file
            logger.warning("eval failed: %s", e, exc_info=True)
            raise gr.Error(f"The evaluation failed: {e}") from e
        charts = [(str(p), Path(p).stem.replace("_", " ")) for p in result.chart_paths]
        return render.report_html(result.report_markdown), charts, render.worst_html(result.worst)

    with gr.Row():
        dataset = gr.Dropdown(choices, value=choices[0] if choices else None, label="Dataset (evals/datasets/)")
        path = gr.Textbox(label="…or the path of a .jsonl dataset", placeholder="/path/to/questions.jsonl")
    with gr.Row(equal_height=True):
        backend = gr.Radio(BACKENDS, value="extractive", label="Answerer")
        ablate = gr.Checkbox(False, label="Also run the ablations (slower)")
        start = gr.Button("Run evaluation", variant="primary", elem_id="na-run-eval", scale=0, min_width=180)
    report = gr.HTML("", elem_id="na-eval-report")
    charts = gr.Gallery(label="Charts", columns=2, height=460, object_fit="contain", elem_id="na-eval-charts")
    worst = gr.HTML("", elem_id="na-eval-worst")
    start.click(run, [dataset, path, ablate, backend], [report, charts, worst], concurrency_limit=1)


def _theme():
    system = ["ui-sans-serif", "system-ui", "-apple-system", "Segoe UI", "sans-serif"]
    mono = ["ui-monospace", "SFMono-Regular", "Menlo", "Consolas", "monospace"]
    # Font names as plain strings: nothing is fetched from Google Fonts (offline, and private).
    return gr.themes.Soft(primary_hue="indigo", neutral_hue="slate", font=system, font_mono=mono)


def build_app(settings: Settings, assistant) -> FastAPI:
    """The FastAPI app: our routes first, then the Gradio UI mounted at ``/``.

    Args:
        settings: the app's settings (``auth`` enables the login page and protects our routes).
        assistant: a ready ``Assistant``; its engine is shared by every request.
    """
    from starlette.middleware.trustedhost import TrustedHostMiddleware
    from starlette.routing import Mount

    ctx = _Context(settings, assistant)
    app = FastAPI(title="notes-assistant", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.context = ctx
    if is_loopback(settings.host):
        # Against DNS rebinding: a page from elsewhere must not reach this server under its own host name.
        hosts = {"127.0.0.1", "localhost", "[::1]", f"[{settings.host}]" if ":" in settings.host else settings.host}
        app.add_middleware(TrustedHostMiddleware, allowed_hosts=sorted(hosts))
    _add_routes(app, ctx)
    gr.mount_gradio_app(
        app, _build_ui(ctx), path="/", auth=ctx.credentials, ssr_mode=False, theme=_theme(),
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
    parser.add_argument("--backend", choices=BACKENDS, help="default answerer")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="-v info logs, -vv debug")
    return parser.parse_args(argv)


def _log_reindex(report) -> None:
    if report.changed:  # shown at the default log level: the notes just changed under the server
        logger.warning("notes changed, re-indexed: %s", report.summary())


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 2


def main(argv: list[str] | None = None) -> int:
    """Load settings, refuse unsafe exposure, build/update the index, warm up, serve. Returns the exit code."""
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

    from assistant.cli import ensure_index
    from assistant.engine import Engine
    from assistant.service import Assistant
    from ingest.errors import IngestError
    from vectorstore.errors import IndexError_

    try:
        engine = Engine(settings)
        ensure_index(engine)  # a tqdm bar on stderr while embedding
        assistant = Assistant(engine, settings)
        started = time.perf_counter()
        assistant.ask("warm up the query encoder and the search snapshot")  # the first user should not wait
        logger.info("warmed up ms=%.0f", (time.perf_counter() - started) * 1000)
    except (IngestError, IndexError_) as e:
        return _fail(str(e))
    except PermissionError as e:
        return _fail(f"permission denied: {e.filename}; fix its permissions or choose another --data-dir")

    import uvicorn

    app = build_app(settings, assistant)
    shown = f"[{settings.host}]" if ":" in settings.host else settings.host
    print(f"notes-assistant: serving {settings.notes_path} at http://{shown}:{settings.port}/  (Ctrl+C to stop)",
          file=sys.stderr)
    watcher = None
    if settings.watch:  # re-index when the notes change (NOTES_ASSISTANT_WATCH=1)
        from assistant.watch import NotesWatcher

        watcher = NotesWatcher(engine, on_report=_log_reindex,
                               on_error=lambda e: logger.warning("re-index after a change failed: %s", e)).start()
    try:
        uvicorn.run(app, host=settings.host, port=settings.port, log_level="warning", timeout_graceful_shutdown=3)
    finally:
        if watcher is not None:
            watcher.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
