"""Fixed-size batches of a sequence (Chroma, SQLite and the embedder all take bounded batches).

Hand-written: ``itertools.batched`` arrives only in Python 3.12, and langchain's
``batch_iterate`` would pull langchain into the query path's imports.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TypeVar

__all__ = ["batched"]

T = TypeVar("T")


def batched(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    """Consecutive slices of ``items`` of at most ``size`` elements.

    >>> list(batched([1, 2, 3, 4, 5], 2))
    [[1, 2], [3, 4], [5]]
    """
    for start in range(0, len(items), size):
        yield items[start : start + size]
