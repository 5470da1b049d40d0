"""Index configurations: one collection, record namespace and manifest entry per model and chunking.

Another embedding model gives other vectors for the same chunk ids, another chunk
budget other chunks. Neither can be applied to a live collection in place: a process
still running with the old settings would serve a mix, and a model that fails to
load half-way would leave a wreck. So each *configuration* — the ``collection``
setting, the embedding model, ``chunk_tokens`` and ``chunk_overlap`` — has its own
physical Chroma collection (``<collection>-<model>-<chunk_tokens>-<chunk_overlap>``),
its own record-manager namespace (``chroma/<physical name>``) and its own entry in
``manifest.json``. A new configuration is built *beside* the others; its readers see
it at its first commit, when it is complete, and readers with other settings never
see it at all. Nothing here deletes another configuration.

Data dirs written before configurations existed (manifest format 1, one collection
named exactly ``<collection>``) stay readable as they are: that collection keeps
serving the configuration its manifest records, and nothing is renamed or copied.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path

from vectorstore.datadir import replace_text
from vectorstore.errors import REPAIR_HINT, DamagedIndexError

__all__ = ["MANIFEST_NAME", "MANIFEST_FORMAT", "IndexConfig", "ManifestFile", "resolve_collection"]

logger = logging.getLogger(__name__)

MANIFEST_NAME = "manifest.json"
MANIFEST_FORMAT = 2  # {"format": 2, "collections": {physical name: entry}}
LEGACY_FORMAT = 1  # one entry for one collection, at the top level
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")


@dataclass(frozen=True)
class IndexConfig:
    """What a collection's chunk ids and vectors depend on besides the notes.

    Args:
        collection: the ``collection`` setting (the prefix of every physical collection name).
        model_name: the embedding model's folder name (the embedding cache is keyed by it too).
        chunk_tokens / chunk_overlap: the chunker's budget.
    """

    collection: str
    model_name: str
    chunk_tokens: int
    chunk_overlap: int

    @property
    def physical_name(self) -> str:
        """The Chroma collection of this configuration (a valid Chroma name).

        >>> IndexConfig("notes", "all-MiniLM-L6-v2", 256, 0).physical_name
        'notes-all-MiniLM-L6-v2-256-0'
        >>> IndexConfig("notes", "my model (v2)", 128, 16).physical_name
        'notes-my-model-v2-128-16'
        """
        model = _UNSAFE.sub("-", self.model_name).strip("-_")[:48] or "model"
        return f"{self.collection}-{model}-{self.chunk_tokens}-{self.chunk_overlap}"

    def settings(self, collection_name: str) -> dict:
        """The ``settings`` a manifest entry records for this configuration in ``collection_name``."""
        return {
            "chunk_tokens": self.chunk_tokens, "chunk_overlap": self.chunk_overlap,
            "model": self.model_name, "collection": collection_name,
        }


class ManifestFile:
    """``manifest.json``: one entry per collection, replaced atomically as a whole.

    Writers hold the index lock (one writer per data dir), so read-modify-write is safe;
    readers see the old or the new file, never half of one.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def read_all(self) -> dict[str, dict] | None:
        """Every entry by collection name, or None when there is no manifest yet.

        Raises:
            DamagedIndexError: unreadable, not JSON, or not a manifest of ours.
        """
        try:
            raw = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError) as e:
            raise self._damaged(getattr(e, "strerror", None) or "unreadable") from e
        try:
            manifest = json.loads(raw)
        except json.JSONDecodeError as e:
            raise self._damaged("not valid JSON") from e
        if isinstance(manifest, dict) and manifest.get("format") == MANIFEST_FORMAT and isinstance(
            manifest.get("collections"), dict
        ):
            return {name: entry for name, entry in manifest["collections"].items() if isinstance(entry, dict)}
        if isinstance(manifest, dict) and manifest.get("format") == LEGACY_FORMAT:
            # Written before configurations: the one entry of the one collection it names.
            name = (manifest.get("settings") or {}).get("collection") or "notes"
            return {name: {k: v for k, v in manifest.items() if k != "format"}}
        raise self._damaged("not a notes-assistant manifest")

    def read(self, collection_name: str) -> dict | None:
        """The entry of ``collection_name`` (settings, sources, chunk counts, generation…), or None."""
        return (self.read_all() or {}).get(collection_name)

    def write(self, collection_name: str, entry: dict) -> None:
        """Replace the entry of ``collection_name``; the other collections' entries are kept."""
        entries = self.read_all() or {}
        entries[collection_name] = {k: v for k, v in entry.items() if k != "format"}
        self._replace(entries)

    def forget(self, collection_name: str) -> None:
        """Drop the entry of ``collection_name`` (nothing happens when it has none)."""
        entries = self.read_all()
        if entries is not None and collection_name in entries:
            del entries[collection_name]
            self._replace(entries)

    def _replace(self, entries: dict[str, dict]) -> None:
        document = {"format": MANIFEST_FORMAT, "collections": entries}
        replace_text(self.path, json.dumps(document, indent=1, sort_keys=True))

    def problem(self) -> str | None:
        """Why the manifest is damaged (e.g. ``"not valid JSON"``), or None when it is sound or absent."""
        try:
            self.read_all()
        except DamagedIndexError as e:
            return e.detail
        return None

    def _damaged(self, why: str) -> DamagedIndexError:
        return DamagedIndexError(f"the index manifest {self.path} is damaged ({why}); {REPAIR_HINT}", why)


def resolve_collection(manifest: ManifestFile, config: IndexConfig) -> str:
    """The physical collection of ``config`` in the data dir of ``manifest``.

    ``config.physical_name``, except in a data dir written before configurations
    existed: there the collection named exactly ``config.collection`` keeps serving
    the configuration its manifest entry records.
    """
    try:
        entries = manifest.read_all() or {}
    except DamagedIndexError:
        entries = {}  # reported by whoever reads the entry; the name cannot depend on it
    legacy = entries.get(config.collection)
    if legacy is not None and legacy.get("settings") == config.settings(config.collection):
        logger.debug("legacy collection serves this configuration name=%s", config.collection)
        return config.collection
    return config.physical_name
