"""Watch mode: every kind of file change reaches the search results, with the right counts.

Waits are bounded polls (``eventually``), never timing assertions.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time

import pytest

from assistant.engine import Engine
from assistant.watch import NotesWatcher
from tests.indexing_helpers import PYTHON, REPO, SMALL_CORPUS, cli_env, eventually, expected_chunks, write_corpus

DEBOUNCE = 0.3


class Reports:
    """Collects the watcher's reports (thread-safe) so a test can wait for the run it caused."""

    def __init__(self) -> None:
        self.items = []
        self.lock = threading.Lock()

    def __call__(self, report) -> None:
        with self.lock:
            self.items.append(report)

    def after(self, count: int) -> list:
        with self.lock:
            return self.items[count:]

    def __len__(self) -> int:
        with self.lock:
            return len(self.items)


@pytest.fixture
def watched(tmp_path, make_settings, embedder):
    notes = write_corpus(tmp_path / "notes")
    engine = Engine(make_settings(notes), embedder=embedder)
    engine.index()
    reports = Reports()
    watcher = NotesWatcher(engine, debounce=DEBOUNCE, on_report=reports, initial=False).start()
    yield engine, watcher, reports, notes
    watcher.stop()


def run_caused_by(reports: Reports, before: int, source: str, removed: bool = False):
    """The first report after ``before`` that changed (or removed) ``source``."""

    def find():
        for report in reports.after(before):
            if source in (report.removed_sources if removed else report.changed_sources):
                return report
        return None

    return eventually(find, what=f"a run that {'removed' if removed else 'changed'} {source}")


def texts(engine: Engine, query: str, k: int = 10) -> list[str]:
    return [r.text for r in engine.search(query, k)]


def test_modifying_a_bullet_is_searchable_with_one_chunk_replaced(watched):
    engine, _, reports, notes = watched
    before = len(reports)
    path = notes / "garden.md"
    path.write_text(path.read_text().replace("rich soil", "rich volcanic soil"))
    report = run_caused_by(reports, before, "garden.md")
    assert (report.added, report.deleted) == (1, 1)
    assert any("rich volcanic soil" in t for t in texts(engine, "roses volcanic soil", 3))


def test_adding_and_deleting_files(watched):
    engine, _, reports, notes = watched
    before = len(reports)
    (notes / "music.md").write_text("# Music\n\n- tune the violin strings before every rehearsal\n")
    added = run_caused_by(reports, before, "music.md")
    assert (added.added, added.deleted) == (1, 0)
    assert engine.search("tune violin strings rehearsal", 1)[0].source == "music.md"

    before = len(reports)
    (notes / "music.md").unlink()
    removed = run_caused_by(reports, before, "music.md", removed=True)
    assert (removed.added, removed.deleted, removed.embedded) == (0, 1, 0)
    assert all(r.source != "music.md" for r in engine.search("tune violin strings rehearsal", 10))


def test_renaming_and_moving_re_embeds_nothing(watched):
    engine, _, reports, notes = watched
    kitchen_chunks = sum(1 for c in expected_chunks(notes).values() if c[0] == "kitchen.md")
    before = len(reports)
    (notes / "archive").mkdir()
    os.rename(notes / "kitchen.md", notes / "archive" / "cooking.md")
    report = run_caused_by(reports, before, "archive/cooking.md")
    assert report.removed_sources == ["kitchen.md"]
    assert (report.added, report.deleted, report.embedded) == (kitchen_chunks, kitchen_chunks, 0)
    sources = {r.source for r in engine.search("sourdough starter feeding", 10)}
    assert "archive/cooking.md" in sources and "kitchen.md" not in sources


def test_atomic_save_via_temp_file_and_rename(watched):
    engine, _, reports, notes = watched
    before = len(reports)
    target = notes / "travel" / "packing.md"
    temp = target.with_name(".packing.md.tmp-1234")
    temp.write_text(SMALL_CORPUS["travel/packing.md"] + "- keep a copy of your passport in the cloud\n")
    os.replace(temp, target)  # how many editors save: the note is replaced in one rename
    report = run_caused_by(reports, before, "travel/packing.md")
    assert report.added >= 1
    assert any("passport in the cloud" in t for t in texts(engine, "copy of passport cloud", 3))
    assert engine.check().ok


def test_editor_temp_files_do_not_trigger_runs(watched):
    engine, watcher, reports, notes = watched
    assert watcher.wait_idle(30)
    runs = watcher.runs
    for name in (".garden.md.swp", "garden.md~", ".#garden.md", "4913", "notes.md.part"):
        (notes / name).write_text("- scratch text an editor writes while saving\n")
    time.sleep(DEBOUNCE * 4)  # give a (wrong) run every chance to be scheduled
    assert watcher.wait_idle(30)
    assert watcher.runs == runs
    assert not watcher.busy


def test_changes_made_during_a_run_are_not_lost(watched):
    engine, watcher, reports, notes = watched
    # A burst of edits to several files, spread over several debounce windows so that
    # some land while a run is in progress.
    for round_ in range(6):
        for name in ("garden.md", "kitchen.md"):
            path = notes / name
            path.write_text(SMALL_CORPUS[name] + f"\n## Log\n\n- entry number {round_} in the {name[:-3]} log\n")
        time.sleep(DEBOUNCE * 0.8)
    eventually(lambda: not watcher.busy and engine.status().stale is False, what="the watcher catching up")
    assert any("entry number 5 in the garden log" in t for t in texts(engine, "entry number 5 garden log", 5))
    assert any("entry number 5 in the kitchen log" in t for t in texts(engine, "entry number 5 kitchen log", 5))
    assert not any("entry number 4 " in t for t in texts(engine, "entry number 4 log", 10))
    assert engine.check().ok


def test_index_watch_cli_prints_one_line_per_run_and_stops_on_sigterm(tmp_path, embedding_cache):
    notes = write_corpus(tmp_path / "notes")
    env = cli_env(notes, tmp_path / "index", embedding_cache)
    process = subprocess.Popen(
        [PYTHON, "-m", "assistant.cli", "index", "--watch", "--debounce", str(DEBOUNCE)],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(process.stdout.readline, "")), daemon=True)
    reader.start()
    try:
        eventually(lambda: any(line.startswith("added ") for line in lines), timeout=300, what="the first index run")
        time.sleep(1.0)  # let the observer settle before editing
        (notes / "garden.md").write_text(SMALL_CORPUS["garden.md"] + "- mulch the beds in autumn\n")
        line = eventually(lambda: [l for l in lines if "garden.md:" in l], timeout=60, what="a watch line")[0]
        assert "added 1, updated 0, deleted 1" in line
        assert sum("garden.md:" in l for l in lines) == 1
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(60)
    assert process.returncode == 0
