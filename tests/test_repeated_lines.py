"""Notes that repeat one line many times: every chunk the chunker makes is stored, searchable and citable.

The report (issue 10): a folder whose notes repeat one line expected 77 chunks,
stored 12, and ``--check`` said ok. Lines are part of a chunk's id, so repeated
*lines* never collided; what collided were the pieces of one over-long line (cut
between sentences) whose text is the same: same source, heading, line span and
text gave the same id, and langchain's ``index()`` kept one per id.
"""

from __future__ import annotations

import pytest

from assistant.engine import Engine
from ingest import chunk_note, read_notes
from tests.indexing_helpers import write_corpus
from vectorstore.consistency import ExpectedChunk, check_index
from vectorstore.generations import visible_rows

BULLET = "- back up the laptop to the NAS every Friday"
SENTENCE = "Back up the laptop to the NAS every Friday."


def repeated_corpus() -> dict[str, str]:
    """77 identical bullet lines across sections and files, and long lines that repeat one sentence."""
    log = "# Log\n" + "".join(f"\n## Week {week}\n\n" + (BULLET + "\n") * 7 for week in range(7))  # 49 lines
    todo = "# Todo\n\n" + (BULLET + "\n") * 7  # 7 more in each of two files, same heading
    habits = "# Habits\n\n## Weekly\n\n" + (BULLET + "\n") * 14  # 77 identical lines in all
    # One bullet per line, each far over the 256-token budget: cut between sentences into pieces
    # whose text is identical, on the same line.
    long_lines = "# Reminders\n\n" + "".join(f"- {' '.join([SENTENCE] * 90)}\n\n" for _ in range(3))
    return {"log.md": log, "todo.md": todo, "more/todo.md": todo, "habits.md": habits, "reminders.md": long_lines}


def chunks_of(folder):
    notes, _ = read_notes(folder)
    return [c for n in notes for c in chunk_note(n.text, n.source)]


def test_every_chunk_of_repeated_text_has_its_own_id(tmp_path):
    chunks = chunks_of(write_corpus(tmp_path / "notes", repeated_corpus()))
    assert sum(c.text.count(BULLET) for c in chunks) == 77
    pieces = [c for c in chunks if c.source == "reminders.md"]
    assert len(pieces) > 6 and len({(c.start_line, c.text) for c in pieces}) < len(pieces)  # the colliding shape
    assert len({c.chunk_id for c in chunks}) == len(chunks)


def test_ids_of_chunks_that_never_collided_did_not_change():
    # Existing indexes keep their ids: only a second chunk with the same span and text gets a new one.
    import hashlib

    chunk = chunk_note("# A\n\n- one line\n", "a.md")[0]
    key = "\x1f".join(("a.md", "A", "3-3", hashlib.sha256(b"- one line").hexdigest()))
    assert chunk.chunk_id == hashlib.sha256(key.encode()).hexdigest()[:32]


@pytest.fixture
def repeated_index(tmp_path, make_settings, embedder):
    notes = write_corpus(tmp_path / "notes", repeated_corpus())
    engine = Engine(make_settings(notes, mmr=False), embedder=embedder)
    report = engine.index()
    return engine, notes, report


def test_stored_chunks_equal_the_chunker_and_check_agrees(repeated_index):
    engine, notes, report = repeated_index
    chunks = chunks_of(notes)
    _, rows, _ = visible_rows(engine.indexer.collection())
    assert report.added == len(chunks) == report.chunks
    assert set(rows) == {c.chunk_id for c in chunks}
    result = engine.check()
    assert (result.expected, result.indexed, result.records) == (len(chunks), len(chunks), len(chunks))
    assert result.ok, result.lines()


def test_each_repeated_chunk_is_searchable_and_cites_its_own_lines(repeated_index):
    engine, notes, _ = repeated_index
    chunks = chunks_of(notes)
    found = engine.search("back up the laptop to the NAS every Friday", len(chunks), mode="bm25")
    assert {r.chunk_id for r in found} == {c.chunk_id for c in chunks}
    lines = {}
    for r in found:
        text = lines.setdefault(r.source, (notes / r.source).read_text().splitlines())
        cited = "\n".join(text[r.start_line - 1 : r.end_line])
        assert r.text in cited  # the citation points at the lines the chunk came from
    bullets = [r for r in found if r.source != "reminders.md"]
    assert len({(r.source, r.start_line, r.end_line) for r in bullets}) == len(bullets)  # distinct lines each


def test_check_reports_chunks_that_share_an_id(repeated_index):
    engine, notes, _ = repeated_index
    chunks = chunks_of(notes)
    expected = [ExpectedChunk(c.chunk_id, c.source, c.start_line, c.end_line, c.content_hash) for c in chunks]
    on_disk = {n.source: n.content_hash for n in read_notes(notes)[0]}
    with engine.indexer.lock:
        result = check_index(engine.indexer, expected + expected[:2], on_disk, engine.sync.chunk_settings())
    assert not result.ok and result.colliding == 2
    assert any("share an id" in line for line in result.lines())
