"""Run a dataset through the assistant: answer every question, score it, write the report.

``run_eval`` is the one entry point of the CLI (``notes-assistant eval``) and the
web app's Evals tab. The embedding model and index are the assistant's: nothing
is loaded twice.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from assistant.calibration import FUSION_FIELDS
from assistant.followup import content_words
from evals.dataset import Dataset, EvalRecord, corpus_lines, load_dataset
from evals.errors import DatasetError
from evals.metrics import MODES, RETRIEVAL_METRICS, retrieval_scores, summarize
from evals.scoring import (
    GROUNDING_METHOD, check_citations, check_grounding, check_key_facts, spans_overlap,
)

__all__ = [
    "EvalResult", "run_eval", "execute", "answer_all", "judge", "carried_terms", "RETRIEVAL_DEPTH", "PASS_RULE",
    "RELEVANCE_RULE",
]

logger = logging.getLogger(__name__)

RETRIEVAL_DEPTH = 10  # chunks retrieved per question for the retrieval metrics (@1…@10)
PASS_RULE = (
    "answerable: answered, at least one citation overlaps the gold lines, and every key-fact group is found; "
    "unanswerable: abstained"
)
RELEVANCE_RULE = (
    "a chunk is relevant when its line span overlaps gold_lines in the same source; the qrels of a question are "
    "all such chunks in the index, so recall@k = share of the gold-bearing chunks in the top k"
)

Progress = Callable[[int, int], None]


@dataclass
class EvalResult:
    """What one eval produced (``out_dir`` None: nothing written, no charts)."""

    metrics: dict
    out_dir: Path | None
    report_markdown: str
    chart_paths: list[Path] = field(default_factory=list)
    worst: list[dict] = field(default_factory=list)
    rows: list[dict] = field(default_factory=list)


def run_eval(assistant, dataset_path: Path, out_dir: Path | None = None, ablate: bool = False,
             backend: str | None = None, progress: Progress | None = None) -> EvalResult:
    """Evaluate ``assistant`` on the JSONL dataset at ``dataset_path``.

    Args:
        assistant: an ``assistant.service.Assistant`` whose engine is indexed.
        dataset_path: the dataset (see ``evals.dataset``); malformed lines are skipped and
            listed in ``metrics["dataset"]["skipped"]``.
        out_dir: where metrics.json, per_question.jsonl, report.md and the charts go; None
            writes nothing.
        ablate: also score dense-only and BM25-only retrieval.
        backend: answerer override ("extractive", "openai", "ollama"); None = the settings'.
        progress: called with (questions done, total) after each question.

    The run uses a fresh ``Assistant`` over the same engine (the caller's is left as is) and
    limits BLAS to one thread while questions run (process-wide, see ``_one_blas_thread``).
    ``report_markdown`` links the charts by file name when ``out_dir`` is given.

    Raises:
        DatasetError: the dataset is unreadable or has no usable question.
    """
    return execute(assistant, Path(dataset_path), out_dir, ablate, backend, progress)


def carried_terms(question: str, condensed: str, history) -> list[str]:
    """Words of the earlier user turns that the condensed query adds to the question (lowercased).

    For a topic change this must be empty: the old subject was not dragged into the new search.

    >>> carried_terms("Which EC2 types exist?", "Which EC2 types exist? (Lambda layers)",
    ...               [{"role": "user", "content": "What are Lambda layers?"}])
    ['lambda', 'layers']
    """
    earlier = {w for t in history if t.get("role") == "user" for w in content_words(t.get("content", ""))}
    asked = set(content_words(question))
    return sorted({w for w in content_words(condensed) if w in earlier and w not in asked})


def _relevant_index(snapshot) -> dict[str, list[tuple[int, int, str]]]:
    by_source: dict[str, list[tuple[int, int, str]]] = {}
    for chunk_id, meta in zip(snapshot.ids, snapshot.metadatas):
        by_source.setdefault(meta["source"], []).append((int(meta["start_line"]), int(meta["end_line"]), chunk_id))
    return by_source


def _relevant_ids(record: EvalRecord, index: dict[str, list[tuple[int, int, str]]]) -> list[str]:
    first, last = record.gold_lines
    sources = [record.source] if record.source is not None else list(index)
    return [cid for s in sources for a, b, cid in index.get(s, ()) if spans_overlap(a, b, first, last)]


def _on_gold(record: EvalRecord, source: str, start: int, end: int) -> bool:
    first, last = record.gold_lines
    return (record.source is None or record.source == source) and spans_overlap(start, end, first, last)


class _MemoEngine:
    """The assistant's engine with ``embed_query`` memoised for the run; everything else forwarded.

    Why: the runner re-searches each condensed query at depth 10 (and per ablation mode)
    and embeds answer statements; without the memo every question embeds its query twice,
    which was half the run time on the 2-core machines.
    """

    def __init__(self, engine) -> None:
        self._engine = engine
        self._vectors: dict[str, object] = {}

    def embed_query(self, text: str):
        if text not in self._vectors:
            self._vectors[text] = self._engine.embed_query(text)
        return self._vectors[text]

    def __getattr__(self, name: str):
        return getattr(self._engine, name)


def _one_blas_thread():
    """Limit BLAS to one thread while questions run, when threadpoolctl is installed.

    Why: each question does a few small matrix products (query encoder, unit scoring);
    OpenBLAS spreading them over threads costs more than it saves, and on a busy 2-core
    machine it made retrieval ~5x slower (measured: p50 1000 ms → 170 ms).
    """
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


def answer_all(assistant, records: Sequence[EvalRecord], modes: Sequence[str] = ("hybrid",),
               backend: str | None = None, progress: Progress | None = None) -> list[dict]:
    """Ask every question, retrieve its top ``RETRIEVAL_DEPTH`` per mode, score the answer.

    Returns one row per record (the per_question.jsonl objects, retrieval metrics not yet filled).
    """
    from assistant.service import Assistant

    engine = _MemoEngine(assistant.engine)
    assistant = Assistant(engine, assistant.settings)  # same settings and index; the caller's object is untouched
    index = _relevant_index(engine.retriever.snapshot)
    embed = engine.embed_query
    rows = []
    with _one_blas_thread():
        for done, record in enumerate(records, start=1):
            rows.append(_answer_one(assistant, record, modes, backend, index, embed))
            if progress is not None:
                progress(done, len(records))
    return rows


def _answer_one(assistant, record: EvalRecord, modes: Sequence[str], backend: str | None, index, embed) -> dict:
    engine = assistant.engine
    answer = assistant.ask(record.question, list(record.history), backend=backend)
    row = {
        "id": record.id, "kind": record.kind, "question": record.question, "answerable": record.answerable,
        "condensed_query": answer.condensed_query,
    }
    if record.history:
        row["history"] = list(record.history)
        row["carried_terms"] = carried_terms(record.question, answer.condensed_query, record.history)
    if record.followup_kind:
        row["followup_kind"] = record.followup_kind
    if record.answerable:
        row.update(source=record.source, gold_lines=list(record.gold_lines), gold_heading=record.gold_heading)
        row["relevant_ids"] = _relevant_ids(record, index)
        vector = embed(answer.condensed_query)
        row["retrieval"] = {}
        for mode in modes:
            results = engine.search(answer.condensed_query, RETRIEVAL_DEPTH, mode, query_vector=vector)
            ranked = [
                {"rank": r.rank, "chunk_id": r.chunk_id, "source": r.source, "start_line": r.start_line,
                 "end_line": r.end_line, "heading": r.heading, "relevant": _on_gold(record, r.source, r.start_line, r.end_line)}
                for r in results
            ]
            first = next((r["rank"] for r in ranked if r["relevant"]), None)
            row["retrieval"][mode] = {"ranked": ranked, "first_relevant_rank": first}
    row.update(
        answer=answer.answer, abstained=answer.abstained, backend=answer.backend,
        citations=[
            {**c.to_json(), "on_gold": record.answerable and _on_gold(record, c.source, c.start_line, c.end_line)}
            for c in answer.citations
        ],
        timings_ms={k: round(v, 2) for k, v in answer.timings_ms.items()},
        evidence=answer.evidence,
    )
    if answer.notices:
        row["notices"] = list(answer.notices)
    _score_answer(row, record, answer, embed)
    return row


def _score_answer(row: dict, record: EvalRecord, answer, embed) -> None:
    row.update(key_fact_recall=None, facts_found=[], facts_missing=[], citation_precision=None, citation_hit=None,
               groundedness=None, statements=0, unsupported=[])
    if answer.abstained:
        if record.answerable:
            row["facts_missing"] = [g[0] for g in record.key_facts]
            row["key_fact_recall"] = 0.0
        return
    if record.answerable:
        facts = check_key_facts(answer.answer, record.key_facts)
        cites = check_citations(answer.citations, record.source, record.gold_lines)
        row.update(key_fact_recall=facts.recall, facts_found=list(facts.found), facts_missing=list(facts.missing),
                   citation_precision=cites.precision, citation_hit=cites.hit)
    grounding = check_grounding(answer.answer, [c.text for c in answer.citations], embed)
    row.update(groundedness=grounding.score, statements=grounding.statements, unsupported=grounding.unsupported)


def _score_retrieval(rows: list[dict], modes: Sequence[str]) -> None:
    scored = [r for r in rows if r["answerable"]]
    for mode in modes:
        scores = retrieval_scores(
            {r["id"]: r["relevant_ids"] for r in scored},
            {r["id"]: [x["chunk_id"] for x in r["retrieval"][mode]["ranked"]] for r in scored},
        )
        for r in scored:
            r["retrieval"][mode]["scores"] = scores[r["id"]]


def judge(row: dict) -> tuple[bool, list[str], float]:
    """``(passed, problems, score)`` of a scored row; ``score`` in [0, 1] orders the worst questions.

    See ``PASS_RULE``. ``problems`` say in words what went wrong.
    """
    problems: list[str] = []
    if not row["answerable"]:
        if row["abstained"]:
            return True, problems, 1.0
        cited = ", ".join(f"{c['source']}:{c['start_line']}-{c['end_line']}" for c in row["citations"]) or "nothing"
        return False, [f"answered an unanswerable question (cited {cited})"], 0.0
    hybrid = row["retrieval"].get("hybrid", {})
    first = hybrid.get("first_relevant_rank")
    gold = f"{row.get('source') or ''}:{row['gold_lines'][0]}-{row['gold_lines'][1]}"
    if not row["relevant_ids"]:
        problems.append(f"no indexed chunk overlaps the gold lines {gold} (did the notes change?)")
    elif first is None:
        problems.append(f"gold lines {gold} not in the top {RETRIEVAL_DEPTH} retrieved")
    elif first > 3:
        problems.append(f"gold lines {gold} first retrieved at rank {first}")
    if row["abstained"]:
        reasons = "; ".join(row.get("evidence", {}).get("reasons", [])) or "no usable sections"
        problems.append(f"abstained on an answerable question ({reasons})")
    else:
        if not row["citation_hit"]:
            cited = ", ".join(f"{c['start_line']}-{c['end_line']}" for c in row["citations"]) or "nothing"
            problems.append(f"no citation on the gold lines {gold} (cited {cited})")
        if row["facts_missing"]:
            problems.append("missing key facts: " + ", ".join(row["facts_missing"]))
        if row["unsupported"]:
            problems.append(f"{len(row['unsupported'])} of {row['statements']} statements not grounded in the citations")
    passed = not row["abstained"] and bool(row["citation_hit"]) and not row["facts_missing"]
    rr = 1.0 / first if first else 0.0
    score = (float(not row["abstained"]) + float(bool(row["citation_hit"])) + (row["key_fact_recall"] or 0.0) + rr) / 4
    return passed, problems, round(score, 4)


def worst_questions(rows: Sequence[dict], n: int = 10) -> list[dict]:
    """The ``n`` lowest-scoring questions, failures first."""
    ranked = sorted(rows, key=lambda r: (r["pass"], r["score"], r["id"]))[:n]
    return [
        {"id": r["id"], "kind": r["kind"], "question": r["question"], "pass": r["pass"], "score": r["score"],
         "problems": r["problems"], "answer": r["answer"]}
        for r in ranked
    ]


def _config(assistant, backend: str | None, modes: Sequence[str], chunks: int, corpus: dict[str, int]) -> dict:
    s, calibration = assistant.settings, assistant.engine.calibration
    config = {
        "backend": backend or s.backend,
        "notes_path": str(s.notes_path),
        "sources": len(corpus),
        "chunks": chunks,
        "embedding_model": assistant.engine.model_name,
        "chunk_tokens": s.chunk_tokens,
        "chunk_overlap": s.chunk_overlap,
        "top_k": s.top_k,
        **{name: getattr(calibration, name) for name in FUSION_FIELDS},
        "calibration": calibration.to_json(),
        "mmr": s.mmr,
        "retrieval_depth": RETRIEVAL_DEPTH,
        "modes": list(modes),
    }
    if config["backend"] != "extractive":
        config.update(llm_model=s.llm_model, llm_base_url=s.llm_base_url)
    return config


def execute(assistant, dataset_path: Path, out_dir: Path | None = None, ablate: bool = False,
            backend: str | None = None, progress: Progress | None = None, previous=None,
            dataset: Dataset | None = None) -> EvalResult:
    """``run_eval`` plus the CLI's extras.

    Args:
        previous: an ``evals.compare.LoadedRun`` to compare with (adds ``metrics["compare"]``,
            compare.json and compare.png).
        dataset: the dataset already loaded (the CLI loads it first to report skipped lines).
    """
    from evals import report

    out_dir = Path(out_dir) if out_dir is not None else None
    started = time.perf_counter()
    created = datetime.now(UTC).isoformat(timespec="seconds")
    corpus = corpus_lines(assistant.settings.notes_path)
    if dataset is None:
        dataset = load_dataset(dataset_path, corpus)
    if not dataset.records:
        first = f" (first problem: {dataset.problems[0]})" if dataset.problems else ""
        raise DatasetError(f"{dataset_path} holds no usable question{first}; see the dataset format in README \"Evals\"")
    modes = list(MODES) if ablate else ["hybrid"]
    rows = answer_all(assistant, dataset.records, modes, backend, progress)
    answered_s = time.perf_counter() - started
    # ranx is imported here, not prefetched on a thread during the questions: that saved ~6 s
    # but its import competed for the GIL and inflated the latencies this report measures.
    t = time.perf_counter()
    _score_retrieval(rows, modes)
    for row in rows:
        row["pass"], row["problems"], row["score"] = judge(row)
    metrics = summarize(rows, modes)
    metrics.update(
        config=_config(assistant, backend, modes, len(assistant.engine.retriever.snapshot), corpus),
        backends_used=dict(Counter(r["backend"] for r in rows)),
        dataset={
            "path": str(dataset.path), "sha256": dataset.sha256, "records": len(dataset.records), "split": dataset.split,
            "skipped": [{"line": p.line, "message": p.message} for p in dataset.problems],
        },
        git_commit=report.git_commit(),
        created=created,
        method={"relevance": RELEVANCE_RULE, "groundedness": GROUNDING_METHOD, "pass": PASS_RULE,
                "retrieval_metrics": list(RETRIEVAL_METRICS), "abstention_positive_class": "unanswerable"},
    )
    worst = worst_questions(rows)
    comparison = None
    if previous is not None:
        from evals.compare import compare_runs

        comparison = compare_runs(previous, (metrics, rows))
        metrics["compare"] = comparison
    metrics["timing_s"] = {"questions": round(answered_s, 2), "metrics": round(time.perf_counter() - t, 2)}
    t = time.perf_counter()
    charts: list[Path] = []
    if out_dir is not None:
        charts = report.write_report(out_dir, metrics, rows, worst, comparison)
    metrics["timing_s"]["report"] = round(time.perf_counter() - t, 2)
    metrics["timing_s"]["total"] = round(time.perf_counter() - started, 2)
    markdown = report.render_markdown(metrics, worst, charts, out_dir)
    if out_dir is not None:
        report.write_json(out_dir / "metrics.json", metrics)  # again: now with the report step's timing
        (out_dir / "report.md").write_text(markdown, encoding="utf-8")
    logger.info("eval questions=%d passed=%d seconds=%.1f", len(rows), metrics["counts"]["passed"],
                metrics["timing_s"]["total"])
    return EvalResult(metrics, out_dir, markdown, charts, worst, rows)
