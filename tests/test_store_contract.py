"""One indexing/retrieval contract, run against embedded Chroma and against a real Chroma server.

The server runs as ``chroma run`` on 127.0.0.1 (started once per module, stopped
afterwards); each test uses its own collection, so tests do not see each other.
"""

from __future__ import annotations

import subprocess
import uuid

import pytest

from assistant.engine import Engine
from tests.indexing_helpers import (
    PYTHON, REPO, SMALL_CORPUS, ChromaServer, cli_env, eventually, expected_chunks, free_port, write_corpus,
)
from vectorstore.client import make_client
from vectorstore.errors import StoreUnavailableError


@pytest.fixture(scope="module")
def chroma_server(tmp_path_factory):
    server = ChromaServer(tmp_path_factory.mktemp("chroma-server") / "data")
    yield server
    server.stop()


@pytest.fixture(params=["embedded", pytest.param("server", marks=pytest.mark.server)])
def store(request):
    """None for embedded Chroma, else the running ``ChromaServer``."""
    return request.getfixturevalue("chroma_server") if request.param == "server" else None


@pytest.fixture
def corpus(tmp_path):
    return write_corpus(tmp_path / "notes")


@pytest.fixture
def make_engine(store, make_settings, embedder, corpus, tmp_path):
    """Engines on one collection: same ``data_dir`` name = same indexer state; another name = another process."""
    collection = f"contract-{uuid.uuid4().hex[:10]}"

    def make(data_dir: str = "index", **overrides) -> Engine:
        overrides.setdefault("collection", collection)
        overrides.setdefault("data_dir", tmp_path / data_dir)
        if store is not None:
            overrides.update(chroma_host=store.host, chroma_port=store.port)
        return Engine(make_settings(corpus, **overrides), embedder=embedder)

    return make


def chroma_ids(engine: Engine) -> set[str]:
    from vectorstore.generations import visible_rows

    return set(visible_rows(engine.indexer.collection())[1])


def test_index_then_search_returns_the_expected_chunk(make_engine, corpus):
    engine = make_engine()
    report = engine.index()
    expected = expected_chunks(corpus)
    assert report.added == len(expected) and report.deleted == 0
    assert chroma_ids(engine) == set(expected)
    top = engine.search("how often should a sourdough starter be fed", 3)
    assert top[0].source == "kitchen.md" and "sourdough starter needs feeding daily" in top[0].text
    assert top[0].heading_path == ("Kitchen", "Bread")


def test_second_run_writes_nothing(make_engine):
    engine = make_engine()
    first = engine.index()
    again = engine.index()
    assert (again.added, again.updated, again.deleted, again.embedded) == (0, 0, 0, 0)
    assert again.skipped == first.added
    assert engine.check().ok


def test_edit_delete_and_rename_counts(make_engine, corpus):
    engine = make_engine()
    engine.index()

    garden = corpus / "garden.md"
    garden.write_text(garden.read_text().replace("full sun and rich soil", "full sun and zebra-striped soil"))
    edited = engine.index()
    assert (edited.added, edited.deleted, edited.changed_sources) == (1, 1, ["garden.md"])
    assert "zebra-striped" in engine.search("roses zebra-striped soil", 1)[0].text
    assert not any("rich soil" in r.text for r in engine.search("roses rich soil full sun", 10))

    (corpus / "travel" / "packing.md").unlink()
    deleted = engine.index()
    assert (deleted.added, deleted.deleted, deleted.removed_sources) == (0, 1, ["travel/packing.md"])
    assert all(r.source != "travel/packing.md" for r in engine.search("universal power adapter trip", 10))

    chunks_of_kitchen = sum(1 for c in expected_chunks(corpus).values() if c[0] == "kitchen.md")
    (corpus / "kitchen.md").rename(corpus / "cooking.md")
    renamed = engine.index()
    assert (renamed.added, renamed.deleted, renamed.embedded) == (chunks_of_kitchen, chunks_of_kitchen, 0)
    sources = {r.source for r in engine.search("sourdough starter feeding", 10)}
    assert "cooking.md" in sources and "kitchen.md" not in sources
    assert chroma_ids(engine) == set(expected_chunks(corpus))
    assert engine.check().ok


def test_bm25_snapshot_agrees_with_chroma(make_engine, corpus):
    engine = make_engine()
    engine.index()
    (corpus / "kitchen.md").write_text(SMALL_CORPUS["kitchen.md"] + "\n## Spices\n\n- toast cumin seeds before grinding\n")
    engine.index()
    snapshot = engine.retriever.refresh()
    assert set(snapshot.ids) == chroma_ids(engine) == set(expected_chunks(corpus))
    lexical = engine.search("toast cumin seeds grinding", 3, mode="bm25")
    assert lexical[0].heading_path == ("Kitchen", "Spices")
    assert {r.chunk_id for r in lexical} <= chroma_ids(engine)


def test_two_processes_on_one_store_see_each_others_reindex(make_engine, store, corpus):
    writer = make_engine("index")
    writer.index()
    # Server mode: the reader is another machine's app (its own data dir, no notes of its own to index).
    # Embedded mode: a second Engine on the same data dir, as a second process would open it.
    reader = make_engine("replica" if store is not None else "index")
    reader.retriever.version_check_seconds = 0.2
    assert reader.ensure_index() is None  # fresh (embedded) or maintained elsewhere (server): no write
    assert reader.search("sourdough starter feeding", 1)[0].source == "kitchen.md"

    (corpus / "garden.md").write_text(SMALL_CORPUS["garden.md"].replace("late winter", "a blue moon"))
    writer.index()
    hit = eventually(
        lambda: [r for r in reader.search("prune roses blue moon", 3) if "blue moon" in r.text],
        what="the reader seeing the writer's re-index",
    )
    assert hit[0].source == "garden.md"
    assert set(reader.retriever.snapshot.ids) == set(expected_chunks(corpus))


def test_unreachable_server_is_one_clear_error(tmp_path, corpus):
    port = free_port()
    with pytest.raises(StoreUnavailableError) as error:
        make_client(tmp_path / "index", "127.0.0.1", port)
    message = str(error.value)
    assert f"127.0.0.1:{port}" in message and "chroma run" in message and "NOTES_ASSISTANT_CHROMA_HOST" in message

    env = cli_env(corpus, tmp_path / "index", tmp_path / "cache")
    result = subprocess.run(
        [PYTHON, "-m", "assistant.cli", "--chroma-host", "127.0.0.1", "--chroma-port", str(port), "index"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: cannot reach the Chroma server") and "Traceback" not in result.stderr


def test_other_chunk_settings_are_built_beside_and_the_old_collection_keeps_serving(make_engine, corpus):
    old = make_engine()
    old.index()
    old_ids = chroma_ids(old)
    new = make_engine(chunk_tokens=32, chunk_overlap=8)
    assert new.indexer.collection_name == f"{old.settings.collection}-model-32-8" != old.indexer.collection_name
    assert new.status().settings_changed and not new.status().indexed
    report = new.index()
    assert report.added == len(expected_chunks(corpus, 32, 8)) and report.deleted == 0
    assert chroma_ids(new) == set(expected_chunks(corpus, 32, 8))
    assert chroma_ids(old) == old_ids  # untouched, and still what the old settings serve
    assert old.search("how often should a sourdough starter be fed", 1)[0].source == "kitchen.md"
    assert new.search("how often should a sourdough starter be fed", 1)[0].source == "kitchen.md"
    assert old.check().ok and new.check().ok
