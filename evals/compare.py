"""Compare an eval with a previous one: metric deltas, a paired significance test, flipped questions."""

from __future__ import annotations

import json
import logging
import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from evals.errors import CompareError
from evals.metrics import ANSWER_METRICS, RETRIEVAL_METRICS

__all__ = ["LoadedRun", "load_run", "compare_runs", "significance", "format_comparison", "MAX_P"]

logger = logging.getLogger(__name__)

MAX_P = 0.05  # p-value below which a retrieval difference counts as significant


@dataclass
class LoadedRun:
    """An eval's metrics object and per-question rows (``path`` None for the run in memory)."""

    path: Path | None
    metrics: dict
    rows: list[dict]


def load_run(path: Path) -> LoadedRun:
    """Read ``metrics.json`` and ``per_question.jsonl`` from a report folder.

    Raises:
        CompareError: the folder or one of the files is missing or not valid JSON.
    """
    path = Path(path)
    try:
        metrics = json.loads((path / "metrics.json").read_text(encoding="utf-8"))
        lines = (path / "per_question.jsonl").read_text(encoding="utf-8").splitlines()
        rows = [json.loads(line) for line in lines if line.strip()]
    except FileNotFoundError as e:
        raise CompareError(f"{path} is not an eval report folder ({Path(e.filename).name} missing); "
                           "pass a folder written by `notes-assistant eval --out`") from e
    except (OSError, ValueError) as e:
        raise CompareError(f"cannot read the eval report in {path}: {e}") from e
    if not isinstance(metrics, dict) or "summary" not in metrics:
        raise CompareError(f"{path / 'metrics.json'} has no \"summary\"; was it written by `notes-assistant eval`?")
    return LoadedRun(path, metrics, rows)


def _delta(before, after) -> float | None:
    if before is None or after is None:
        return None
    return round(after - before, 6)


