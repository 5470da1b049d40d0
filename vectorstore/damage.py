"""Damaged index files: find them without opening Chroma, and move them aside for a repair.

Everything in a data dir but the embedding cache is *derived*: the embedded Chroma
store (``chroma/``), the record store (``records.sqlite``) and the manifest can be
re-created from the notes, and vectors come back from the cache. A damaged one is
never deleted: ``set_aside`` moves it into ``<data dir>/damaged-<UTC time>/`` so
nothing is lost, and the next run builds it anew. The notes are never touched.

Found here, from the files alone (no Chroma client is opened, so a damaged store
cannot crash the check): an empty or torn Chroma database, a record store that is
not a SQLite database, a manifest that is not ours. What needs the store's
contents — a collection that lost its rows, a manifest that lost its entry — is
found by ``vectorstore.sync.NotesSync.damage``.
"""

from __future__ import annotations

import logging
import shutil
import sqlite3
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from vectorstore.configs import MANIFEST_NAME, ManifestFile
from vectorstore.errors import REPAIR_HINT, DamagedIndexError

__all__ = ["Damage", "CHROMA_FILE", "RECORDS_FILE", "inspect_files", "set_aside", "set_aside_damaged", "raise_if_damaged"]

logger = logging.getLogger(__name__)

CHROMA_FILE = Path("chroma") / "chroma.sqlite3"
RECORDS_FILE = "records.sqlite"  # the same name as vectorstore.indexer.RECORDS_NAME (kept import-light here)
SQLITE_MAGIC = b"SQLite format 3\x00"

# What a repair moves aside for each kind: a damaged Chroma store takes the records and the
# manifest with it (they describe rows that are gone); the other kinds move only themselves.
_MOVES = {"chroma": ("chroma", RECORDS_FILE, MANIFEST_NAME), "records": (RECORDS_FILE,), "manifest": (MANIFEST_NAME,)}
_WHAT = {"chroma": "the Chroma store", "records": "the record store", "manifest": "the index manifest",
         "entry": "the index manifest", "collection": "the index collection"}


@dataclass(frozen=True)
class Damage:
    """One damaged or lost part of an index.

    ``kind`` is ``"chroma"``, ``"records"`` or ``"manifest"`` (a damaged file, moved
    aside by a repair), ``"entry"`` (the manifest lost this collection's entry) or
    ``"collection"`` (the store lost the collection's rows); a repair rebuilds the last two.
    """

    kind: str
    path: Path | str  # the file, or the collection's name
    detail: str

    def line(self) -> str:
        """One line with the fix, e.g. ``the Chroma store …/chroma.sqlite3 is damaged (empty file); run …``."""
        return f"{_WHAT[self.kind]} {self.path} is damaged ({self.detail}); {REPAIR_HINT}"


def _sqlite_problem(path: Path, deep: bool, table: str | None = None) -> str | None:
    """Why ``path`` is not a sound SQLite database, or None. ``deep`` reads every page (``quick_check``)."""
    try:
        with open(path, "rb") as f:
            header = f.read(len(SQLITE_MAGIC))
    except FileNotFoundError:
        return None
    except OSError as e:
        return f"unreadable: {e.strerror}"
    if not header:
        return "empty file"
    if header != SQLITE_MAGIC:
        return "not a SQLite database"
    if not deep:
        return None
    try:
        connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
        try:
            rows = connection.execute("PRAGMA quick_check").fetchall()
            if table and not connection.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)
            ).fetchone():
                return f"no {table} table"
        finally:
            connection.close()
    except sqlite3.DatabaseError as e:
        return str(e)
    problems = [row[0] for row in rows if row and row[0] != "ok"]
    return problems[0] if problems else None


