"""The embedding cache: a text is embedded once, ever (keyed by the sha256 of model name + text).

``cached_embedder`` wraps an embedder in langchain's ``CacheBackedEmbeddings``
over a crash-safe file store; it is the one cache every path uses (chunks at
index time, answer units at index and question time).

langchain's ``LocalFileStore`` writes each value in place: a process killed (or a
disk that fills up) in the middle of a write leaves a truncated file, and every
later run then fails to decode that cached vector. ``AtomicFileStore`` writes to a
temporary file in the same folder and renames it over the key (atomic on POSIX),
and treats a value that is not a complete JSON list (left by an older version) as
a cache miss, so it is simply embedded again.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

from langchain_classic.storage import LocalFileStore
from langchain_core.embeddings import Embeddings

__all__ = ["AtomicFileStore", "CountingEmbeddings", "cached_embedder", "cached_vectors"]

logger = logging.getLogger(__name__)


class AtomicFileStore(LocalFileStore):
    """``LocalFileStore`` with atomic writes and truncated values read as misses."""

    def mset(self, key_value_pairs: Sequence[tuple[str, bytes]]) -> None:
        for key, value in key_value_pairs:
            full_path = self._get_full_path(key)
            self._mkdir_for_store(full_path.parent)
            fd, tmp = tempfile.mkstemp(dir=full_path.parent, prefix=".tmp-", suffix=".part")
            try:
                with os.fdopen(fd, "wb") as handle:
                    handle.write(value)
                # mkstemp creates 0600; give cache files the usual permissions.
                os.chmod(tmp, self.chmod_file if self.chmod_file is not None else 0o644)
                os.replace(tmp, full_path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise

    def mget(self, keys: Sequence[str]) -> list[bytes | None]:
        values = super().mget(keys)
        for i, value in enumerate(values):
            # Cached vectors are JSON lists: anything else is the remains of a torn write.
            if value is not None and not (value.startswith(b"[") and value.rstrip().endswith(b"]")):
                logger.warning("ignoring a damaged embedding cache entry key=%s bytes=%d", keys[i], len(value))
                values[i] = None
        return values


class CountingEmbeddings(Embeddings):
    """Wraps an embedder and counts texts actually embedded (cache misses when wrapped by the cache)."""

    def __init__(self, inner: Embeddings, progress=None) -> None:
        self.inner = inner
        self.embedded = 0
        self.progress = progress

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        vectors = self.inner.embed_documents(texts)
        self.embedded += len(texts)
        if self.progress is not None:
            self.progress(len(texts))
        return vectors

    def embed_query(self, text: str) -> list[float]:
        return self.inner.embed_query(text)


def cached_embedder(inner: Embeddings, cache_dir: Path, namespace: str, progress=None):
    """``CacheBackedEmbeddings`` over an ``AtomicFileStore``: a text is embedded once, ever.

    Returns ``(cached, counter)``; ``counter.embedded`` tells how many texts missed the cache.
    """
    from langchain_classic.embeddings import CacheBackedEmbeddings

    counter = CountingEmbeddings(inner, progress)
    cached = CacheBackedEmbeddings.from_bytes_store(
        counter, AtomicFileStore(str(cache_dir)), namespace=namespace, key_encoder="sha256", batch_size=256
    )
    return cached, counter


class _NothingEmbedded(Embeddings):
    """The inner embedder of a read-only cache: a miss stays a miss."""

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        raise LookupError("read-only embedding cache: nothing is embedded here")

    def embed_query(self, text: str) -> list[float]:
        raise LookupError("read-only embedding cache: nothing is embedded here")


def cached_vectors(cache_dir: Path, namespace: str):
    """A read-only view of the cache: ``lookup(texts)`` → the cached vector of each text, or None.

    Never loads a model and never embeds (readers use it to get chunk vectors another
    process indexed; see ``vectorstore.retriever``).
    """
    from langchain_classic.embeddings import CacheBackedEmbeddings

    cached = CacheBackedEmbeddings.from_bytes_store(
        _NothingEmbedded(), AtomicFileStore(str(cache_dir)), namespace=namespace, key_encoder="sha256"
    )
    return cached.document_embedding_store.mget
