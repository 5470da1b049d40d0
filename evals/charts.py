"""PNG charts of an eval (matplotlib's Agg canvas, no pyplot global state: safe inside the web app)."""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

__all__ = ["KIND_METRICS", "COMPARE_METRICS", "metrics_by_kind_chart", "latency_chart", "compare_chart"]

logger = logging.getLogger(__name__)

KIND_METRICS = ("hit@5", "mrr@10", "key_fact_recall", "citation_hit", "groundedness", "pass_rate")
COMPARE_METRICS = (
    "hit@1", "hit@5", "mrr@10", "ndcg@10", "recall@10", "key_fact_recall", "citation_precision",
    "citation_hit", "groundedness", "abstention_f1", "answered_rate", "pass_rate",
)


def _figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _value(v) -> float:
    return float("nan") if v is None or (isinstance(v, float) and math.isnan(v)) else float(v)


def metrics_by_kind_chart(by_kind: Mapping[str, Mapping], path: Path) -> Path:
    """Grouped bars: one group per question kind, one bar per metric of ``KIND_METRICS`` (0–1)."""
    kinds = list(by_kind)
    figure = _figure(max(7.0, 1.4 * len(kinds) + 2), 4.2)
    axes = figure.add_subplot()
    width = 0.8 / len(KIND_METRICS)
    for i, metric in enumerate(KIND_METRICS):
        xs = [k + (i - (len(KIND_METRICS) - 1) / 2) * width for k in range(len(kinds))]
        axes.bar(xs, [_value(by_kind[kind].get(metric)) for kind in kinds], width, label=metric)
    axes.set_xticks(range(len(kinds)), [f"{kind}\n(n={by_kind[kind]['count']})" for kind in kinds])
    axes.set_ylim(0, 1.05)
    axes.set_ylabel("score (higher is better)")
    axes.set_title("Metrics by question kind (unanswerable: pass = abstained)")
    figure.legend(*axes.get_legend_handles_labels(), loc="outside lower center", ncols=len(KIND_METRICS), fontsize="small")
    axes.grid(axis="y", alpha=0.3)
    figure.savefig(path)
    return path


def latency_chart(timings: Sequence[Mapping[str, float]], stages: Sequence[str], path: Path) -> Path:
    """Box plots of milliseconds per stage on a log scale (a cold first question would squash a linear one),
    p50/p95 written above each box."""
    import numpy as np

    floor = 0.1  # ms: stages that take ~0 (condense without history) still show on a log axis
    present = [s for s in stages if any(s in t for t in timings)]
    data = [np.maximum(np.asarray([t[s] for t in timings if s in t], dtype=float), floor) for s in present]
    figure = _figure(7.0, 4.2)
    axes = figure.add_subplot()
    if data:
        axes.boxplot(data, tick_labels=present, showfliers=True)
        axes.set_yscale("log")
        top = max(float(d.max()) for d in data)
        for i, d in enumerate(data, start=1):
            axes.text(i, top * 1.6, f"p50 {np.percentile(d, 50):.0f}\np95 {np.percentile(d, 95):.0f}",
                      ha="center", va="bottom", fontsize="small")
        axes.set_ylim(floor * 0.8, top * 8)
    axes.set_ylabel("milliseconds, log scale (lower is better)")
    axes.set_title(f"Latency per stage ({len(timings)} questions)")
    axes.grid(axis="y", alpha=0.3)
    figure.savefig(path)
    return path


def compare_chart(before: Mapping[str, float | None], after: Mapping[str, float | None], path: Path,
                  labels: tuple[str, str] = ("before", "after")) -> Path:
    """Before/after bars for the summary metrics both runs have."""
    metrics = [m for m in COMPARE_METRICS if before.get(m) is not None or after.get(m) is not None]
    figure = _figure(max(7.0, 0.7 * len(metrics) + 2), 4.2)
    axes = figure.add_subplot()
    xs = range(len(metrics))
    axes.bar([x - 0.2 for x in xs], [_value(before.get(m)) for m in metrics], 0.4, label=labels[0])
    axes.bar([x + 0.2 for x in xs], [_value(after.get(m)) for m in metrics], 0.4, label=labels[1])
    axes.set_xticks(list(xs), metrics, rotation=35, ha="right")
    axes.set_ylim(0, 1.05)
    axes.set_ylabel("score (higher is better)")
    axes.set_title("Before / after")
    figure.legend(*axes.get_legend_handles_labels(), loc="outside right upper")
    axes.grid(axis="y", alpha=0.3)
    figure.savefig(path)
    return path
