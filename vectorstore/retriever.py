"""Hybrid retrieval: Chroma (dense, cosine) + BM25, fused by weighted reciprocal rank.

The dense side is multi-vector: a chunk scores the better of its own cosine and its
best answer unit's cosine (``vectorstore.units``), when the unit vectors are given.

The BM25 side is built from what is in Chroma, so a Chroma server stays the single
source of truth. It lives in an immutable ``Snapshot`` (``vectorstore.snapshot``)
that is rebuilt once per index version and swapped in with one assignment: a query
never sees a half-built index.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Container, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

import numpy as np

from vectorstore.bm25 import Bm25Index
from vectorstore.client import COLLECTION_CONFIGURATION
from vectorstore.generations import INDEX_VERSION_KEY, committed_generation
from vectorstore.snapshot import Snapshot, VectorLookup
from vectorstore.text import embed_text
from vectorstore.units import UnitTexts, load_unit_vectors

__all__ = ["SearchResult", "Snapshot", "HybridRetriever", "Mode", "fuse"]

logger = logging.getLogger(__name__)

Mode = Literal["hybrid", "dense", "bm25"]
UNITS_RETRY_SECONDS = 0.5  # first wait before asking the cache again for units a snapshot lacked
UNITS_RETRY_MAX_SECONDS = 60.0
SCORE_KINDS = {
    "hybrid": "rrf (weighted reciprocal-rank fusion; higher is better)",
    "dense": "cosine similarity of the chunk or its best answer unit (higher is closer)",
    "bm25": "bm25 (higher is better)",
}


@dataclass(frozen=True)
class SearchResult:
    """One ranked chunk. ``score`` is described by ``score_kind``.

    ``cosine`` (the chunk's own cosine similarity) and ``bm25`` are the raw signals, set
    when the chunk was among the candidates of that side; abstention reads them.
    """

    rank: int
    chunk_id: str
    source: str
    heading_path: tuple[str, ...]
    start_line: int
    end_line: int
    score: float
    score_kind: str
    text: str
    cosine: float | None = None
    bm25: float | None = None

    @property
    def heading(self) -> str:
        return " > ".join(self.heading_path)

    def to_json(self) -> dict:
        return {
            "rank": self.rank,
            "source": self.source,
            "heading_path": list(self.heading_path),
            "start_line": self.start_line,
            "end_line": self.end_line,
            "score": round(self.score, 6),
            "text": self.text,
        }


def _only(ranking: list[tuple[str, float]], snapshot: Snapshot, sources: Container[str]) -> list[tuple[str, float]]:
    """The entries of ``ranking`` whose chunk belongs to one of ``sources``, in order."""
    return [(cid, score) for cid, score in ranking if snapshot.metadatas[snapshot.position[cid]]["source"] in sources]


def heading_path_of(meta: dict) -> tuple[str, ...]:
    heading = meta.get("heading", "")
    return tuple(heading.split(" > ")) if heading else ()


class HybridRetriever:
    """Dense + BM25 search over one Chroma collection.

    Args:
        client: the chromadb client (embedded or remote).
        collection_name: the notes collection.
        embedder: a ``LocalEmbeddings`` (its ``embed_query_array`` is used).
        dense_weight / bm25_weight / rrf_k: reciprocal-rank fusion parameters (no defaults here:
            ``Settings`` holds the calibrated ones).
        mmr: drop a result whose lines overlap a better-ranked result of the same source.
        candidates: how deep each ranking is read before fusing.
        version_check_seconds: how often another process's re-index is looked for.
        cached_vectors: embed texts → vectors already in the embedding cache (None where not),
            asked before Chroma for chunk vectors (see ``_vectors``).
        unit_texts: a chunk's text + metadata → the embed texts of its answer units; with it
            (and ``cached_vectors``) dense scores are multi-vector (``vectorstore.units``).
        unit_bundles: a folder for the snapshots' unit-vector bundles (None: none kept).
        namespace: the embedding model's name, part of a bundle's key.
    """

    def __init__(
        self,
        client,
        collection_name: str,
        embedder,
        *,
        dense_weight: float,
        bm25_weight: float,
        rrf_k: int,
        mmr: bool,
        candidates: int = 40,
        version_check_seconds: float = 2.0,
        cached_vectors: VectorLookup | None = None,
        unit_texts: UnitTexts | None = None,
        unit_bundles: Path | None = None,
        namespace: str = "",
    ) -> None:
        self.client = client
        self.collection_name = collection_name
        self.collection = None
        self.embedder = embedder
        self.dense_weight = dense_weight
        self.bm25_weight = bm25_weight
        self.rrf_k = rrf_k
        self.mmr = mmr
        self.candidates = candidates
        self.version_check_seconds = version_check_seconds
        self.cached_vectors = cached_vectors
        self.unit_texts = unit_texts
        self.unit_bundles = unit_bundles
        self.namespace = namespace
        self._snapshot: Snapshot | None = None
        self._preview: Snapshot | None = None
        self._lock = threading.Lock()
        self._checked_at = 0.0
        self._units_retry_at = 0.0
        self._units_retry_wait = UNITS_RETRY_SECONDS

    def with_client(self, client) -> "HybridRetriever":
        """The same retriever over a new client (after the embedded store was reopened)."""
        return HybridRetriever(
            client, self.collection_name, self.embedder, dense_weight=self.dense_weight,
            bm25_weight=self.bm25_weight, rrf_k=self.rrf_k, mmr=self.mmr, candidates=self.candidates,
            version_check_seconds=self.version_check_seconds, cached_vectors=self.cached_vectors,
            unit_texts=self.unit_texts, unit_bundles=self.unit_bundles, namespace=self.namespace,
        )

    # -- index version -------------------------------------------------------
    def _current_version(self) -> str:
        # Fetched anew each time: a re-index in another process (or a rebuild that
        # recreated the collection) must be seen here.
        from chromadb.errors import NotFoundError

        try:
            self.collection = self.client.get_collection(self.collection_name)
        except (NotFoundError, ValueError):
            self.collection = self.client.get_or_create_collection(
                self.collection_name, configuration=COLLECTION_CONFIGURATION
            )
        meta = self.collection.metadata or {}
        # No row count: a re-index writes rows long before it commits, and readers only
        # care about commits (the generation) or a recreated collection (the id).
        return f"{self.collection.id}/{committed_generation(meta)}/{meta.get(INDEX_VERSION_KEY, '')}"

    def refresh(self, force: bool = False) -> Snapshot:
        """Rebuild the snapshot if the collection changed (or ``force``); returns the live snapshot.

        A rebuild that fails (embedded Chroma can raise while another thread or process
        writes) keeps the current snapshot and is retried at the next check: searches
        go on from the last consistent view instead of failing.
        """
        with self._lock:
            for attempt in range(3):
                try:
                    return self._refresh_locked(force)
                except Exception as e:  # noqa: BLE001 - any store error: serve the last good view
                    if self._snapshot is not None:
                        logger.warning("snapshot rebuild failed; serving version=%s: %s", self._snapshot.version, e)
                        self._checked_at = time.monotonic() - self.version_check_seconds + 0.25  # retry soon
                        return self._snapshot
                    if attempt == 2:
                        raise
                    time.sleep(0.1)
            raise AssertionError("unreachable")

    def _refresh_locked(self, force: bool) -> Snapshot:
        version = self._current_version()
        if force or self._snapshot is None or self._snapshot.version != version:
            started = time.perf_counter()
            snapshot = self._read(version)
            for _ in range(3):
                # A commit between reading the generation and reading the rows could hide
                # rows it just collected: re-read until the committed generation held still.
                again = self._current_version()
                if again.split("/")[:2] == version.split("/")[:2]:
                    break
                version = again
                snapshot = self._read(version)
            self._snapshot = snapshot
            self._units_retry_at, self._units_retry_wait = time.monotonic() + UNITS_RETRY_SECONDS, UNITS_RETRY_SECONDS
            logger.info(
                "bm25 rebuilt chunks=%d version=%s ms=%.0f",
                len(self._snapshot), version, (time.perf_counter() - started) * 1000,
            )
        self._checked_at = time.monotonic()
        return self._snapshot

    def _read(self, version: str) -> Snapshot:
        return Snapshot.from_collection(self.collection, version, self._snapshot, self.cached_vectors,
                                        self.unit_texts, self.unit_bundles, self.namespace)

    def _complete_units(self, snapshot: Snapshot) -> Snapshot:
        """Ask the cache again for the units a snapshot lacked; the same snapshot with more of them.

        Indexing embeds the answer units after it commits the chunks, so the snapshot read
        at the commit lacks the new chunks' units for a while. Asked again at most every
        ``UNITS_RETRY_SECONDS``, doubling (up to ``UNITS_RETRY_MAX_SECONDS``) while nothing
        new turns up — units that never get cached cost almost nothing.
        """
        with self._lock:
            if snapshot is not self._snapshot or time.monotonic() < self._units_retry_at:
                return self._snapshot
            units = snapshot.units
            try:
                more = load_unit_vectors(snapshot.ids, snapshot.texts, snapshot.metadatas, self.unit_texts,
                                         self.cached_vectors, previous=units.complete_chunks(snapshot.ids),
                                         bundle_folder=self.unit_bundles, namespace=self.namespace)
            except Exception as e:  # noqa: BLE001 - the cache is optional: keep serving what we have
                logger.warning("reading answer-unit vectors failed: %s", e)
                more = units
            if len(more.incomplete) < len(units.incomplete):
                self._snapshot = snapshot = replace(snapshot, units=more)
                self._units_retry_wait = UNITS_RETRY_SECONDS
            else:
                self._units_retry_wait = min(self._units_retry_wait * 2, UNITS_RETRY_MAX_SECONDS)
            self._units_retry_at = time.monotonic() + self._units_retry_wait
            return snapshot

    def set_preview(self, ids: list[str], texts: list[str], metadatas: list[dict]) -> None:
        """Search these chunks by keywords alone until the collection has committed rows.

        The web app parses the notes at start and answers from this BM25-only view while
        its first index is embedded in the background (no vectors: dense search is
        skipped); the first committed snapshot with rows replaces it for good.
        """
        embed_texts = [embed_text(m.get("heading", ""), t) for t, m in zip(texts, metadatas)]
        self._preview = Snapshot("preview", tuple(ids), tuple(texts), tuple(dict(m) for m in metadatas),
                                 Bm25Index(embed_texts), {cid: i for i, cid in enumerate(ids)}, None)

    @property
    def keyword_only(self) -> bool:
        """True while searches are answered from the keyword-only preview."""
        return self.snapshot is self._preview and self._preview is not None

    @property
    def current_snapshot(self) -> Snapshot | None:
        """The snapshot searches use right now, without looking for a newer one (None before the first)."""
        return self._snapshot

    @property
    def snapshot(self) -> Snapshot:
        """The live view: the committed snapshot (re-checked every ``version_check_seconds``), or the preview."""
        snap = self._snapshot
        if snap is None or time.monotonic() - self._checked_at > self.version_check_seconds:
            snap = self.refresh()
        if snap.units is not None and snap.units.incomplete and time.monotonic() >= self._units_retry_at:
            snap = self._complete_units(snap)
        if self._preview is not None:
            if not len(snap):
                return self._preview
            self._preview = None  # the first index has committed: hybrid from now on
        return snap

    # -- search --------------------------------------------------------------
    def dense(self, query_vector: np.ndarray, n: int, snapshot: Snapshot) -> list[tuple[str, float]]:
        """(chunk id, dense score) best first, over the chunks in ``snapshot``.

        The dense score is the cosine similarity of the chunk or of its best answer unit,
        whichever is higher (``chunk_cosines`` alone when the snapshot has no unit vectors).
        Exact search over the snapshot's own vectors (matrix-vector products, ~1 ms for
        800 chunks and 2,800 units): it sees exactly the snapshot's generation, and it
        does not miss a just-written chunk the way Chroma's HNSW index can right after an upsert.
        """
        scores = self.chunk_cosines(query_vector, snapshot)
        if scores is None:
            return []
        if snapshot.units is not None:
            scores = np.maximum(scores, snapshot.units.best_cosine(_normalised(query_vector)))
        return _best(scores, n, snapshot)

    @staticmethod
    def chunk_cosines(query_vector: np.ndarray, snapshot: Snapshot) -> np.ndarray | None:
        """Cosine similarity of every chunk's own vector to the query (None without vectors)."""
        vectors = snapshot.vectors
        if vectors is None or not len(vectors):
            return None
        return vectors @ _normalised(query_vector)

    def search(self, query: str, k: int = 8, mode: Mode = "hybrid", query_vector: np.ndarray | None = None,
               sources: Container[str] | None = None, fusion: tuple[float, float, int] | None = None) -> list[SearchResult]:
        """Top ``k`` chunks for ``query``.

        ``query_vector`` may be passed when the caller already embedded the query.
        ``sources`` (e.g. the notes with a tag) narrows the search to those notes before fusion.
        ``fusion`` (dense weight, BM25 weight, rrf_k) overrides this retriever's own for this search.
        """
        snapshot = self.snapshot
        if not len(snapshot) or not query.strip():
            return []
        depth = max(self.candidates, k * 3)
        if sources is not None:
            depth = len(snapshot)  # rank every chunk, then keep the allowed ones: a filter must not starve a ranking
        dense: list[tuple[str, float]] = []
        chunk_cosine: np.ndarray | None = None
        if mode in ("hybrid", "dense"):
            if query_vector is None:
                query_vector = self.embedder.embed_query_array(query)
            dense = self.dense(query_vector, depth, snapshot)
            chunk_cosine = self.chunk_cosines(query_vector, snapshot)
        lexical: list[tuple[str, float]] = []
        if mode in ("hybrid", "bm25"):
            lexical = [(snapshot.ids[i], s) for i, s in snapshot.bm25.top(query, depth)]
        if sources is not None:
            dense, lexical = _only(dense, snapshot, sources), _only(lexical, snapshot, sources)

        # The chunk's own cosine (not its unit's): abstention is calibrated on it.
        cosine = {cid: float(chunk_cosine[snapshot.position[cid]]) for cid, _ in dense} if chunk_cosine is not None else {}
        bm25 = dict(lexical)
        if mode == "dense":
            fused = dense
        elif mode == "bm25":
            fused = lexical
        else:
            weights = fusion or (self.dense_weight, self.bm25_weight, self.rrf_k)
            fused = fuse(dense, lexical, *weights, snapshot.position)

        results: list[SearchResult] = []
        kept_spans: list[tuple[str, int, int]] = []
        for cid, score in fused:
            meta = snapshot.metadatas[snapshot.position[cid]]
            source, start, end = meta["source"], int(meta["start_line"]), int(meta["end_line"])
            if self.mmr and any(s == source and start <= e and b <= end for s, b, e in kept_spans):
                continue
            kept_spans.append((source, start, end))
            results.append(
                SearchResult(
                    rank=len(results) + 1, chunk_id=cid, source=source, heading_path=heading_path_of(meta),
                    start_line=start, end_line=end, score=float(score), score_kind=SCORE_KINDS[mode],
                    text=snapshot.texts[snapshot.position[cid]], cosine=cosine.get(cid), bm25=bm25.get(cid),
                )
            )
            if len(results) == k:
                break
        return results


