"""Find note files under a root and read them as UTF-8 text, skipping what is not text."""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

from ingest.errors import NotesNotFoundError

__all__ = ["NOTE_SUFFIXES", "NoteFile", "SkippedFile", "discover", "read_note", "read_notes", "notes_root"]

logger = logging.getLogger(__name__)

NOTE_SUFFIXES = (".md", ".markdown", ".txt")


@dataclass(frozen=True)
class NoteFile:
    """One readable note: ``source`` is its POSIX path relative to the notes root."""

    source: str
    path: Path
    text: str  # newlines normalised to "\n", BOM removed
    content_hash: str  # sha256 of the raw bytes


@dataclass(frozen=True)
class SkippedFile:
    source: str
    reason: str


def notes_root(notes_path: Path) -> Path:
    """The folder sources are relative to: the folder itself, or a file's parent."""
    notes_path = Path(notes_path)
    return notes_path if notes_path.is_dir() else notes_path.parent


def discover(notes_path: Path) -> list[Path]:
    """Note files under ``notes_path`` (a file or a folder, recursive), sorted.

    Hidden files/folders and editor temp files (``.#x``, ``x~``) are ignored.

    Raises:
        NotesNotFoundError: the path does not exist.
    """
    notes_path = Path(notes_path)
    if not notes_path.exists():
        raise NotesNotFoundError(f"notes path not found: {notes_path} (set --notes or NOTES_ASSISTANT_NOTES_PATH)")
    if notes_path.is_file():
        return [notes_path]
    files = []
    root = notes_path.resolve()
    for path in notes_path.rglob("*"):
        rel = path.relative_to(notes_path)
        if any(part.startswith(".") for part in rel.parts) or path.name.endswith("~"):
            continue
        if path.suffix.lower() in NOTE_SUFFIXES and path.is_file():
            if not path.resolve().is_relative_to(root):
                # A symlink out of the notes folder would put foreign files into answers.
                logger.warning("skipped source=%s reason=symlink points outside the notes folder", rel.as_posix())
                continue
            files.append(path)
    return sorted(files)


def read_note(path: Path, root: Path) -> NoteFile | SkippedFile:
    """Read one note; binary or non-UTF-8 files come back as ``SkippedFile`` with the reason."""
    source = path.relative_to(root).as_posix()
    try:
        raw = path.read_bytes()
    except OSError as e:
        return SkippedFile(source, f"cannot read: {e.strerror or e}")
    nul = raw.find(b"\x00")
    if nul >= 0:
        return SkippedFile(source, f"binary file (NUL byte at offset {nul})")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        return SkippedFile(source, f"not valid UTF-8 (byte offset {e.start})")
    text = text.removeprefix("\ufeff").replace("\r\n", "\n").replace("\r", "\n")
    return NoteFile(source, path, text, hashlib.sha256(raw).hexdigest())


def read_notes(notes_path: Path) -> tuple[list[NoteFile], list[SkippedFile]]:
    """Read every note under ``notes_path``; skipped files are logged as warnings and returned."""
    root = notes_root(notes_path)
    notes, skipped = [], []
    for path in discover(notes_path):
        result = read_note(path, root)
        if isinstance(result, SkippedFile):
            logger.warning("skipped source=%s reason=%s", result.source, result.reason)
            skipped.append(result)
        else:
            notes.append(result)
    return notes, skipped