def inspect_files(data_dir: Path, embedded: bool = True, deep: bool = False) -> list[Damage]:
    """The damaged files of the index in ``data_dir``, found without opening Chroma.

    Args:
        data_dir: the data dir (a missing one has nothing damaged).
        embedded: the Chroma store lives in ``data_dir`` (False in server mode: the server owns it).
        deep: read every page of the SQLite files (``index --check``); otherwise only sizes
            and headers are looked at, which is cheap enough for every command.
    """
    data_dir = Path(data_dir)
    found: list[Damage] = []
    problem = _sqlite_problem(data_dir / CHROMA_FILE, deep) if embedded else None
    if problem and not (problem == "empty file" and not (data_dir / MANIFEST_NAME).exists()):
        # (An empty store in a data dir without a manifest is one another process is creating.)
        found.append(Damage("chroma", data_dir / CHROMA_FILE, problem))
    records = data_dir / RECORDS_FILE
    if records.exists() and records.stat().st_size and (problem := _sqlite_problem(records, deep, "upsertion_record")):
        found.append(Damage("records", records, problem))  # 0 bytes: SQLite makes a new, empty store
    if problem := ManifestFile(data_dir / MANIFEST_NAME).problem():
        found.append(Damage("manifest", data_dir / MANIFEST_NAME, problem))
    return found


def raise_if_damaged(damage: list[Damage]) -> None:
    """Raise ``DamagedIndexError`` with the first problem's line (the fix included), if any."""
    if damage:
        more = f" (and {len(damage) - 1} more problem(s); `index --check` lists them)" if len(damage) > 1 else ""
        raise DamagedIndexError(damage[0].line() + more)


def set_aside(data_dir: Path, damage: list[Damage]) -> tuple[Path | None, list[str]]:
    """Move the files behind ``damage`` into ``<data dir>/damaged-<UTC time>/``; returns (folder, names moved).

    Call with the index lock held and before a Chroma client is opened on ``data_dir``
    (an embedded client of this process on the moved store is dropped).
    """
    data_dir = Path(data_dir)
    names: list[str] = []
    for item in damage:
        for name in _MOVES.get(item.kind, ()):
            if name not in names and (data_dir / name).exists():
                names.append(name)
    if not names:
        return None, []
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    folder = data_dir / f"damaged-{stamp}"
    n = 1
    while folder.exists():
        n += 1
        folder = data_dir / f"damaged-{stamp}-{n}"
    folder.mkdir()
    for name in names:
        shutil.move(str(data_dir / name), str(folder / name))
    if "chroma" in names:
        _forget_embedded_client(data_dir / "chroma")
    logger.warning("moved damaged index files aside folder=%s files=%s", folder, ",".join(names))
    return folder, names


def _forget_embedded_client(path: Path) -> None:
    """Drop this process's cached embedded Chroma system for ``path``, so the next client opens the new store.

    chromadb shares one system per persist directory within a process; after its files
    were moved, that system still points at them.
    """
    try:
        from chromadb.api.shared_system_client import SharedSystemClient
    except ImportError:  # pragma: no cover - chromadb is a dependency
        return
    system = SharedSystemClient._identifier_to_system.pop(str(path), None)  # private, hence guarded
    SharedSystemClient._identifier_to_refcount.pop(str(path), None)
    if system is not None:
        try:
            system.stop()
        except Exception as e:  # a system on a damaged store may fail to stop; it is dropped either way
            logger.debug("stopping the old Chroma system failed: %s", e)


def set_aside_damaged(data_dir: Path, embedded: bool = True, lock_timeout: float | None = None,
                      on_wait=None) -> tuple[Path | None, list[str]]:
    """What ``index --repair`` and ``--rebuild`` do first: find damaged files (reading every page) and
    move them aside, under the index lock; returns (folder, names moved), ``(None, [])`` when sound.

    Call before a Chroma client is opened on ``data_dir`` in this process (a damaged
    embedded store cannot be opened at all).
    """
    from vectorstore.lock import LOCK_NAME, IndexLock

    with IndexLock(Path(data_dir) / LOCK_NAME).hold(lock_timeout, on_wait):
        return set_aside(data_dir, inspect_files(data_dir, embedded=embedded, deep=True))
