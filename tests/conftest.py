"""Shared fixtures: real model, real Chroma in tmp dirs, one indexed copy of the bundled notes per session."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BUNDLED_NOTES = REPO / "notes" / "aws-notes.md"
GOLDEN = REPO / "evals" / "datasets" / "golden.jsonl"

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")


@pytest.fixture(autouse=True)
def _isolate_env(monkeypatch):
    """No NOTES_ASSISTANT_* from the developer's shell leaks into a test; no hub access."""
    for key in list(os.environ):
        if key.startswith("NOTES_ASSISTANT_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("GRADIO_ANALYTICS_ENABLED", "False")


TEST_EMBEDDING_CACHE = REPO / ".cache" / "test-embeddings"


@pytest.fixture(scope="session")
def embedding_cache() -> Path:
    """The tests' embedding cache, kept between runs in ``.cache/test-embeddings`` (git-ignored).

    It cannot go stale: entries are keyed by the sha256 of model name + text, so a
    changed text or model simply misses. Writes are atomic (temp file + rename), so
    parallel test processes share it safely. ``.ci/run``'s eval gate reuses it.
    The only thing the tests write inside the repo.
    """
    TEST_EMBEDDING_CACHE.mkdir(parents=True, exist_ok=True)
    return TEST_EMBEDDING_CACHE


@pytest.fixture(scope="session")
def embedder():
    from assistant.settings import default_model_path
    from vectorstore import load_embedder

    return load_embedder(default_model_path())


@pytest.fixture
def make_settings(tmp_path, embedding_cache):
    """Build ``Settings`` for a test: data dir under tmp_path, the session's embedding cache."""
    from assistant.settings import load_settings

    def make(notes_path: Path, **overrides):
        overrides.setdefault("data_dir", tmp_path / "index")
        overrides.setdefault("embedding_cache_dir", embedding_cache)
        return load_settings({}, notes_path=notes_path, **overrides)

    return make


@pytest.fixture
def notes_copy(tmp_path) -> Path:
    """A writable copy of the bundled notes in ``tmp_path/notes`` (a folder with aws-notes.md)."""
    folder = tmp_path / "notes"
    folder.mkdir()
    shutil.copy(BUNDLED_NOTES, folder / "aws-notes.md")
    return folder


@pytest.fixture(scope="session")
def bundled_settings(tmp_path_factory, embedding_cache):
    from assistant.settings import load_settings

    root = tmp_path_factory.mktemp("bundled")
    notes = root / "notes"
    notes.mkdir()
    shutil.copy(BUNDLED_NOTES, notes / "aws-notes.md")
    return load_settings({}, notes_path=notes, data_dir=root / "index", embedding_cache_dir=embedding_cache)


@pytest.fixture(scope="session")
def bundled_engine(bundled_settings, embedder):
    """The bundled notes, indexed once per session (read-only for tests!)."""
    from assistant.engine import Engine

    engine = Engine(bundled_settings, embedder=embedder)
    engine.index()
    return engine


@pytest.fixture
def bundled_copy(tmp_path, bundled_engine, bundled_settings):
    """Settings for a private, writable copy of the session's bundled index (notes and data dir).

    Copying the built index (a few MB) costs a fraction of indexing the notes again,
    so tests that change the index start from here.
    """
    from assistant.settings import load_settings

    source = Path(bundled_settings.data_dir).parent
    target = tmp_path / "bundled"
    shutil.copytree(source, target)
    return load_settings({}, notes_path=target / "notes", data_dir=target / "index",
                         embedding_cache_dir=bundled_settings.embedding_cache_dir)


@pytest.fixture(scope="session")
def assistant(bundled_engine):
    from assistant.service import Assistant

    return Assistant(bundled_engine)


@pytest.fixture(scope="session")
def golden() -> list[dict]:
    import json

    return [json.loads(line) for line in GOLDEN.read_text(encoding="utf-8").splitlines() if line.strip()]
