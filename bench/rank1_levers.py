"""Rank-1 levers on one corpus: hit@1 / MRR@10 / hit@5 of each ranking idea, tune and report halves.

    NOTES_ASSISTANT_EMBEDDING_CACHE_DIR=.cache/test-embeddings \\
    python bench/rank1_levers.py [--notes notes] [--data-dir DIR] [--dataset evals/datasets/golden.jsonl] [--tutorial]

Every lever re-ranks the same candidates from the same index and the same query vectors,
so the rows compare in one run; the baseline row is the shipped retriever before
multi-vector matching. Relevance is the eval's (a chunk overlapping the gold lines);
follow-ups are searched by their condensed query, as ``notes-assistant eval`` does.
``--tutorial`` adds the LangChain RAG tutorial recipe as a row (RecursiveCharacterTextSplitter
1000/200 over the raw files, the same model, dense only; its chunks embedded once into the
same content-hash cache). Only ``multi-vector`` is shipped (``Settings.unit_matching``); the others are kept here
as the record of what was tried (README "Rank-1 precision").
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

from assistant.bootstrap import prepare_process  # noqa: E402
from assistant.engine import Engine  # noqa: E402
from assistant.followup import condense  # noqa: E402
from assistant.settings import load_settings  # noqa: E402
from evals.dataset import load_dataset, split_of  # noqa: E402
from vectorstore.bm25 import Bm25Index  # noqa: E402

DEPTH = 40  # candidates read from each ranking, as the retriever does


def ranks(scores: np.ndarray) -> np.ndarray:
    """1-based rank of every chunk per query (ties in snapshot order)."""
    order = np.argsort(-scores, axis=1, kind="stable")
    out = np.empty_like(order)
    np.put_along_axis(out, order, np.arange(1, scores.shape[1] + 1)[None, :].repeat(len(scores), 0), 1)
    return out


def rrf(*rankings: tuple[float, np.ndarray, bool], k: int = 10) -> np.ndarray:
    """Weighted reciprocal-rank fusion of (weight, scores, positive-only) rankings, top ``DEPTH`` each."""
    fused = 0.0
    for weight, scores, positive in rankings:
        r = ranks(scores)
        keep = (r <= DEPTH) & ((scores > 0) if positive else True)
        fused = fused + np.where(keep, weight / (k + r), 0.0)
    return fused


def by_max(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(x.max(axis=1, keepdims=True), 1e-9)


def zscore(x: np.ndarray) -> np.ndarray:
    top = -np.sort(-x, axis=1)[:, :DEPTH]
    return (x - top.mean(1, keepdims=True)) / (top.std(1, keepdims=True) + 1e-9)


def child_first(scores: np.ndarray, headings: list[str], sources: list[str], ratio=0.95, top=3) -> np.ndarray:
    """Parent/child tie-break: a child section within ``ratio`` of its parent at rank 1 moves above it."""
    scores = scores.copy()
    for q in range(len(scores)):
        order = np.argsort(-scores[q], kind="stable")[:top]
        first = order[0]
        for other in order[1:]:
            if (sources[other] == sources[first] and headings[first]
                    and headings[other].startswith(headings[first] + " > ")
                    and scores[q, other] >= ratio * scores[q, first]):
                scores[q, other] = scores[q, first] + 1e-9
                break
    return scores


def tutorial_ranks(engine, notes: str, records, vectors: np.ndarray) -> np.ndarray:
    """First relevant rank (0: not in the top 10) of each record under the LangChain tutorial recipe."""
    from langchain_core.documents import Document
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    from ingest import read_notes
    from vectorstore.embedding_cache import cached_embedder

    files = {n.source: n.text for n in read_notes(notes)[0]}
    splitter = RecursiveCharacterTextSplitter(chunk_size=1000, chunk_overlap=200, add_start_index=True)
    splits = splitter.split_documents([Document(page_content=t, metadata={"source": s}) for s, t in files.items()])
    embedder, _ = cached_embedder(engine.document_embedder, engine.settings.cache_dir, engine.model_name)
    matrix = np.asarray(embedder.embed_documents([d.page_content for d in splits]), np.float32)
    matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
    spans = []
    for d in splits:
        first = files[d.metadata["source"]][: d.metadata["start_index"]].count("\n") + 1
        spans.append((d.metadata["source"], first, first + d.page_content.count("\n")))
    out = np.zeros(len(records), int)
    for q, record in enumerate(records):
        top = np.argsort(-(matrix @ vectors[q]), kind="stable")[:10]
        lo, hi = record.gold_lines
        hits = [record.source in (None, spans[i][0]) and spans[i][1] <= hi and lo <= spans[i][2] for i in top]
        out[q] = hits.index(True) + 1 if any(hits) else 0
    return out


def cells(rank: np.ndarray) -> str:
    """'hit@1 / MRR@10 / hit@5' of first-relevant ranks (0 = none in the top 10)."""
    mrr = np.where(rank > 0, 1 / np.maximum(rank, 1), 0).mean()
    return f"{(rank == 1).mean():.3f} / {mrr:.3f} / {((rank > 0) & (rank <= 5)).mean():.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--notes", default="notes")
    parser.add_argument("--data-dir", default=".notes-index")
    parser.add_argument("--dataset", default="evals/datasets/golden.jsonl")
    parser.add_argument("--tutorial", action="store_true", help="add the LangChain tutorial recipe as a row")
    args = parser.parse_args()
    prepare_process()
    engine = Engine(load_settings(os.environ, notes_path=args.notes, data_dir=args.data_dir, unit_matching=True))
    engine.ensure_index()
    snap = engine.retriever.snapshot
    records = [r for r in load_dataset(Path(args.dataset)).records if r.answerable]
    metas = snap.metadatas
    headings = [m.get("heading", "") for m in metas]
    sources = [m["source"] for m in metas]
    heading_bm25 = Bm25Index(headings)

    n = len(snap)
    chunk_cos, unit_cos, bm25, heading = (np.zeros((len(records), n), np.float32) for _ in range(4))
    relevant = np.zeros((len(records), n), bool)
    vectors = np.zeros((len(records), snap.vectors.shape[1]), np.float32)
    for q, record in enumerate(records):
        query = condense(record.question, list(record.history))
        raw = np.asarray(engine.embed_query(query), np.float32)
        vector = vectors[q] = raw / np.linalg.norm(raw)
        chunk_cos[q] = snap.vectors @ vector
        unit_cos[q] = snap.units.best_cosine(vector)
        bm25[q] = snap.bm25.scores(query)
        heading[q] = heading_bm25.scores(query)
        first, last = record.gold_lines
        relevant[q] = [(record.source in (None, m["source"])) and int(m["start_line"]) <= last
                       and first <= int(m["end_line"]) for m in metas]
    multi = np.maximum(chunk_cos, unit_cos)
    levers = {
        "baseline: RRF(chunk cosine, BM25)": rrf((1.0, chunk_cos, False), (0.5, bm25, True)),
        "multi-vector: max(chunk, best unit) [kept]": rrf((1.0, multi, False), (0.5, bm25, True)),
        "multi-vector: mean(chunk, best unit)": rrf((1.0, (chunk_cos + unit_cos) / 2, False), (0.5, bm25, True)),
        "multi-vector: unit cosine as a 3rd ranking": rrf((1.0, chunk_cos, False), (0.5, bm25, True), (1.0, unit_cos, False)),
        "heading path as a 3rd BM25 ranking (0.25)": rrf((1.0, multi, False), (0.5, bm25, True), (0.25, heading, True)),
        "heading match boost (+0.02 x BM25/max)": rrf((1.0, multi, False), (0.5, bm25, True)) + 0.02 * by_max(heading),
        "score-aware: CombSUM cosine + 0.3 BM25/max": multi + 0.3 * by_max(bm25),
        "score-aware: z(cosine) + 0.5 z(BM25)": zscore(multi) + 0.5 * zscore(bm25),
        "parent/child tie-break (child within 95 %)": child_first(rrf((1.0, multi, False), (0.5, bm25, True)), headings, sources),
    }
    halves = np.array([split_of(r.id) for r in records])
    print(f"{args.dataset}: {len(records)} answerable ({(halves == 'tune').sum()} tune, {(halves == 'report').sum()} report)")
    print("| lever | tune hit@1 / MRR@10 / hit@5 | report hit@1 / MRR@10 / hit@5 |\n|---|---|---|")
    first_ranks = {}
    if args.tutorial:
        first_ranks["LangChain tutorial recipe (dense, 1000/200 splits)"] = tutorial_ranks(engine, args.notes, records, vectors)
    for name, scores in levers.items():
        hits = np.take_along_axis(relevant, np.argsort(-scores, axis=1, kind="stable")[:, :10], 1)
        first_ranks[name] = np.where(hits.any(1), hits.argmax(1) + 1, 0)
    for name, rank in first_ranks.items():
        print(f"| {name} | {cells(rank[halves == 'tune'])} | {cells(rank[halves == 'report'])} |")


if __name__ == "__main__":
    main()
