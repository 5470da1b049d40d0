"""Searches hammering the index while re-indexes run in a loop: no exceptions, never a mixed view."""

from __future__ import annotations

import threading

import vectorstore.generations
from assistant.engine import Engine
from tests.indexing_helpers import expected_chunks, write_corpus

SECTIONS = 60
QUERIES = ["log entry alpha", "log entry beta", "sourdough starter", "prune roses winter", "entry 7 of the log"]


def log_version(tag: str) -> str:
    """A note whose every section changes between versions "alpha" and "beta" (same lines, other words)."""
    parts = ["# Log\n"]
    for i in range(SECTIONS):
        parts.append(f"\n## Day {i}\n\n- log entry {tag} {i}: checked the {tag} gauges and wrote entry {i} of the log\n")
    return "".join(parts)


def test_searches_during_reindex_loop_see_one_consistent_generation(tmp_path, make_settings, embedder):
    notes = write_corpus(tmp_path / "notes")
    log = notes / "log.md"
    versions = {}
    for tag in ("alpha", "beta"):
        log.write_text(log_version(tag))
        versions[tag] = {(c[0], c[1], c[2], c[3]) for c in expected_chunks(notes).values()}
    valid = versions["alpha"] | versions["beta"]
    only = {tag: {c for c in versions[tag] if c[0] == "log.md"} for tag in versions}

    log.write_text(log_version("alpha"))
    settings = make_settings(notes, mmr=False)
    writer = Engine(settings, embedder=embedder)
    writer.index()
    # A second reader that re-reads the collection on every query, as another process
    # would between its periodic checks: it is what would catch a half-written view.
    eager = Engine(settings, embedder=embedder)
    eager.retriever.version_check_seconds = 0.0

    stop = threading.Event()
    errors: list[BaseException] = []
    problems: list[str] = []
    searches = [0]

    def hammer(reader: Engine) -> None:
        while not stop.is_set():
            for query in QUERIES:
                try:
                    results = reader.search(query, 10)
                except BaseException as e:  # noqa: BLE001 - any exception is the failure we look for
                    errors.append(e)
                    continue
                searches[0] += 1
                seen = [(r.source, r.start_line, r.end_line, r.text) for r in results]
                if [r.rank for r in results] != list(range(1, len(results) + 1)):
                    problems.append(f"ranks {[r.rank for r in results]}")
                if len({r.chunk_id for r in results}) != len(results):
                    problems.append(f"duplicate chunk in {query!r}")
                if any(not isinstance(r.score, float) or r.start_line > r.end_line or not r.text for r in results):
                    problems.append(f"malformed result for {query!r}")
                if any(chunk not in valid for chunk in seen):
                    problems.append(f"a chunk that no version of the notes has, for {query!r}")
                if any(c in only["alpha"] for c in seen) and any(c in only["beta"] for c in seen):
                    problems.append(f"alpha and beta chunks mixed in one result list for {query!r}")

    threads = [threading.Thread(target=hammer, args=(reader,)) for reader in (writer, eager)]
    for thread in threads:
        thread.start()
    try:
        runs = []
        for i in range(8):
            tag = "beta" if i % 2 == 0 else "alpha"
            log.write_text(log_version(tag))
            runs.append(writer.index())
    finally:
        stop.set()
        for thread in threads:
            thread.join(60)

    assert not errors, f"{len(errors)} searches raised, first: {errors[0]!r}"
    assert not problems, problems[:5]
    assert searches[0] > len(runs)  # the searches really ran alongside the re-indexes
    changed = len(only["alpha"])
    assert all(run.added == changed and run.deleted == changed for run in runs)
    final = writer.search("log entry alpha", 10)
    assert final and all("alpha" in r.text for r in final if r.source == "log.md")
    assert writer.check().ok


def test_a_reader_in_the_middle_of_a_run_sees_the_previous_generation(tmp_path, make_settings, embedder, monkeypatch):
    notes = write_corpus(tmp_path / "notes")
    log = notes / "log.md"
    log.write_text(log_version("alpha"))
    settings = make_settings(notes, mmr=False)
    writer = Engine(settings, embedder=embedder)
    writer.index()
    before = set(expected_chunks(notes))

    # Hold the writer exactly between its writes and its commit.
    reached, release = threading.Event(), threading.Event()
    real_commit = vectorstore.generations.commit

    def paused_commit(collection, generation):
        reached.set()
        assert release.wait(120)
        real_commit(collection, generation)

    monkeypatch.setattr(vectorstore.generations, "commit", paused_commit)
    log.write_text(log_version("beta"))
    run = threading.Thread(target=writer.index)
    run.start()
    try:
        assert reached.wait(300)
        reader = Engine(settings, embedder=embedder)  # a fresh reader builds its view now, mid-run
        raw = writer.indexer.collection().count()
        assert raw > len(before)  # the new rows are written: the test really is mid-run
        assert set(reader.retriever.refresh(force=True).ids) == before
        results = reader.search("log entry beta gauges", 10)
        assert results and all("beta" not in r.text for r in results)
        assert writer.search("log entry beta gauges", 10) == writer.search("log entry beta gauges", 10)
        assert all("beta" not in r.text for r in writer.search("log entry beta gauges", 10))
    finally:
        release.set()
        run.join(120)
    after = set(expected_chunks(notes))
    reader.retriever.version_check_seconds = 0.0
    assert set(reader.retriever.snapshot.ids) == after != before
    assert any("beta" in r.text for r in reader.search("log entry beta gauges", 10))
