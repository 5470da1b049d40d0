"""The searchable view of one committed index version: chunks, BM25, chunk and answer-unit vectors.

Built once per index version (``HybridRetriever`` swaps it in with one assignment, so
a query never sees a half-built index) from the collection's committed rows.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np

from vectorstore.bm25 import Bm25Index
from vectorstore.generations import committed_generation, visible
from vectorstore.text import embed_text
from vectorstore.units import UnitTexts, UnitVectors, load_unit_vectors

__all__ = ["Snapshot", "VectorLookup", "same_collection"]

VectorLookup = Callable[[list[str]], list]  # embed texts → cached vectors (None where not cached)


@dataclass(frozen=True)
class Snapshot:
    """Everything in the collection at one index version, plus its BM25 index."""

    version: str
    ids: tuple[str, ...]
    texts: tuple[str, ...]
    metadatas: tuple[dict, ...]
    bm25: Bm25Index
    position: dict[str, int] = field(repr=False)
    vectors: np.ndarray | None = field(default=None, repr=False)  # row i: normalised embedding of ids[i]
    units: UnitVectors | None = field(default=None, repr=False)  # answer-unit vectors per chunk (multi-vector)

    @cached_property
    def whole_notes(self) -> frozenset[str]:
        """The notes indexed as one chunk: that chunk is the whole note."""
        counts = Counter(m["source"] for m in self.metadatas)
        return frozenset(source for source, n in counts.items() if n == 1)

    @classmethod
    def from_collection(cls, collection, version: str, previous: "Snapshot | None" = None,
                        cached_vectors: VectorLookup | None = None, unit_texts: UnitTexts | None = None,
                        unit_bundles: Path | None = None, namespace: str = "") -> "Snapshot":
        """Read the committed view of ``collection``; vectors of chunks ``previous`` holds are reused.

        Chunk ids are content-addressed, so a chunk's vector never changes within one
        collection: a re-index that touched 3 chunks fetches 3 vectors. ``cached_vectors``
        (embed texts → vectors or None) is asked first, Chroma for the rest. With
        ``unit_texts`` the chunks' answer-unit vectors are read from ``cached_vectors``
        too (see ``vectorstore.units``; ``unit_bundles`` is where their bundles live).
        """
        # Only the committed generation is visible: rows a running re-index staged or
        # retired do not exist for readers until it commits (vectorstore.generations).
        committed = committed_generation(collection.metadata)
        got = collection.get(include=["documents", "metadatas"])
        ids, texts, metas = got["ids"], got["documents"] or [], got["metadatas"] or []
        keep = [i for i in range(len(ids)) if visible(metas[i], committed)]
        order = sorted(keep, key=lambda i: (metas[i]["source"], metas[i]["start_line"], ids[i]))
        ids = tuple(ids[i] for i in order)
        texts = tuple(texts[i] for i in order)
        metas = tuple(dict(metas[i]) for i in order)
        embed_texts = [embed_text(m.get("heading", ""), t) for t, m in zip(texts, metas)]
        bm25 = Bm25Index(embed_texts)
        position = {chunk_id: i for i, chunk_id in enumerate(ids)}
        vectors = _vectors(collection, ids, dict(zip(ids, embed_texts)), previous, cached_vectors)
        units = None
        if unit_texts is not None and cached_vectors is not None and ids:
            reuse = None
            if previous is not None and previous.units is not None and same_collection(previous, collection):
                reuse = previous.units.complete_chunks(previous.ids)
            units = load_unit_vectors(ids, texts, metas, unit_texts, cached_vectors, previous=reuse,
                                      bundle_folder=unit_bundles, namespace=namespace)
        return cls(version, ids, texts, metas, bm25, position, vectors, units)

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def generation(self) -> int:
        """The committed generation this snapshot shows (its version is ``collection/generation/commit``)."""
        parts = self.version.split("/")
        return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0




def _vectors(collection, ids: tuple[str, ...], embed_texts: dict[str, str], previous: Snapshot | None,
             cached_vectors: VectorLookup | None) -> np.ndarray:
    """Normalised embeddings of ``ids`` (one row each), fetched only for chunks ``previous`` lacks.

    The embedding cache is asked first: embedded Chroma keeps a process's view of its
    vector segment from when it opened it, so a reader process asking it for a chunk
    another process (``notes-assistant index``) wrote gets "Error finding id" — the
    cache, written before every commit, has it. Chroma answers the rest (a server
    always can).

    Raises:
        LookupError: a chunk vanished while reading (a writer collected it); the caller retries.
    """
    known: dict[str, np.ndarray] = {}
    if previous is not None and previous.vectors is not None and same_collection(previous, collection):
        known = dict(zip(previous.ids, previous.vectors))
    missing = [chunk_id for chunk_id in ids if chunk_id not in known]
    if missing and cached_vectors is not None:
        for chunk_id, vector in zip(missing, cached_vectors([embed_texts[c] for c in missing])):
            if vector is not None:
                known[chunk_id] = np.asarray(vector, dtype=np.float32)
        missing = [chunk_id for chunk_id in missing if chunk_id not in known]
    for start in range(0, len(missing), 2000):
        got = collection.get(ids=missing[start : start + 2000], include=["embeddings"])
        for chunk_id, vector in zip(got["ids"], got["embeddings"]):
            known[chunk_id] = np.asarray(vector, dtype=np.float32)
    if not ids:
        return np.zeros((0, 0), np.float32)
    try:
        vectors = np.vstack([known[chunk_id] for chunk_id in ids])
    except KeyError as e:
        raise LookupError(f"chunk {e.args[0]} disappeared while the snapshot was read") from None
    return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)




def same_collection(snapshot: Snapshot, collection) -> bool:
    """True when ``snapshot`` was read from ``collection`` (not from one a rebuild replaced)."""
    return snapshot.version.split("/")[0] == str(collection.id)


