"""The notes engine: settings → reader, chunker, Chroma, BM25 and retrieval, wired once.

CLI, web app and evals all go through ``Engine``; it loads the embedding model
once per process and keeps the retriever's snapshot fresh after each index run.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from typing import TYPE_CHECKING

from assistant.settings import Settings
from ingest import Chunk, NoNotesError, chunk_note, read_notes
from vectorstore.client import make_client
from vectorstore.errors import CorruptIndexError
from vectorstore.retriever import HybridRetriever, Mode, SearchResult

if TYPE_CHECKING:  # the indexing side (langchain-chroma, sentence-transformers) loads only when used
    from langchain_core.documents import Document

    from vectorstore.indexer import IndexReport, Indexer

__all__ = ["Engine", "IndexStatus", "chunk_document", "DATA_DIR_MARKER"]

DATA_DIR_MARKER = "NOTES_ASSISTANT_INDEX"

logger = logging.getLogger(__name__)


def chunk_document(chunk: Chunk) -> "Document":
    """A chunk as the langchain ``Document`` that gets indexed (metadata per the index contract)."""
    from langchain_core.documents import Document

    return Document(
        id=chunk.chunk_id,
        page_content=chunk.text,
        metadata={
            "source": chunk.source,
            "heading": chunk.heading,
            "start_line": chunk.start_line,
            "end_line": chunk.end_line,
            "content_hash": chunk.content_hash,
            "chunk_id": chunk.chunk_id,
        },
    )


@dataclass
class IndexStatus:
    """What the index holds compared with the notes on disk."""

    indexed: bool
    sources: int
    chunks: int
    last_indexed: str | None
    stale_sources: list[str] = field(default_factory=list)
    new_sources: list[str] = field(default_factory=list)
    removed_sources: list[str] = field(default_factory=list)
    settings_changed: bool = False
    interrupted_sources: list[str] = field(default_factory=list)  # an indexing run on them did not finish

    @property
    def stale(self) -> bool:
        return bool(
            self.stale_sources or self.new_sources or self.removed_sources or self.settings_changed
            or self.interrupted_sources
        ) or not self.indexed


class Engine:
    """Index and search one notes collection as configured by ``settings``."""

    def __init__(self, settings: Settings, embedder=None, client=None, take_over: bool = False) -> None:
        """``take_over``: accept a data dir with foreign files (``--rebuild``)."""
        self.settings = settings
        self._take_over = take_over
        self._embedder = embedder
        self._client = client
        self._indexer: Indexer | None = None
        self._retriever: HybridRetriever | None = None
        # One indexing run per Engine at a time; across processes, Indexer.lock (flock) serialises writers.
        self._index_lock = threading.Lock()
        self._reopen_store = False
        self._unit_embeddings = None
        self._query_encoder = None
        self._query_vectors: dict[str, object] = {}  # insertion-ordered: oldest evicted first
        self._query_vectors_lock = threading.Lock()

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
            data_dir = self._check_data_dir()
            self._client = make_client(data_dir, self.settings.chroma_host, self.settings.chroma_port)
        return self._client

    @property
    def indexer(self) -> Indexer:
        if self._indexer is None:
            from vectorstore.indexer import Indexer

            self._indexer = Indexer(
                self.client, self.settings.collection, self._check_data_dir(), lambda: self.embedder, self.model_name,
                self.settings.cache_dir,
            )
        return self._indexer

    @property
    def retriever(self) -> HybridRetriever:
        if self._retriever is None:
            s = self.settings
            self._retriever = HybridRetriever(
                self.client, s.collection, self.query_encoder, s.dense_weight, s.bm25_weight, s.rrf_k, s.mmr
            )
        return self._retriever

    @property
    def query_encoder(self):
        """What embeds queries: the numpy encoder when the model allows (no torch import), else the model."""
        if self._query_encoder is None:
            from vectorstore.query_encoder import NumpyQueryEncoder

            path = self.settings.model_path
            self._query_encoder = NumpyQueryEncoder(path) if NumpyQueryEncoder.supports(path) else self.embedder
        return self._query_encoder

    def embed_query(self, text: str):
        """The query's normalised vector (numpy array); the last 512 queries are remembered.

        Always the numpy encoder when the model allows: after an index run in the same
        process, torch's thread pool made a query embedding 5× slower (170 vs 37 ms).
        """
        vector = self._query_vectors.get(text)
        if vector is None:
            vector = self.query_encoder.embed_query_array(text)
            with self._query_vectors_lock:
                self._query_vectors[text] = vector
                while len(self._query_vectors) > 512:
                    self._query_vectors.pop(next(iter(self._query_vectors)))
        return vector

    @property
    def unit_embeddings(self):
        """Embeddings for answer units, through the on-disk content-hash cache."""
        if self._unit_embeddings is None:
            from vectorstore.embeddings import LazyEmbeddings, cached_embedder

            # Lazy: answering reads units from the cache and should not load torch for that.
            lazy = LazyEmbeddings(lambda: self.embedder)
            self._unit_embeddings, _ = cached_embedder(lazy, self.settings.cache_dir, self.model_name)
        return self._unit_embeddings

    def _unit_texts(self, documents: list[Document]) -> list[str]:
        """The answer-unit texts of ``documents``: indexing puts them in the embedding cache
        (before writing anything), so answering embeds only the query."""
        from assistant.extractive import unit_text, units_of

        return [
            unit_text(d.metadata["heading"], text)
            for d in documents
            for _, _, text in units_of(d.page_content, d.metadata["start_line"])
        ]

    @property
    def model_name(self) -> str:
        return Path(self.settings.model_path).name

    def _check_data_dir(self) -> Path:
        data_dir = Path(self.settings.data_dir)
        if data_dir.exists() and not data_dir.is_dir():
            raise CorruptIndexError(f"data dir {data_dir} is a file, not a folder; point NOTES_ASSISTANT_DATA_DIR elsewhere")
        try:
            data_dir.mkdir(parents=True, exist_ok=True)
            probe = data_dir / ".write-test"
            probe.write_text("ok")
            probe.unlink()
        except OSError as e:
            raise CorruptIndexError(f"data dir {data_dir} is not writable ({e.strerror}); fix its permissions or set --data-dir") from e
        marker = data_dir / DATA_DIR_MARKER
        if not marker.exists():
            foreign = sorted(p.name for p in data_dir.iterdir())
            if foreign and not self._take_over:
                raise CorruptIndexError(
                    f"data dir {data_dir} holds files notes-assistant did not write ({', '.join(foreign[:3])}); "
                    "use an empty folder, or --rebuild to take it over"
                )
            marker.write_text("notes-assistant index; safe to delete the whole folder to start over\n")
        return data_dir

    # -- indexing ------------------------------------------------------------
    def _chunk_settings(self) -> dict:
        return {
            "chunk_tokens": self.settings.chunk_tokens,
            "chunk_overlap": self.settings.chunk_overlap,
            "model": self.model_name,
            "collection": self.settings.collection,
        }

    def status(self) -> IndexStatus:
        """Compare the manifest of the last run with the notes on disk (hashes only, no parsing)."""
        notes, _ = read_notes(self.settings.notes_path)
        manifest = self.indexer.read_manifest()
        if manifest is None:
            return IndexStatus(False, 0, 0, None, new_sources=[n.source for n in notes])
        known: dict[str, str] = manifest.get("sources", {})
        on_disk = {n.source: n.content_hash for n in notes}
        return IndexStatus(
            indexed=True,
            sources=len(known),
            chunks=int(manifest.get("chunks", 0)),
            last_indexed=manifest.get("last_indexed"),
            stale_sources=sorted(s for s, h in on_disk.items() if s in known and known[s] != h),
            new_sources=sorted(s for s in on_disk if s not in known),
            removed_sources=sorted(s for s in known if s not in on_disk),
            settings_changed=manifest.get("settings") != self._chunk_settings(),
            interrupted_sources=sorted(manifest.get("pending", [])),
        )

    def index(
        self,
        rebuild: bool = False,
        progress: Callable[[int, int], None] | None = None,
        *,
        lock_timeout: float | None = None,
        notify: Callable[[str], None] | None = None,
    ) -> IndexReport:
        """Bring the index up to date with the notes; only changed sources are re-chunked.

        Crash-safe: an error or a kill at any point leaves searches answered from the
        previous index, and the next run completes the job (see ``vectorstore.indexer``).

        Args:
            rebuild: drop the collection and records first (vectors still come from the cache).
            progress: optional callable(done, total) for embedding progress.
            lock_timeout: seconds to wait while another process indexes; None = as long as it
                takes, 0 = fail at once.
            notify: told (once) who holds the index lock when we have to wait for it.

        Raises:
            NotesNotFoundError / NoNotesError: nothing to index.
            IndexBusyError: another process still indexes after ``lock_timeout``.
        """
        with self._index_lock, self.indexer.lock.hold(lock_timeout, notify):
            return self._write(lambda: self._index_locked(rebuild, progress))

    def repair(self, progress: Callable[[int, int], None] | None = None, *, lock_timeout: float | None = None,
               notify: Callable[[str], None] | None = None) -> IndexReport:
        """Fix whatever ``check`` finds: roll back interrupted writes, realign the record manager
        with Chroma, then re-derive every source from disk with full cleanup (nothing re-embedded
        that is in the cache)."""
        with self._index_lock, self.indexer.lock.hold(lock_timeout, notify):
            return self._write(lambda: self._index_locked(False, progress, repair=True))

    def _write(self, run):
        """Run a write (lock held); after a storage error, reopen the embedded store before the next one.

        Embedded Chroma can hang on the first write after a failed one (seen with a full
        disk) until its client is closed; reopening it clears that.
        """
        from vectorstore.client import is_storage_error

        if self._reopen_store:
            self._reopen_client()
        try:
            return run()
        except Exception as e:
            if is_storage_error(e) and not self.settings.server_mode:
                self._reopen_store = True
                logger.warning("index write failed (%s); the store is reopened before the next run", e)
            raise

    def _reopen_client(self) -> None:
        old, self._client = self._client, None
        if old is not None and hasattr(old, "close"):
            try:
                old.close()
            except Exception as e:  # a broken client may fail to close; the new one is what matters
                logger.debug("closing the old client failed: %s", e)
        client = self.client
        if self._indexer is not None:
            self._indexer.client = client
        if self._retriever is not None:
            self._retriever.client = client
            self._retriever.refresh(force=True)
        self._reopen_store = False

    def check(self, *, lock_timeout: float | None = None, notify: Callable[[str], None] | None = None):
        """Compare record manager, Chroma and the files on disk; returns a ``ConsistencyReport``."""
        from vectorstore.consistency import ExpectedChunk, check_index

        notes, _ = read_notes(self.settings.notes_path)
        expected = [
            ExpectedChunk(c.chunk_id, c.source, c.start_line, c.end_line, c.content_hash)
            for n in notes
            for c in chunk_note(n.text, n.source, self.settings.chunk_tokens, self.settings.chunk_overlap)
        ]
        on_disk = {n.source: n.content_hash for n in notes}
        # Under the lock: a writer's staged rows are not problems, just work in progress.
        with self._index_lock, self.indexer.lock.hold(lock_timeout, notify):
            return check_index(self.indexer, expected, on_disk, self._chunk_settings())

    def _index_locked(self, rebuild: bool, progress, repair: bool = False) -> IndexReport:
        started = time.perf_counter()
        notes, skipped = read_notes(self.settings.notes_path)
        if not notes:
            raise NoNotesError(
                f"no readable .md/.markdown/.txt notes under {self.settings.notes_path}; add notes or point --notes elsewhere"
            )
        indexer = self.indexer
        manifest = None if rebuild else indexer.read_manifest()
        if rebuild or (manifest or {}).get("settings", {}).get("model", self.model_name) != self.model_name:
            # Another model means other vectors for the same chunk ids: start over.
            indexer.reset()
            manifest = None
        manifest = manifest or {}
        interrupted = set(manifest.get("pending", []))
        recovery = indexer.recover(reconcile=repair or not manifest or bool(interrupted))
        known: dict[str, str] = manifest.get("sources", {})
        full = repair or manifest.get("settings") != self._chunk_settings()
        current = {n.source: n.content_hash for n in notes}
        # A source an interrupted run was adding may have been committed before the crash.
        removed = sorted((set(known) | interrupted) - set(current))
        changed = [n for n in notes if full or known.get(n.source) != n.content_hash or n.source in interrupted]
        from vectorstore.indexer import IndexReport

        report = IndexReport(sources=len(notes), skipped_files=[s.source for s in skipped], recovered=recovery.any)
        counts = {s: n for s, n in manifest.get("chunk_counts", {}).items() if s in current}
        if changed or removed:
            # "full" when a source disappeared or chunking changed: every current chunk is
            # presented, so anything else is stale. Otherwise only changed sources are read.
            cleanup = "full" if (removed or full) else "incremental"
            to_chunk = notes if cleanup == "full" else changed
            documents = [
                chunk_document(c)
                for n in to_chunk
                for c in chunk_note(n.text, n.source, self.settings.chunk_tokens, self.settings.chunk_overlap)
            ]
            pending = sorted(interrupted | {n.source for n in to_chunk} | set(removed))

            def journal() -> None:
                indexer.write_manifest({**manifest, "pending": pending})

            run = indexer.sync(documents, cleanup, progress, extra_texts=self._unit_texts, before_write=journal)
            report.added, report.updated, report.deleted = run.added, run.updated, run.deleted
            report.skipped, report.embedded, report.generation = run.skipped, run.embedded, run.generation
            report.changed_sources = sorted(n.source for n in changed)
            report.removed_sources = removed
            chunked = {n.source for n in to_chunk}
            report.skipped += sum(n for s, n in counts.items() if s not in chunked)
            for source in chunked:
                counts[source] = 0
            for d in documents:
                counts[d.metadata["source"]] += 1
        else:
            report.skipped = sum(counts.values())
            report.generation = int(manifest.get("generation", 0))

        report.chunks = sum(counts.values())
        touched = bool(changed or removed or not manifest)
        indexer.write_manifest(
            {
                "settings": self._chunk_settings(),
                "sources": current,
                "chunk_counts": counts,
                "chunks": report.chunks,
                "generation": report.generation,
                "last_indexed": indexer.now() if touched else manifest.get("last_indexed"),
            }
        )
        if (report.changed or recovery.any) and self._retriever is not None:
            # In-process searches switch now; other processes notice within seconds.
            self._retriever.refresh(force=True)
        report.seconds = time.perf_counter() - started
        logger.info(
            "indexed %s changed=%s removed=%s", report.summary(),
            ",".join(report.changed_sources[:5]) or "-", ",".join(report.removed_sources[:5]) or "-",
        )
        return report

    def _served_elsewhere(self) -> bool:
        """Server mode, no local manifest, and the server's collection already holds an index:
        this process is a read replica of an index another process maintains."""
        try:
            return self.indexer.read_manifest() is None and self.indexer.generation() > 0
        except CorruptIndexError:
            return False

    def ensure_index(self, notify: Callable[[str], None] | None = None, progress=None) -> IndexReport | None:
        """Build the index if missing, update it if stale; ``notify`` hears why. None when fresh.

        Never blocks a query behind another indexer when an index exists: searches are
        answered from the committed index while that indexer works. In server mode a
        process without its own manifest treats a committed server index as maintained
        elsewhere (a read replica) and does not write to it.
        """
        if self.settings.server_mode and self._served_elsewhere():
            return None
        status = self.status()
        if not status.stale:
            return None
        if notify:
            if not status.indexed:
                notify("no index yet: building it (first run embeds every chunk, ~20 s)…")
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
            return self.index(progress=progress, lock_timeout=0 if status.indexed else None, notify=waiting)
        except IndexBusyError:
            if notify:
                notify("another process is updating the index; answering from the current index")
            return None

    # -- search --------------------------------------------------------------
    def search(self, query: str, k: int | None = None, mode: Mode = "hybrid", query_vector=None) -> list[SearchResult]:
        """Top-k chunks for ``query`` (hybrid by default; ``mode`` "dense"/"bm25" for ablations)."""
        if query_vector is None and mode != "bm25" and query.strip():
            query_vector = self.embed_query(query)
        return self.retriever.search(query, k or self.settings.top_k, mode, query_vector)
