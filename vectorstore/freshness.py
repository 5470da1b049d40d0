"""Are the notes on disk newer than the index? Answered from file metadata only (stat, no reads).

Cheap enough for every ``/healthz`` call (a folder walk and one ``stat`` per note):
a note whose modification time is after the last index run, a new note, or a
removed one makes the index possibly stale. It is a hint, not the truth — the
content hashes that ``notes-assistant index`` compares are — so an edit that
restores the old text still reads as newer until the next run.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from ingest import discover, notes_root

__all__ = ["changed_since"]


def changed_since(notes_path: Path, indexed_sources: set[str] | dict, read_at: float | str | None) -> list[str]:
    """Sources modified after the last run read them, added since, or removed since; sorted.

    Args:
        notes_path: the notes file or folder.
        indexed_sources: the sources the last run read (indexed, or skipped as unreadable).
        read_at: when the last run read the notes (epoch seconds; an ISO-8601 string from an
            older manifest is accepted), None: everything counts as new.
    """
    root = notes_root(notes_path)
    since = datetime.fromisoformat(read_at).timestamp() if isinstance(read_at, str) else read_at
    on_disk: set[str] = set()
    changed: list[str] = []
    for path in discover(notes_path):
        source = path.relative_to(root).as_posix()
        on_disk.add(source)
        try:
            modified = path.stat().st_mtime
        except OSError:
            continue  # vanished between the walk and the stat: counted as removed below
        if since is None or source not in indexed_sources or modified > since:
            changed.append(source)
    changed += [source for source in indexed_sources if source not in on_disk]
    return sorted(set(changed))
