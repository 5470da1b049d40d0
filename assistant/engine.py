"""The notes engine: settings → Chroma client, indexer, sync bookkeeping, retriever, encoders — wired once.

A thin facade: it builds each component lazily and once (the embedding model
loads once per process), holds the locks around index runs, and keeps the
retriever's snapshot fresh after them. The work lives in the components:
``vectorstore.sync`` (status, runs, checks), ``vectorstore.indexer`` (writes),
``vectorstore.retriever`` (hybrid search).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Container
from pathlib import Path
from typing import TYPE_CHECKING

from assistant.calibration import Calibration, CalibrationFile
from assistant.settings import Settings
from ingest import read_notes
from ingest.tags import TagScope, narrow as narrow_by_tags, tag_sources
from vectorstore.client import make_client
from vectorstore.datadir import prepare_data_dir
from vectorstore.errors import CorruptIndexError
from vectorstore.retriever import HybridRetriever, Mode, SearchResult
from vectorstore.sync import IndexStatus, NotesSync

if TYPE_CHECKING:  # the indexing side (langchain-chroma, sentence-transformers) loads only when used

    from vectorstore.consistency import ConsistencyReport
    from vectorstore.indexer import IndexReport, Indexer

__all__ = ["Engine", "IndexStatus"]

logger = logging.getLogger(__name__)

QUERY_VECTOR_CACHE = 512  # recent query vectors remembered (a follow-up re-asks the same condensed query)


class Engine:
    """Index and search one notes collection as configured by ``settings``.

    Args:
        settings: notes path, data dir, collection, chunking, retrieval weights.
        embedder: a ready ``LocalEmbeddings`` (tests share one); loaded on first need otherwise.
        client: a ready chromadb client; built from the settings otherwise.
        take_over: accept a data dir with foreign files (``--rebuild``).
    """

    def __init__(self, settings: Settings, embedder=None, client=None, take_over: bool = False) -> None:
        self.settings = settings
        self._take_over = take_over
        self._embedder = embedder
        self._client = client
        self._indexer: Indexer | None = None
        self._sync: NotesSync | None = None
        self._retriever: HybridRetriever | None = None
        # One indexing run per Engine at a time; across processes, Indexer.lock (flock) serialises writers.
        self._index_lock = threading.Lock()
        self._reopen_store = False
        self._unit_embeddings = None
        self._query_encoder = None
        self._query_vectors: dict[str, object] = {}  # insertion-ordered: oldest evicted first
        self._query_vectors_lock = threading.Lock()
        self.query_cache_stats = {"hits": 0, "misses": 0}  # /healthz shows them (the load test reads them)
        self._tag_table: tuple[object, dict] = (None, {})  # (the snapshot it was read from, tag → sources)
        self._calibration: CalibrationFile | None = None

    # -- components, built lazily and once -----------------------------------
    @property
    def embedder(self):
        if self._embedder is None:
            from vectorstore.embeddings import load_embedder

            self._embedder = load_embedder(self.settings.model_path, self.settings.embedding_batch_size)
        return self._embedder

    @property
    def client(self):
        if self._client is None:
            data_dir = prepare_data_dir(self.settings.data_dir, self._take_over)
            self._client = make_client(data_dir, self.settings.chroma_host, self.settings.chroma_port)
        return self._client

    @property
    def indexer(self) -> Indexer:
        if self._indexer is None:
            from vectorstore.indexer import Indexer

            self._indexer = Indexer(
                self.client, self.settings.collection, prepare_data_dir(self.settings.data_dir, self._take_over),
                lambda: self.document_embedder, self.model_name, self.settings.cache_dir,
                chunk_tokens=self.settings.chunk_tokens, chunk_overlap=self.settings.chunk_overlap,
            )
        return self._indexer

    @property
    def sync(self) -> NotesSync:
        if self._sync is None:
            s = self.settings
            # After each commit the answer units go into the embedding cache too, so
            # answering embeds only the query.
            from assistant.answerers.extractive import unit_texts_of as unit_texts

            self._sync = NotesSync(self.indexer, s.notes_path, s.chunk_tokens, s.chunk_overlap, unit_texts)
        return self._sync

    @property
    def retriever(self) -> HybridRetriever:
        if self._retriever is None:
            from assistant.answerers.extractive import chunk_unit_texts
            from vectorstore.embedding_cache import cached_vectors

            s, fusion = self.settings, self.calibration
            self._retriever = HybridRetriever(
                self.client, self.indexer.collection_name, self.query_encoder,
                dense_weight=fusion.dense_weight, bm25_weight=fusion.bm25_weight, rrf_k=fusion.rrf_k, mmr=s.mmr,
                cached_vectors=cached_vectors(s.cache_dir, self.model_name),
                # Multi-vector matching: the answer units indexing cached (README "Rank-1 precision").
                unit_texts=chunk_unit_texts if s.unit_matching else None,
                unit_bundles=s.cache_dir / "unit-bundles", namespace=self.model_name,
            )
        return self._retriever

    @property
    def calibration(self) -> Calibration:
        """Fusion weights and abstention thresholds in effect: explicit settings, ``tune``'s, the defaults."""
        if self._calibration is None:
            self._calibration = CalibrationFile(self.settings, lambda: self.indexer.collection_name)
        return self._calibration.current()

    @property
    def document_embedder(self):
        """What embeds cache misses: the numpy encoder for a few texts (an edit: no torch), else the model."""
        from vectorstore.query_encoder import NumpyQueryEncoder, SmallBatchEmbeddings

        encoder = self.query_encoder
        if isinstance(encoder, NumpyQueryEncoder):
            return SmallBatchEmbeddings(encoder, lambda: self.embedder)
        return self.embedder

    @property
    def query_encoder(self):
        """What embeds queries: the numpy encoder when the model allows (no torch import), else the model."""
        if self._query_encoder is None:
            from vectorstore.query_encoder import NumpyQueryEncoder

            path = self.settings.model_path
            self._query_encoder = NumpyQueryEncoder(path) if NumpyQueryEncoder.supports(path) else self.embedder
        return self._query_encoder

    def embed_query(self, text: str):
        """The query's normalised vector (numpy array); the last ``QUERY_VECTOR_CACHE`` queries are remembered.

        Always the numpy encoder when the model allows: after an index run in the same
        process, torch's thread pool made a query embedding 5× slower (170 vs 37 ms).
        """
        vector = self._query_vectors.get(text)
        self.query_cache_stats["hits" if vector is not None else "misses"] += 1
        if vector is None:
            vector = self.query_encoder.embed_query_array(text)
            with self._query_vectors_lock:
                self._query_vectors[text] = vector
                while len(self._query_vectors) > QUERY_VECTOR_CACHE:
                    self._query_vectors.pop(next(iter(self._query_vectors)))
        return vector

    @property
    def unit_embeddings(self):
        """Embeddings for answer units, through the on-disk content-hash cache."""
        if self._unit_embeddings is None:
            from vectorstore.embedding_cache import cached_embedder
            from vectorstore.embeddings import LazyEmbeddings

            # Lazy: answering reads units from the cache and should not load torch for that.
            lazy = LazyEmbeddings(lambda: self.document_embedder)
            self._unit_embeddings, _ = cached_embedder(lazy, self.settings.cache_dir, self.model_name)
        return self._unit_embeddings

    @property
    def model_name(self) -> str:
        return Path(self.settings.model_path).name

    # -- indexing ------------------------------------------------------------
    def status(self, notes=None) -> IndexStatus:
        """Compare the manifest of the last run with the notes on disk (hashes only, no parsing).

        ``notes``: the notes already read (``ingest.read_notes``), to read them only once.
        """
        return self.sync.status(notes)

    def freshness(self) -> dict:
        """What is served and whether the notes are newer — from metadata only (no note is read).

        Keys: ``generation`` (committed in the store), ``serving_generation`` (the search
        snapshot's; a reader catches up within ``version_check_seconds``),
        ``notes_newer`` and ``changed`` (sources modified, added or removed since the
        last run, by ``stat``), ``last_indexed``, ``chunks``.
        """
        from vectorstore.freshness import changed_since

        manifest = self.indexer.read_manifest() or {}
        sources = manifest.get("sources", {})
        since = manifest.get("notes_read_at") or manifest.get("last_indexed")
        known = set(sources) | set(manifest.get("skipped_sources", []))
        changed = changed_since(self.settings.notes_path, known, since) if manifest else []
        snapshot = self.retriever.current_snapshot
        return {
            "generation": self.indexer.generation(),
            "serving_generation": snapshot.generation if snapshot is not None else None,
            "notes_newer": bool(changed) or not manifest,
            "changed": changed[:20],
            "last_indexed": manifest.get("last_indexed"),
            "chunks": int(manifest.get("chunks", 0)),
            "sources": len(sources),
        }

    def index(
        self,
        rebuild: bool = False,
        progress: Callable[[int, int], None] | None = None,
        *,
        lock_timeout: float | None = None,
        notify: Callable[[str], None] | None = None,
        units_progress: Callable[[int, int], None] | None = None,
    ) -> IndexReport:
        """Bring the index up to date with the notes; only changed sources are re-chunked.

        Two phases: the chunks are embedded and committed (search is then complete, dense
        and BM25), then the answer units of the new chunks are embedded into the cache
        (deferred work, timed in ``report.units_seconds``; it needs no index lock).

        Crash-safe: an error or a kill at any point leaves searches answered from the
        previous index, and the next run completes the job (see ``vectorstore.indexer``).

        Args:
            rebuild: drop the collection and records first (vectors still come from the cache).
            progress: optional callable(done, total) over the chunk texts embedded.
            units_progress: the same for the answer units, after the commit.
            lock_timeout: seconds to wait while another process indexes; None = as long as it
                takes, 0 = fail at once.
            notify: told (once) who holds the index lock when we have to wait for it.

        Raises:
            NotesNotFoundError / NoNotesError: nothing to index.
            IndexBusyError: another process still indexes after ``lock_timeout``.
        """
        report = self._locked_write(lambda: self.sync.run(rebuild, progress), lock_timeout, notify)
        return self._warm_units(report, report.fresh_documents if not rebuild else None, units_progress)

    def repair(self, progress: Callable[[int, int], None] | None = None, *, lock_timeout: float | None = None,
               notify: Callable[[str], None] | None = None) -> IndexReport:
        """Fix whatever ``check`` finds: roll back interrupted writes, realign the record manager
        with Chroma, then re-derive every source from disk with full cleanup (nothing re-embedded
        that is in the cache)."""
        report = self._locked_write(lambda: self.sync.run(False, progress, repair=True), lock_timeout, notify)
        return self._warm_units(report, None, None)  # a repair checks every unit

    def _warm_units(self, report: "IndexReport", documents, progress) -> "IndexReport":
        """The deferred phase: answer units into the cache. A failure here loses nothing (answers
        embed a missing unit when they need it) and is logged, not raised."""
        if documents is not None and not documents:
            return report
        try:
            report.units_embedded, report.units_seconds = self.sync.warm_units(documents, progress)
            if report.units_embedded and self._retriever is not None:
                self._retriever.refresh(force=True)  # what is built from unit vectors sees them now
        except Exception as e:  # noqa: BLE001 - the index is committed and complete; units are a cache
            logger.warning("embedding answer units failed (answers will embed them when needed): %s", e)
        return report

    def check(self, *, lock_timeout: float | None = None,
              notify: Callable[[str], None] | None = None) -> "ConsistencyReport":
        """Compare record manager, Chroma and the files on disk; returns a ``ConsistencyReport``."""
        # Under the lock: a writer's staged rows are not problems, just work in progress.
        with self._index_lock, self.indexer.lock.hold(lock_timeout, notify):
            return self.sync.check()

    def _locked_write(self, run: Callable[[], "IndexReport"], lock_timeout, notify) -> "IndexReport":
        """Run an index write under both locks; after a storage error, reopen the embedded store.

        Embedded Chroma can hang on the first write after a failed one (seen with a full
        disk) until its client is closed; reopening it clears that.
        """
        from vectorstore.client import is_storage_error

        with self._index_lock, self.indexer.lock.hold(lock_timeout, notify):
            if self._reopen_store:
                self._reopen_client()
            try:
                report = run()
            except Exception as e:
                if is_storage_error(e) and not self.settings.server_mode:
                    self._reopen_store = True
                    logger.warning("index write failed (%s); the store is reopened before the next run", e)
                raise
        if (report.changed or report.recovered) and self._retriever is not None:
            # In-process searches switch now; other processes notice within seconds.
            self._retriever.refresh(force=True)
        return report

    def _reopen_client(self) -> None:
        """A new client, and the components that hold one built anew around it."""
        old, self._client = self._client, None
        if old is not None and hasattr(old, "close"):
            try:
                old.close()
            except Exception as e:  # a broken client may fail to close; the new one is what matters
                logger.debug("closing the old client failed: %s", e)
        # Rebuilt lazily around the new client. The run in progress still holds the old
        # indexer's file lock (same file) until it ends; the thread lock keeps this engine serial.
        self._indexer, self._sync = None, None
        if self._retriever is not None:
            self._retriever = self._retriever.with_client(self.client)
        self._reopen_store = False

    def preview(self, notes=None) -> int:
        """Parse the notes and answer by keywords from them until the first index commits; returns chunks.

        What lets the web app answer seconds after its first start: BM25 needs no
        embeddings, and chunk ids, lines and headings are those the index will have
        (``NotesSync.documents``). ``notes``: the notes already read, to read them only once.
        """
        if notes is None:
            notes, _ = read_notes(self.settings.notes_path)
        documents = self.sync.documents(notes)
        self.retriever.set_preview([d.id for d in documents], [d.page_content for d in documents],
                                   [d.metadata for d in documents])
        return len(documents)

    def maintained_elsewhere(self) -> bool:
        """Server mode, no local manifest, and the server's collection already holds an index:
        this process is a read replica of an index another process maintains (it never writes)."""
        try:
            return self.indexer.read_manifest() is None and self.indexer.generation() > 0
        except CorruptIndexError:
            return False

    def ensure_index(self, notify: Callable[[str], None] | None = None, progress=None,
                     units_progress=None) -> IndexReport | None:
        """Build the index if missing, update it if stale; ``notify`` hears why. None when fresh.

        Never blocks a query behind another indexer when an index exists: searches are
        answered from the committed index while that indexer works. In server mode a
        process without its own manifest treats a committed server index as maintained
        elsewhere (a read replica) and does not write to it.
        """
        if self.settings.server_mode and self.maintained_elsewhere():
            return None
        status = self.status()
        if not status.stale:
            return None
        if notify:
            if not status.indexed:
                notify("no index yet: building it (the first run embeds every chunk and answer unit)…")
            elif status.interrupted_sources:
                notify("the last indexing run did not finish: completing it…")
            else:
                what = status.stale_sources + status.new_sources + status.removed_sources
                notify(f"index is stale ({', '.join(what[:3]) or 'settings changed'}): updating it…")
        from vectorstore.lock import IndexBusyError

        def waiting(holder: str) -> None:
            if notify:
                notify(f"waiting for another indexer to finish ({holder})…")

        try:
            return self.index(progress=progress, lock_timeout=0 if status.indexed else None, notify=waiting,
                              units_progress=units_progress)
        except IndexBusyError:
            if notify:
                notify("another process is updating the index; answering from the current index")
            return None

    # -- search --------------------------------------------------------------
    def search(self, query: str, k: int | None = None, mode: Mode = "hybrid", query_vector=None,
               sources: Container[str] | None = None, calibration: Calibration | None = None) -> list[SearchResult]:
        """Top-k chunks for ``query`` (hybrid by default; ``mode`` "dense"/"bm25" for ablations).

        ``sources`` narrows the search to those notes (see ``narrow``). Fusion follows ``calibration``
        (the caller read it once for the whole question), else the one in effect now.
        """
        if query_vector is None and mode != "bm25" and query.strip():
            query_vector = self.embed_query(query)
        c = calibration or self.calibration
        return self.retriever.search(query, k or self.settings.top_k, mode, query_vector, sources=sources,
                                     fusion=(c.dense_weight, c.bm25_weight, c.rrf_k))

    def narrow(self, query: str) -> TagScope:
        """``query`` without its ``#tag`` / ``tag:x`` filters, and the notes those tags narrow a search to.

        The tag → notes table comes from the live index's chunk metadata, built once per index version.
        """
        snapshot = self.retriever.snapshot
        seen, table = self._tag_table
        if seen is not snapshot:  # the object, not its version: the keyword-only preview keeps one version
            table = tag_sources(snapshot.metadatas)
            self._tag_table = (snapshot, table)
        return narrow_by_tags(query, table)
