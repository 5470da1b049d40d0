"""Keeping one collection in step with the notes on disk: status, index runs, consistency checks.

The bookkeeping around ``Indexer`` (which owns the writes): the manifest of the
last run (source hashes, chunk counts, chunk settings, committed generation), the
journal of sources a run is about to change (``pending``), the plan of what a run
must re-chunk, and the comparison of record manager, Chroma and files
(``check``). Callers hold the index lock around ``run`` and ``check``
(``assistant.engine.Engine`` does).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ingest import Chunk, NoNotesError, chunk_note, read_notes
from ingest.tags import format_tags
from vectorstore.errors import CorruptIndexError, DamagedIndexError

if TYPE_CHECKING:
    from langchain_core.documents import Document

    from vectorstore.consistency import ConsistencyReport
    from vectorstore.damage import Damage
    from vectorstore.indexer import IndexReport, Indexer

__all__ = ["IndexStatus", "NotesSync", "RunPlan", "chunk_document", "plan_run"]

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
            # Only when there are tags: untagged chunks keep exactly the metadata they always had.
            **({"tags": format_tags(chunk.tags)} if chunk.tags else {}),
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
    damage: list[str] = field(default_factory=list)  # one line each, with the fix (``index --repair``)

    @property
    def stale(self) -> bool:
        return bool(
            self.stale_sources or self.new_sources or self.removed_sources or self.settings_changed
            or self.interrupted_sources or self.damage
        ) or not self.indexed


@dataclass
class RunPlan:
    """What a run must do: which sources to re-chunk, which are gone, and how to clean up."""

    changed: list[str]  # changed, new, or left pending by an unfinished run (or all, when ``full``)
    removed: list[str]
    interrupted: list[str]  # the ``pending`` sources of a run that did not finish
    full: bool  # chunking settings changed (or a repair): every source is re-derived

    @property
    def cleanup(self) -> str | None:
        """``"full"`` when a source disappeared or everything is re-derived, ``"incremental"``, or None."""
        if self.removed or self.full:
            return "full"
        return "incremental" if self.changed else None


def plan_run(manifest: dict, current: dict[str, str], chunk_settings: dict, repair: bool = False) -> RunPlan:
    """Compare the last manifest with the files' hashes (``{source: sha256}``).

    >>> plan_run({"sources": {"a.md": "1", "b.md": "2"}, "settings": {}}, {"a.md": "1", "c.md": "3"}, {})
    RunPlan(changed=['c.md'], removed=['b.md'], interrupted=[], full=False)
    >>> plan_run({"sources": {"a.md": "1"}, "settings": {}, "pending": ["a.md"]}, {"a.md": "1"}, {}).changed
    ['a.md']
    """
    known: dict[str, str] = manifest.get("sources", {})
    interrupted = set(manifest.get("pending", []))
    full = repair or manifest.get("settings") != chunk_settings
    # A source an interrupted run was adding may have been committed before the crash.
    removed = sorted((set(known) | interrupted) - set(current))
    changed = sorted(s for s, h in current.items() if full or known.get(s) != h or s in interrupted)
    return RunPlan(changed, removed, sorted(interrupted), full)


class NotesSync:
    """The notes under ``notes_path`` and the collection ``indexer`` writes, kept in step.

    Args:
        indexer: owns the collection, record manager, cache, manifest and lock.
        notes_path: a markdown file or a folder of notes.
        chunk_tokens / chunk_overlap: the chunker's budget (part of the manifest's settings).
        unit_texts: given chunk documents, the texts of their answer units (what the
            extractive answerer embeds), put in the cache by ``warm_units`` after a commit.
    """

    def __init__(self, indexer: "Indexer", notes_path: Path, chunk_tokens: int, chunk_overlap: int,
                 unit_texts: Callable[[list["Document"]], list[str]] | None = None) -> None:
        self.indexer = indexer
        self.notes_path = Path(notes_path)
        self.chunk_tokens = chunk_tokens
        self.chunk_overlap = chunk_overlap
        self.unit_texts = unit_texts

    @property
    def collection_name(self) -> str:
        """The physical Chroma collection of these settings: what readers (the retriever) must read."""
        return self.indexer.collection_name

    def chunk_settings(self) -> dict:
        """What the chunk ids and vectors depend on besides the notes: a change re-derives everything."""
        return {
            "chunk_tokens": self.chunk_tokens,
            "chunk_overlap": self.chunk_overlap,
            "model": self.indexer.model_name,
            "collection": self.indexer.collection_name,
        }

    def _chunks(self, note) -> list[Chunk]:
        return chunk_note(note.text, note.source, self.chunk_tokens, self.chunk_overlap)

    def documents(self, notes) -> list["Document"]:
        """The chunk documents of ``notes`` exactly as a run indexes them (ids, lines, metadata)."""
        return [chunk_document(c) for n in notes for c in self._chunks(n)]

    def damage(self, deep: bool = False) -> list["Damage"]:
        """What is damaged or lost in this collection's index (empty when sound); cheap unless ``deep``.

        Besides damaged files (``vectorstore.damage.inspect_files``): a manifest entry
        that records a generation the store no longer has (its rows were lost), and — with
        the embedded store — a committed collection whose manifest entry is gone. (In server
        mode a data dir without an entry is a read replica, or a new indexer adopting the index.)
        """
        from vectorstore.client import is_embedded
        from vectorstore.damage import Damage, inspect_files

        indexer = self.indexer
        embedded = is_embedded(indexer.client)
        found = inspect_files(indexer.data_dir, embedded=embedded, deep=deep)
        if any(d.kind in ("chroma", "manifest") for d in found):
            return found
        # The manifest first, then the store: a commit in between can only raise the store's generation.
        entry = indexer.read_manifest()
        stored = indexer.stored_generation()
        recorded = int((entry or {}).get("generation", 0) or 0)
        name = indexer.collection_name
        if entry is not None and recorded > (stored or 0):
            has = "no such collection" if stored is None else f"generation {stored}"
            found.append(Damage("collection", name, f"the manifest records generation {recorded} with "
                                f"{entry.get('chunks', 0)} chunks, the store has {has}"))
        elif entry is None and embedded and stored:
            why = "missing" if not indexer.manifest_path.exists() else f"no entry for collection {name}"
            found.append(Damage("entry", indexer.manifest_path, f"{why}, while the store holds generation {stored}"))
        return found

    def status(self, notes=None) -> IndexStatus:
        """Compare the manifest of the last run with the notes on disk (hashes only, no parsing).

        Damage is reported in ``damage`` (and makes the status stale), never raised.
        ``notes``: the notes already read (``read_notes``), to read them only once.
        """
        if notes is None:
            notes, _ = read_notes(self.notes_path)
        damage = [d.line() for d in self.damage()]
        try:
            entries = self.indexer.manifest.read_all() or {}
        except DamagedIndexError:
            entries = {}  # in ``damage`` already
        manifest = entries.get(self.indexer.collection_name)
        if manifest is None:
            # Never built with these settings; other settings were (they are kept beside).
            return IndexStatus(False, 0, 0, None, new_sources=[n.source for n in notes], damage=damage,
                               settings_changed=bool(entries))
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
            settings_changed=manifest.get("settings") != self.chunk_settings(),
            interrupted_sources=sorted(manifest.get("pending", [])),
            damage=damage,
        )

    def warm_units(self, documents: list["Document"] | None = None,
                   progress: Callable[[int, int], None] | None = None) -> tuple[int, float]:
        """Put the answer units of ``documents`` (default: every committed chunk) in the embedding cache.

        Deferred work: it runs after the chunks are committed, so search is complete (dense
        and BM25) while the units are embedded; an answer that needs a unit not cached yet
        embeds it then. Cheap when all are cached (one cache lookup per unit). Needs no
        index lock: it writes only the cache (atomic files). Returns ``(embedded, seconds)``.
        """
        from langchain_core.documents import Document

        from vectorstore.batches import batched
        from vectorstore.embedding_cache import cached_vectors
        from vectorstore.generations import visible_rows

        started = time.perf_counter()
        if self.unit_texts is None:
            return 0, 0.0
        if documents is None:
            _, rows, texts = visible_rows(self.indexer.collection(), include_documents=True)
            documents = [Document(page_content=texts[i], metadata=meta) for i, meta in rows.items()]
        wanted = list(dict.fromkeys(self.unit_texts(documents)))
        lookup = cached_vectors(self.indexer.cache_dir, self.indexer.model_name)
        missing = [text for text, vector in zip(wanted, lookup(wanted)) if vector is None]
        cached, counter = self.indexer.cached_embedder()
        if progress and missing:
            progress(0, len(missing))
        for done, batch in enumerate(batched(missing, 128)):
            cached.embed_documents(list(batch))
            if progress:
                progress(min(len(missing), (done + 1) * 128), len(missing))
        return counter.embedded, time.perf_counter() - started

    def check(self) -> "ConsistencyReport":
        """Compare record manager, Chroma and the files on disk (call with the index lock held)."""
        from vectorstore.consistency import ExpectedChunk, check_index

        notes, _ = read_notes(self.notes_path)
        expected = [
            ExpectedChunk(c.chunk_id, c.source, c.start_line, c.end_line, c.content_hash)
            for n in notes
            for c in self._chunks(n)
        ]
        on_disk = {n.source: n.content_hash for n in notes}
        return check_index(self.indexer, expected, on_disk, self.chunk_settings(), self.damage(deep=True))

    def run(self, rebuild: bool = False, progress: Callable[[int, int], None] | None = None,
            repair: bool = False) -> "IndexReport":
        """Bring the collection up to date with the notes (call with the index lock held).

        Only changed sources are re-chunked; ``repair`` re-derives every source with
        full cleanup and realigns the record manager (of every configuration kept in the
        data dir); ``rebuild`` starts from an empty collection (vectors still come from
        the cache). Both move a damaged record store or manifest aside first
        (``vectorstore.damage``) and rebuild what a lost manifest entry or lost rows
        described; a damaged embedded Chroma store must be moved aside before its client
        is opened (``index --repair`` does).

        Raises:
            NotesNotFoundError / NoNotesError: nothing to index.
            DamagedIndexError: the index is damaged and neither ``repair`` nor ``rebuild`` was asked.
        """
        from vectorstore.indexer import IndexReport

        started = time.perf_counter()
        read_at = time.time()  # notes modified after this are newer than the index (vectorstore.freshness)
        notes, skipped = read_notes(self.notes_path)
        if not notes:
            raise NoNotesError(
                f"no readable .md/.markdown/.txt notes under {self.notes_path}; add notes or point --notes elsewhere"
            )
        indexer = self.indexer
        current = {n.source: n.content_hash for n in notes}
        damage = self.damage()
        if damage:
            from vectorstore.damage import raise_if_damaged, set_aside

            if not (repair or rebuild):
                raise_if_damaged(damage)
            folder, moved = set_aside(indexer.data_dir, [d for d in damage if d.kind in ("records", "manifest")])
            if folder is not None:
                logger.warning("moved damaged files aside folder=%s files=%s", folder, ",".join(moved))
                indexer.reopen_records()
        # A lost entry or lost rows: the entry describes nothing any more; re-derive as if new.
        manifest = None if damage else indexer.read_manifest()
        model = ((manifest or {}).get("settings") or {}).get("model", indexer.model_name)
        if model != indexer.model_name:
            # Only a collection named without its configuration (no chunk settings given) gets here.
            raise CorruptIndexError(
                f"collection {indexer.collection_name} holds vectors of the model {model}, not {indexer.model_name}; "
                "use the model it was built with, or another collection (NOTES_ASSISTANT_COLLECTION)"
            )
        if rebuild:
            known = set((manifest or {}).get("sources", {})) | set((manifest or {}).get("pending", []))
            journal = {"settings": self.chunk_settings(), "sources": {}, "chunk_counts": {},
                       "pending": sorted(known | set(current))}
            indexer.reset(journal)
            manifest = indexer.read_manifest()
        manifest = manifest or {}
        plan = plan_run(manifest, current, self.chunk_settings(), repair)
        recovery = indexer.recover(reconcile=repair or not manifest or bool(plan.interrupted))
        if repair:
            indexer.reconcile_other_collections()
        if manifest and not plan.interrupted and indexer.generation() > int(manifest.get("generation", 0)):
            logger.warning("another indexer changed this collection since our last run; run one indexer per collection")
        report = IndexReport(sources=len(notes), skipped_files=[s.source for s in skipped], recovered=recovery.any)
        counts = {s: n for s, n in manifest.get("chunk_counts", {}).items() if s in current}
        if plan.cleanup:
            # "full": every current chunk is presented, so anything else is stale.
            # "incremental": only the changed sources are read and cleaned.
            to_chunk = [n for n in notes if plan.cleanup == "full" or n.source in plan.changed]
            documents = self.documents(to_chunk)
            chunked = {n.source for n in to_chunk}
            pending = sorted(set(plan.interrupted) | chunked | set(plan.removed))

            def journal() -> None:
                indexer.write_manifest({**manifest, "pending": pending})

            run = indexer.sync(documents, plan.cleanup, progress, before_write=journal)
            report.fresh_documents = run.fresh_documents
            report.added, report.updated, report.deleted = run.added, run.updated, run.deleted
            report.skipped, report.embedded, report.generation = run.skipped, run.embedded, run.generation
            report.changed_sources, report.removed_sources = plan.changed, plan.removed
            report.skipped += sum(n for s, n in counts.items() if s not in chunked)
            counts.update({source: 0 for source in chunked})
            for d in documents:
                counts[d.metadata["source"]] += 1
        else:
            report.skipped = sum(counts.values())
            report.generation = int(manifest.get("generation", 0))

        report.chunks = sum(counts.values())
        touched = bool(plan.cleanup or not manifest)
        indexer.write_manifest(
            {
                "settings": self.chunk_settings(),
                "sources": current,
                "chunk_counts": counts,
                "chunks": report.chunks,
                "generation": report.generation,
                "last_indexed": indexer.now() if touched else manifest.get("last_indexed"),
                "notes_read_at": read_at,
                "skipped_sources": sorted(f.source for f in skipped),  # unreadable: known, not indexed
            }
        )
        report.seconds = time.perf_counter() - started
        logger.info(
            "indexed %s changed=%s removed=%s", report.summary(),
            ",".join(report.changed_sources[:5]) or "-", ",".join(report.removed_sources[:5]) or "-",
        )
        return report
