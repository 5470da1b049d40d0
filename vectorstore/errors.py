"""Errors of the index layer; each message says how to fix it."""

__all__ = ["VectorStoreError", "IndexNotBuiltError", "CorruptIndexError", "StoreUnavailableError"]


class VectorStoreError(Exception):
    """Base class of the index layer's errors."""


class IndexNotBuiltError(VectorStoreError):
    """Nothing has been indexed yet."""


class CorruptIndexError(VectorStoreError):
    """The data dir is unreadable or was not written by notes-assistant."""


class StoreUnavailableError(VectorStoreError):
    """The Chroma server cannot be reached."""
