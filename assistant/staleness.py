"""Do cited lines still say what the answer quotes? Checked against the files on disk before an answer is shown.

An index can lag the notes (an edit not yet re-indexed, another process's run not
yet picked up); a citation whose lines changed must never reach the user as if it
were right. Reading a note costs a file read, so lines are cached per
(path, modification time, size): an unchanged file is read once.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path

from ingest import notes_root

__all__ = ["NoteLines", "stale_citations"]


class NoteLines:
    """The current lines of notes under ``notes_path``, cached by (mtime, size), at most ``capacity`` files."""

    def __init__(self, notes_path: Path, capacity: int = 64) -> None:
        self.root = notes_root(Path(notes_path))
        self.capacity = capacity
        self._files: OrderedDict[str, tuple[tuple[int, int], list[str]]] = OrderedDict()
        self._lock = threading.Lock()

    def lines(self, source: str) -> list[str] | None:
        """The lines of ``source`` now (None when it is gone or unreadable)."""
        path = self.root / source
        try:
            stat = path.stat()
        except OSError:
            return None
        key = (stat.st_mtime_ns, stat.st_size)
        with self._lock:
            cached = self._files.get(source)
            if cached is not None and cached[0] == key:
                self._files.move_to_end(source)
                return cached[1]
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError):
            return None
        with self._lock:
            self._files[source] = (key, lines)
            while len(self._files) > self.capacity:
                self._files.popitem(last=False)
        return lines


def _matches(quoted: str, span: list[str]) -> bool:
    """Every non-blank quoted line appears in the span (whitespace-insensitive; a long line may be cut).

    >>> _matches("- a  b\\n\\n- c", ["- a b", "- c", "- d"]), _matches("- x", ["- a"])
    (True, False)
    """
    text = " ".join(" ".join(span).split())
    return all(" ".join(line.split()) in text for line in quoted.splitlines() if line.strip())


def stale_citations(notes: NoteLines, citations: Sequence) -> list[int]:
    """The numbers ``n`` of citations whose lines on disk no longer hold their quoted text."""
    stale = []
    for citation in citations:
        lines = notes.lines(citation.source)
        if lines is None or citation.end_line > len(lines) or not _matches(
                citation.text, lines[citation.start_line - 1 : citation.end_line]):
            stale.append(citation.n)
    return stale
