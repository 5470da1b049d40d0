"""Notes on disk → sections with heading paths and line spans → token-bounded chunks."""

from ingest.chunker import Chunk, chunk_note, chunk_sections, count_tokens, split_units
from ingest.errors import IngestError, NoNotesError, NotesNotFoundError
from ingest.reader import NoteFile, SkippedFile, discover, notes_root, read_note, read_notes
from ingest.sections import Section, code_line_ranges, parse_sections

__all__ = [
    "Chunk", "chunk_note", "chunk_sections", "count_tokens", "split_units",
    "IngestError", "NoNotesError", "NotesNotFoundError",
    "NoteFile", "SkippedFile", "discover", "notes_root", "read_note", "read_notes",
    "Section", "code_line_ranges", "parse_sections",
]
