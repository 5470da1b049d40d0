"""Sentence-transformers embeddings from a local model path (the cache is ``vectorstore.embedding_cache``).

The model is loaded once per process per path (``load_embedder``). Nothing here
may reach a model hub: the entry points' bootstrap sets ``HF_HUB_OFFLINE``, and
the loader sets it again before the first load for library users who skipped it.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

from langchain_core.embeddings import Embeddings

from vectorstore.errors import EmbeddingModelError

__all__ = ["LocalEmbeddings", "LazyEmbeddings", "load_embedder", "check_model_path", "model_error"]

logger = logging.getLogger(__name__)

_lock = threading.Lock()
_models: dict[str, "LocalEmbeddings"] = {}


def _offline() -> None:
    # Set by the product itself: a blocked hub call costs seconds or hangs.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def model_error(model_path: str, why: str) -> EmbeddingModelError:
    """The one-line error for an embedding model that cannot be used, with the fix."""
    return EmbeddingModelError(
        f"cannot load the embedding model at {model_path} ({why}); set NOTES_ASSISTANT_EMBEDDING_MODEL to a "
        "sentence-transformers model folder, or unset it to use the bundled model (the index was not changed)"
    )


def check_model_path(model_path: str) -> None:
    """Fail fast, before anything is written or loaded, when ``model_path`` cannot be a model folder.

    Cheap (a few ``stat`` calls): a folder with a ``config.json`` passes; loading may still fail
    later, with the same kind of error.

    Raises:
        EmbeddingModelError: no such folder, or no ``config.json`` in it.
    """
    path = Path(model_path)
    if not path.is_dir():
        raise model_error(model_path, "no such folder" if not path.exists() else "not a folder")
    if not (path / "config.json").is_file():
        raise model_error(model_path, "no config.json in it")


class LocalEmbeddings(Embeddings):
    """A langchain ``Embeddings`` over a sentence-transformers model on disk (normalized vectors)."""

    def __init__(self, model_path: str, batch_size: int = 64) -> None:
        _offline()
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()  # no "Loading weights" bar on every start

        path = Path(model_path)
        check_model_path(model_path)
        self.model_path = str(path)
        self.model_name = path.name
        self.batch_size = batch_size
        try:
            self._model = SentenceTransformer(self.model_path, device="cpu", local_files_only=True)
        except (OSError, ValueError, KeyError, RuntimeError) as e:  # what transformers raises for a bad folder
            why = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
            raise model_error(model_path, why) from e
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
