"""Incremental indexing with langchain's indexing API and a SQLite record manager.

Order of writes, chosen so that a crash at any point loses nothing: vectors are
written to Chroma first, the record manager is updated second, stale chunks are
deleted third, and the manifest (file hashes) is written last. A run that dies
anywhere leaves the old chunks answering queries; the next run sees the source
as changed and finishes the job (upserts are idempotent by chunk id).
"""

from __future__ import annotations

import json
import logging
import os
import time
import uuid
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from typing import TYPE_CHECKING

from vectorstore.client import COLLECTION_CONFIGURATION
from vectorstore.errors import CorruptIndexError
from vectorstore.retriever import INDEX_VERSION_KEY

if TYPE_CHECKING:
    from langchain_core.documents import Document

__all__ = ["Indexer", "IndexReport", "MANIFEST_NAME", "RECORDS_NAME"]

logger = logging.getLogger(__name__)

MANIFEST_NAME = "manifest.json"
RECORDS_NAME = "records.sqlite"
MANIFEST_FORMAT = 1


@dataclass
class IndexReport:
    """What one indexing run did. ``embedded`` counts texts that missed the embedding cache."""

    added: int = 0
    updated: int = 0
    deleted: int = 0
    skipped: int = 0
    embedded: int = 0
    chunks: int = 0
    sources: int = 0
    seconds: float = 0.0
    changed_sources: list[str] = field(default_factory=list)
    removed_sources: list[str] = field(default_factory=list)
    skipped_files: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.added or self.updated or self.deleted)

    def summary(self) -> str:
        return (
            f"added={self.added} updated={self.updated} deleted={self.deleted} skipped={self.skipped} "
            f"embedded={self.embedded} chunks={self.chunks} sources={self.sources} time={self.seconds:.2f}s"
        )

    def to_json(self) -> dict:
        return asdict(self)


def chunk_key(document: "Document") -> str:
    """The record-manager key of a chunk document: its stable chunk id."""
    return document.metadata["chunk_id"]


class Indexer:
    """Owns the writes: Chroma collection, record manager, embedding cache and manifest."""

    def __init__(
        self, client, collection_name: str, data_dir: Path, get_embedder, model_name: str, cache_dir: Path | None = None
    ) -> None:
        """``get_embedder`` is a zero-argument callable: the model loads only when something must be embedded."""
        self.client = client
        self.cache_dir = Path(cache_dir) if cache_dir else Path(data_dir) / "embedding-cache"
        self.collection_name = collection_name
        self.data_dir = Path(data_dir)
        self.get_embedder = get_embedder
        self.model_name = model_name
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._record_manager = None

    # -- persistent state ----------------------------------------------------
    @property
    def manifest_path(self) -> Path:
        return self.data_dir / MANIFEST_NAME

    def read_manifest(self) -> dict | None:
        """The last successful run's manifest, or None before the first run."""
        try:
            raw = self.manifest_path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except OSError as e:
            raise CorruptIndexError(f"cannot read {self.manifest_path}: {e.strerror}; fix permissions or use --rebuild") from e
        try:
            manifest = json.loads(raw)
        except json.JSONDecodeError as e:
            raise CorruptIndexError(f"{self.manifest_path} is not valid JSON; re-create the index with --rebuild") from e
        if not isinstance(manifest, dict) or manifest.get("format") != MANIFEST_FORMAT:
            raise CorruptIndexError(
                f"{self.data_dir} was not written by this version of notes-assistant; re-create it with --rebuild"
            )
        return manifest

    def write_manifest(self, manifest: dict) -> None:
        manifest = {**manifest, "format": MANIFEST_FORMAT}
        tmp = self.manifest_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(manifest, indent=1, sort_keys=True), encoding="utf-8")
        os.replace(tmp, self.manifest_path)  # atomic on POSIX

    @property
    def record_manager(self):
        if self._record_manager is None:
            from langchain_classic.indexes import SQLRecordManager
            from sqlalchemy.exc import DatabaseError

            db = self.data_dir / RECORDS_NAME
            try:
                manager = SQLRecordManager(f"chroma/{self.collection_name}", db_url=f"sqlite:///{db}")
                manager.create_schema()
            except DatabaseError as e:
                raise CorruptIndexError(f"{db} is not a notes-assistant record database; re-create the index with --rebuild") from e
            self._record_manager = manager
        return self._record_manager

    def store(self, progress=None):
        """The langchain vector store over the collection, embedding through the cache."""
        from vectorstore.embeddings import cached_embedder
        from vectorstore.store import open_store

        cached, counter = cached_embedder(self.get_embedder(), self.cache_dir, self.model_name, progress)
        return open_store(self.client, self.collection_name, cached), counter

    # -- runs ----------------------------------------------------------------
    def sync(self, documents: list[Document], cleanup: str, progress=None) -> IndexReport:
        """Index ``documents`` (all chunks of the sources they belong to) with langchain's ``index()``.

        Args:
            documents: chunk documents; metadata must hold ``source`` and ``chunk_id``.
            cleanup: ``"incremental"`` deletes stale chunks of the given sources only;
                ``"full"`` deletes every chunk not in ``documents``.
            progress: optional callable(n) told how many texts were embedded.
        """
        from langchain_core.indexing import index

        started = time.perf_counter()
        store, counter = self.store(progress)
        # One batch: with several batches per source, incremental cleanup after the
        # first batch would delete that source's unchanged chunks of later batches.
        result = index(
            documents,
            self.record_manager,
            store,
            cleanup=cleanup,
            source_id_key="source",
            key_encoder=chunk_key,
            batch_size=max(100, len(documents)),
        )
        report = IndexReport(
            added=result["num_added"], updated=result["num_updated"], deleted=result["num_deleted"],
            skipped=result["num_skipped"], embedded=counter.embedded,
        )
        if report.changed:
            self.bump_version()
        report.seconds = time.perf_counter() - started
        return report

    def delete_sources(self, sources: list[str]) -> int:
        """Remove every chunk of ``sources`` (vector store first, then the records)."""
        if not sources:
            return 0
        store, _ = self.store()
        deleted = 0
        while keys := self.record_manager.list_keys(group_ids=sources, limit=1000):
            store.delete(keys)
            self.record_manager.delete_keys(keys)
            deleted += len(keys)
        if deleted:
            self.bump_version()
        return deleted

    def bump_version(self) -> None:
        """Tell every retriever (in any process) that the collection changed."""
        collection = self.collection()
        collection.modify(metadata={**(collection.metadata or {}), INDEX_VERSION_KEY: uuid.uuid4().hex})

    def collection(self):
        return self.client.get_or_create_collection(self.collection_name, configuration=COLLECTION_CONFIGURATION)

    def count(self) -> int:
        return self.collection().count()

    def reset(self) -> None:
        """Drop the collection, the records and the manifest (the embedding cache stays)."""
        try:
            self.client.delete_collection(self.collection_name)
        except Exception as e:  # chromadb raises NotFoundError or ValueError by version
            logger.debug("no collection to delete: %s", e)
        manager = self.record_manager
        while keys := manager.list_keys(limit=5000):
            manager.delete_keys(keys)
        self.manifest_path.unlink(missing_ok=True)
        self.collection()  # recreate empty, in cosine space

    @staticmethod
    def now() -> str:
        return datetime.now(timezone.utc).isoformat(timespec="seconds")
