"""The vector store langchain's ``index()`` writes to during a crash-safe re-index.

``StagingStore`` is ``langchain_chroma.Chroma`` with two changes: its
``add_documents`` stages rows born in the run's generation (embedding each chunk
*with its heading path* while storing the chunk's original lines), and its
``delete`` only marks rows retired. Nothing a reader sees changes until the run
commits (``vectorstore.generations``: the visibility rule, commit and recovery).
"""

from __future__ import annotations

from typing import Any

from langchain_chroma import Chroma
from langchain_core.documents import Document

from vectorstore.batches import batched
from vectorstore.generations import BORN_KEY, LIVE, RETIRED_KEY, UPSERT_BATCH
from vectorstore.text import embed_text_of

__all__ = ["StagingStore"]

READ_BATCH = 2000


def _rows(collection, ids: list[str]) -> dict[str, dict]:
    """Metadata of the rows among ``ids`` that exist (read in batches)."""
    found: dict[str, dict] = {}
    for batch in batched(ids, READ_BATCH):
        got = collection.get(ids=batch, include=["metadatas"])
        found.update(zip(got["ids"], got["metadatas"] or [{}] * len(got["ids"])))
    return found


def _is_live(meta: dict | None) -> bool:
    """True for an existing row that no run has retired (``None`` = no such row)."""
    return meta is not None and int(meta.get(RETIRED_KEY, LIVE) or LIVE) == LIVE


class StagingStore(Chroma):
    """A Chroma vector store whose writes stay invisible to readers until the run commits.

    Args:
        generation: the run's generation (committed + 1); staged rows are born in it
            and superseded rows are retired in it.
        All other arguments are those of ``langchain_chroma.Chroma``.
    """

    def __init__(self, *args: Any, generation: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.generation = generation
        self.staged = 0
        self.retired = 0

    def add_documents(self, documents: list[Document], **kwargs: Any) -> list[str]:
        ids = list(kwargs.get("ids") or [doc.id for doc in documents])
        if not documents:
            return []
        # A row that is already live keeps its generation: re-staging it under the same
        # id would overwrite the row readers see now.
        existing = _rows(self._collection, ids)
        todo = [(chunk_id, doc) for chunk_id, doc in zip(ids, documents) if not _is_live(existing.get(chunk_id))]
        for batch in batched(todo, UPSERT_BATCH):
            # Vectors come through the content-hash cache, which the indexer filled first.
            vectors = self.embeddings.embed_documents([embed_text_of(doc) for _, doc in batch])
            self._collection.upsert(
                ids=[chunk_id for chunk_id, _ in batch],
                embeddings=vectors,
                documents=[doc.page_content for _, doc in batch],
                metadatas=[{**doc.metadata, BORN_KEY: self.generation, RETIRED_KEY: LIVE} for _, doc in batch],
            )
            self.staged += len(batch)
        return ids

    def delete(self, ids: list[str] | None = None, **kwargs: Any) -> bool:
        """Mark live rows retired in this generation (they vanish for readers at the commit)."""
        if not ids:
            return True  # never "delete everything" by accident
        existing = _rows(self._collection, list(ids))
        live = [chunk_id for chunk_id, meta in existing.items() if _is_live(meta)]
        for batch in batched(live, UPSERT_BATCH):
            self._collection.update(ids=batch, metadatas=[{RETIRED_KEY: self.generation}] * len(batch))
            self.retired += len(batch)
        return True
