"""Errors of the index layer; each message says how to fix it."""

__all__ = ["IndexError_", "IndexNotBuiltError", "CorruptIndexError", "StoreUnavailableError"]


class IndexError_(Exception):
    """Base class for index problems (named with a trailing underscore: ``IndexError`` is a builtin)."""


class IndexNotBuiltError(IndexError_):
    """Nothing has been indexed yet."""


class CorruptIndexError(IndexError_):
    """The data dir is unreadable or was not written by notes-assistant."""


class StoreUnavailableError(IndexError_):
    """The Chroma server cannot be reached."""
