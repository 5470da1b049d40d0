"""Errors raised while reading notes."""

__all__ = ["IngestError", "NotesNotFoundError", "NoNotesError"]


class IngestError(Exception):
    """Base class for problems with the notes themselves."""


class NotesNotFoundError(IngestError):
    """The configured notes path does not exist."""


class NoNotesError(IngestError):
    """The notes path holds no readable .md/.markdown/.txt file."""