def significance(before: Sequence[Mapping], after: Sequence[Mapping], max_p: float = MAX_P) -> dict:
    """Paired two-sided Student's t-test per retrieval metric over the answerable questions both runs scored.

    This is ranx ``compare`` with ``stat_test="student"`` taken apart: ``compare`` evaluates
    each run per question, then calls ``ranx.statistical_tests.compute_statistical_significance``.
    The per-question scores are already in each run's per_question.jsonl (computed by ranx
    ``evaluate``), so only the second step runs here. Why not ``compare`` itself: it needs
    ``ranx.Qrels``/``ranx.Run`` objects, whose numba typed containers JIT-compile for
    60–150 s in every new process on our 2-core machines; and after a chunking change the
    two runs have no shared qrels (chunk ids differ) for ``compare`` to take.
    Identical per-question scores give p = 1.0 (the t statistic is undefined).
    """
    old = {r["id"]: r for r in before if r.get("answerable") and "scores" in r.get("retrieval", {}).get("hybrid", {})}
    new = {r["id"]: r for r in after if r.get("answerable") and "scores" in r.get("retrieval", {}).get("hybrid", {})}
    qids = sorted(set(old) & set(new))
    shared_qrels = all(sorted(old[q]["relevant_ids"]) == sorted(new[q]["relevant_ids"]) for q in qids)
    result = {
        "questions": len(qids), "max_p": max_p, "metrics": {}, "shared_qrels": shared_qrels,
        "test": "ranx compute_statistical_significance: two-sided paired Student's t-test on per-question scores",
    }
    if len(qids) < 2:
        result["test"] = "not run (fewer than 2 shared answerable questions)"
        return result
    import numpy as np
    from ranx.statistical_tests import compute_statistical_significance

    scores = {
        name: {m: np.asarray([rows[q]["retrieval"]["hybrid"]["scores"][m] for q in qids], dtype=float)
               for m in RETRIEVAL_METRICS}
        for name, rows in (("before", old), ("after", new))
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # scipy warns when every difference is 0
        tests = compute_statistical_significance(["before", "after"], scores, stat_test="student", max_p=max_p)
    for m in RETRIEVAL_METRICS:
        a, b = scores["before"][m], scores["after"][m]
        p = tests[frozenset(("before", "after"))][m]["p_value"]
        if np.array_equal(a, b) or p is None or math.isnan(float(p)):
            p = 1.0
        result["metrics"][m] = {"p_value": float(p), "significant": bool(float(p) < max_p),
                                "before": float(a.mean()), "after": float(b.mean())}
    return result


def compare_runs(previous: LoadedRun, current: LoadedRun | tuple[dict, list[dict]]) -> dict:
    """Deltas of every summary metric, retrieval significance, and questions whose verdict flipped.

    Args:
        previous: the earlier run (``load_run``).
        current: the new run, as a ``LoadedRun`` or ``(metrics, rows)``.
    """
    if isinstance(current, tuple):
        current = LoadedRun(None, *current)
    before, after = previous.metrics["summary"], current.metrics["summary"]
    names = [m for m in (*RETRIEVAL_METRICS, *ANSWER_METRICS) if m in before or m in after]
    names += [m for m in after if m not in names and m in before]
    deltas = {m: {"before": before.get(m), "after": after.get(m), "delta": _delta(before.get(m), after.get(m))}
              for m in names}
    old = {r["id"]: r for r in previous.rows}
    new = {r["id"]: r for r in current.rows}
    common = [q for q in new if q in old]
    to_fail = [
        {"id": q, "kind": new[q]["kind"], "question": new[q]["question"], "problems": new[q].get("problems", [])}
        for q in common if old[q].get("pass") and not new[q].get("pass")
    ]
    to_pass = [{"id": q, "kind": new[q]["kind"]} for q in common if not old[q].get("pass") and new[q].get("pass")]
    old_config, new_config = previous.metrics.get("config", {}), current.metrics.get("config", {})
    latency = {}
    for stage in ("retrieve", "answer", "total"):
        a = previous.metrics.get("latency_ms", {}).get(stage, {})
        b = current.metrics.get("latency_ms", {}).get(stage, {})
        latency[stage] = {"p50_before": a.get("p50"), "p50_after": b.get("p50"),
                          "p95_before": a.get("p95"), "p95_after": b.get("p95")}
    return {
        "previous_dir": str(previous.path) if previous.path else None,
        "deltas": deltas,
        "significance": significance(previous.rows, current.rows),
        "flipped_to_fail": to_fail,
        "flipped_to_pass": to_pass,
        "questions": {"shared": len(common), "only_before": sorted(set(old) - set(new)), "only_after": sorted(set(new) - set(old))},
        "dataset_changed": previous.metrics.get("dataset", {}).get("sha256") != current.metrics.get("dataset", {}).get("sha256"),
        "config_changes": {k: {"before": old_config.get(k), "after": new_config.get(k)}
                           for k in sorted(set(old_config) | set(new_config)) if old_config.get(k) != new_config.get(k)},
        "latency_ms": latency,
    }


def format_comparison(comparison: Mapping) -> str:
    """The comparison as plain text for the terminal."""
    from evals.report import fmt

    sig = comparison["significance"]["metrics"]
    lines = [f"compared with {comparison['previous_dir']}"]
    if comparison["config_changes"]:
        lines.append("config changes: " + ", ".join(f"{k} {v['before']} → {v['after']}" for k, v in comparison["config_changes"].items()))
    if comparison["dataset_changed"]:
        lines.append("note: the dataset changed between the runs")
    lines.append(f"{'metric':<22}{'before':>9}{'after':>9}{'delta':>9}  p-value")
    for m, d in comparison["deltas"].items():
        p = f"{sig[m]['p_value']:.4f}{' *' if sig[m]['significant'] else ''}" if m in sig else ""
        delta = f"{d['delta']:+.3f}" if d["delta"] is not None else "–"
        lines.append(f"{m:<22}{fmt(d['before']):>9}{fmt(d['after']):>9}{delta:>9}  {p}")
    lines.append(f"(* p < {comparison['significance']['max_p']}, n={comparison['significance']['questions']} shared questions: {comparison['significance']['test']})")
    flipped = comparison["flipped_to_fail"]
    lines.append(f"flipped pass → fail: {len(flipped)}")
    lines += [f"  {f['id']} ({f['kind']}): {'; '.join(f['problems']) or f['question']}" for f in flipped]
    fixed = comparison["flipped_to_pass"]
    lines.append(f"flipped fail → pass: {len(fixed)}" + (f" ({', '.join(f['id'] for f in fixed)})" if fixed else ""))
    return "\n".join(lines)
