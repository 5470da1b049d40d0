"""Changing the embedding model or the chunk size never destroys the live index.

- The exact report of issue 10: ``NOTES_ASSISTANT_EMBEDDING_MODEL=/etc notes-assistant
  search quokka`` on a healthy data dir was a traceback that reset the index. Now it is
  one line, exit 2, and the index is exactly as it was.
- Another chunk size or model builds a collection *beside* the live one; a process with
  the old settings keeps serving the old collection the whole time, and readers of the
  new settings see the new one only once it is complete.
- A data dir written before configurations existed (manifest format 1, one collection
  named by the ``collection`` setting) stays readable as it is.
"""

from __future__ import annotations

import errno
import hashlib
import json
import subprocess
import uuid
from pathlib import Path

import pytest

import vectorstore.generations
from assistant.engine import Engine
from tests.indexing_helpers import PYTHON, REPO, cli_env, expected_chunks, write_corpus
from vectorstore.errors import EmbeddingModelError
from vectorstore.generations import visible_rows

LONG_SECTION = "# Tides\n\n## Tables\n\n" + "".join(
    f"- on day {i} the tide table said {i % 5} metres at noon and {i % 3} metres at midnight near pier {i}\n"
    for i in range(24)
)


@pytest.fixture
def corpus(tmp_path):
    return write_corpus(tmp_path / "notes", {"tides.md": LONG_SECTION, "garden.md": "# Garden\n\n- prune roses in late winter\n"})


@pytest.fixture
def live(corpus, make_settings, embedder):
    """A healthy index with the default settings: ``(engine, settings, ids)``."""
    settings = make_settings(corpus)
    engine = Engine(settings, embedder=embedder)
    engine.index()
    ids = set(visible_rows(engine.indexer.collection())[1])
    assert ids == set(expected_chunks(corpus)) and engine.check().ok
    return engine, settings, ids


def collections(engine: Engine) -> set[str]:
    return {c if isinstance(c, str) else c.name for c in engine.client.list_collections()}


