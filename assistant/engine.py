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

    @property
    def stale(self) -> bool:
        return bool(self.stale_sources or self.new_sources or self.removed_sources or self.settings_changed) or not self.indexed


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
        self._index_lock = threading.Lock()
        self._unit_embeddings = None
        self._query_encoder = None

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
        """The query's normalised vector (numpy array)."""
        return self.query_encoder.embed_query_array(text)

    @property
    def unit_embeddings(self):
        """Embeddings for answer units, through the on-disk content-hash cache."""
        if self._unit_embeddings is None:
            from vectorstore.embeddings import LazyEmbeddings, cached_embedder

            # Lazy: answering reads units from the cache and should not load torch for that.
            lazy = LazyEmbeddings(lambda: self.embedder)
            self._unit_embeddings, _ = cached_embedder(lazy, self.settings.cache_dir, self.model_name)
        return self._unit_embeddings

    def _warm_units(self, documents: list[Document], phase) -> int:
        """Embed every answer unit of ``documents`` into the cache, so answering embeds only the query.

        Returns how many units missed the cache (were embedded now).
        """
        from assistant.extractive import unit_text, units_of
        from vectorstore.embeddings import cached_embedder

        texts = [
            unit_text(d.metadata["heading"], text)
            for d in documents
            for _, _, text in units_of(d.page_content, d.metadata["start_line"])
        ]
        cached, counter = cached_embedder(self.embedder, self.settings.cache_dir, self.model_name)
        tick = phase(len(documents), len(texts))
        for start in range(0, len(texts), 128):
            batch = texts[start : start + 128]
            cached.embed_documents(batch)
            tick(len(batch))
        return counter.embedded

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
        )

    def index(self, rebuild: bool = False, progress: Callable[[int, int], None] | None = None) -> IndexReport:
        """Bring the index up to date with the notes; only changed sources are re-chunked.

        Args:
            rebuild: drop the collection and records first (vectors still come from the cache).
            progress: optional callable(done, total) for embedding progress.

        Raises:
            NotesNotFoundError / NoNotesError: nothing to index.
        """
        with self._index_lock:
            started = time.perf_counter()
            notes, skipped = read_notes(self.settings.notes_path)
            if not notes:
                raise NoNotesError(
                    f"no readable .md/.markdown/.txt notes under {self.settings.notes_path}; add notes or point --notes elsewhere"
                )
            indexer = self.indexer
            if rebuild:
                indexer.reset()
            manifest = indexer.read_manifest() or {}
            known: dict[str, str] = manifest.get("sources", {})
            full = manifest.get("settings") != self._chunk_settings()
            current = {n.source: n.content_hash for n in notes}
            removed = sorted(set(known) - set(current))
            changed = [n for n in notes if full or known.get(n.source) != n.content_hash]
            from vectorstore.indexer import IndexReport

            report = IndexReport(sources=len(notes), skipped_files=[s.source for s in skipped])

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
                # Progress in two phases of equal weight: chunks (ticked per text embedded),
                # then answer units (ticked per unit, from cache or embedded).
                total = 2 * len(documents)

                def phase(offset: int, size: int):
                    done = [0]

                    def tick(n: int) -> None:
                        done[0] += n
                        if progress:
                            progress(offset + min(len(documents), done[0] * len(documents) // max(1, size)), total)

                    return tick

                run = indexer.sync(documents, cleanup, phase(0, len(documents)))
                units_embedded = self._warm_units(documents, phase)
                report.added, report.updated, report.deleted = run.added, run.updated, run.deleted
                report.skipped, report.embedded = run.skipped, run.embedded + units_embedded
                report.changed_sources = sorted(n.source for n in changed)
                report.removed_sources = removed
                unchanged_chunks = sum(
                    manifest.get("chunk_counts", {}).get(s, 0) for s in current if s not in {n.source for n in to_chunk}
                )
                report.skipped += unchanged_chunks
                counts = dict(manifest.get("chunk_counts", {}))
                for s in removed:
                    counts.pop(s, None)
                for n in to_chunk:
                    counts[n.source] = sum(1 for d in documents if d.metadata["source"] == n.source)
            else:
                counts = dict(manifest.get("chunk_counts", {}))
                report.skipped = sum(counts.values())

            report.chunks = sum(counts.values())
            indexer.write_manifest(
                {
                    "settings": self._chunk_settings(),
                    "sources": current,
                    "chunk_counts": counts,
                    "chunks": report.chunks,
                    "last_indexed": indexer.now() if (changed or removed or not manifest) else manifest.get("last_indexed"),
                }
            )
            if report.changed:
                self.retriever.refresh(force=True)
            report.seconds = time.perf_counter() - started
            logger.info("indexed %s", report.summary())
            return report

    def ensure_index(self, notify: Callable[[str], None] | None = None, progress=None) -> IndexReport | None:
        """Build the index if missing, update it if stale; ``notify`` hears why. None when fresh."""
        status = self.status()
        if not status.stale:
            return None
        if notify:
            if not status.indexed:
                notify("no index yet: building it (first run embeds every chunk, ~20 s)…")
            else:
                what = status.stale_sources + status.new_sources + status.removed_sources
                notify(f"index is stale ({', '.join(what[:3]) or 'settings changed'}): updating it…")
        return self.index(progress=progress)

    # -- search --------------------------------------------------------------
    def search(self, query: str, k: int | None = None, mode: Mode = "hybrid", query_vector=None) -> list[SearchResult]:
        """Top-k chunks for ``query`` (hybrid by default; ``mode`` "dense"/"bm25" for ablations)."""
        return self.retriever.search(query, k or self.settings.top_k, mode, query_vector)
