"""The data dir guard: a folder notes-assistant may write its index into.

It must be a writable folder that holds nothing but our own files (a marker file
says so), so that ``--rebuild`` or a reset never deletes somebody else's data.
"""

from __future__ import annotations

import os
from pathlib import Path

from vectorstore.errors import CorruptIndexError

__all__ = ["DATA_DIR_MARKER", "prepare_data_dir", "replace_text"]

DATA_DIR_MARKER = "NOTES_ASSISTANT_INDEX"


def prepare_data_dir(data_dir: Path, take_over: bool = False) -> Path:
    """Create ``data_dir`` if needed and check that it is ours and writable; returns it.

    Args:
        take_over: accept a folder that holds files we did not write (``--rebuild``).

    Raises:
        CorruptIndexError: a file instead of a folder, not writable, or foreign files inside.
    """
    data_dir = Path(data_dir)
    if data_dir.exists() and not data_dir.is_dir():
        raise CorruptIndexError(f"data dir {data_dir} is a file, not a folder; point NOTES_ASSISTANT_DATA_DIR elsewhere")
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        probe = data_dir / ".write-test"
        probe.write_text("ok")
        probe.unlink()
    except OSError as e:
        raise CorruptIndexError(f"data dir {data_dir} is not writable ({e.strerror}); fix its permissions or set --data-dir") from e
    marker = data_dir / DATA_DIR_MARKER
    if not marker.exists():
        foreign = sorted(p.name for p in data_dir.iterdir())
        if foreign and not take_over:
            raise CorruptIndexError(
                f"data dir {data_dir} holds files notes-assistant did not write ({', '.join(foreign[:3])}); "
                "use an empty folder, or --rebuild to take it over"
            )
        marker.write_text("notes-assistant index; safe to delete the whole folder to start over\n")
    return data_dir


def replace_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically: a reader sees the old file or the new one, never half of it.

    The data dir's small JSON files (the manifest, the calibration) are written this way.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)  # atomic on POSIX
    finally:
        tmp.unlink(missing_ok=True)
