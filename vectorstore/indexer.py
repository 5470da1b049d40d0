"""Incremental, crash-safe indexing with langchain's indexing API and a SQLite record manager.

One run, in this order (see the README's "Never losing data"):

1. **Embed first.** Every chunk text the record manager does not know yet (and
   every answer unit of those chunks) goes through the content-hash cache. An
   embedder error or a full disk here has written nothing to the index.
2. **Journal.** The caller marks the sources being changed as ``pending`` in the
   manifest (atomic replace), so a crash from here on is seen by the next run
   even if the files are reverted meanwhile.
3. **Stage.** langchain's ``index()`` writes through a ``StagingStore``: new rows
   are born in generation G+1, superseded rows are only marked retired in G+1,
   the record manager is updated as usual. Readers still see generation G.
4. **Commit.** One collection-metadata write makes G+1 the committed generation
   (readers switch atomically), then the retired rows are deleted.
5. **Manifest.** The caller writes the final manifest (pending cleared).

A run that dies before 4 is undone by ``recover`` at the start of the next run
(staged rows deleted, retired rows live again, the record manager reconciled
with the committed rows); a run that dies after 4 needs only its garbage
collected. Either way the next run then completes the job.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from vectorstore.batches import batched
from vectorstore.client import COLLECTION_CONFIGURATION, is_storage_error
from vectorstore.configs import MANIFEST_NAME, IndexConfig, ManifestFile, resolve_collection
from vectorstore.errors import REPAIR_HINT, DamagedIndexError
from vectorstore.generations import committed_generation
from vectorstore.lock import LOCK_NAME, IndexLock

if TYPE_CHECKING:
    from langchain_core.documents import Document

    from vectorstore.generations import Recovery

__all__ = ["Indexer", "IndexReport", "MANIFEST_NAME", "RECORDS_NAME"]

logger = logging.getLogger(__name__)

RECORDS_NAME = "records.sqlite"
KEY_BATCH = 2000  # keys per record-manager call (SQLite caps bound variables)
INDEX_BATCH = 1000  # documents per langchain index() batch


@dataclass
class IndexReport:
    """What one indexing run did. ``embedded`` counts chunk texts that missed the embedding cache;
    ``units_embedded``/``units_seconds`` the answer units embedded after the commit (deferred work)."""

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
    generation: int = 0
    recovered: bool = False
    units_embedded: int = 0
    units_seconds: float = 0.0
    # The chunk documents this run embedded (new to the index): their answer units come next.
    fresh_documents: list = field(default_factory=list, repr=False, compare=False)

    @property
    def changed(self) -> bool:
        return bool(self.added or self.updated or self.deleted)

    def summary(self) -> str:
        return (
            f"added={self.added} updated={self.updated} deleted={self.deleted} skipped={self.skipped} "
            f"embedded={self.embedded} chunks={self.chunks} sources={self.sources} time={self.seconds:.2f}s "
            f"units_embedded={self.units_embedded} units_time={self.units_seconds:.2f}s"
        )

    def to_json(self) -> dict:
        out = asdict(self)
        del out["fresh_documents"]
        return out


def chunk_key(document: "Document") -> str:
    """The record-manager key of a chunk document: its stable chunk id."""
    return document.metadata["chunk_id"]


class Indexer:
    """Owns the writes: Chroma collection, record manager, embedding cache, manifest entry and lock.

    Args:
        client: the chromadb client (embedded or server).
        collection: the ``collection`` setting. Given ``chunk_tokens`` and ``chunk_overlap``,
            the physical collection is the one of this configuration (``vectorstore.configs``:
            another model or chunk budget is built beside, never over, the live one);
            without them, ``collection`` is used as it is.
        data_dir: record store, manifest, lock (and the embedded Chroma store).
        get_embedder: a zero-argument callable; the model loads only when something must be embedded.
        model_name: the embedding model's name (the cache namespace).
        cache_dir: the embedding cache (default ``data_dir/embedding-cache``).
    """

    def __init__(
        self, client, collection: str, data_dir: Path, get_embedder, model_name: str, cache_dir: Path | None = None,
        *, chunk_tokens: int | None = None, chunk_overlap: int | None = None,
    ) -> None:
        self.client = client
        self.cache_dir = Path(cache_dir) if cache_dir else Path(data_dir) / "embedding-cache"
        self.data_dir = Path(data_dir)
        self.get_embedder = get_embedder
        self.model_name = model_name
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.manifest = ManifestFile(self.data_dir / MANIFEST_NAME)
        self.config = None if chunk_tokens is None else IndexConfig(collection, model_name, chunk_tokens, chunk_overlap or 0)
        self.collection_name = collection if self.config is None else resolve_collection(self.manifest, self.config)
        self._record_manager = None
        self.lock = IndexLock(self.data_dir / LOCK_NAME)

    # -- persistent state ----------------------------------------------------
    @property
    def manifest_path(self) -> Path:
        return self.manifest.path

    def read_manifest(self) -> dict | None:
        """This collection's manifest entry (``pending`` lists sources of an unfinished run), or None before the first run.

        Raises:
            DamagedIndexError: the manifest file is unreadable or not ours.
        """
        return self.manifest.read(self.collection_name)

    def write_manifest(self, manifest: dict) -> None:
        """Replace this collection's manifest entry atomically (other collections' entries are kept)."""
        self.manifest.write(self.collection_name, manifest)

    @property
    def record_manager(self):
        if self._record_manager is None:
            from sqlalchemy.exc import DatabaseError

            from vectorstore.records import open_record_manager

            db = self.data_dir / RECORDS_NAME
            try:
                manager = open_record_manager(db, f"chroma/{self.collection_name}")
            except DatabaseError as e:
                raise DamagedIndexError(f"the record store {db} is damaged ({e.orig or e}); {REPAIR_HINT}") from e
            self._record_manager = manager
        return self._record_manager

    def reopen_records(self) -> None:
        """Close the record store; the next use opens ``records.sqlite`` anew (after it was moved aside)."""
        manager, self._record_manager = self._record_manager, None
        if manager is not None:
            manager.engine.dispose()

    def records(self) -> dict[str, str | None]:
        """Every record-manager key of this collection with its group (the chunk's source)."""
        return self.record_manager.groups()

    def cached_embedder(self, progress=None):
        """The embedder behind the crash-safe content-hash cache: ``(cached, counter)``.

        The model loads on the first cache miss only: a rename or a rebuild from a warm
        cache never pays for loading it.
        """
        from vectorstore.embedding_cache import cached_embedder
        from vectorstore.embeddings import LazyEmbeddings

        return cached_embedder(LazyEmbeddings(self.get_embedder), self.cache_dir, self.model_name, progress)

    def store(self, generation: int | None = None, progress=None):
        """A ``StagingStore`` writing generation ``generation`` (default: committed + 1), and the cache counter."""
        from vectorstore.staging import StagingStore

        cached, counter = self.cached_embedder(progress)
        if generation is None:
            generation = self.generation() + 1
        store = StagingStore(
            client=self.client, collection_name=self.collection_name, embedding_function=cached,
            collection_configuration=COLLECTION_CONFIGURATION, generation=generation,
        )
        return store, counter

    def collection(self):
        """The collection, fetched anew (its metadata is the committed state at this moment)."""
        return self.client.get_or_create_collection(self.collection_name, configuration=COLLECTION_CONFIGURATION)

    def generation(self) -> int:
        """The committed generation readers see now."""
        return committed_generation(self.collection().metadata)

    def stored_generation(self) -> int | None:
        """The committed generation, or None when the collection does not exist (nothing is created)."""
        from chromadb.errors import NotFoundError

        try:
            return committed_generation(self.client.get_collection(self.collection_name).metadata)
        except (NotFoundError, ValueError):  # chromadb raises NotFoundError or ValueError by version
            return None

    # -- recovery ------------------------------------------------------------
    def recover(self, reconcile: bool) -> "Recovery":
        """Undo what an interrupted run left in Chroma; with ``reconcile``, also realign the record manager.

        Call with the lock held. ``reconcile`` is needed when the manifest says a run
        did not finish (its record-manager updates may not match the rolled-back rows).
        """
        from vectorstore.generations import recover

        result = recover(self.collection())
        if reconcile or result.any:
            added, removed = self.reconcile_records()
            if added or removed:
                logger.warning("record manager realigned with the index added=%d removed=%d", added, removed)
        return result

    def reconcile_records(self) -> tuple[int, int]:
        """Make the record manager hold exactly the committed rows (key = id, group = source).

        Returns ``(added_or_regrouped, removed)``.
        """
        from vectorstore.generations import visible_rows

        _, rows, _ = visible_rows(self.collection())
        want = {chunk_id: meta.get("source") for chunk_id, meta in rows.items()}
        have = self.records()
        extra = [key for key in have if key not in want]
        wrong = [(key, source) for key, source in want.items() if key not in have or have[key] != source]
        manager = self.record_manager
        for batch in batched(extra, KEY_BATCH):
            manager.delete_keys(batch)
        for batch in batched(wrong, KEY_BATCH):
            manager.update([k for k, _ in batch], group_ids=[s for _, s in batch])
        return len(wrong), len(extra)

    # -- runs ----------------------------------------------------------------
    def sync(
        self,
        documents: list["Document"],
        cleanup: str,
        progress: Callable[[int, int], None] | None = None,
        before_write: Callable[[], None] | None = None,
    ) -> IndexReport:
        """Index ``documents`` (all chunks of the sources they belong to) with langchain's ``index()``.

        Args:
            documents: chunk documents; metadata must hold ``source`` and ``chunk_id``.
            cleanup: ``"incremental"`` retires stale chunks of the given sources only;
                ``"full"`` retires every chunk not in ``documents``.
            progress: optional callable(done, total) over the chunk texts embedded.
            before_write: called once, after embedding and before the first write (the journal).

        Raises:
            Whatever the embedder or Chroma raise; the committed view is unchanged then.
        """
        from langchain_core.indexing import index

        from vectorstore import generations
        from vectorstore.text import embed_text_of

        started = time.perf_counter()
        known: list[bool] = []
        for batch in batched([d.metadata["chunk_id"] for d in documents], KEY_BATCH):
            known.extend(self.record_manager.exists(batch))
        fresh = [d for d, exists in zip(documents, known) if not exists]

        # 1. Embed first: everything this run needs lands in the cache before any write.
        texts = [embed_text_of(d) for d in fresh]
        cached, counter = self.cached_embedder()
        logger.debug("embedding phase texts=%d (new chunks=%d)", len(texts), len(fresh))
        if progress and texts:
            progress(0, len(texts))  # the total is known before the first batch (an ETA from the start)
        for done, batch in enumerate(batched(texts, 128)):
            cached.embed_documents(list(batch))
            if progress:
                progress(min(len(texts), (done + 1) * 128), len(texts))

        # 2.-4. Journal, stage, commit.
        if before_write:
            before_write()
        generation = self.generation() + 1
        store, _ = self.store(generation)
        logger.debug("staging phase generation=%d documents=%d cleanup=%s", generation, len(documents), cleanup)
        try:
            # "scoped_full" is "incremental" whose cleanup waits for the last batch, so a
            # source larger than one batch is never half-deleted between batches.
            result = index(
                documents, self.record_manager, store,
                cleanup="scoped_full" if cleanup == "incremental" else cleanup,
                source_id_key="source", key_encoder=chunk_key, batch_size=INDEX_BATCH,
            )
            if store.staged or store.retired:
                generations.commit(self.collection(), generation)
                generations.collect_garbage(self.collection())
        except BaseException as e:
            # After a storage error (disk full…) embedded Chroma may hang on the next write in
            # this process; the next run rolls back on a reopened client instead (Engine.index).
            if not is_storage_error(e):
                self._undo_after_failure()
            raise
        logger.debug("synced generation=%d staged=%d retired=%d", generation, store.staged, store.retired)
        return IndexReport(
            added=result["num_added"], updated=result["num_updated"], deleted=result["num_deleted"],
            skipped=result["num_skipped"], embedded=counter.embedded, seconds=time.perf_counter() - started,
            generation=generation if (store.staged or store.retired) else generation - 1, fresh_documents=fresh,
        )

    def _undo_after_failure(self) -> None:
        """Best effort: roll a failed run back now (the next run would do it anyway)."""
        try:
            self.recover(reconcile=True)
        except Exception as e:  # the original error matters more; the next run recovers
            logger.warning("could not roll back the failed run now (the next run will): %s", e)

    def count(self) -> int:
        """Chunks readers see (the committed view)."""
        from vectorstore.generations import visible_rows

        return len(visible_rows(self.collection())[1])

    def reset(self, journal: dict) -> None:
        """Drop this collection and its records (the embedding cache and other collections stay).

        ``journal`` is written as the manifest entry first (generation 0, every source
        ``pending``), so a rebuild killed at any point is completed by the next run and
        never looks like a lost index. Deliberate simplification: while a rebuild runs,
        readers of this configuration see no chunks until it commits.
        """
        self.write_manifest({**journal, "generation": 0})
        try:
            self.client.delete_collection(self.collection_name)
        except Exception as e:  # chromadb raises NotFoundError or ValueError by version
            logger.debug("no collection to delete: %s", e)
        manager = self.record_manager
        while keys := manager.list_keys(limit=KEY_BATCH):
            manager.delete_keys(keys)
        self.collection()  # recreate empty, in cosine space

    def reconcile_other_collections(self) -> list[str]:
        """Realign the records of every other collection in the manifest with its committed rows.

        What a repair does after the record store was replaced: the other configurations'
        namespaces are empty then. Returns the collections whose records changed.
        """
        changed = []
        for name, entry in (self.manifest.read_all() or {}).items():
            if name == self.collection_name:
                continue
            other = Indexer(self.client, name, self.data_dir, self.get_embedder,
                            (entry.get("settings") or {}).get("model", self.model_name), self.cache_dir)
            if other.stored_generation() is None:
                continue
            added, removed = other.reconcile_records()
            if added or removed:
                logger.warning("records of collection=%s realigned added=%d removed=%d", name, added, removed)
                changed.append(name)
        return changed

    @staticmethod
    def now() -> str:
        return datetime.now(timezone.utc).isoformat(timespec="seconds")
