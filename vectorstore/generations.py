"""Which chunk rows a reader may see: generations turn a re-index into one atomic commit.

Chroma has no multi-row transactions, so a re-index that writes new chunks and
deletes old ones cannot be applied atomically row by row. Instead every chunk row
carries the generation that wrote it (``BORN_KEY``) and, once superseded, the
generation that retired it (``RETIRED_KEY``; ``LIVE`` while current). The
collection's metadata holds the last *committed* generation G
(``GENERATION_KEY``). A reader sees exactly the rows that are visible at G:

    born <= G  and  (retired == LIVE or retired > G)

An indexer stages run G+1 (new rows born G+1, old rows marked retired G+1), then
commits by writing G+1 into the collection metadata — one atomic write — and only
then deletes the retired rows. A crash or an error before the commit leaves every
reader on G, exactly as before; the next run rolls the staged rows back.

Rows written before generations existed have neither key and count as born 0,
live: an old index stays readable.

This module is imported on the query path: it must stay free of heavy imports.
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["GENERATION_KEY", "BORN_KEY", "RETIRED_KEY", "LIVE", "committed_generation", "visible"]

GENERATION_KEY = "notes_assistant_generation"
BORN_KEY = "na_born_generation"
RETIRED_KEY = "na_retired_generation"
LIVE = 0


def committed_generation(collection_metadata: Mapping | None) -> int:
    """The last committed generation recorded in a collection's metadata (0 when never committed).

    >>> committed_generation({"notes_assistant_generation": 3})
    3
    >>> committed_generation(None)
    0
    """
    try:
        return int((collection_metadata or {}).get(GENERATION_KEY, 0))
    except (TypeError, ValueError):
        return 0


def visible(row_metadata: Mapping | None, committed: int) -> bool:
    """True when a chunk row belongs to the committed view ``committed``.

    >>> visible({"na_born_generation": 2, "na_retired_generation": 0}, 2)
    True
    >>> visible({"na_born_generation": 3, "na_retired_generation": 0}, 2)  # staged, not committed
    False
    >>> visible({"na_born_generation": 1, "na_retired_generation": 3}, 2)  # retirement not committed
    True
    >>> visible({}, 0)  # written before generations existed
    True
    """
    meta = row_metadata or {}
    born = int(meta.get(BORN_KEY, 0) or 0)
    retired = int(meta.get(RETIRED_KEY, LIVE) or LIVE)
    return born <= committed and (retired == LIVE or retired > committed)
