"""Answer-unit vectors of a snapshot: multi-vector matching for the dense side of retrieval.

A chunk holds several answer units (a bullet with its sub-bullets, a paragraph, a
code block). A question that matches one unit well can score poorly against the
whole chunk, whose vector averages in everything else. So a chunk's dense score is
the better of its own cosine and its best unit's cosine
(``best_cosine``). Measured with ``notes-assistant eval --ablate``: hit@1 on the
tune halves 0.774 → 0.810 (AWS golden set) and 0.816 → 0.837 (TIL corpus);
README "Rank-1 precision".

The unit vectors are the ones indexing already put in the content-hash embedding
cache (the extractive answerer uses them), so nothing is embedded here. Reading
thousands of small cache entries and re-cutting every chunk into units costs
~0.6 s for the bundled notes, too much for a cold ``notes-assistant ask``; the
matrix is therefore also kept as one ``.npy`` bundle per snapshot in the cache
folder (``bundle_path``), which loads in a few milliseconds.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["KEEP_BUNDLES", "UnitTexts", "UnitVectors", "bundle_path", "load_unit_vectors"]

logger = logging.getLogger(__name__)

UnitTexts = Callable[[str, dict], list[str]]  # chunk text + metadata → embed texts of its answer units
VectorLookup = Callable[[list[str]], list]  # embed texts → cached vectors (None where not cached)

BUNDLE_FORMAT = "units-v1"
KEEP_BUNDLES = 8  # newest bundles kept per cache folder (several data dirs may share one cache)


@dataclass(frozen=True)
class UnitVectors:
    """The normalised unit vectors of a snapshot's chunks, grouped by chunk (CSR layout).

    ``vectors[offsets[i]:offsets[i + 1]]`` are the units of chunk ``i`` (snapshot order).
    ``incomplete`` lists the chunks with a unit not in the cache yet: indexing embeds
    the units after it commits the chunks, so a snapshot read in between has only some
    (the retriever asks again for those, see ``HybridRetriever.snapshot``).
    """

    offsets: np.ndarray  # int64, len = chunks + 1
    vectors: np.ndarray  # float32, units × dim, rows normalised
    incomplete: tuple[int, ...] = ()

    def __len__(self) -> int:
        return int(self.vectors.shape[0])

    def of_chunk(self, row: int) -> np.ndarray:
        return self.vectors[self.offsets[row] : self.offsets[row + 1]]

    def complete_chunks(self, ids: Sequence[str]) -> dict[str, np.ndarray]:
        """Chunk id → unit rows, for the chunks (``ids``: snapshot order) whose units are all here."""
        skip = set(self.incomplete)
        return {chunk_id: self.of_chunk(i) for i, chunk_id in enumerate(ids) if i not in skip}

    def best_cosine(self, query: np.ndarray) -> np.ndarray:
        """Per chunk, the cosine similarity of its closest unit (higher is closer); -1 for a chunk without units.

        ``query`` must be normalised.

        >>> units = UnitVectors(np.array([0, 2, 2, 3]), np.eye(3, dtype=np.float32))
        >>> units.best_cosine(np.array([0.0, 1.0, 0.0], np.float32)).tolist()
        [1.0, -1.0, 0.0]
        """
        chunks = len(self.offsets) - 1
        best = np.full(chunks, -1.0, dtype=np.float32)
        if not len(self) or not chunks:
            return best
        scores = self.vectors @ query
        has_units = self.offsets[1:] > self.offsets[:-1]
        # reduceat over the first unit of each chunk that has any (offsets are non-decreasing).
        best[has_units] = np.maximum.reduceat(scores, self.offsets[:-1][has_units])
        return best


def bundle_path(folder: Path, namespace: str, ids: Sequence[str]) -> Path:
    """Where the unit matrix of the chunks ``ids`` (in that order) is kept.

    Chunk ids hash a chunk's source, heading path, lines and content, so the same ids
    mean the same texts and the same units: the bundle cannot go stale while the unit
    cut stays the same. (A deliberate simplification: a change to how chunks are cut
    into units is not part of the key; old bundles disappear with the next re-index.)
    """
    digest = hashlib.sha256("\0".join([BUNDLE_FORMAT, namespace, *ids]).encode("utf-8")).hexdigest()
    return Path(folder) / f"{digest}.npz"


def load_unit_vectors(
    ids: Sequence[str],
    texts: Sequence[str],
    metadatas: Sequence[dict],
    unit_texts: UnitTexts,
    lookup: VectorLookup,
    *,
    previous: dict[str, np.ndarray] | None = None,
    bundle_folder: Path | None = None,
    namespace: str = "",
) -> UnitVectors:
    """The unit vectors of the chunks ``ids``: from a bundle, else from ``previous`` and the cache.

    A bundle is written only when every unit was found (an incomplete matrix is asked
    again later, and must not be remembered as the answer for these chunks).

    Args:
        ids, texts, metadatas: the snapshot's chunks, in snapshot order.
        unit_texts: a chunk's text + metadata → the embed texts of its answer units.
        lookup: the read-only embedding cache (embed texts → vectors or None); a unit
            not in the cache is left out (nothing is embedded here).
        previous: chunk id → unit rows known to be complete (from the snapshot before: a
            re-index that touched 3 chunks re-reads 3 chunks' units).
        bundle_folder: where bundles live (None: no bundle is read or written).
        namespace: the embedding model's name (part of the bundle key).
    """
    path = bundle_path(bundle_folder, namespace, ids) if bundle_folder is not None else None
    if path is not None:
        loaded = _read_bundle(path, len(ids))
        if loaded is not None:
            return loaded
    previous = previous or {}
    per_chunk: list[np.ndarray | None] = [previous.get(chunk_id) for chunk_id in ids]
    todo = [i for i, rows in enumerate(per_chunk) if rows is None]
    wanted: list[tuple[int, str]] = [(i, t) for i in todo for t in unit_texts(texts[i], metadatas[i])]
    vectors = lookup([t for _, t in wanted]) if wanted else []
    found: dict[int, list[np.ndarray]] = {i: [] for i in todo}
    incomplete: set[int] = set()
    for (i, _), vector in zip(wanted, vectors):
        if vector is None:
            incomplete.add(i)
        else:
            found[i].append(np.asarray(vector, dtype=np.float32))
    dim = next((rows.shape[1] for rows in per_chunk if rows is not None and rows.size),
               next((len(v[0]) for v in found.values() if v), 0))
    for i, rows in found.items():
        per_chunk[i] = np.vstack(rows) if rows else np.zeros((0, dim), np.float32)
    counts = np.array([len(rows) for rows in per_chunk], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    stacked = np.vstack([rows for rows in per_chunk if len(rows)]) if counts.sum() else np.zeros((0, dim), np.float32)
    stacked = stacked / np.maximum(np.linalg.norm(stacked, axis=1, keepdims=True), 1e-12)
    units = UnitVectors(offsets, stacked.astype(np.float32, copy=False), tuple(sorted(incomplete)))
    if path is not None and len(units) and todo and not incomplete:
        _write_bundle(path, units)
    logger.info("unit vectors chunks=%d units=%d read=%d incomplete_chunks=%d",
                len(ids), len(units), len(wanted), len(incomplete))
    return units


def _read_bundle(path: Path, chunks: int) -> UnitVectors | None:
    try:
        with np.load(path) as bundle:
            offsets, vectors = bundle["offsets"], bundle["vectors"]
        os.utime(path)  # recently used bundles survive the clean-up
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        return None  # absent, torn or foreign: rebuilt from the cache
    if len(offsets) != chunks + 1 or int(offsets[-1]) != len(vectors):
        return None
    return UnitVectors(offsets.astype(np.int64), vectors.astype(np.float32, copy=False))


def _write_bundle(path: Path, units: UnitVectors) -> None:
    """Atomic (temp file + rename); a read-only or full cache folder only costs speed."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".npz")
        try:
            with os.fdopen(fd, "wb") as handle:
                np.savez(handle, offsets=units.offsets, vectors=units.vectors)
            os.chmod(tmp, 0o644)  # mkstemp creates 0600; the cache's other files are 0644
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        _clean(path.parent, keep=path)
    except OSError as e:
        logger.warning("unit vector bundle not written path=%s: %s", path, e)


def _clean(folder: Path, keep: Path) -> None:
    """Delete all but the ``KEEP_BUNDLES`` most recently used bundles (another process may still rebuild one)."""
    def used_at(bundle: Path) -> float:
        try:
            return bundle.stat().st_mtime
        except OSError:  # removed meanwhile by another process's clean-up
            return 0.0

    bundles = sorted(folder.glob("*.npz"), key=used_at, reverse=True)
    for old in bundles[KEEP_BUNDLES:]:
        if old != keep:
            old.unlink(missing_ok=True)
