"""The Chat tab: streaming answers with citations, search-only mode, export, answerer settings."""

from __future__ import annotations

import logging
import re
import time
import uuid
from datetime import datetime
from pathlib import Path

import gradio as gr

from assistant.answer import RESET, Answer
from assistant.settings import BACKENDS, LLM_BACKENDS, Settings, SettingsError
from assistant.web import render
from assistant.web.assets import VIEWER_PANEL
from assistant.web.chat_state import chat_history, conversation_markdown, example_questions, replace_lone_surrogates
from assistant.web.context import AppContext

__all__ = ["chat_tab"]

logger = logging.getLogger(__name__)

_MODEL_NAME = re.compile(r"[\w.:/@+-]{1,200}")  # llama3.2, qwen2.5:7b, hf.co/org/model:Q4_K_M


def _clamped_top_k(value, largest: int = 20) -> int:
    """The top-k box's value, whatever a client sent instead (1..largest; the default 8 for junk).

    >>> _clamped_top_k(5), _clamped_top_k(1e9), _clamped_top_k(float("nan")), _clamped_top_k("x")
    (5, 20, 8, 8)
    """
    try:
        return max(1, min(int(value), largest))
    except (TypeError, ValueError, OverflowError):
        return 8


def _example_text(evt: gr.SelectData) -> str:
    return evt.value["text"]


def _export(ctx: AppContext, turns: list[dict]) -> str:
    folder = Path(ctx.exports.name) / uuid.uuid4().hex
    folder.mkdir()
    path = folder / f"conversation-{datetime.now():%Y%m%d-%H%M%S}.md"
    path.write_text(conversation_markdown(turns), encoding="utf-8")
    return str(path)


# The answerer's settings under one name of their own: Gradio's footer has a "Settings" (its language and theme).
SETTINGS_NAME = "Answer settings"
# The chat fills what the window leaves under the header, tabs and settings, so the question box stays in view on
# a 1440×900 laptop (the page used to put the settings below the fold); never shorter than 320 px.
CHAT_HEIGHT = "max(320px, calc(100vh - 430px))"


def _answer_settings(s: Settings, endpoints: dict[str, str]):
    """The answer settings, above the chat: one compact row, and the LLM's endpoint and model only for an LLM.

    Returns:
        the backend, top-k, search-only, endpoint and model components.
    """
    with gr.Accordion(SETTINGS_NAME, open=True, elem_id="na-settings"):
        with gr.Row(equal_height=True, elem_id="na-settings-row"):
            backend = gr.Radio(list(BACKENDS), value=s.backend, label="Answerer", scale=0, min_width=370,
                               elem_id="na-backend")
            top_k = gr.Number(min(s.top_k, 20), minimum=1, maximum=20, step=1, precision=0, scale=0, min_width=170,
                              label="Sections (top-k)", elem_id="na-top-k")
            search_only = gr.Checkbox(False, label="Search only: ranked sections, no answer", scale=1, min_width=160,
                                      elem_id="na-search-only")
        with gr.Row(visible=s.backend in LLM_BACKENDS) as llm_row:
            # Names only: the server's owner configures the URLs (NOTES_ASSISTANT_LLM_ENDPOINTS), so a
            # visitor cannot make this server send requests to an address of their choosing.
            endpoint = gr.Dropdown(list(endpoints), value=next(iter(endpoints), None), label="LLM endpoint",
                                   interactive=len(endpoints) > 1, elem_id="na-endpoint",
                                   info=None if endpoints else "None configured on this server")
            model = gr.Textbox(s.llm_model, label="LLM model", placeholder="e.g. llama3.2", max_length=200)
    backend.change(lambda chosen: gr.update(visible=chosen in LLM_BACKENDS), backend, llm_row, queue=False,
                   show_progress="hidden")
    return backend, top_k, search_only, endpoint, model


