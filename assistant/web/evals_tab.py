"""The Evals tab: run a dataset through ``evals.runner.run_eval``; report, charts, worst questions."""

from __future__ import annotations

import logging
import uuid
from pathlib import Path

import gradio as gr

from assistant.settings import BACKENDS
from assistant.web import render
from assistant.web.context import AppContext

__all__ = ["evals_tab", "datasets_in", "DATASETS"]

logger = logging.getLogger(__name__)

DATASETS = Path(__file__).resolve().parents[2] / "evals" / "datasets"


def datasets_in(folder: Path) -> dict[str, Path]:
    """The ``*.jsonl`` datasets directly in ``folder``, by file name (empty if it is not a folder)."""
    return {p.name: p for p in sorted(folder.glob("*.jsonl")) if p.is_file()} if folder.is_dir() else {}


def evals_tab(ctx: AppContext) -> None:
    """Run ``evals.runner.run_eval`` on a dataset; show the report, charts and worst questions.

    Only the datasets of the configured folder (``ctx.eval_datasets``, the bundled ``evals/datasets/``) are
    offered, by name: a visitor cannot make the server open a path of their choosing.
    """
    folder = ctx.eval_datasets or DATASETS
    choices = list(datasets_in(folder))

    def run(choice, ablate, backend, progress=gr.Progress()):  # noqa: B008
        target = datasets_in(folder).get(choice) if isinstance(choice, str) else None
        if target is None:  # the same answer whether or not such a file exists elsewhere: no probing
            raise gr.Error(f"Pick one of the datasets of {folder.name}/: {', '.join(choices) or 'none found'}.")
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
        dataset = gr.Dropdown(choices, value=choices[0] if choices else None, label=f"Dataset ({folder.name}/)",
                              elem_id="na-eval-dataset")
    with gr.Row(equal_height=True):
        backend = gr.Radio(list(BACKENDS), value="extractive", label="Answerer")
        ablate = gr.Checkbox(False, label="Also run the ablations (slower)")
        start = gr.Button("Run evaluation", variant="primary", elem_id="na-run-eval", scale=0, min_width=180)
    report = gr.HTML("", elem_id="na-eval-report")
    charts = gr.Gallery(label="Charts", columns=2, height=460, object_fit="contain", elem_id="na-eval-charts")
    worst = gr.HTML("", elem_id="na-eval-worst")
    # One progress overlay, on the report (at the top, where the result appears): Gradio puts one on every
    # output by default, and three overlays said the same thing at once.
    start.click(run, [dataset, ablate, backend], [report, charts, worst], concurrency_limit=1,
                show_progress_on=[report])
