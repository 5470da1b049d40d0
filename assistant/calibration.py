"""The fusion weights and abstention thresholds in effect, and where each came from.

Three sources, strongest first:

1. a value set explicitly in the settings (an ``NOTES_ASSISTANT_*`` variable or a CLI flag)
   — only the fusion weights are settings;
2. the calibration ``notes-assistant tune`` measured on questions made from the user's own
   notes, stored in the data dir as ``calibration.json``, one entry per index configuration
   (collection, embedding model, chunking: another configuration has other scores);
3. the defaults (``Settings`` fields, ``abstain.DEFAULT_THRESHOLDS``).

``CalibrationFile`` re-reads the file when it changes, so a ``tune`` run in another
process is used by a running app from its next question on. A damaged file is never
fatal: the defaults apply and ``problem`` says what to do.
"""

from __future__ import annotations

import json
import logging
import math
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from assistant.abstain import DEFAULT_THRESHOLDS, Thresholds
from assistant.settings import Settings
from vectorstore.datadir import DATA_DIR_MARKER, replace_text

__all__ = [
    "CALIBRATION_NAME", "QUESTIONS_NAME", "FUSION_FIELDS", "Calibration", "StoredCalibration", "CalibrationError",
    "effective", "calibration_path", "read_calibrations", "save_calibration", "reset_calibration", "CalibrationFile",
]

logger = logging.getLogger(__name__)

CALIBRATION_NAME = "calibration.json"
QUESTIONS_NAME = "calibration-questions.jsonl"  # the synthetic questions it was measured on, for inspection
FORMAT = 2  # {"format": 2, "calibrations": [entry, …]}: one entry per index configuration
ONE_ENTRY_FORMAT = 1  # the first files: one entry, at the top level (still read)
FUSION_FIELDS = ("dense_weight", "bm25_weight", "rrf_k")


class CalibrationError(ValueError):
    """``calibration.json`` cannot be used; the message says why and how to fix it."""


@dataclass(frozen=True)
class StoredCalibration:
    """What ``tune`` chose, for the index configuration ``collection``; ``report`` holds its measurements."""

    collection: str
    fusion: dict
    thresholds: Thresholds
    created: str = ""
    report: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        """One entry of ``calibration.json``."""
        return {"collection": self.collection, "created": self.created, "fusion": dict(self.fusion),
                "abstention": self.thresholds.to_json(), "report": self.report}


@dataclass(frozen=True)
class Calibration:
    """The values answering uses now. ``origin`` per value: "settings", "tuned" or "default"."""

    dense_weight: float
    bm25_weight: float
    rrf_k: int
    thresholds: Thresholds
    origin: dict
    tuned_at: str = ""  # when ``tune`` stored the calibration in use ("" when none is)
    problem: str = ""  # why a stored calibration is not used, with the fix

    def to_json(self) -> dict:
        """For ``/healthz`` and the Index tab."""
        return {"fusion": {f: getattr(self, f) for f in FUSION_FIELDS}, "abstention": self.thresholds.to_json(),
                "origin": dict(self.origin), "tuned_at": self.tuned_at or None, "problem": self.problem or None}


def effective(settings: Settings, stored: StoredCalibration | None, problem: str = "") -> Calibration:
    """Explicit settings, then ``stored``, then the defaults (see the module docstring).

    >>> effective(Settings(), None).origin["bm25_weight"], effective(Settings(bm25_weight=2), None).bm25_weight
    ('default', 2.0)
    >>> tuned = StoredCalibration("c", {"dense_weight": 1.0, "bm25_weight": 0.8, "rrf_k": 20}, Thresholds(floor_bm25=3))
    >>> c = effective(Settings(rrf_k=60), tuned)
    >>> c.bm25_weight, c.rrf_k, c.thresholds.floor_bm25, c.origin["rrf_k"], c.origin["abstention"]
    (0.8, 60, 3, 'settings', 'tuned')
    """
    values, origin = {}, {}
    for name in FUSION_FIELDS:
        if name in settings.model_fields_set or stored is None:
            values[name] = getattr(settings, name)
            origin[name] = "settings" if name in settings.model_fields_set else "default"
        else:
            values[name] = type(getattr(settings, name))(stored.fusion[name])
            origin[name] = "tuned"
    origin["abstention"] = "tuned" if stored is not None else "default"
    thresholds = stored.thresholds if stored is not None else DEFAULT_THRESHOLDS
    return Calibration(**values, thresholds=thresholds, origin=origin,
                       tuned_at=stored.created if stored is not None else "", problem=problem)


def calibration_path(data_dir: Path) -> Path:
    """Where the calibration of ``data_dir`` lives."""
    return Path(data_dir) / CALIBRATION_NAME


def _check(fusion: dict, thresholds: Thresholds) -> None:
    """ValueError unless every value is finite and in its range (NaN would switch a rule off silently)."""
    values = [*fusion.values(), *thresholds.to_json().values()]
    if not all(math.isfinite(v) for v in values):
        raise ValueError("values must be finite numbers")
    if min(fusion["dense_weight"], fusion["bm25_weight"]) < 0 or fusion["rrf_k"] < 1 or fusion["rrf_k"] % 1:
        raise ValueError("fusion weights must be ≥ 0 and rrf_k a whole number ≥ 1")
    t = thresholds
    if not all(-1 <= c <= 1 for c in (t.name_cosine, t.vocab_cosine, t.floor_cosine)):
        raise ValueError("cosine thresholds must lie in [-1, 1]")
    if not 0 < t.missing_ratio <= 1 or t.floor_bm25 < 0:
        raise ValueError("missing_ratio must lie in (0, 1] and floor_bm25 be ≥ 0")


