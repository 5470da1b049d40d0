"""``notes-assistant tune``: calibrate fusion weights and abstention thresholds on the user's own notes.

1. ``evals.synthetic`` makes questions from the indexed notes (answerable ones know
   their chunk; unanswerable ones name things the notes never mention).
2. Each question is searched once: its dense and BM25 rankings and the chunks' own
   cosines are kept (``Probe``), so every fusion setting is scored by re-fusing those
   rankings (``vectorstore.retriever.fuse``), not by searching again.
3. Fusion: the setting with the best MRR@10 on the answerable questions that are
   asked in words of their own (``FUSION_ORIGINS``, not a note's copied words); the one in
   use is kept unless another is better by ``MIN_GAIN`` (the set is small and made
   from the notes' own words, so small differences are noise).
4. Abstention: each threshold combination of ``threshold_grid`` (~4,500) is scored
   over all questions at once (``abstain.abstains`` on arrays). The choice answers at
   least ``MIN_ANSWERED`` of the answerable questions and, among those, abstains on the
   most unanswerable ones; then answers the most; then stays closest to the values in
   use. The BM25 floor is picked among quantiles of this corpus's own scores: BM25
   scales differ between collections of notes.

A value set explicitly (env, flag) is never stored as tuned: the file keeps what the
sweep chose, and the explicit value keeps winning while it is set.

Hand-written grid search, not a library: the grid is small (a few thousand points),
every point is a handful of numpy comparisons, and the objective has a constraint.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from pathlib import Path
from dataclasses import dataclass

import numpy as np

from assistant.abstain import Signals, Thresholds, abstains, signals
from assistant.calibration import FUSION_FIELDS, QUESTIONS_NAME, Calibration, StoredCalibration, save_calibration
from assistant.settings import Settings
from evals.synthetic import SyntheticQuestion, make_questions, to_jsonl_record
from vectorstore.retriever import fuse

__all__ = [
    "MIN_GAIN", "MIN_ANSWERED", "FUSION_ORIGINS", "FUSION_GRID", "Probe", "Scores", "TuneResult", "probe", "score", "choose_fusion",
    "threshold_grid", "choose_thresholds", "tune", "calibrate", "TuneError", "MIN_QUESTIONS",
]

MIN_GAIN = 0.01  # MRR@10 another fusion setting must gain to replace the one in use
MIN_ANSWERED = 0.98  # share of the answerable synthetic questions that must stay answered
FUSION_ORIGINS = ("heading", "command", "definition")  # questions in their own words, not a note's sentence
FUSION_GRID = {"dense_weight": (1.0,), "bm25_weight": (0.25, 0.5, 0.75, 1.0, 1.5), "rrf_k": (5, 10, 20, 40, 60)}
_THRESHOLD_GRID = {
    "name_cosine": (0.5, 0.55, 0.6, 0.65, 0.7), "vocab_cosine": (0.35, 0.4, 0.45, 0.5, 0.55),
    "missing_ratio": (0.1, 0.15, 0.2, 0.25, 0.34, 0.5), "floor_cosine": (0.2, 0.25, 0.3, 0.35, 0.4),
}
_BM25_QUANTILES = (0.01, 0.02, 0.05, 0.1)
MIN_QUESTIONS = (20, 10)  # answerable, unanswerable: fewer measure nothing worth storing


class TuneError(ValueError):
    """The notes gave too few questions to calibrate on; the message says what to do."""


@dataclass(frozen=True)
class Probe:
    """One question searched once: its rankings, the chunks' own cosines, what counts as relevant."""

    question: SyntheticQuestion
    dense: list[tuple[str, float]]
    lexical: list[tuple[str, float]]
    cosine: dict[str, float]
    relevant: frozenset[str]
    signals: Signals  # its term signals; top_cosine/top_bm25 stay 0 here: they depend on the fusion (``_fused``)


@dataclass(frozen=True)
class Scores:
    """What a calibration gives on the synthetic set."""

    hit_at_1: float
    mrr_at_10: float
    answered: float  # share of answerable questions not abstained on
    abstention_recall: float  # share of unanswerable questions abstained on

    def to_json(self) -> dict:
        return {"hit@1": round(self.hit_at_1, 4), "mrr@10": round(self.mrr_at_10, 4),
                "answered": round(self.answered, 4), "abstention_recall": round(self.abstention_recall, 4)}


@dataclass(frozen=True)
class TuneResult:
    """The questions made, the scores with the values in use before and with the chosen ones, what to store."""

    questions: list[SyntheticQuestion]
    before: Scores
    after: Scores
    stored: StoredCalibration


