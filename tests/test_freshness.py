"""One truth across processes, answers before the first index, no stale citation served as right.

Real processes where another process is the point: the web app (``python app.py``)
and ``notes-assistant index`` are separate processes sharing a data dir (embedded
Chroma) or a ``chroma run`` server.
"""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
import uuid

import pytest

from assistant.engine import Engine
from assistant.service import Assistant
from tests.indexing_helpers import (
    PYTHON, REPO, ChromaServer, cli_env, eventually, expected_chunks, free_port, write_corpus,
)

QUESTION = "How often does a sourdough starter need feeding?"


def _post(url: str, question: str) -> dict:
    request = urllib.request.Request(url + "/api/ask", data=json.dumps({"question": question}).encode(),
                                     headers={"content-type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read())


def _get(url: str, path: str) -> dict:
    with urllib.request.urlopen(url + path, timeout=30) as response:
        return json.loads(response.read())


class App:
    """``python app.py`` on a free port, stopped on exit."""

    def __init__(self, env: dict, log) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = subprocess.Popen([PYTHON, "app.py", "--port", str(self.port)], cwd=REPO, env=env,
                                        stdout=log, stderr=subprocess.STDOUT)

    def __enter__(self) -> "App":
        def up():
            assert self.process.poll() is None, "the app exited"
            try:
                return _get(self.url, "/healthz")
            except OSError:
                return None

        eventually(up, timeout=180, what="the app answering /healthz")
        return self

    def __exit__(self, *exc) -> None:
        self.process.terminate()
        try:
            self.process.wait(20)
        except subprocess.TimeoutExpired:
            self.process.kill()


@pytest.mark.parametrize("mode", ["embedded", pytest.param("server", marks=pytest.mark.server)])
def test_a_running_app_serves_what_the_cli_indexed(tmp_path, embedding_cache, mode):
    notes = write_corpus(tmp_path / "notes")
    extra = {}
    server = None
    if mode == "server":
        server = ChromaServer(tmp_path / "chroma")
        extra = {"NOTES_ASSISTANT_CHROMA_HOST": server.host, "NOTES_ASSISTANT_CHROMA_PORT": str(server.port)}
    env = cli_env(notes, tmp_path / "index", embedding_cache, **extra)
    try:
        assert subprocess.run([PYTHON, "-m", "assistant.cli", "index"], cwd=REPO, env=env,
                              capture_output=True, timeout=600).returncode == 0
        with open(tmp_path / "app.log", "wb") as log, App(env, log) as app:
            assert "daily" in _post(app.url, QUESTION)["answer"]
            before = _get(app.url, "/healthz")
            kitchen = notes / "kitchen.md"
            kitchen.write_text(kitchen.read_text().replace("needs feeding daily", "needs feeding every 36 hours"))
            assert _get(app.url, "/healthz")["notes_newer"] is True  # seen from file metadata alone
            done = subprocess.run([PYTHON, "-m", "assistant.cli", "index"], cwd=REPO, env=env, capture_output=True,
                                  text=True, timeout=600)
            assert done.returncode == 0 and "added 1" in done.stdout, done.stderr

            answer = eventually(lambda: (a := _post(app.url, QUESTION)) and "36 hours" in a["answer"] and a,
                                timeout=60, interval=0.25, what="the app serving the CLI's new generation")
            assert "daily" not in answer["answer"] and not answer.get("stale_citations")
            health = _get(app.url, "/healthz")
            assert health["generation"] == health["serving_generation"] > before["generation"]
            assert health["notes_newer"] is False and health["stale"] is False
    finally:
        if server is not None:
            server.stop()


def test_healthz_reads_no_note_and_logs_nothing(tmp_path, make_settings, embedder, monkeypatch, caplog):
    from starlette.testclient import TestClient

    from app import build_app

    notes = write_corpus(tmp_path / "notes")
    (notes / "broken.md").write_bytes(b"\xff\xfe not text")  # reading it would log a warning
    settings = make_settings(notes)
    engine = Engine(settings, embedder=embedder)
    engine.index()
    client = TestClient(build_app(settings, Assistant(engine, settings)), base_url="http://127.0.0.1")

    def no_reads(*args, **kwargs):
        raise AssertionError("/healthz read a note")

    monkeypatch.setattr("ingest.reader.read_note", no_reads)
    caplog.clear()
    for _ in range(3):
        health = client.get("/healthz").json()
    assert health["notes_newer"] is False and health["sources"] == 3 and health["generation"] >= 1
    assert [r for r in caplog.records if r.levelname in ("WARNING", "ERROR")] == []
    (notes / "travel" / "packing.md").unlink()
    assert client.get("/healthz").json()["changed"] == ["travel/packing.md"]


def test_a_citation_whose_lines_changed_on_disk_is_flagged_and_a_run_requested(tmp_path, make_settings, embedder):
    notes = write_corpus(tmp_path / "notes")
    settings = make_settings(notes)
    engine = Engine(settings, embedder=embedder)
    engine.index()
    requested = []
    assistant = Assistant(engine, settings, on_stale=lambda: requested.append(True))
    fresh = assistant.ask(QUESTION)
    assert fresh.citations and not fresh.stale_citations

    kitchen = notes / "kitchen.md"
    kitchen.write_text(kitchen.read_text().replace("needs feeding daily", "is fed whenever"))  # not re-indexed
    stale = assistant.ask(QUESTION)
    cited = [c.n for c in stale.citations if c.source == "kitchen.md"]
    assert cited and set(cited) <= set(stale.stale_citations)
    assert any("changed after they were indexed" in n and "re-indexing now" in n for n in stale.notices)
    assert requested and stale.to_json()["stale_citations"] == stale.stale_citations

    engine.index()
    assert not assistant.ask(QUESTION).stale_citations


def test_keyword_answers_before_the_first_index_then_hybrid(tmp_path, make_settings, embedder):
    notes = write_corpus(tmp_path / "notes")
    settings = make_settings(notes)
    engine = Engine(settings, embedder=embedder)
    assert engine.preview() == len(expected_chunks(notes))
    assistant = Assistant(engine, settings)
    early = assistant.ask("what should I pack for a trip abroad?")
    assert engine.retriever.keyword_only and not early.abstained
    assert early.citations[0].source == "travel/packing.md"
    assert any("Keyword search only" in n for n in early.notices)
    assert assistant.ask("How do I prune tomatoes?").citations  # keyword-only still answers from the notes
    assert assistant.ask("What is the capital of Mongolia?").abstained  # …and still abstains

    engine.index()
    later = assistant.ask("what should I pack for a trip abroad?")
    assert not engine.retriever.keyword_only and not any("Keyword" in n for n in later.notices)
    assert later.citations[0].source == "travel/packing.md"


def test_the_first_start_serves_before_the_index_exists(tmp_path):
    """A fresh notes folder, data dir and cache: the app answers and /healthz reports the background run."""
    notes = write_corpus(tmp_path / "notes")
    env = cli_env(notes, tmp_path / "index", tmp_path / "cache")
    with open(tmp_path / "app.log", "wb") as log, App(env, log) as app:
        first = _post(app.url, "what should I pack for a trip abroad?")
        assert first["citations"] and first["citations"][0]["source"] == "travel/packing.md"
        health = eventually(lambda: (h := _get(app.url, "/healthz")) and h["indexed"] and h,
                            timeout=300, what="the background index committing")
        assert health["indexing"]["keyword_only"] is False and health["chunks"] == len(expected_chunks(notes))
        assert not any("Keyword" in n for n in _post(app.url, "what should I pack?").get("notices", []))
    assert "answering by keywords now" in (tmp_path / "app.log").read_text()


def test_an_edit_is_indexed_without_loading_torch(tmp_path, embedding_cache):
    notes = write_corpus(tmp_path / "notes")
    env = cli_env(notes, tmp_path / "index", embedding_cache)
    assert subprocess.run([PYTHON, "-m", "assistant.cli", "index"], cwd=REPO, env=env, timeout=600).returncode == 0
    # A text the persistent test cache has never seen, so something must really be embedded.
    (notes / "garden.md").write_text((notes / "garden.md").read_text() + f"- basil {uuid.uuid4().hex} likes heat\n")
    script = ("import sys\nfrom assistant.cli.root import main\ntry:\n    main(['index', '--json'])\n"
              "except SystemExit as e:\n    assert e.code == 0, e.code\n"
              "print('TORCH' if 'torch' in sys.modules else 'NO-TORCH', file=sys.stderr)\n")
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["embedded"] >= 1 and report["added"] >= 1
    assert done.stderr.strip().splitlines()[-1] == "NO-TORCH"
