"""Sentence-transformers embeddings from a local model path, cached by content hash.

The model is loaded once per process per path (``load_embedder``). Nothing here
may reach a model hub: ``HF_HUB_OFFLINE`` is set before the first load.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

from langchain_core.embeddings import Embeddings

__all__ = ["LocalEmbeddings", "LazyEmbeddings", "load_embedder", "cached_embedder", "CountingEmbeddings"]

logger = logging.getLogger(__name__)

_lock = threading.Lock()
_models: dict[str, "LocalEmbeddings"] = {}


def _offline() -> None:
    # Set by the product itself: a blocked hub call costs seconds or hangs.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


class LocalEmbeddings(Embeddings):
    """A langchain ``Embeddings`` over a sentence-transformers model on disk (normalized vectors)."""

    def __init__(self, model_path: str, batch_size: int = 64) -> None:
        _offline()
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()  # no "Loading weights" bar on every start

        path = Path(model_path)
        if not path.exists():
            raise FileNotFoundError(
                f"embedding model not found at {model_path}; unset NOTES_ASSISTANT_EMBEDDING_MODEL to use the bundled model"
            )
        self.model_path = str(path)
        self.model_name = path.name
        self.batch_size = batch_size
        self._model = SentenceTransformer(self.model_path, device="cpu", local_files_only=True)
        self._encode_lock = threading.Lock()

    @property
    def dimension(self) -> int:
        return int(self._model.get_sentence_embedding_dimension())

    def _encode(self, texts: list[str]) -> list[list[float]]:
        if not texts:
            return []
        # torch inference is not re-entrant-safe for one module across threads on all builds.
        with self._encode_lock:
            vectors = self._model.encode(
                texts, batch_size=self.batch_size, normalize_embeddings=True, convert_to_numpy=True,
                show_progress_bar=False,
            )
        return vectors.tolist()

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return self._encode(list(texts))

    def embed_query(self, text: str) -> list[float]:
        return self._encode([text])[0]

    def embed_query_array(self, text: str):
        """The query vector as a numpy array (the hot path of search avoids list conversions)."""
        with self._encode_lock:
            return self._model.encode(
                [text], normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
            )[0]


def load_embedder(model_path: str, batch_size: int = 64) -> LocalEmbeddings:
    """The process-wide embedder for ``model_path`` (loaded on first use)."""
    with _lock:
        model = _models.get(model_path)
        if model is None:
            logger.info("loading embedding model path=%s", model_path)
            model = LocalEmbeddings(model_path, batch_size)
            _models[model_path] = model
        return model


class LazyEmbeddings(Embeddings):
    """Defers loading the model until a text really has to be embedded (a cache miss)."""

    def __init__(self, factory) -> None:
        self.factory = factory

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return self.factory().embed_documents(texts)

    def embed_query(self, text: str) -> list[float]:
        return self.factory().embed_query(text)


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
    """``CacheBackedEmbeddings`` over a file store: a text is embedded once, ever.

    Returns ``(cached, counter)``; ``counter.embedded`` tells how many texts missed the cache.
    """
    from langchain_classic.embeddings import CacheBackedEmbeddings
    from langchain_classic.storage import LocalFileStore

    counter = CountingEmbeddings(inner, progress)
    store = LocalFileStore(str(cache_dir))
    cached = CacheBackedEmbeddings.from_bytes_store(
        counter, store, namespace=namespace, key_encoder="sha256", batch_size=256
    )
    return cached, counter
