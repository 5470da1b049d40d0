"""Aggregate metrics of an eval run: retrieval (ranx), answers, abstention, latency, by kind.

Retrieval relevance: a chunk is relevant to a question when its line span overlaps
the question's ``gold_lines`` in the same source. The qrels of a question are *all*
chunks of the index that overlap the gold lines (read from the retriever's snapshot),
so recall@k is "share of the gold-bearing chunks retrieved" and nDCG has a true ideal
ranking. When no chunk of the index overlaps the gold lines (the notes changed under
the dataset), one synthetic id that is never retrieved stands in, and every retrieval
metric of that question is 0.

Rankings are handed to ranx with scores ``1/rank``, so ranx sees exactly our order
(two chunks with equal retrieval scores keep the retriever's tie-break).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping, Sequence

import numpy as np

__all__ = [
    "RETRIEVAL_METRICS",
    "ANSWER_METRICS",
    "RANX_NAMES",
    "MODES",
    "STAGES",
    "metric_names",
    "ranx_inputs",
    "retrieval_scores",
    "abstention_scores",
    "latency_summary",
    "answer_summary",
    "mean_of",
    "summarize",
]

logger = logging.getLogger(__name__)

RETRIEVAL_METRICS = ("hit@1", "hit@3", "hit@5", "hit@10", "mrr@10", "ndcg@10", "recall@5", "recall@10")
# hit@k is "any relevant chunk in the top k" = ranx "hit_rate@k" per query (ranx "hits@k" counts them).
RANX_NAMES = {m: m.replace("hit@", "hit_rate@") for m in RETRIEVAL_METRICS}
ANSWER_METRICS = (
    "key_fact_recall", "citation_precision", "citation_hit", "groundedness",
    "abstention_precision", "abstention_recall", "abstention_f1", "answered_rate", "answerable_answered", "pass_rate",
)
MODES = ("hybrid", "dense", "bm25")
STAGES = ("condense", "retrieve", "answer", "total")


def metric_names(ablate: bool = False) -> list[str]:
    """Names usable with ``--min`` (higher is better): hybrid retrieval, answers, and ``dense.``/``bm25.`` with ablation."""
    names = list(RETRIEVAL_METRICS) + list(ANSWER_METRICS)
    if ablate:
        names += [f"{mode}.{m}" for mode in MODES[1:] for m in RETRIEVAL_METRICS]
    return names


def ranx_inputs(qrels: Mapping[str, Iterable[str]], rankings: Mapping[str, Sequence[str]]):
    """``(qids, qrels array, run array)``: ranx's numeric low-level input for ``rankings``' questions.

    Chunk ids become integers ≥ 1. ``qrels[i]`` rows are ``[doc, 1]`` per relevant chunk,
    padded with ``[-2, 0]`` (relevance 0 is dropped by ranx); ``run[i]`` rows are
    ``[doc, 1/rank]`` best first, padded with ``[-1, 0]`` (never relevant). A question
    without relevant chunks gets one synthetic relevant id that is never retrieved.

    Why arrays and not ``ranx.Qrels``/``ranx.Run``: building those JIT-compiles numba
    typed containers, ~10 s in every new process; the array path loads from numba's cache.

    >>> qids, q, r = ranx_inputs({"q": ["b"]}, {"q": ["a", "b"]})
    >>> qids, q.tolist(), r.tolist()
    (['q'], [[[2.0, 1.0]]], [[[1.0, 1.0], [2.0, 0.5]]])
    """
    qids = list(rankings)
    numbers: dict[str, int] = {}

    def number(doc: str) -> int:
        return numbers.setdefault(doc, len(numbers) + 1)

    ranked = [[number(d) for d in dict.fromkeys(rankings[q])] for q in qids]
    relevant = [[number(d) for d in dict.fromkeys(qrels.get(q, ()))] for q in qids]
    relevant = [docs or [number(f"__no_relevant_chunk__:{q}")] for q, docs in zip(qids, relevant)]
    width_run = max(1, max(len(r) for r in ranked))
    width_qrels = max(len(r) for r in relevant)
    run = np.tile(np.array([-1.0, 0.0]), (len(qids), width_run, 1))
    rel = np.tile(np.array([-2.0, 0.0]), (len(qids), width_qrels, 1))
    for i, (docs, gold) in enumerate(zip(ranked, relevant)):
        for rank, doc in enumerate(docs, start=1):
            run[i, rank - 1] = (doc, 1.0 / rank)
        for j, doc in enumerate(gold):
            rel[i, j] = (doc, 1.0)
    return qids, rel, run


def retrieval_scores(qrels: Mapping[str, Iterable[str]], rankings: Mapping[str, Sequence[str]]) -> dict[str, dict[str, float]]:
    """Per-question retrieval metrics ``{qid: {metric: value}}`` computed by ranx.

    Args:
        qrels: question id → ids of the relevant chunks.
        rankings: question id → retrieved chunk ids, best first (may be empty).
    """
    if not rankings:
        return {}
    from ranx import evaluate  # lazy: ranx imports numba, scipy and pandas (seconds)

    qids, rel, run = ranx_inputs(qrels, rankings)
    scores = evaluate(rel, run, [RANX_NAMES[m] for m in RETRIEVAL_METRICS], return_mean=False, threads=1)
    return {qid: {m: float(scores[RANX_NAMES[m]][i]) for m in RETRIEVAL_METRICS} for i, qid in enumerate(qids)}


def _ratio(numerator: int, denominator: int) -> float | None:
    return numerator / denominator if denominator else None


def abstention_scores(answerable: Sequence[bool], abstained: Sequence[bool]) -> dict[str, float | None]:
    """Precision/recall/F1 of abstaining, the positive class being *unanswerable*.

    Undefined ratios (no abstention, no unanswerable question) are None.

    >>> abstention_scores([True, False, False], [False, True, False])
    {'abstention_precision': 1.0, 'abstention_recall': 0.5, 'abstention_f1': 0.6666666666666666}
    """
    tp = sum(1 for a, x in zip(answerable, abstained) if not a and x)
    fp = sum(1 for a, x in zip(answerable, abstained) if a and x)
    fn = sum(1 for a, x in zip(answerable, abstained) if not a and not x)
    return {
        "abstention_precision": _ratio(tp, tp + fp),
        "abstention_recall": _ratio(tp, tp + fn),
        "abstention_f1": _ratio(2 * tp, 2 * tp + fp + fn),
    }


def latency_summary(timings: Sequence[Mapping[str, float]]) -> dict[str, dict[str, float]]:
    """p50/p95/mean/max milliseconds per stage (linear-interpolated percentiles)."""
    out = {}
    for stage in STAGES:
        values = np.asarray([t[stage] for t in timings if stage in t], dtype=float)
        if values.size:
            out[stage] = {
                "p50": round(float(np.percentile(values, 50)), 1),
                "p95": round(float(np.percentile(values, 95)), 1),
                "mean": round(float(values.mean()), 1),
                "max": round(float(values.max()), 1),
            }
    return out


def mean_of(values: Iterable[float | None]) -> float | None:
    """Mean of the defined values; None when there are none.

    >>> mean_of([1.0, None, 0.0]), mean_of([None])
    (0.5, None)
    """
    kept = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    return sum(kept) / len(kept) if kept else None


def answer_summary(rows: Sequence[Mapping]) -> dict[str, float | None]:
    """Answer metrics over per-question rows (see ``evals.runner`` for the row fields).

    - key_fact_recall: mean share of key-fact groups found, over answerable questions
      (an abstention finds none).
    - citation_precision: mean share of citations on the gold lines, over answered
      answerable questions that cite something.
    - citation_hit: share of answered answerable questions with a citation on the gold lines.
    - groundedness: mean share of supported statements, over answered questions with statements.
    - answered_rate: share of all questions not abstained on.
    - answerable_answered: share of the answerable questions not abstained on.
    - pass_rate: share of questions that pass (see ``evals.runner.judge``).
    """
    answerable = [r for r in rows if r["answerable"]]
    answered_answerable = [r for r in answerable if not r["abstained"]]
    out: dict[str, float | None] = {
        "key_fact_recall": mean_of(0.0 if r["abstained"] else r["key_fact_recall"] for r in answerable),
        "citation_precision": mean_of(r["citation_precision"] for r in answered_answerable),
        "citation_hit": mean_of(float(r["citation_hit"]) for r in answered_answerable),
        "groundedness": mean_of(r["groundedness"] for r in rows if not r["abstained"]),
    }
    out.update(abstention_scores([r["answerable"] for r in rows], [r["abstained"] for r in rows]))
    out["answered_rate"] = mean_of(0.0 if r["abstained"] else 1.0 for r in rows)
    out["answerable_answered"] = mean_of(0.0 if r["abstained"] else 1.0 for r in answerable)
    out["pass_rate"] = mean_of(1.0 if r["pass"] else 0.0 for r in rows)
    return out


def _retrieval_means(rows: Sequence[Mapping], mode: str) -> dict[str, float | None]:
    scored = [r["retrieval"][mode]["scores"] for r in rows if r["answerable"] and mode in r.get("retrieval", {})]
    return {m: mean_of(s[m] for s in scored) for m in RETRIEVAL_METRICS}


def _flat(rows: Sequence[Mapping], modes: Sequence[str]) -> dict[str, float | None]:
    flat: dict[str, float | None] = dict(_retrieval_means(rows, "hybrid"))
    flat.update(answer_summary(rows))
    for mode in modes:
        if mode != "hybrid":
            flat.update({f"{mode}.{m}": v for m, v in _retrieval_means(rows, mode).items()})
    return flat


def summarize(rows: Sequence[Mapping], modes: Sequence[str] = ("hybrid",)) -> dict:
    """The metrics object (without config/dataset provenance, which the runner adds).

    Returns:
        ``{"summary": flat metrics, "retrieval": {mode: means}, "latency_ms": {stage: {p50, p95, …}},
        "by_kind": {kind: {"count", flat metrics, "latency_total_p50"}}, "by_followup_kind": {followup kind:
        {"count", flat metrics, and for topic changes "carried_subject": how many condensed queries kept
        words of the earlier turns}}, "counts": {...}}``.
    """
    kinds = sorted({r["kind"] for r in rows})
    by_kind = {}
    for kind in kinds:
        subset = [r for r in rows if r["kind"] == kind]
        entry: dict = {"count": len(subset)}
        entry.update(_flat(subset, modes))
        by_kind[kind] = entry
    by_followup_kind = {}
    for kind in sorted({r["followup_kind"] for r in rows if r.get("followup_kind")}):
        subset = [r for r in rows if r.get("followup_kind") == kind]
        entry = {"count": len(subset)}
        entry.update(_flat(subset, modes))
        if kind == "topic_change":
            entry["carried_subject"] = sum(1 for r in subset if r.get("carried_terms"))
        by_followup_kind[kind] = entry
    return {
        "summary": _flat(rows, modes),
        "retrieval": {mode: _retrieval_means(rows, mode) for mode in modes},
        "latency_ms": latency_summary([r["timings_ms"] for r in rows]),
        "by_kind": by_kind,
        "by_followup_kind": by_followup_kind,
        "counts": {
            "questions": len(rows),
            "answerable": sum(1 for r in rows if r["answerable"]),
            "unanswerable": sum(1 for r in rows if not r["answerable"]),
            "abstained": sum(1 for r in rows if r["abstained"]),
            "passed": sum(1 for r in rows if r["pass"]),
        },
    }
