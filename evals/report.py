"""Write an eval's files: metrics.json, per_question.jsonl, report.md and PNG charts."""

from __future__ import annotations

import json
import logging
import math
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from evals.metrics import ANSWER_METRICS, RETRIEVAL_METRICS, STAGES

__all__ = ["git_commit", "write_json", "write_jsonl", "write_report", "render_markdown", "fmt", "SUMMARY_ROWS", "KIND_COLUMNS"]

logger = logging.getLogger(__name__)

SUMMARY_ROWS = RETRIEVAL_METRICS + ANSWER_METRICS
KIND_COLUMNS = ("hit@5", "mrr@10", "ndcg@10", "key_fact_recall", "citation_precision", "citation_hit",
                "groundedness", "answered_rate", "pass_rate")


def git_commit(cwd: Path | None = None) -> str | None:
    """The commit of the code being evaluated (``git rev-parse HEAD``), None outside a git checkout."""
    cwd = cwd or Path(__file__).resolve().parent
    try:
        done = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    if done.returncode != 0:
        return None
    return done.stdout.strip() or None


def _clean(obj):
    """JSON-safe: NaN → None, tuples → lists, numpy scalars → Python numbers."""
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if hasattr(obj, "item") and not isinstance(obj, (str, bytes)):
        obj = obj.item()
    if isinstance(obj, float) and (math.isnan(obj) or math.isinf(obj)):
        return None
    return obj


def write_json(path: Path, obj) -> None:
    path.write_text(json.dumps(_clean(obj), ensure_ascii=False, indent=2) + "\n", encoding="utf-8")


def write_jsonl(path: Path, rows: Sequence[dict]) -> None:
    """One JSON object per line (per_question.jsonl, tune's synthetic questions)."""
    with Path(path).open("w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(_clean(row), ensure_ascii=False) + "\n")


def write_report(out_dir: Path, metrics: dict, rows: Sequence[dict], worst: Sequence[dict],
                 comparison: dict | None = None) -> list[Path]:
    """Write metrics.json, per_question.jsonl and the charts into ``out_dir``; return the chart paths.

    report.md is written by the caller from ``render_markdown`` (it also serves the web tab).
    """
    from evals import charts

    out_dir.mkdir(parents=True, exist_ok=True)
    write_json(out_dir / "metrics.json", metrics)
    write_jsonl(out_dir / "per_question.jsonl", rows)
    paths = [
        charts.metrics_by_kind_chart(metrics["by_kind"], out_dir / "metrics_by_kind.png"),
        charts.latency_chart([r["timings_ms"] for r in rows], STAGES, out_dir / "latency.png"),
    ]
    if comparison is not None:
        write_json(out_dir / "compare.json", comparison)
        before = {m: d["before"] for m, d in comparison["deltas"].items()}
        after = {m: d["after"] for m, d in comparison["deltas"].items()}
        paths.append(charts.compare_chart(before, after, out_dir / "compare.png"))
    logger.info("eval report out_dir=%s charts=%d", out_dir, len(paths))
    return paths


def fmt(value, digits: int = 3) -> str:
    """A metric for a table: None → "–", floats rounded.

    >>> fmt(None), fmt(0.91666), fmt(3)
    ('–', '0.917', '3')
    """
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _table(header: Sequence[str], rows: Sequence[Sequence]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c).replace("|", "\\|") for c in row) + " |" for row in rows]
    return lines + [""]


def _compare_section(comparison: Mapping) -> list[str]:
    out = ["## Compared with " + f"`{comparison['previous_dir']}`", ""]
    out += _table(
        ["metric", "before", "after", "delta"],
        [[m, fmt(d["before"]), fmt(d["after"]), fmt(d["delta"], 3) if d["delta"] is not None else "–"]
         for m, d in comparison["deltas"].items()],
    )
    sig = comparison.get("significance") or {}
    if sig.get("metrics"):
        out.append(f"Paired significance test ({sig['test']}, n={sig['questions']}, p < {sig['max_p']}):")
        out.append("")
        out += _table(["metric", "p-value", "significant"],
                      [[m, fmt(v["p_value"], 4), "yes" if v["significant"] else "no"] for m, v in sig["metrics"].items()])
    flipped = comparison.get("flipped_to_fail", [])
    out.append(f"Questions that flipped pass → fail: {len(flipped)}")
    out += [f"- **{f['id']}** ({f['kind']}): {f['question']} — " + ("; ".join(f["problems"]) or "see per_question.jsonl")
            for f in flipped]
    fixed = comparison.get("flipped_to_pass", [])
    out += ["", f"Questions that flipped fail → pass: {len(fixed)}" + (f" ({', '.join(f['id'] for f in fixed)})" if fixed else ""), ""]
    return out