def probe(engine, snapshot, questions: Sequence[SyntheticQuestion]) -> list[Probe]:
    """Search each question once in ``snapshot`` (dense + BM25 rankings as deep as the retriever reads them).

    Queries go to the encoder directly: 200 made-up questions must not evict users' cached query vectors.
    """
    retriever = engine.retriever
    depth = max(retriever.candidates, engine.settings.top_k * 3)
    spans: dict[str, list[tuple[int, int, str]]] = {}
    for cid, meta in zip(snapshot.ids, snapshot.metadatas):
        spans.setdefault(meta["source"], []).append((int(meta["start_line"]), int(meta["end_line"]), cid))
    probes = []
    for q in questions:
        vector = engine.query_encoder.embed_query_array(q.question)
        dense = retriever.dense(vector, depth, snapshot)
        own = retriever.chunk_cosines(vector, snapshot)
        lexical = [(snapshot.ids[i], s) for i, s in snapshot.bm25.top(q.question, depth)]
        relevant = frozenset()
        if q.answerable:
            first, last = q.lines
            relevant = frozenset(cid for a, b, cid in spans.get(q.source, ()) if a <= last and first <= b)
        cosine = {cid: float(own[snapshot.position[cid]]) for cid, _ in dense} if own is not None else {}
        probes.append(Probe(q, dense, lexical, cosine, relevant,
                            signals(q.question, 0.0, 0.0, snapshot.bm25.doc_freq)))
    return probes


def _fused(probes: Sequence[Probe], fusion: dict, top_k: int, position) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per probe: reciprocal rank of the first relevant chunk in the top 10, best cosine and BM25 in the top k."""
    rr, cos, bm = np.zeros(len(probes)), np.zeros(len(probes)), np.zeros(len(probes))
    for i, p in enumerate(probes):
        ranked = [cid for cid, _ in fuse(p.dense, p.lexical, fusion["dense_weight"], fusion["bm25_weight"],
                                         int(fusion["rrf_k"]), position)]
        rank = next((n for n, cid in enumerate(ranked[:10], start=1) if cid in p.relevant), None)
        rr[i] = 1.0 / rank if rank else 0.0
        lexical = dict(p.lexical)
        cos[i] = max((p.cosine[c] for c in ranked[:top_k] if c in p.cosine), default=0.0)
        bm[i] = max((lexical[c] for c in ranked[:top_k] if c in lexical), default=0.0)
    return rr, cos, bm


def _arrays(probes: Sequence[Probe]):
    terms = np.array([p.signals.terms for p in probes])
    ratio = np.array([p.signals.missing_ratio for p in probes])
    names = np.array([bool(p.signals.missing_names) for p in probes])
    answerable = np.array([p.question.answerable for p in probes])
    return terms, ratio, names, answerable


def score(probes: Sequence[Probe], fusion: dict, thresholds: Thresholds, top_k: int, position) -> Scores:
    """Retrieval and abstention of one calibration on the probes."""
    rr, cos, bm = _fused(probes, fusion, top_k, position)
    terms, ratio, names, answerable = _arrays(probes)
    abstained = np.logical_or.reduce(abstains(thresholds, cos, bm, terms, ratio, names))
    return Scores(
        hit_at_1=float(np.mean(rr[answerable] == 1.0)) if answerable.any() else 0.0,
        mrr_at_10=float(np.mean(rr[answerable])) if answerable.any() else 0.0,
        answered=float(np.mean(~abstained[answerable])) if answerable.any() else 0.0,
        abstention_recall=float(np.mean(abstained[~answerable])) if (~answerable).any() else 0.0,
    )


def choose_fusion(probes: Sequence[Probe], current: dict, top_k: int, position) -> tuple[dict, list[dict]]:
    """The fusion setting to use, and one row (setting + MRR@10 + hit@1) per setting tried.

    Judged on the questions of ``FUSION_ORIGINS`` only: ``keywords`` and ``bold`` questions
    repeat a note's own rare words, which always favours BM25, while people paraphrase.
    """
    answerable = [p for p in probes if p.question.answerable and p.question.origin in FUSION_ORIGINS]
    rows = []
    for values in itertools.product(*FUSION_GRID.values()):
        fusion = dict(zip(FUSION_GRID, values))
        rr, _, _ = _fused(answerable, fusion, top_k, position)
        rows.append({**fusion, "mrr@10": float(rr.mean()) if len(rr) else 0.0, "hit@1": float(np.mean(rr == 1.0)) if len(rr) else 0.0})
    rr, _, _ = _fused(answerable, current, top_k, position)
    baseline = float(rr.mean()) if len(rr) else 0.0
    best = max(rows, key=lambda r: r["mrr@10"])
    if best["mrr@10"] < baseline + MIN_GAIN:
        return dict(current), rows
    return {name: best[name] for name in FUSION_FIELDS}, rows


def threshold_grid(answerable_bm25: np.ndarray, current: Thresholds) -> list[Thresholds]:
    """Every combination of ``_THRESHOLD_GRID`` × BM25 floors from this corpus's own score quantiles."""
    floors = {0.0, current.floor_bm25}
    if len(answerable_bm25):
        floors.update(round(float(np.quantile(answerable_bm25, q)), 3) for q in _BM25_QUANTILES)
    grid = {**_THRESHOLD_GRID, "floor_bm25": tuple(sorted(floors))}
    return [Thresholds(**dict(zip(grid, values))) for values in itertools.product(*grid.values())]


