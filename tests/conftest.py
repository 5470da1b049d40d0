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


@pytest.fixture(scope="session")
def embedding_cache(tmp_path_factory) -> Path:
    """One content-hash embedding cache for the whole session: each text is embedded once.

    ``NA_TEST_EMBEDDING_CACHE`` (developers only, never set in CI) names a cache
    that outlives the session, to iterate faster.
    """
    keep = os.environ.get("NA_TEST_EMBEDDING_CACHE")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        return Path(keep)
    return tmp_path_factory.mktemp("embedding-cache")


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


@pytest.fixture(scope="session")
def assistant(bundled_engine):
    from assistant.service import Assistant

    return Assistant(bundled_engine)


@pytest.fixture(scope="session")
def golden() -> list[dict]:
    import json

    return [json.loads(line) for line in GOLDEN.read_text(encoding="utf-8").splitlines() if line.strip()]
