"""Incremental indexing on a copy of the bundled notes: counts, edits, deletes, the embedding cache."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from assistant.engine import Engine
from ingest import chunk_note
from tests.conftest import BUNDLED_NOTES

BUNDLED_CHUNKS = len(chunk_note(BUNDLED_NOTES.read_text(encoding="utf-8"), "aws-notes.md"))


@pytest.fixture
def indexed(bundled_copy, embedder):
    """An engine over a private copy of the bundled index (built once per session)."""
    return Engine(bundled_copy, embedder=embedder), None, Path(bundled_copy.notes_path)


def test_first_run_adds_every_chunk_and_second_run_writes_nothing(notes_copy, make_settings, embedder):
    engine = Engine(make_settings(notes_copy), embedder=embedder)
    first = engine.index()
    assert first.added == BUNDLED_CHUNKS and first.deleted == 0
    second = engine.index()
    assert (second.added, second.updated, second.deleted, second.embedded) == (0, 0, 0, 0)
    assert second.skipped == BUNDLED_CHUNKS
    assert engine.indexer.count() == BUNDLED_CHUNKS
    assert not engine.status().stale


def test_editing_one_bullet_re_embeds_only_that_chunk(indexed):
    engine, _, notes = indexed
    path = notes / "aws-notes.md"
    text = path.read_text(encoding="utf-8")
    old = "limit is **350 ENIs per region**."
    assert text.count(old) == 1
    marker = uuid.uuid4().hex[:8]  # new text, whatever the shared embedding cache already holds
    path.write_text(text.replace(old, f"limit is **999 zebra{marker} ENIs per region**."), encoding="utf-8")
    assert engine.status().stale_sources == ["aws-notes.md"]

    report = engine.index()
    assert (report.added, report.deleted) == (1, 1)
    assert report.skipped == BUNDLED_CHUNKS - 1
    assert report.embedded == 1  # the edited chunk…
    assert report.units_embedded == 1  # …then, after the commit, the one answer unit inside it that changed
    assert engine.indexer.count() == BUNDLED_CHUNKS
    results = engine.search(f"999 zebra{marker} ENIs per region lambda", 3)
    assert any(r.heading_path[-1] == "Inside VPC" and f"999 zebra{marker}" in r.text for r in results)
    assert not any("350 ENIs" in r.text for r in engine.search("350 ENIs per region lambda", 10))


def test_deleting_a_file_removes_its_chunks(indexed):
    engine, _, notes = indexed
    (notes / "extra.md").write_text(f"# Gardening {uuid.uuid4().hex[:6]}\n- tomatoes need staking and pruning of suckers\n", encoding="utf-8")
    added = engine.index()
    assert (added.added, added.deleted) == (1, 0)
    assert engine.search("pruning tomato suckers", 1)[0].source == "extra.md"

    (notes / "extra.md").unlink()
    assert engine.status().removed_sources == ["extra.md"]
    report = engine.index()
    assert (report.added, report.deleted, report.embedded) == (0, 1, 0)
    assert engine.indexer.count() == BUNDLED_CHUNKS
    assert all(r.source == "aws-notes.md" for r in engine.search("pruning tomato suckers", 10))


def test_rebuild_takes_vectors_from_the_cache(indexed, make_settings, embedder):
    engine, _, notes = indexed
    rebuilt = engine.index(rebuild=True)
    assert rebuilt.added == BUNDLED_CHUNKS and rebuilt.embedded == 0
    assert engine.indexer.count() == BUNDLED_CHUNKS

    # Another chunk size: identical chunks (most small sections) still come from the cache.
    smaller = Engine(make_settings(notes, chunk_tokens=128), embedder=embedder)
    report = smaller.index(rebuild=True)
    assert report.added > BUNDLED_CHUNKS
    assert report.embedded < report.added // 2


def test_changed_chunk_settings_make_the_index_stale(indexed, bundled_copy, embedder):
    engine, _, _ = indexed
    assert not engine.status().stale
    other = Engine(bundled_copy.with_overrides(chunk_tokens=128), embedder=embedder)
    assert other.status().settings_changed


def test_folder_with_a_binary_file_indexes_the_rest(indexed):
    engine, _, notes = indexed
    (notes / "broken.md").write_bytes(b"# x\n\xff\xfe bad bytes")
    report = engine.index()
    assert report.skipped_files == ["broken.md"]
    assert engine.indexer.count() == BUNDLED_CHUNKS and engine.check().ok
