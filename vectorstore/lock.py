"""One writer at a time: an exclusive ``flock`` on ``<data dir>/index.lock``.

The CLI indexer, a web app's watcher and a ``--watch`` process may share a data
dir; only one of them writes at a time. The kernel drops the lock when its
holder dies (even by ``kill -9``), so a crash never leaves a stale lock behind.
The holder writes its pid and command into the file, so a waiting process can
say who it waits for.

Deliberate limit: ``flock`` works between processes on one machine (and one
data dir). Indexers on different machines writing one Chroma server are not
serialised by it — run a single indexer per collection (see the README).
"""

from __future__ import annotations

import fcntl
import logging
import os
import sys
import time
from pathlib import Path
from typing import Callable

from vectorstore.errors import VectorStoreError

__all__ = ["IndexLock", "IndexBusyError", "LOCK_NAME"]

logger = logging.getLogger(__name__)

LOCK_NAME = "index.lock"


class IndexBusyError(VectorStoreError):
    """Another process is writing the index and we were told not to wait (longer)."""


class IndexLock:
    """An exclusive, re-acquirable inter-process lock on a file.

    Args:
        path: the lock file (created if missing; never deleted — deleting it would
            let a second process lock a different inode).

    Example:
        >>> import tempfile
        >>> lock = IndexLock(Path(tempfile.mkdtemp()) / "index.lock")
        >>> with lock.hold(timeout=0):
        ...     pass  # write the index
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def holder(self) -> str:
        """Who holds (or last held) the lock, as written by it: ``"pid=… cmd=…"``."""
        try:
            return self.path.read_text(encoding="utf-8").strip() or "unknown process"
        except OSError:
            return "unknown process"

    def acquire(self, timeout: float | None = None, on_wait: Callable[[str], None] | None = None) -> None:
        """Take the lock.

        Args:
            timeout: seconds to wait; ``None`` waits as long as it takes, ``0`` fails at once.
            on_wait: told once, with the holder's description, when we have to wait.

        Raises:
            IndexBusyError: still held by another process after ``timeout``.
        """
        if self._fd is not None:
            raise RuntimeError("IndexLock is not re-entrant")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        deadline = None if timeout is None else time.monotonic() + timeout
        told = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                holder = self.holder()
                if deadline is not None and time.monotonic() >= deadline:
                    os.close(fd)
                    raise IndexBusyError(
                        f"another indexer is writing the index ({holder}, lock {self.path}); "
                        "wait for it to finish, or stop it (its lock is released the moment it exits)"
                    ) from None
                if not told:
                    told = True
                    logger.info("waiting for the index lock holder=%s", holder)
                    if on_wait:
                        on_wait(holder)
                time.sleep(0.1)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid={os.getpid()} cmd={' '.join(sys.argv[:3])[:200]}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    def hold(self, timeout: float | None = None, on_wait: Callable[[str], None] | None = None) -> "IndexLock":
        """``acquire`` for a ``with`` block."""
        self.acquire(timeout, on_wait)
        return self

    def __enter__(self) -> "IndexLock":
        if self._fd is None:
            self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()