def _entry(data: dict) -> StoredCalibration:
    fusion = {name: float(data["fusion"][name]) for name in FUSION_FIELDS}
    thresholds = Thresholds(**{k: float(v) for k, v in data["abstention"].items()})
    _check(fusion, thresholds)
    return StoredCalibration(str(data["collection"]), fusion, thresholds, str(data.get("created", "")),
                             dict(data.get("report") or {}))


def read_calibrations(path: Path) -> dict[str, StoredCalibration]:
    """Parse ``calibration.json``: index configuration (physical collection) → its calibration.

    Raises:
        CalibrationError: unreadable, not JSON, another format, or a value not finite or out of range.
    """
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        if data.get("format") == ONE_ENTRY_FORMAT:
            entries = [_entry(data)]
        elif data.get("format") == FORMAT:
            entries = [_entry(item) for item in data["calibrations"]]
        else:
            raise ValueError(f"format {data.get('format')!r}, expected {FORMAT}")
        return {entry.collection: entry for entry in entries}
    except (OSError, UnicodeDecodeError, ValueError, TypeError, KeyError, AttributeError) as e:
        raise CalibrationError(f"{path} is unusable ({type(e).__name__}: {e}); run notes-assistant tune "
                               "to measure it again (the defaults apply meanwhile)") from e


def save_calibration(data_dir: Path, stored: StoredCalibration) -> Path:
    """Store ``stored`` for its index configuration, keeping the others' (a damaged file is replaced).

    Written atomically: a reader sees the old file or the new one. Returns the path.
    """
    if not stored.created:
        stored = StoredCalibration(stored.collection, stored.fusion, stored.thresholds,
                                   datetime.now(timezone.utc).isoformat(timespec="seconds"), stored.report)
    path = calibration_path(data_dir)
    try:
        entries = read_calibrations(path) if path.exists() else {}
    except CalibrationError:
        entries = {}
    entries[stored.collection] = stored
    data = {"format": FORMAT, "calibrations": [entry.to_json() for entry in entries.values()]}
    replace_text(path, json.dumps(data, indent=2, ensure_ascii=False) + "\n")
    return path


def reset_calibration(data_dir: Path) -> bool:
    """Remove the stored calibration and its questions (the defaults apply again); True if there was one.

    Raises:
        CalibrationError: ``data_dir`` is not a folder, or the files cannot be removed.
    """
    data_dir = Path(data_dir)
    if data_dir.exists() and not data_dir.is_dir():
        raise CalibrationError(f"data dir {data_dir} is a file, not a folder; point --data-dir at the index folder")
    path = calibration_path(data_dir)
    if path.exists() and not (data_dir / DATA_DIR_MARKER).exists():
        raise CalibrationError(f"{data_dir} is not a notes-assistant data dir (no {DATA_DIR_MARKER}); nothing removed")
    try:
        existed = path.is_file()
        for name in (CALIBRATION_NAME, QUESTIONS_NAME):
            (data_dir / name).unlink(missing_ok=True)
    except OSError as e:
        raise CalibrationError(f"cannot remove {path} ({e.strerror}); remove it by hand") from e
    return existed


class CalibrationFile:
    """The calibration in effect for ``settings``, re-read when ``calibration.json`` changes.

    Args:
        settings: the explicit values win over the stored ones.
        collection: the physical collection answering reads (the stored calibration must be for it).
    """

    def __init__(self, settings: Settings, collection: Callable[[], str]) -> None:
        self.settings = settings
        self.path = calibration_path(settings.data_dir)
        self._collection = collection
        self._lock = threading.Lock()
        self._seen: tuple | None = None
        self._current = effective(settings, None)

    def current(self) -> Calibration:
        """One ``stat`` per call; the file is parsed only when it changed (a save is a new inode too)."""
        try:
            st = self.path.stat()
            key = (st.st_ino, st.st_mtime_ns, st.st_size)
        except OSError:
            key = None
        if key == self._seen:
            return self._current
        with self._lock:
            if key != self._seen:
                self._current = self._load() if key is not None else effective(self.settings, None)
                self._seen = key
        return self._current

    def _load(self) -> Calibration:
        try:
            entries = read_calibrations(self.path)
        except CalibrationError as e:
            logger.warning("%s", e)
            return effective(self.settings, None, str(e))
        collection = self._collection()
        stored = entries.get(collection)
        if stored is None:
            others = ", ".join(repr(name) for name in entries) or "no index"
            return effective(self.settings, None, f"{self.path.name} was measured for the index {others}, not "
                                                  f"{collection!r} (other settings); run notes-assistant tune again")
        try:
            return effective(self.settings, stored)
        except (ValueError, TypeError) as e:  # read_calibrations checked the values; never let one stop answering
            logger.warning("%s is unusable: %s", self.path, e)
            return effective(self.settings, None, f"{self.path} is unusable ({e}); run notes-assistant tune again")