@pytest.mark.parametrize("command", [["search", "quokka"], ["ask", "what is a quokka"], ["index"]])
def test_a_model_that_cannot_load_is_one_line_and_the_index_is_untouched(command, live, corpus):
    engine, settings, ids = live
    manifest = (Path(settings.data_dir) / "manifest.json").read_bytes()
    before = collections(engine)
    env = cli_env(corpus, settings.data_dir, settings.cache_dir, NOTES_ASSISTANT_EMBEDDING_MODEL="/etc")

    result = subprocess.run([PYTHON, "-m", "assistant.cli", *command], cwd=REPO, env=env, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(errors) == 1 and errors[0].startswith("error: cannot load the embedding model at /etc"), errors
    assert "NOTES_ASSISTANT_EMBEDDING_MODEL" in errors[0]

    assert (Path(settings.data_dir) / "manifest.json").read_bytes() == manifest
    assert collections(engine) == before  # not even an empty collection for the bad model
    checked = subprocess.run([PYTHON, "-m", "assistant.cli", "index", "--check"], cwd=REPO,
                             env=cli_env(corpus, settings.data_dir, settings.cache_dir), capture_output=True, text=True,
                             timeout=300)
    assert checked.returncode == 0 and "ok: no problems" in checked.stdout, checked.stdout + checked.stderr
    assert set(visible_rows(engine.indexer.collection())[1]) == ids


def test_a_model_folder_that_does_not_load_is_an_embedding_model_error(tmp_path):
    from vectorstore.embeddings import LocalEmbeddings

    broken = tmp_path / "broken-model"
    broken.mkdir()
    (broken / "config.json").write_text("{}")  # what transformers calls an unrecognized model
    with pytest.raises(EmbeddingModelError) as error:
        LocalEmbeddings(str(broken))
    message = str(error.value)
    assert "\n" not in message and str(broken) in message and "NOTES_ASSISTANT_EMBEDDING_MODEL" in message


def test_another_chunk_size_is_built_beside_and_the_old_settings_keep_serving(live, corpus, make_settings, embedder,
                                                                            monkeypatch):
    old, _, old_ids = live
    new_settings = make_settings(corpus, chunk_tokens=64)
    new = Engine(new_settings, embedder=embedder)
    assert new.indexer.collection_name != old.indexer.collection_name
    new_ids = set(expected_chunks(corpus, chunk_tokens=64))
    assert new_ids != old_ids

    # The new build fails at its commit: nothing of it is visible, the old collection serves on.
    def disk_full(collection, generation):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(vectorstore.generations, "commit", disk_full)
    with pytest.raises(OSError):
        new.index()
    monkeypatch.undo()
    assert visible_rows(new.indexer.collection())[1] == {}  # readers of the new settings: nothing half-built
    assert set(old.retriever.refresh(force=True).ids) == old_ids
    assert old.search("prune roses", 1, mode="bm25")[0].source == "garden.md"
    assert old.check().ok and not old.status().stale

    report = new.index()  # completes; the old collection is still there, unchanged
    assert report.added == len(new_ids) and report.embedded <= len(new_ids) * 3
    assert set(visible_rows(new.indexer.collection())[1]) == new_ids
    assert set(visible_rows(old.indexer.collection())[1]) == old_ids
    assert set(Engine(make_settings(corpus), embedder=embedder).retriever.refresh().ids) == old_ids
    assert new.check().ok and old.check().ok
    lines = new.check().lines()
    assert any(old.indexer.collection_name in line and "kept beside" in line for line in lines)


def test_another_model_is_built_beside_the_live_one(live, corpus, make_settings, embedder, tmp_path):
    from assistant.settings import default_model_path

    old, _, old_ids = live
    # The same weights under another name: another model to us. A new name each session, so the
    # persistent test embedding cache cannot already hold its vectors.
    name = f"other-minilm-{uuid.uuid4().hex[:8]}"
    other_model = tmp_path / name
    other_model.symlink_to(default_model_path())
    new = Engine(make_settings(corpus, embedding_model=str(other_model)))
    assert new.indexer.collection_name == f"notes-{name}-{new.settings.chunk_tokens}-0"
    report = new.index()
    assert report.added == len(old_ids) and report.embedded > 0  # other vectors, embedded by the other model
    assert set(visible_rows(old.indexer.collection())[1]) == old_ids
    assert old.check().ok and new.check().ok
    assert old.search("prune roses", 1)[0].source == new.search("prune roses", 1)[0].source == "garden.md"
    entries = json.loads((Path(old.settings.data_dir) / "manifest.json").read_text())["collections"]
    assert set(entries) == {old.indexer.collection_name, new.indexer.collection_name}


def test_a_killed_rebuild_is_completed_and_never_looks_damaged(live, monkeypatch):
    engine, settings, ids = live

    def disk_full(collection, generation):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(vectorstore.generations, "commit", disk_full)
    with pytest.raises(OSError):
        engine.index(rebuild=True)
    monkeypatch.undo()
    status = engine.status()
    assert not status.damage and status.interrupted_sources == ["garden.md", "tides.md"]
    engine.index()
    assert set(visible_rows(engine.indexer.collection())[1]) == ids and engine.check().ok


def as_legacy(engine: Engine, settings) -> None:
    """Turn a fresh index into what the previous version wrote: collection ``notes``, namespace
    ``chroma/notes``, manifest format 1 (the same rows, records and entry, under the old names)."""
    import sqlite3

    data_dir = Path(settings.data_dir)
    name = engine.indexer.collection_name
    engine.indexer.collection().modify(name=settings.collection)
    with sqlite3.connect(data_dir / "records.sqlite") as db:
        db.execute("UPDATE upsertion_record SET namespace = ? WHERE namespace = ?",
                   (f"chroma/{settings.collection}", f"chroma/{name}"))
    entry = json.loads((data_dir / "manifest.json").read_text())["collections"][name]
    entry["settings"]["collection"] = settings.collection
    (data_dir / "manifest.json").write_text(json.dumps({**entry, "format": 1}))


def test_a_data_dir_written_before_configurations_stays_readable(live, corpus, make_settings, embedder):
    engine, settings, ids = live
    as_legacy(engine, settings)
    legacy = Engine(settings, embedder=embedder)
    assert legacy.indexer.collection_name == "notes"
    assert not legacy.status().stale and legacy.check().ok
    assert set(legacy.retriever.refresh().ids) == ids
    again = legacy.index()
    assert (again.added, again.deleted, again.embedded) == (0, 0, 0)

    smaller = Engine(make_settings(corpus, chunk_tokens=64), embedder=embedder)
    assert smaller.indexer.collection_name == "notes-model-64-0"
    smaller.index()
    assert set(visible_rows(legacy.indexer.collection())[1]) == ids  # the old collection was not touched
    assert Engine(settings, embedder=embedder).indexer.collection_name == "notes"
    manifest = json.loads((Path(settings.data_dir) / "manifest.json").read_text())
    assert manifest["format"] == 2 and set(manifest["collections"]) == {"notes", "notes-model-64-0"}


def test_collection_names_are_valid_and_distinct_per_configuration():
    from vectorstore.configs import IndexConfig

    names = {IndexConfig("notes", model, tokens, overlap).physical_name
             for model in ("model", "all-MiniLM-L6-v2", "bge small (en)") for tokens in (64, 256) for overlap in (0, 32)}
    assert len(names) == 12
    for name in names:
        assert 3 <= len(name) <= 512 and name[0].isalnum() and name[-1].isalnum()
        assert all(ch.isalnum() or ch in "-_" for ch in name)
    digest = hashlib.sha256(b"x").hexdigest()
    assert IndexConfig("notes", digest, 256, 0).physical_name.count("-") == 3  # long names are cut, not rejected


def journal(sections: int) -> str:
    return "# Journal\n" + "".join(
        f"\n## Entry {i}\n\n- on day {i} the heron number {i * 7} caught a fish near pier {i % 9} "
        f"while the ferry to island {i % 13} waited for the tide to turn\n"
        f"- the tide table for day {i} said {i % 5} metres at noon\n"
        for i in range(sections)
    )


@pytest.mark.slow
def test_a_process_with_the_old_settings_serves_throughout_another_process_building_new_ones(
    tmp_path, make_settings, embedder
):
    notes = write_corpus(tmp_path / "notes", {"journal.md": journal(150)})
    old = Engine(make_settings(notes), embedder=embedder)
    old.index()
    old_ids = set(expected_chunks(notes))
    new_ids = set(expected_chunks(notes, chunk_tokens=32))
    new_reader = Engine(make_settings(notes, chunk_tokens=32), embedder=embedder)

    settings = old.settings
    env = cli_env(notes, settings.data_dir, settings.cache_dir, NOTES_ASSISTANT_CHUNK_TOKENS="32")
    builder = subprocess.Popen([PYTHON, "-m", "assistant.cli", "index"], cwd=REPO, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seen: set[int] = set()
    polls = 0
    while builder.poll() is None or polls == 0:  # an invariant at every look, however long the build takes
        polls += 1
        assert set(old.retriever.refresh(force=True).ids) == old_ids
        assert old.search("heron number 147 caught a fish", 1, mode="bm25")[0].source == "journal.md"
        seen.add(len(visible_rows(new_reader.indexer.collection())[1]))
    out, err = builder.communicate(timeout=600)
    assert builder.returncode == 0, err
    assert seen <= {0, len(new_ids)}  # the new settings' readers saw nothing, then everything
    assert set(visible_rows(new_reader.indexer.collection())[1]) == new_ids
    assert set(visible_rows(old.indexer.collection())[1]) == old_ids
    assert old.check().ok and new_reader.check().ok