def render_markdown(metrics: Mapping, worst: Sequence[dict], chart_paths: Sequence[Path] = (),
                    out_dir: Path | None = None) -> str:
    """report.md: provenance, summary table, by-kind table, latency, comparison, worst questions, charts."""
    config, dataset, summary = metrics["config"], metrics["dataset"], metrics["summary"]
    counts = metrics["counts"]
    out = [
        "# Eval report", "",
        (f"- Dataset: `{dataset['path']}` — {dataset['records']} questions "
         f"({counts['answerable']} answerable, {counts['unanswerable']} unanswerable), sha256 `{dataset['sha256'][:12]}`"
         + (f", **{len(dataset['skipped'])} malformed lines skipped**" if dataset["skipped"] else "")
         + (f"; only the **{dataset['split']}** half (`--split {dataset['split']}`)" if dataset.get("split") else "")),
        (f"- Backend: {config['backend']} (used: {', '.join(f'{k} ×{v}' for k, v in metrics['backends_used'].items())}); "
         f"index: {config['chunks']} chunks of ≤ {config['chunk_tokens']} tokens; fusion dense {config['dense_weight']} / "
         f"bm25 {config['bm25_weight']}, rrf_k {config['rrf_k']}"),
        f"- Commit: `{metrics.get('git_commit') or 'unknown'}` — {metrics['created']}"
        + (f" — {metrics['timing_s']['total']:.1f} s" if "total" in metrics.get("timing_s", {}) else ""),
        "",
        "## Summary", "",
    ]
    out += _table(["metric", "value"], [[m, fmt(summary.get(m))] for m in SUMMARY_ROWS])
    if len(metrics["retrieval"]) > 1:
        modes = list(metrics["retrieval"])
        out += ["## Retrieval by mode (ablation)", ""]
        out += _table(["metric", *modes], [[m, *(fmt(metrics["retrieval"][mode][m]) for mode in modes)] for m in RETRIEVAL_METRICS])
    out += ["## By kind", ""]
    out += _table(["kind", "n", *KIND_COLUMNS],
                  [[kind, k["count"], *(fmt(k.get(c)) for c in KIND_COLUMNS)] for kind, k in metrics["by_kind"].items()])
    if metrics.get("by_followup_kind"):
        out += ["## Follow-ups by kind", ""]
        out += _table(["follow-up kind", "n", "kept old subject", *KIND_COLUMNS],
                      [[kind, k["count"], k.get("carried_subject", "–"), *(fmt(k.get(c)) for c in KIND_COLUMNS)]
                       for kind, k in metrics["by_followup_kind"].items()])
    out += ["## Latency (ms)", ""]
    out += _table(["stage", "p50", "p95", "mean", "max"],
                  [[s, *(fmt(v[x], 1) for x in ("p50", "p95", "mean", "max"))] for s, v in metrics["latency_ms"].items()])
    if metrics.get("compare"):
        out += _compare_section(metrics["compare"])
    out += [f"## The {len(worst)} worst questions", ""]
    for i, w in enumerate(worst, start=1):
        out.append(f"{i}. **{w['id']}** ({w['kind']}, {'pass' if w['pass'] else 'FAIL'}, score {w['score']:.2f}): {w['question']}")
        out += [f"   - {p}" for p in w["problems"]] or ["   - (passed; lowest score among the rest)"]
    out.append("")
    if chart_paths:
        out += ["## Charts", ""]
        for path in chart_paths:
            name = path.name if out_dir is not None and path.parent == out_dir else str(path)
            out += [f"![{path.stem.replace('_', ' ')}]({name})", ""]
    method = metrics["method"]
    out += [
        "## Method", "",
        f"- Relevance: {method['relevance']}.",
        f"- Groundedness: {method['groundedness']}",
        f"- Pass: {method['pass']}.",
        "- Abstention precision/recall/F1 take *unanswerable* as the positive class; undefined ratios show as –.",
        "",
    ]
    return "\n".join(out)
