"""The Gradio UI: a header and three tabs (Chat, Index, Evals) over one ``AppContext``."""

from __future__ import annotations

import gradio as gr

from assistant.web.chat_tab import chat_tab
from assistant.web.context import AppContext
from assistant.web.evals_tab import evals_tab
from assistant.web.index_tab import index_tab

__all__ = ["build_ui", "theme"]


def build_ui(ctx: AppContext) -> gr.Blocks:
    with gr.Blocks(title="Notes assistant", analytics_enabled=False, delete_cache=(3600, 3600)) as demo:
        header = gr.HTML(ctx.header_html(), elem_id="na-header-block")
        banner = gr.HTML(ctx.banner_html(), elem_id="na-indexing")
        # While a background index run works, its progress line refreshes every 2 s (cheap: no note is read).
        gr.Timer(2.0).tick(ctx.banner_html, None, banner, show_progress="hidden", queue=False)
        with gr.Tabs():
            with gr.Tab("Chat", id="chat"):
                chat_tab(ctx)
            with gr.Tab("Index", id="index"):
                index_tab(ctx, demo, header)
            with gr.Tab("Evals", id="evals"):
                evals_tab(ctx)
    demo.queue(default_concurrency_limit=16)  # ≥ 16 people asking at once; one shared engine and model
    return demo


def theme():
    system = ["ui-sans-serif", "system-ui", "-apple-system", "Segoe UI", "sans-serif"]
    mono = ["ui-monospace", "SFMono-Regular", "Menlo", "Consolas", "monospace"]
    # Font names as plain strings: nothing is fetched from Google Fonts (offline, and private).
    return gr.themes.Soft(primary_hue="indigo", neutral_hue="slate", font=system, font_mono=mono)
