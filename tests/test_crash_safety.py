"""A failed or killed re-index loses nothing: searches keep the previous index, the next run completes the job.

- ``kill -9`` of a real ``notes-assistant index`` subprocess at several points of a
  large run (embedding, writing): after every kill the searchable chunks are exactly
  the old or exactly the new set, never a mix; a final run completes, ``--check``
  is clean and every chunk is found exactly once.
- An embedder that raises half-way, a commit that fails with "disk full", a really
  full disk (tmpfs, root only), a torn embedding-cache file.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
from langchain_core.embeddings import Embeddings

import vectorstore.generations
from assistant.answerers.extractive import unit_texts_of
from assistant.engine import Engine
from tests.conftest import BUNDLED_NOTES
from tests.indexing_helpers import PYTHON, REPO, cli_env, expected_chunks, write_corpus

READER = r"""
import json, os, sys
from assistant.engine import Engine
from assistant.settings import load_settings
from vectorstore.generations import visible_rows

engine = Engine(load_settings(os.environ))
collection = engine.indexer.collection()
generation, rows, _ = visible_rows(collection)
queries = json.loads(sys.argv[1]) if len(sys.argv) > 1 else []
searches = [[[r.chunk_id, r.source, r.start_line, r.end_line] for r in engine.search(q, 10)] for q in queries]
print(json.dumps({"generation": generation, "visible": sorted(rows), "raw": collection.count(), "searches": searches}))
"""


# -- a large corpus: the bundled notes split into files, and a second version of it --------------
def split_bundled(parts: int = 15) -> dict[str, str]:
    """The bundled notes cut at their ``###`` sections into ``parts`` files, each under the same ``#`` title."""
    lines = BUNDLED_NOTES.read_text(encoding="utf-8").splitlines(keepends=True)
    starts = [i for i, line in enumerate(lines) if line.startswith("### ")]
    cuts = [0] + [starts[len(starts) * k // parts] for k in range(1, parts)] + [len(lines)]
    files = {}
    for k in range(parts):
        body = lines[cuts[k] : cuts[k + 1]]
        if k:
            body = ["# AWS Stuff\n", "\n"] + body
        files[f"part-{k:02d}.md"] = "".join(body)
    return files


def second_version(files: dict[str, str]) -> dict[str, str]:
    """Every file shifted by one line (all chunk ids change), one deleted, one renamed, one added."""
    changed = {
        name: text.replace("# AWS Stuff\n", "# AWS Stuff\n_reviewed again this week_\n", 1)
        for name, text in files.items()
    }
    del changed["part-03.md"]
    changed["moved/part-04-renamed.md"] = changed.pop("part-04.md")
    changed["part-99.md"] = "# Extra\n\n- a brand new note written after the first index\n"
    return changed


def put_corpus(folder: Path, files: dict[str, str]) -> None:
    if folder.exists():
        shutil.rmtree(folder)
    write_corpus(folder, files)


def start_index(env: dict) -> subprocess.Popen:
    return subprocess.Popen(
        [PYTHON, "-m", "assistant.cli", "index"], cwd=REPO, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
    )


def kill_during(env: dict, data_dir: Path, phase: str, delay: float) -> bool:
    """Run the indexer and SIGKILL it ``delay`` s into ``phase`` ("start", or "write" = after its journal)."""
    process = start_index(env)
    manifest = data_dir / "manifest.json"
    if phase == "write":
        deadline = time.monotonic() + 600
        while process.poll() is None and time.monotonic() < deadline:
            try:
                if '"pending"' in manifest.read_text(encoding="utf-8"):
                    break
            except OSError:
                pass
            time.sleep(0.01)
    time.sleep(delay)
    killed = process.poll() is None
    if killed:
        os.kill(process.pid, signal.SIGKILL)
    process.communicate(timeout=120)
    return killed


def read_index(env: dict, queries: list[str] = ()) -> dict:
    result = subprocess.run(
        [PYTHON, "-c", READER, json.dumps(list(queries))], cwd=REPO, env=env, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_sigkill_mid_run_never_mixes_versions_and_the_next_run_completes(tmp_path, embedding_cache, bundled_engine):
    # bundled_engine: its session build has put (almost) every chunk of this corpus in the cache.
    notes, data_dir = tmp_path / "notes", tmp_path / "index"
    v1, v2 = split_bundled(), second_version(split_bundled())
    env = cli_env(notes, data_dir, embedding_cache)
    put_corpus(notes, v1)
    ids_v1 = set(expected_chunks(notes))
    put_corpus(notes, v2)
    ids_v2 = set(expected_chunks(notes))
    assert len(ids_v1) > 700 and not ids_v1 & ids_v2  # every chunk moved: a mix would show

    put_corpus(notes, v1)
    kill_during(env, data_dir, "write", 0.5)  # the very first build, killed while writing
    assert set(read_index(env)["visible"]) in (set(), ids_v1)

    targets = {"v1": (v1, ids_v1), "v2": (v2, ids_v2)}
    target = "v2"
    put_corpus(notes, v2)
    visible = set(read_index(env)["visible"])
    kills = 0
    for phase, delay in (("start", 2.0), ("write", 0.0), ("write", 0.4), ("write", 1.2), ("write", 3.0)):
        kills += kill_during(env, data_dir, phase, delay)
        now = set(read_index(env)["visible"])
        assert now in (visible, targets[target][1]), "a killed run left a mix of two versions searchable"
        visible = now
        if now == targets[target][1]:  # that run got to commit: aim the next one at the other version
            target = "v1" if target == "v2" else "v2"
            put_corpus(notes, targets[target][0])
    assert kills >= 3  # most runs really were killed mid-way

    final = subprocess.run([PYTHON, "-m", "assistant.cli", "index"], cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert final.returncode == 0, final.stderr[-2000:]
    check = subprocess.run([PYTHON, "-m", "assistant.cli", "index", "--check"], cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert check.returncode == 0 and "ok: no problems" in check.stdout, check.stdout + check.stderr[-2000:]

    expected = expected_chunks(notes)
    texts = [c[3] for c in expected.values()]
    searchable = sorted(i for i, c in expected.items() if len(c[3]) > 80 and texts.count(c[3]) == 1)
    sample = searchable[:: max(1, len(searchable) // 25)]
    state = read_index(env, [expected[i][3][:300] for i in sample])
    assert set(state["visible"]) == set(expected) and state["raw"] == len(expected)  # nothing missing, nothing extra
    for chunk_id, results in zip(sample, state["searches"]):
        assert [r[0] for r in results].count(chunk_id) == 1, f"{expected[chunk_id][:3]} not found exactly once"
        assert len({tuple(r[1:]) for r in results}) == len(results)  # no span twice (an old and a new copy)
        assert all(r[0] in expected for r in results)


# -- in-process failures --------------------------------------------------------------------------
class FailingEmbedder(Embeddings):
    """The real model, which raises once it has embedded ``budget`` texts (an OOM or crash mid-run)."""

    def __init__(self, inner: Embeddings, budget: int) -> None:
        self.inner = inner
        self.budget = budget
        self.embedded = 0

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        if self.embedded + len(texts) > self.budget:
            raise RuntimeError(f"embedder crashed after {self.embedded} texts")
        self.embedded += len(texts)
        return self.inner.embed_documents(texts)

    def embed_query(self, text: str) -> list[float]:
        return self.inner.embed_query(text)


def many_new_sections(count: int) -> str:
    return "# Journal\n" + "".join(
        f"\n## Entry {i}\n\n- on day {i} the heron number {i * 7} caught a fish near pier {i % 9}\n"
        f"- the tide table for day {i} said {i % 5} metres at noon\n"
        for i in range(count)
    )


@pytest.fixture
def small_index(tmp_path, make_settings, embedder):
    """A small indexed corpus with a private (cold) embedding cache, so new text really is embedded."""
    notes = write_corpus(tmp_path / "notes")
    settings = make_settings(notes, embedding_cache_dir=tmp_path / "cache")
    engine = Engine(settings, embedder=embedder)
    engine.index()
    return engine, settings, notes


def journal_documents(engine: Engine, notes: Path) -> list:
    from vectorstore.sync import chunk_document
    from ingest import chunk_note

    return [chunk_document(c) for c in chunk_note((notes / "journal.md").read_text(), "journal.md")]


def assert_answers_as_before(engine: Engine, settings, embedder, ids_before: set[str]) -> None:
    fresh = Engine(settings, embedder=embedder)  # what a new process would see
    assert engine.indexer.count() == len(ids_before)
    assert set(fresh.retriever.refresh().ids) == ids_before
    assert set(engine.retriever.refresh(force=True).ids) == ids_before
    assert engine.search("sourdough starter feeding", 1)[0].source == "kitchen.md"


def test_an_embedder_failing_half_way_changes_nothing_and_the_next_run_completes(small_index, embedder):
    engine, settings, notes = small_index
    ids_before = set(expected_chunks(notes))
    (notes / "journal.md").write_text(many_new_sections(200))  # 200 chunks: more than one batch of 128
    failing = FailingEmbedder(embedder, budget=128)
    with pytest.raises(RuntimeError, match="embedder crashed"):
        Engine(settings, embedder=failing).index()
    assert failing.embedded == 128
    assert_answers_as_before(engine, settings, embedder, ids_before)
    assert set(engine.indexer.records()) == ids_before  # nothing was written: the record manager agrees
    assert not any(r.source == "journal.md" for r in engine.search("heron caught a fish near pier", 10))

    fixed = Engine(settings, embedder=embedder)
    new_documents = [d for d in journal_documents(fixed, notes)]
    report = fixed.index()
    assert report.added == len(new_documents) and report.deleted == 0
    assert 0 < report.embedded <= len(new_documents) - 128  # the rest, not the 128 chunks the failed run cached
    assert report.units_embedded == len(set(unit_texts_of(new_documents)))  # then, after the commit, their units
    assert fixed.search("heron number 21 caught a fish", 3)[0].source == "journal.md"
    assert fixed.check().ok


def test_a_failed_commit_rolls_back_and_the_next_run_completes(small_index, embedder, monkeypatch):
    engine, settings, notes = small_index
    ids_before = set(expected_chunks(notes))
    garden = notes / "garden.md"
    garden.write_text(garden.read_text().replace("full sun", "full moonlight"))

    def disk_full(collection, generation):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(vectorstore.generations, "commit", disk_full)
    with pytest.raises(OSError, match="No space left"):
        engine.index()
    assert engine.indexer.collection().count() > len(ids_before)  # the new rows were written, invisible
    assert_answers_as_before(engine, settings, embedder, ids_before)
    assert engine.status().interrupted_sources == ["garden.md"]
    assert not engine.check().ok  # the file changed and is not indexed yet

    monkeypatch.undo()
    report = engine.index()
    assert report.recovered  # the staged rows were rolled back, the record manager realigned…
    assert (report.added, report.deleted, report.embedded) == (1, 1, 0)  # …and the edit redone
    assert any("moonlight" in r.text for r in engine.search("roses full moonlight", 3))
    assert engine.check().ok


def test_a_full_disk_mid_write_keeps_the_old_index(tmp_path, make_settings, embedder, embedding_cache):
    """A real full disk: the data dir on a small tmpfs (needs root to mount; skipped otherwise)."""
    mount = tmp_path / "fs"
    mount.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", str(mount)],
                                           capture_output=True).returncode != 0:
        pytest.skip("mounting a small tmpfs needs root")
    try:
        notes = write_corpus(tmp_path / "notes")
        settings = make_settings(notes, data_dir=mount / "index", embedding_cache_dir=embedding_cache)
        engine = Engine(settings, embedder=embedder)
        engine.index()
        ids_before = set(expected_chunks(notes))
        (notes / "journal.md").write_text(many_new_sections(100))  # ~100 new rows: far more than the room left
        stat = os.statvfs(mount)
        ballast = mount / "ballast"
        ballast.write_bytes(b"\0" * max(0, stat.f_bavail * stat.f_frsize - 64 * 1024))
        with pytest.raises(Exception) as error:
            engine.index()
        assert "full" in str(error.value).lower() or getattr(error.value, "errno", None) == errno.ENOSPC
        assert engine.search("sourdough starter feeding", 1)[0].source == "kitchen.md"
        assert set(engine.retriever.refresh(force=True).ids) == ids_before

        ballast.unlink()
        report = engine.index()
        assert report.added == len(set(expected_chunks(notes)) - ids_before)
        assert engine.search("heron number 21 caught a fish", 3)[0].source == "journal.md"
        assert engine.check().ok
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def test_a_torn_embedding_cache_file_is_embedded_again(small_index, embedder):
    engine, settings, notes = small_index
    cache_files = [p for p in Path(settings.cache_dir).rglob("*") if p.is_file()]
    assert cache_files
    for path in cache_files:  # what a kill in the middle of langchain's in-place write leaves
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    report = Engine(settings, embedder=embedder).index(rebuild=True)
    assert report.added == len(expected_chunks(notes))
    # Every torn vector re-embedded (chunks, then their answer units), none decoded as garbage.
    assert report.embedded + report.units_embedded >= len(cache_files)
    assert engine.search("sourdough starter feeding", 1)[0].source == "kitchen.md"
    assert not [p for p in Path(settings.cache_dir).rglob(".tmp-*")]  # no temp files left behind


def test_check_finds_every_kind_of_damage_and_repair_fixes_it(small_index, embedder):
    from click.testing import CliRunner

    from assistant.cli import cli
    from vectorstore.generations import BORN_KEY, RETIRED_KEY

    engine, settings, notes = small_index
    collection = engine.indexer.collection()
    rows = collection.get(include=["metadatas", "documents", "embeddings"])
    first, second = rows["ids"][0], rows["ids"][1]
    meta, vector, text = rows["metadatas"][1], rows["embeddings"][1], rows["documents"][1]
    generation = engine.indexer.generation()

    collection.delete(ids=[first])  # a chunk lost from Chroma: missing, and its record is an orphan
    engine.indexer.record_manager.delete_keys([second])  # a chunk the record manager forgot: unrecorded
    collection.add(ids=["copy-of-second"], embeddings=[vector], documents=[text], metadatas=[meta])  # a duplicate
    collection.add(ids=["ghost"], embeddings=[vector], documents=["- a ghost"], metadatas=[
        {**meta, "source": "ghost.md", "chunk_id": "ghost", "content_hash": "0" * 64}])  # a removed note's chunk
    collection.add(ids=["staged"], embeddings=[vector], documents=["- half-written"], metadatas=[
        {**meta, "chunk_id": "staged", BORN_KEY: generation + 1, RETIRED_KEY: 0}])  # an interrupted run's row

    report = engine.check()
    assert [f.chunk_id for f in report.missing] == [first] and report.orphan_records == [first]
    assert {f.chunk_id for f in report.extra} == {"copy-of-second", "ghost"}
    assert [f.chunk_id for f in report.duplicates] == ["copy-of-second"]
    assert {f.chunk_id for f in report.unrecorded} == {second, "copy-of-second", "ghost"}
    assert report.uncommitted == 1 and not report.stale_sources and not report.ok

    env = {"NOTES_ASSISTANT_NOTES_PATH": str(notes), "NOTES_ASSISTANT_DATA_DIR": str(settings.data_dir),
           "NOTES_ASSISTANT_EMBEDDING_CACHE_DIR": str(settings.cache_dir)}
    checked = CliRunner().invoke(cli, ["index", "--check"], env=env)
    assert checked.exit_code == 1 and "missing chunks: 1" in checked.output and "duplicate chunks: 1" in checked.output

    repaired = CliRunner().invoke(cli, ["index", "--repair"], env=env)
    assert repaired.exit_code == 0, repaired.output
    assert "ok: no problems" in repaired.output
    fixed = Engine(settings, embedder=embedder)
    assert fixed.check().ok
    assert set(fixed.retriever.refresh(force=True).ids) == set(expected_chunks(notes))
    assert "ghost" not in {r.chunk_id for r in fixed.search("a ghost", 10)}
