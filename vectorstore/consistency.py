"""``index --check``: do the record manager, Chroma and the files on disk agree?

Three views of the same chunks are compared:

- **files on disk**, chunked with the current settings: the chunks that *should* be indexed;
- **Chroma's committed view** (``vectorstore.generations``): the chunks searches see;
- **the record manager**: the chunks the next incremental run believes are indexed.

Any disagreement is a problem; ``Engine.repair`` (``index --repair``) fixes all of them.
So is damage (``vectorstore.damage``): a torn store, a garbage record store, a lost
manifest — each one line, and the views it makes unreadable are not compared.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

from vectorstore.generations import committed_generation, visible

if TYPE_CHECKING:
    from vectorstore.damage import Damage
    from vectorstore.indexer import Indexer

__all__ = ["ExpectedChunk", "Finding", "ConsistencyReport", "check_index"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ExpectedChunk:
    """A chunk the files on disk produce with the current chunking settings."""

    chunk_id: str
    source: str
    start_line: int
    end_line: int
    content_hash: str


@dataclass(frozen=True)
class Finding:
    """One chunk involved in a problem, with where it points."""

    chunk_id: str
    source: str
    start_line: int
    end_line: int

    @property
    def where(self) -> str:
        """``source:start-end``, e.g. ``aws-notes.md:29-41``."""
        return f"{self.source}:{self.start_line}-{self.end_line}"


@dataclass
class ConsistencyReport:
    """What ``check_index`` found. ``problems == 0`` means all three views agree."""

    generation: int
    expected: int  # chunks the files produce
    indexed: int  # rows in Chroma's committed view
    records: int  # keys in the record manager
    missing: list[Finding] = field(default_factory=list)  # expected, not searchable
    extra: list[Finding] = field(default_factory=list)  # searchable, not (or no longer) in the files
    duplicates: list[Finding] = field(default_factory=list)  # same source, lines and text as another row
    unrecorded: list[Finding] = field(default_factory=list)  # searchable, unknown to the record manager
    orphan_records: list[str] = field(default_factory=list)  # record keys without a searchable row
    uncommitted: int = 0  # rows left by an interrupted run (invisible to searches)
    colliding: int = 0  # chunks the files produce whose id another chunk has already (only one can be stored)
    stale_sources: list[str] = field(default_factory=list)  # files changed since the last run
    settings_changed: bool = False
    damage: list[str] = field(default_factory=list)  # one line per damaged or lost part, with the fix
    collection: str = ""  # the physical collection checked (one per model and chunk settings)
    other_collections: list[str] = field(default_factory=list)  # other configurations kept beside it (not checked)

    @property
    def problems(self) -> int:
        return (
            len(self.missing) + len(self.extra) + len(self.duplicates) + len(self.unrecorded)
            + len(self.orphan_records) + self.uncommitted + len(self.stale_sources) + int(self.settings_changed)
            + self.colliding + len(self.damage)
        )

    @property
    def ok(self) -> bool:
        return self.problems == 0

    def lines(self, limit: int = 10) -> list[str]:
        """A human report: one summary line, then one line per problem kind with examples."""
        where = f"collection {self.collection}, " if self.collection else ""
        out = [
            f"{where}generation {self.generation}: {self.expected} chunks in the files, {self.indexed} searchable, "
            f"{self.records} in the record manager"
        ]
        out += self.damage

        def show(label: str, items: list[str], fix: str) -> None:
            if items:
                more = f" (+{len(items) - limit} more)" if len(items) > limit else ""
                out.append(f"{label}: {len(items)} — {', '.join(items[:limit])}{more}; {fix}")

        if self.colliding:
            out.append(f"chunks that share an id with another chunk: {self.colliding} (only one of each is stored); "
                       "report this as a bug")
        show("missing chunks", [f.where for f in self.missing], "run --repair")
        show("extra chunks", [f.where for f in self.extra], "run --repair")
        show("duplicate chunks", [f.where for f in self.duplicates], "run --repair")
        show("chunks unknown to the record manager", [f.where for f in self.unrecorded], "run --repair")
        show("records without a chunk", self.orphan_records, "run --repair")
        if self.uncommitted:
            out.append(f"uncommitted rows of an interrupted run: {self.uncommitted}; run index or --repair")
        show("stale sources", self.stale_sources, "run index")
        if self.settings_changed:
            out.append("chunking settings or model changed since the last run; run index (builds them beside the old ones)")
        if self.other_collections:
            out.append(f"other settings kept beside it (not checked): {', '.join(self.other_collections)}")
        out.append("ok: no problems" if self.ok else f"{self.problems} problem(s)")
        return out

    def to_json(self) -> dict:
        data = asdict(self)
        data.update(problems=self.problems, ok=self.ok)
        return data


def check_index(indexer: "Indexer", expected: list[ExpectedChunk], on_disk: dict[str, str], chunk_settings: dict,
                damage: "list[Damage]" = ()) -> ConsistencyReport:
    """Compare the files' chunks, Chroma's committed view and the record manager.

    Args:
        indexer: the index to check (call with its lock held, so no run is half-way).
        expected: every chunk the files on disk produce now.
        on_disk: ``{source: sha256}`` of the files on disk.
        chunk_settings: the settings the manifest must have been written with.
        damage: what ``NotesSync.damage`` found; each is one problem, and a damaged
            store, record store or manifest is not read.
    """
    kinds = {d.kind for d in damage}
    lines = [d.line() for d in damage]
    if "chroma" in kinds:  # nothing else can be read
        return ConsistencyReport(0, len(expected), 0, 0, damage=lines, collection=indexer.collection_name)
    collection = indexer.collection()
    committed = committed_generation(collection.metadata)
    got = collection.get(include=["metadatas"])
    metas = got["metadatas"] or [{}] * len(got["ids"])
    rows = {i: m or {} for i, m in zip(got["ids"], metas) if visible(m, committed)}
    records = {} if "records" in kinds else indexer.records()
    report = ConsistencyReport(committed, len(expected), len(rows), len(records), damage=lines,
                               collection=indexer.collection_name)
    report.uncommitted = len(got["ids"]) - len(rows)

    def finding(chunk_id: str, meta: dict) -> Finding:
        return Finding(chunk_id, str(meta.get("source", "?")), int(meta.get("start_line", 0)), int(meta.get("end_line", 0)))

    wanted = {c.chunk_id: c for c in expected}
    report.colliding = len(expected) - len(wanted)
    report.missing = [Finding(c.chunk_id, c.source, c.start_line, c.end_line) for c in expected if c.chunk_id not in rows]
    report.extra = sorted((finding(i, m) for i, m in rows.items() if i not in wanted), key=lambda f: (f.source, f.start_line))
    same: dict[tuple, list[str]] = defaultdict(list)
    for chunk_id, meta in rows.items():
        same[(meta.get("source"), meta.get("start_line"), meta.get("end_line"), meta.get("content_hash"))].append(chunk_id)
    for ids in same.values():
        if len(ids) > 1:
            # Rows the files expect are originals (pieces of one line may share span and text);
            # with none expected, the first id is. The others are duplicates.
            originals = {i for i in ids if i in wanted} or {min(ids)}
            report.duplicates += [finding(i, rows[i]) for i in sorted(ids) if i not in originals]
    if "records" not in kinds:  # a damaged record store is one problem, not one per chunk
        report.unrecorded = [finding(i, m) for i, m in rows.items() if records.get(i, "\0") != m.get("source")]
        report.orphan_records = sorted(k for k in records if k not in rows)

    if "manifest" in kinds or "entry" in kinds:
        return report  # the damage line says what to do; stale sources cannot be told
    entries = indexer.manifest.read_all() or {}
    report.other_collections = [
        f"{name} ({entry.get('chunks', 0)} chunks, indexed {entry.get('last_indexed') or 'never'})"
        for name, entry in sorted(entries.items()) if name != indexer.collection_name
    ]
    manifest = entries.get(indexer.collection_name)
    if manifest is None:
        report.stale_sources = sorted(on_disk)
        report.settings_changed = bool(entries)  # built with other settings only: `index` builds these beside
    else:
        known = manifest.get("sources", {})
        pending = set(manifest.get("pending", []))
        report.stale_sources = sorted(
            {s for s, h in on_disk.items() if known.get(s) != h} | {s for s in known if s not in on_disk} | pending
        )
        report.settings_changed = manifest.get("settings") != chunk_settings
    logger.info("checked generation=%d problems=%d", committed, report.problems)
    return report