def fuse(dense: Sequence[tuple[str, float]], lexical: Sequence[tuple[str, float]], dense_weight: float,
         bm25_weight: float, rrf_k: int, position: Mapping[str, int]) -> list[tuple[str, float]]:
    """Weighted reciprocal-rank fusion of two rankings: (chunk id, fused score) best first.

    Ties go to the chunk that comes first in the snapshot (``position``).

    >>> fuse([("a", .9), ("b", .8)], [("b", 7.0)], 1.0, 0.5, 10, {"a": 0, "b": 1})
    [('b', 0.12878787878787878), ('a', 0.09090909090909091)]
    """
    scores: dict[str, float] = {}
    for weight, ranking in ((dense_weight, dense), (bm25_weight, lexical)):
        for rank, (cid, _) in enumerate(ranking, start=1):
            scores[cid] = scores.get(cid, 0.0) + weight / (rrf_k + rank)
    return sorted(scores.items(), key=lambda p: (-p[1], position[p[0]]))


def _normalised(vector: np.ndarray) -> np.ndarray:
    vector = np.asarray(vector, dtype=np.float32)
    return vector / max(float(np.linalg.norm(vector)), 1e-12)


def _best(scores: np.ndarray, n: int, snapshot: Snapshot) -> list[tuple[str, float]]:
    """The ``n`` best (chunk id, score) pairs, best first; ties in snapshot order."""
    n = min(n, len(scores))
    if n <= 0:
        return []
    best = np.argpartition(-scores, n - 1)[:n]
    best = sorted(best, key=lambda i: (-scores[i], i))
    return [(snapshot.ids[i], float(scores[i])) for i in best]
