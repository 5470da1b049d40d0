"""Which chunk rows a reader may see: generations turn a re-index into one atomic commit.

Chroma has no multi-row transactions, so a re-index that writes new chunks and
deletes old ones cannot be applied atomically row by row. Instead every chunk row
carries the generation that wrote it (``BORN_KEY``) and, once superseded, the
generation that retired it (``RETIRED_KEY``; ``LIVE`` while current). The
collection's metadata holds the last *committed* generation G
(``GENERATION_KEY``). A reader sees exactly the rows that are visible at G:

    born <= G  and  (retired == LIVE or retired > G)

An indexer stages run G+1 (new rows born G+1, old rows marked retired G+1), then
commits by writing G+1 into the collection metadata — one atomic write — and only
then deletes the retired rows. A crash or an error before the commit leaves every
reader on G, exactly as before; the next run rolls the staged rows back.

Rows written before generations existed have neither key and count as born 0,
live: an old index stays readable.

This module holds the rule (``visible``), the commit, garbage collection and the
recovery of an interrupted run (``recover``); ``vectorstore.staging`` writes the
staged rows. It is imported on the query path: it must stay free of heavy imports.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass

from vectorstore.batches import batched

__all__ = [
    "GENERATION_KEY", "INDEX_VERSION_KEY", "BORN_KEY", "RETIRED_KEY", "LIVE", "UPSERT_BATCH", "Recovery",
    "committed_generation", "visible", "visible_rows", "commit", "collect_garbage", "recover",
]

logger = logging.getLogger(__name__)

UPSERT_BATCH = 256  # rows per Chroma call (well under chromadb's max batch size)
GENERATION_KEY = "notes_assistant_generation"
INDEX_VERSION_KEY = "notes_assistant_index_version"  # a fresh value at every commit: readers rebuild
BORN_KEY = "na_born_generation"
RETIRED_KEY = "na_retired_generation"
LIVE = 0


def committed_generation(collection_metadata: Mapping | None) -> int:
    """The last committed generation recorded in a collection's metadata (0 when never committed).

    >>> committed_generation({"notes_assistant_generation": 3})
    3
    >>> committed_generation(None)
    0
    """
    try:
        return int((collection_metadata or {}).get(GENERATION_KEY, 0))
    except (TypeError, ValueError):
        return 0


def visible(row_metadata: Mapping | None, committed: int) -> bool:
    """True when a chunk row belongs to the committed view ``committed``.

    >>> visible({"na_born_generation": 2, "na_retired_generation": 0}, 2)
    True
    >>> visible({"na_born_generation": 3, "na_retired_generation": 0}, 2)  # staged, not committed
    False
    >>> visible({"na_born_generation": 1, "na_retired_generation": 3}, 2)  # retirement not committed
    True
    >>> visible({}, 0)  # written before generations existed
    True
    """
    meta = row_metadata or {}
    born = int(meta.get(BORN_KEY, 0) or 0)
    retired = int(meta.get(RETIRED_KEY, LIVE) or LIVE)
    return born <= committed and (retired == LIVE or retired > committed)


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
    for batch in batched(staged + collect, UPSERT_BATCH):
        collection.delete(ids=batch)
    for batch in batched(restore, UPSERT_BATCH):
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
    for batch in batched(doomed, UPSERT_BATCH):
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
