"""The Index tab: status of the index, an incremental Re-index with a progress bar, and Calibrate (``tune``)."""

from __future__ import annotations

import logging

import gradio as gr

from assistant.web import render
from assistant.web.context import AppContext

__all__ = ["index_tab"]

logger = logging.getLogger(__name__)


def index_tab(ctx: AppContext, demo: gr.Blocks, header: gr.HTML) -> None:
    """Index status and an incremental Re-index with a progress bar; queries keep working meanwhile."""

    def reindex(progress=gr.Progress()):  # noqa: B008 - Gradio's way to ask for a progress tracker
        if not ctx.index_lock.acquire(blocking=False):
            raise gr.Error("An index run is already in progress; wait for it to finish.")
        try:
            progress(0, desc="Reading notes")
            report = ctx.engine.index(
                progress=lambda done, total: progress((done, total), desc="Embedding", unit="chunks"))
        except Exception as e:  # noqa: BLE001 - the UI edge; IngestError/VectorStoreError messages say the fix
            logger.warning("re-index failed: %s", e, exc_info=True)
            raise gr.Error(str(e)) from e
        finally:
            ctx.index_lock.release()
        return ctx.status_html(), render.index_report_html(report), ctx.header_html()

    def calibrate(progress=gr.Progress()):  # noqa: B008
        """``notes-assistant tune`` from the UI: the same function, the same stored file."""
        from evals.tune import calibrate as run

        if ctx.engine.retriever.keyword_only:
            raise gr.Error("Calibration needs the finished index; try again when indexing is done.")
        if not ctx.index_lock.acquire(blocking=False):  # measured on one index version, not one being rewritten
            raise gr.Error("An index run is in progress; calibrate when it has finished.")
        try:
            progress(0, desc="Making questions from your notes and scoring each setting")
            result = run(ctx.engine)
        except Exception as e:  # noqa: BLE001 - the UI edge; TuneError says what to do
            logger.warning("calibration failed: %s", e, exc_info=True)
            raise gr.Error(str(e)) from e
        finally:
            ctx.index_lock.release()
        return ctx.status_html(), render.calibration_report_html(result)

    status = gr.HTML(ctx.status_html(), elem_id="na-index-status")
    with gr.Row():
        start = gr.Button("Re-index", variant="primary", elem_id="na-reindex", scale=0, min_width=140)
        refresh = gr.Button("Refresh status", scale=0, min_width=140)
        tune = gr.Button("Calibrate on my notes", elem_id="na-calibrate", scale=0, min_width=180)
    report = gr.HTML("", elem_id="na-index-report")
    start.click(reindex, None, [status, report, header], concurrency_limit=1)
    tune.click(calibrate, None, [status, report], concurrency_limit=1)
    refreshed = lambda: (ctx.status_html(), ctx.header_html())  # noqa: E731
    refresh.click(refreshed, None, [status, header])
    demo.load(refreshed, None, [status, header], show_progress="hidden")
