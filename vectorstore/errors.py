"""Errors of the index layer; each message says how to fix it."""

__all__ = [
    "VectorStoreError", "IndexNotBuiltError", "CorruptIndexError", "DamagedIndexError", "StoreUnavailableError",
    "EmbeddingModelError", "REPAIR_HINT",
]

# The fix every damage message names (the CLI edge prints messages as they are).
REPAIR_HINT = "run `notes-assistant index --repair` (or --rebuild; damaged files are moved aside, notes are never touched)"


class VectorStoreError(Exception):
    """Base class of the index layer's errors."""


class IndexNotBuiltError(VectorStoreError):
    """Nothing has been indexed yet."""


class CorruptIndexError(VectorStoreError):
    """The data dir is unreadable or was not written by notes-assistant."""


class DamagedIndexError(CorruptIndexError):
    """A derived file of the index (Chroma store, record store, manifest) is damaged or lost; ``--repair`` fixes it.

    ``detail`` is the bare reason (e.g. ``"not valid JSON"``); the message is the whole line with the fix.
    """

    def __init__(self, message: str, detail: str | None = None) -> None:
        super().__init__(message)
        self.detail = detail or message


class StoreUnavailableError(VectorStoreError):
    """The Chroma server cannot be reached."""


class EmbeddingModelError(VectorStoreError):
    """The configured embedding model cannot be loaded; nothing was written."""
