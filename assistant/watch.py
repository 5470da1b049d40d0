"""Background index runs: after notes change (``index --watch``, ``settings.watch``) or when asked.

``NotesWatcher`` runs an incremental ``Engine.index()`` in a worker thread: at
start (``initial``: the web app answers at once while its first index is built),
when ``request()`` is called (a citation found stale), and — with ``watch_files``
— once the notes have been quiet for ``debounce`` seconds after file-system
events under the notes root (watchdog: inotify on Linux, polling where inotify is
unavailable). ``progress()`` tells how far the current run is, with an ETA.

Why it never loses a change: an event only raises a "dirty" flag; the worker
clears the flag *before* a run reads the files, so an edit made during a run
raises it again and causes another run. The runs themselves work out what
changed by content hash, so the events need not be exact — a rename, a
temp-file-then-rename save or a burst of writes all end as one run that sees
the final state of the files.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

from ingest.reader import NOTE_SUFFIXES, notes_root

if TYPE_CHECKING:
    from assistant.engine import Engine
    from vectorstore.indexer import IndexReport

__all__ = ["NotesWatcher", "IndexProgress", "is_note_path"]

logger = logging.getLogger(__name__)

# Editor temp/backup/lock files: vim (.swp/.swx, "4913" probe, "x~"), emacs (".#x", "#x#"),
# JetBrains/VS Code/atomic writers (".tmp", ".part", "___jb_tmp___").
_TEMP_SUFFIXES = (".swp", ".swx", ".swo", ".tmp", ".part", ".bak", "~", "___jb_tmp___", "___jb_old___")
_TEMP_PREFIXES = (".#", "#", ".~")


@dataclass(frozen=True)
class IndexProgress:
    """Where the background index run is: texts embedded so far of those it needs, and an ETA."""

    running: bool
    done: int = 0
    total: int = 0
    eta_seconds: float | None = None

    @property
    def percent(self) -> int:
        return int(100 * self.done / self.total) if self.total else 0

    def to_json(self) -> dict:
        eta = None if self.eta_seconds is None else round(self.eta_seconds, 1)
        return {"running": self.running, "done": self.done, "total": self.total, "percent": self.percent,
                "eta_seconds": eta}


def is_note_path(path: Path, root: Path) -> bool:
    """True when ``path`` (under ``root``) is a note the indexer reads, not an editor's temp file.

    >>> is_note_path(Path("/n/a/b.md"), Path("/n"))
    True
    >>> [is_note_path(Path(p), Path("/n")) for p in ("/n/.b.md.swp", "/n/b.md~", "/n/.#b.md", "/n/.git/x.md")]
    [False, False, False, False]
    """
    try:
        rel = path.relative_to(root)
    except ValueError:
        return False
    name = path.name
    if any(part.startswith(".") for part in rel.parts):
        return False
    if name.endswith(_TEMP_SUFFIXES) or name.startswith(_TEMP_PREFIXES) or name == "4913":
        return False
    return path.suffix.lower() in NOTE_SUFFIXES


class NotesWatcher:
    """Re-index ``engine``'s notes whenever they change.

    Args:
        engine: the ``Engine`` to index (its settings name the notes and the index).
        debounce: seconds of quiet after the last change before a run starts.
        on_report: called with the ``IndexReport`` after each run (from the worker thread).
        on_error: called with the exception when a run fails; the run is retried later.
        initial: run once at ``start()`` to catch changes made while nobody watched.
        max_delay: under a constant stream of changes, run at least this often.
        retry_after: seconds before a failed run is retried.

    Example (needs an ``Engine``, so not a doctest; tests/test_watch.py runs it)::

        watcher = NotesWatcher(engine, debounce=1.0, on_report=print).start()
        watcher.stop()  # on shutdown
    """

    def __init__(
        self,
        engine: "Engine",
        debounce: float = 1.0,
        on_report: Callable[["IndexReport"], None] | None = None,
        on_error: Callable[[Exception], None] | None = None,
        *,
        initial: bool = True,
        max_delay: float = 10.0,
        retry_after: float = 5.0,
        watch_files: bool = True,
    ) -> None:
        self.engine = engine
        self.debounce = debounce
        self.on_report = on_report
        self.on_error = on_error
        self.initial = initial
        self.max_delay = max(max_delay, debounce)
        self.retry_after = retry_after
        self.watch_files = watch_files
        notes = Path(engine.settings.notes_path).resolve()
        self.root = notes_root(notes)
        self.single_file = notes if notes.is_file() else None
        self.runs = 0
        self.last_report: IndexReport | None = None
        self.last_error: Exception | None = None
        self._cond = threading.Condition()
        self._dirty = False
        self._due = 0.0
        self._first = 0.0
        self._running = False
        self._stopping = False
        self._observer = None
        self._worker: threading.Thread | None = None
        self._progress = (0, 0, 0.0)  # (texts done, texts to embed, when the run started)

    # -- lifecycle -----------------------------------------------------------
    def start(self) -> "NotesWatcher":
        """Start watching (returns at once; runs happen in a background thread)."""
        if self._worker is not None:
            raise RuntimeError("NotesWatcher already started")
        self._observer = self._start_observer() if self.watch_files else None
        if self.initial:
            self._mark(delay=0.0)
        self._worker = threading.Thread(target=self._loop, name="notes-watcher", daemon=True)
        self._worker.start()
        logger.info("watching notes root=%s debounce=%.1fs", self.root, self.debounce)
        return self

    def stop(self, timeout: float | None = 30.0) -> None:
        """Stop watching; a run in progress finishes first (up to ``timeout`` seconds)."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._observer is not None:
            self._observer.stop()
            self._observer.join(timeout)
        if self._worker is not None:
            self._worker.join(timeout)

    def __enter__(self) -> "NotesWatcher":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def busy(self) -> bool:
        """True while a change waits for its run or a run is in progress."""
        with self._cond:
            return self._dirty or self._running

    def request(self, delay: float = 0.0) -> None:
        """Ask for a run (e.g. a cited line no longer matches its note); runs already asked for merge."""
        self._mark(delay)

    def progress(self) -> IndexProgress:
        """The current run's embedding progress (``running`` False between runs)."""
        with self._cond:
            running = self._running
            done, total, since = self._progress
        eta = None
        if running and done and total and since:
            eta = (time.monotonic() - since) / done * (total - done)
        return IndexProgress(running, done, total, eta)

    def _count(self, done: int, total: int) -> None:
        with self._cond:
            self._progress = (done, total, self._progress[2])

    def wait_idle(self, timeout: float = 30.0) -> bool:
        """Block until no change is pending and no run is in progress; False on timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._dirty or self._running:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(remaining)
        return True

    # -- events --------------------------------------------------------------
    def _start_observer(self):
        from watchdog.events import FileSystemEventHandler
        from watchdog.observers import Observer
        from watchdog.observers.polling import PollingObserver

        watcher = self

        class Handler(FileSystemEventHandler):
            def on_any_event(self, event) -> None:
                watcher._on_event(event)

        recursive = self.single_file is None
        try:
            observer = Observer()
            observer.schedule(Handler(), str(self.root), recursive=recursive)
            observer.start()
        except OSError as e:  # e.g. the inotify watch limit is reached
            logger.warning("inotify unavailable (%s); polling the notes every second instead", e)
            observer = PollingObserver(timeout=1.0)
            observer.schedule(Handler(), str(self.root), recursive=recursive)
            observer.start()
        return observer

    def _on_event(self, event) -> None:
        if event.event_type in ("opened", "closed_no_write") or (event.is_directory and event.event_type == "modified"):
            return  # a folder's "modified" only echoes changes to its files (temp files included)
        paths = [event.src_path, getattr(event, "dest_path", "") or ""]
        if any(self._relevant(Path(p if isinstance(p, str) else p.decode()), event.is_directory) for p in paths if p):
            logger.debug("change %s %s", event.event_type, paths)
            self._mark(self.debounce)

    def _relevant(self, path: Path, is_directory: bool) -> bool:
        if self.single_file is not None:
            return path == self.single_file
        if is_directory:  # a folder (of notes, perhaps) created, moved or deleted
            try:
                rel = path.relative_to(self.root)
            except ValueError:
                return False
            return bool(rel.parts) and not any(part.startswith(".") for part in rel.parts)
        return is_note_path(path, self.root)

    def _mark(self, delay: float) -> None:
        now = time.monotonic()
        with self._cond:
            if not self._dirty:
                self._first = now
            self._dirty = True
            self._due = now + delay
            self._cond.notify_all()

    # -- runs ----------------------------------------------------------------
    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._dirty and not self._stopping:
                    self._cond.wait()
                # Trailing debounce: wait for quiet, but not longer than max_delay overall.
                while not self._stopping and (wait := min(self._due, self._first + self.max_delay) - time.monotonic()) > 0:
                    self._cond.wait(wait)
                if self._stopping:
                    return
                self._dirty = False  # before the run reads the files: later edits mark it again
                self._running = True
                self._progress = (0, 0, time.monotonic())
            try:
                self._run()
            finally:
                with self._cond:
                    self._running = False
                    self._cond.notify_all()

    def _run(self) -> None:
        from vectorstore.lock import IndexBusyError

        try:
            # A short lock timeout keeps stop() responsive while another indexer runs.
            report = self.engine.index(lock_timeout=1.0, progress=self._count, units_progress=self._count)
        except IndexBusyError:
            logger.debug("index locked by another process; retrying")
            self._mark(self.debounce)
            return
        except Exception as e:  # a watcher must outlive a failed run; the retry completes it
            self.last_error = e
            logger.error("re-index failed, retrying in %.0fs: %s", self.retry_after, e)
            self._mark(self.retry_after)
            if self.on_error is not None:
                self.on_error(e)
            return
        self.runs += 1
        self.last_report, self.last_error = report, None
        if self.on_report is not None:
            self.on_report(report)
