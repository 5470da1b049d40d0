"""The Chroma side of a crash-safe re-index: stage, commit, collect, recover.

See ``vectorstore.generations`` for the visibility rule. ``StagingStore`` is the
vector store langchain's ``index()`` writes to: its ``add_documents`` stages rows
born in the run's generation and its ``delete`` only marks rows retired, so
nothing a reader sees changes until ``commit``. ``recover`` undoes whatever an
interrupted run left behind.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from langchain_core.documents import Document

from vectorstore.generations import BORN_KEY, GENERATION_KEY, LIVE, RETIRED_KEY, committed_generation, visible
from vectorstore.retriever import INDEX_VERSION_KEY
from vectorstore.store import NotesChroma, embed_text_of

__all__ = ["StagingStore", "Recovery", "recover", "commit", "collect_garbage", "visible_rows", "UPSERT_BATCH"]

logger = logging.getLogger(__name__)

UPSERT_BATCH = 256  # rows per Chroma call (well under chromadb's max batch size)
READ_BATCH = 2000


def _batches(items: list, size: int) -> Iterable[list]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _rows(collection, ids: list[str]) -> dict[str, dict]:
    """Metadata of the rows among ``ids`` that exist (read in batches)."""
    found: dict[str, dict] = {}
    for batch in _batches(ids, READ_BATCH):
        got = collection.get(ids=batch, include=["metadatas"])
        found.update(zip(got["ids"], got["metadatas"] or [{}] * len(got["ids"])))
    return found


def _is_live(meta: dict | None) -> bool:
    """True for an existing row that no run has retired (``None`` = no such row)."""
    return meta is not None and int(meta.get(RETIRED_KEY, LIVE) or LIVE) == LIVE


class StagingStore(NotesChroma):
    """``NotesChroma`` whose writes stay invisible to readers until the run commits.

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
        for batch in _batches(todo, UPSERT_BATCH):
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
        for batch in _batches(live, UPSERT_BATCH):
            self._collection.update(ids=batch, metadatas=[{RETIRED_KEY: self.generation}] * len(batch))
            self.retired += len(batch)
        return True


@dataclass
class Recovery:
    """What ``recover`` undid or cleaned up (all zero after a clean run)."""

    rolled_back: int = 0  # staged rows of an uncommitted run, deleted
    restored: int = 0  # rows retired by an uncommitted run, live again
    collected: int = 0  # rows retired by a committed run but not yet deleted

    @property
    def any(self) -> bool:
        return bool(self.rolled_back or self.restored or self.collected)


def recover(collection) -> Recovery:
    """Bring the collection back to exactly its committed view (idempotent; cheap when clean)."""
    committed = committed_generation(collection.metadata)
    staged = collection.get(where={BORN_KEY: {"$gt": committed}}, include=[])["ids"]
    retired = collection.get(where={RETIRED_KEY: {"$gt": LIVE}}, include=["metadatas"])
    restore = [i for i, m in zip(retired["ids"], retired["metadatas"]) if int(m[RETIRED_KEY]) > committed]
    collect = [i for i, m in zip(retired["ids"], retired["metadatas"]) if int(m[RETIRED_KEY]) <= committed]
    staged_set = set(staged)
    restore = [i for i in restore if i not in staged_set]
    for batch in _batches(staged + collect, UPSERT_BATCH):
        collection.delete(ids=batch)
    for batch in _batches(restore, UPSERT_BATCH):
        collection.update(ids=batch, metadatas=[{RETIRED_KEY: LIVE}] * len(batch))
    result = Recovery(len(staged), len(restore), len(collect))
    if result.any:
        logger.warning(
            "recovered interrupted run committed=%d rolled_back=%d restored=%d collected=%d",
            committed, result.rolled_back, result.restored, result.collected,
        )
    return result


def commit(collection, generation: int) -> None:
    """Make ``generation`` the committed view: one metadata write, atomic for every reader."""
    metadata = dict(collection.metadata or {})
    metadata[GENERATION_KEY] = generation
    metadata[INDEX_VERSION_KEY] = uuid.uuid4().hex
    collection.modify(metadata=metadata)
    logger.debug("committed generation=%d", generation)


def collect_garbage(collection) -> int:
    """Delete rows retired by committed generations (invisible already); returns how many."""
    committed = committed_generation(collection.metadata)
    got = collection.get(where={RETIRED_KEY: {"$gt": LIVE}}, include=["metadatas"])
    doomed = [i for i, m in zip(got["ids"], got["metadatas"]) if int(m[RETIRED_KEY]) <= committed]
    for batch in _batches(doomed, UPSERT_BATCH):
        collection.delete(ids=batch)
    return len(doomed)


def visible_rows(collection, include_documents: bool = False) -> tuple[int, dict[str, dict], dict[str, str]]:
    """The committed view: ``(generation, {id: metadata}, {id: text})`` (texts only when asked)."""
    committed = committed_generation(collection.metadata)
    include = ["metadatas", "documents"] if include_documents else ["metadatas"]
    got = collection.get(include=include)
    metas = got["metadatas"] or [{}] * len(got["ids"])
    texts = got.get("documents") or [None] * len(got["ids"])
    rows, documents = {}, {}
    for chunk_id, meta, text in zip(got["ids"], metas, texts):
        if visible(meta, committed):
            rows[chunk_id] = meta
            if include_documents:
                documents[chunk_id] = text
    return committed, rows, documents