def chat_tab(ctx: AppContext) -> None:
    """The answer settings, the chat (streaming answers, sources, export), and the note viewer panel beside."""
    s = ctx.settings

    endpoints = s.llm_endpoint_urls  # name → URL; the browser only ever sees and sends a name

    def llm_settings(backend: str, endpoint: str | None, model: str | None) -> Settings:
        """The per-request settings of an LLM answer: a configured endpoint by name, a model name.

        Raises:
            SettingsError: the name is not one of the configured endpoints, or the model name is not a name.
        """
        if backend not in LLM_BACKENDS:
            return s
        if not endpoints:
            raise SettingsError("no LLM endpoint is configured on this server (NOTES_ASSISTANT_LLM_ENDPOINTS or "
                                "NOTES_ASSISTANT_LLM_BASE_URL); use the extractive answerer")
        if endpoint not in endpoints:
            raise SettingsError(f"choose one of the configured LLM endpoints: {', '.join(endpoints)}")
        model = (model or "").strip() or s.llm_model
        if not _MODEL_NAME.fullmatch(model):
            raise SettingsError("a model name is letters, digits and . : / @ + _ - (at most 200)")
        return s.with_overrides(llm_base_url=endpoints[endpoint], llm_model=model)

    def respond(question, chat, turns, backend, endpoint, model, top_k, search_only):
        # A browser can send unpaired UTF-16 surrogates (pasted from a broken source, or on purpose): they are not
        # text, and the tokenizer would fail on them deep inside the answer. Replace them here, where text enters.
        question, replaced = replace_lone_surrogates(question or "")
        if replaced:
            gr.Warning(f"Your question had {replaced} invalid character{'s' if replaced > 1 else ''} "
                       "(unpaired UTF-16 surrogates); they were replaced by �.")
        question = " ".join(question.split())
        top_k = _clamped_top_k(top_k)
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
                    scope = ctx.engine.narrow(question)  # "#tag" / "tag:x" narrow the search, as in ask
                    results = ctx.engine.search(scope.query, top_k, sources=scope.sources)
                if scope.notice:
                    gr.Info(scope.notice)
                chat[-1]["content"] = render.search_html(question, results, ctx.link_href)
                turns = [*turns, {"kind": "search", "question": question, "results": [r.to_json() for r in results]}]
            else:
                per_request = llm_settings(backend, endpoint, model)
                text, answer, last, shown = "", None, 0.0, False
                stream = ctx.assistant.stream(question, chat_history(turns), backend, top_k, per_request)
                if backend == "extractive":  # one CPU-bound step, nothing to stream: run it under the gate
                    with ctx.cpu_gate:
                        stream = list(stream)
                for item in stream:
                    if isinstance(item, Answer):
                        answer = item
                    elif item is RESET:
                        text, shown = "", False  # the LLM failed mid-answer: drop its partial text
                        chat[-1]["content"] = render.streaming_html("")
                        yield "", chat, turns, gr.update()
                    else:
                        text += item
                        # LLM text as it comes, re-rendered at most ~12 times a second. An extractive answer
                        # comes whole: it is revealed below instead.
                        if backend != "extractive" and time.monotonic() - last > 0.08:
                            last, shown = time.monotonic(), True
                            chat[-1]["content"] = render.streaming_html(text)
                            yield "", chat, turns, gr.update()
                steps = [render.answer_html(answer, ctx.link_href)]
                if answer.backend == "extractive" and not shown:
                    # Block by block, one update each (Gradio sends every yield): it appears as an LLM's
                    # answer does. No delay between them, only the time each update takes to travel.
                    steps = render.reveal_html(answer, ctx.link_href)
                for step in steps[:-1]:
                    chat[-1]["content"] = step
                    yield "", chat, turns, gr.update()
                chat[-1]["content"] = steps[-1]
                turns = [*turns, {"kind": "answer", **answer.to_json(with_text=True)}]
        except Exception as e:  # noqa: BLE001 - the UI edge: a message in the chat, never a traceback
            hint = f" Fix it under {SETTINGS_NAME}." if isinstance(e, SettingsError) else ""
            logger.warning("chat failed: %s", e, exc_info=not isinstance(e, SettingsError))
            chat[-1]["content"] = render.error_html(f"Could not answer: {e}.{hint}")
            yield "", chat, turns, gr.update()
            return
        yield "", chat, turns, gr.update(value=_export(ctx, turns), interactive=True)

    examples = [{"text": q} for q in example_questions(ctx.engine.retriever.snapshot.metadatas)]
    turns = gr.State([])
    with gr.Row(equal_height=False):
        with gr.Column(scale=3, min_width=420):
            backend, top_k, search_only, endpoint, model = _answer_settings(s, endpoints)
            chat = gr.Chatbot(
                # Messages are HTML we rendered and sanitized; Gradio must not render markdown or raw HTML
                # of its own on top, and its DOMPurify pass (sanitize_html) stays on as a second lock.
                value=[], elem_id="na-chat", show_label=False, height=CHAT_HEIGHT, render_markdown=False,
                sanitize_html=True, allow_tags=False, latex_delimiters=[], buttons=[], feedback_options=None,
                examples=examples,
                placeholder="Ask anything about your notes — every answer cites the lines it comes from.",
            )
            with gr.Row(equal_height=True):
                question = gr.Textbox(show_label=False, placeholder="Ask your notes…", lines=1, max_lines=6, scale=6,
                                      elem_id="na-question")  # focused by our script (assets.py), unscrolled
                send = gr.Button("Ask", variant="primary", scale=1, min_width=90, elem_id="na-send")
            with gr.Row():
                clear = gr.Button("Clear", size="sm", elem_id="na-clear")
                export = gr.DownloadButton("Export conversation (.md)", size="sm", interactive=False,
                                           elem_id="na-export")
        with gr.Column(scale=2, min_width=360):
            gr.HTML(VIEWER_PANEL, elem_id="na-viewer")

    ask = dict(fn=respond, inputs=[question, chat, turns, backend, endpoint, model, top_k, search_only],
               outputs=[question, chat, turns, export], concurrency_id="chat")
    question.submit(**ask)
    send.click(**ask)
    chat.example_select(_example_text, None, question, queue=False).then(**ask)
    cleared = ("", [], [], gr.update(value=None, interactive=False))
    clear.click(lambda: cleared, None, [question, chat, turns, export], queue=False)
    chat.clear(lambda: cleared, None, [question, chat, turns, export], queue=False)