def choose_thresholds(probes: Sequence[Probe], fusion: dict, current: Thresholds, top_k: int, position) -> Thresholds:
    """The thresholds that abstain most on unanswerable questions while answering ≥ ``MIN_ANSWERED``."""
    _, cos, bm = _fused(probes, fusion, top_k, position)
    terms, ratio, names, answerable = _arrays(probes)
    if not answerable.any() or answerable.all():
        return current
    best_key, best = None, current
    for candidate in [current, *threshold_grid(bm[answerable], current)]:
        abstained = np.logical_or.reduce(abstains(candidate, cos, bm, terms, ratio, names))
        answered = float(np.mean(~abstained[answerable]))
        if answered < MIN_ANSWERED and candidate is not current:
            continue
        key = (answered >= MIN_ANSWERED, float(np.mean(abstained[~answerable])), answered, -_distance(candidate, current))
        if best_key is None or key > best_key:
            best_key, best = key, candidate
    return best


def _distance(a: Thresholds, b: Thresholds) -> float:
    """How far two threshold sets are apart, each value relative to its own scale."""
    return sum(abs(getattr(a, f) - getattr(b, f)) / max(abs(getattr(b, f)), 0.05) for f in a.__dataclass_fields__)


def tune(engine, answerable: int = 150, unanswerable: int = 50, seed: int = 0) -> TuneResult:
    """Make the synthetic set from ``engine``'s index, choose fusion and thresholds, score before/after.

    Nothing is written: ``assistant.calibration.save_calibration`` stores ``result.stored``.
    """
    snapshot = engine.retriever.snapshot  # once: questions and searches see the same index version
    questions = make_questions(snapshot.ids, snapshot.texts, snapshot.metadatas, snapshot.bm25.doc_freq,
                               answerable, unanswerable, seed)
    counts = {"answerable": sum(q.answerable for q in questions), "unanswerable": sum(not q.answerable for q in questions)}
    if counts["answerable"] < MIN_QUESTIONS[0] or counts["unanswerable"] < MIN_QUESTIONS[1]:
        raise TuneError(f"your notes gave {counts['answerable']} answerable and {counts['unanswerable']} unanswerable "
                        f"questions; calibrating needs at least {MIN_QUESTIONS[0]} and {MIN_QUESTIONS[1]} — add notes, "
                        "or keep the defaults (nothing was stored)")
    probes = probe(engine, snapshot, questions)
    current: Calibration = engine.calibration
    top_k = engine.settings.top_k
    fusion_now = {name: getattr(current, name) for name in FUSION_FIELDS}
    # The sweep starts from the values not set explicitly (an env value must not be stored as tuned) ...
    baseline = {name: Settings.model_fields[name].default if current.origin[name] == "settings" else fusion_now[name]
                for name in FUSION_FIELDS}
    chosen, _ = choose_fusion(probes, baseline, top_k, snapshot.position)
    # ... and thresholds are chosen for the fusion answering will use: explicit values still win there.
    in_use = {name: fusion_now[name] if current.origin[name] == "settings" else chosen[name] for name in FUSION_FIELDS}
    thresholds = choose_thresholds(probes, in_use, current.thresholds, top_k, snapshot.position)
    before = score(probes, fusion_now, current.thresholds, top_k, snapshot.position)
    after = score(probes, in_use, thresholds, top_k, snapshot.position)
    stored = StoredCalibration(engine.indexer.collection_name, chosen, thresholds,
                               report={"questions": counts, "seed": seed, "synthetic_before": before.to_json(),
                                       "synthetic_after": after.to_json()})
    return TuneResult(questions, before, after, stored)


def calibrate(engine, answerable: int = 150) -> TuneResult:
    """``tune`` and keep the result: calibration.json and the synthetic questions in the data dir.

    The one function behind ``notes-assistant tune`` and the Index tab's Calibrate button; a third
    as many unanswerable questions as answerable ones (at least 10).
    """
    from evals.report import write_jsonl  # on use: evals.report pulls in the metrics modules

    result = tune(engine, answerable, max(10, answerable // 3))
    data_dir = Path(engine.settings.data_dir)
    save_calibration(data_dir, result.stored)
    write_jsonl(data_dir / QUESTIONS_NAME, [to_jsonl_record(q) for q in result.questions])
    return result
