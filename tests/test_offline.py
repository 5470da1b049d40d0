"""The entry points never reach out: with every non-loopback connection refused, the app imports, builds and answers.

A ``sitecustomize`` in the child process makes any outbound connection attempt
(connect, DNS lookup of a non-local name) fail *and* be recorded in a file; the
test asserts the record is empty after a real question was answered.
"""

from __future__ import annotations

import json
import os
import subprocess
import textwrap

from tests.indexing_helpers import PYTHON, REPO, write_corpus

GUARD = textwrap.dedent('''
    import os, socket

    _LOG = os.environ["NA_TEST_OUTBOUND_LOG"]
    _LOCAL = ("127.", "::1", "localhost", "0.0.0.0", "")

    def _local(host):
        return isinstance(host, str) and (host.startswith(_LOCAL) or host in _LOCAL)

    def _refuse(what):
        with open(_LOG, "a") as log:
            log.write(what + "\\n")
        raise OSError("outbound network blocked by the test: " + what)

    _connect, _getaddrinfo = socket.socket.connect, socket.getaddrinfo

    def connect(self, address):
        if self.family in (socket.AF_INET, socket.AF_INET6) and not _local(address[0]):
            _refuse(f"connect {address!r}")
        return _connect(self, address)

    def getaddrinfo(host, *args, **kwargs):
        if host is not None and not _local(host if isinstance(host, str) else host.decode()):
            _refuse(f"getaddrinfo {host!r}")
        return _getaddrinfo(host, *args, **kwargs)

    socket.socket.connect = connect
    socket.getaddrinfo = getaddrinfo
''')

APP_SCRIPT = textwrap.dedent('''
    import json, sys
    import app  # the entry point: its bootstrap runs before gradio or numpy is imported
    from assistant.engine import Engine
    from assistant.service import Assistant
    from assistant.settings import load_settings
    from starlette.testclient import TestClient

    settings = load_settings({}, notes_path=sys.argv[1], data_dir=sys.argv[2], embedding_cache_dir=sys.argv[3])
    engine = Engine(settings)
    engine.index()
    client = TestClient(app.build_app(settings, Assistant(engine, settings)), base_url="http://127.0.0.1")
    reply = client.post("/api/ask", json={"question": "how do I keep a sourdough starter alive?"})
    page = client.get("/")
    print(json.dumps({"status": reply.status_code, "answer": reply.json(), "page": page.status_code}))
''')


def _guarded_env(tmp_path) -> dict:
    guard_dir = tmp_path / "guard"
    guard_dir.mkdir()
    (guard_dir / "sitecustomize.py").write_text(GUARD, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NOTES_ASSISTANT_", "HF_", "GRADIO_"))}
    env.update(PYTHONPATH=f"{guard_dir}{os.pathsep}{REPO}", NA_TEST_OUTBOUND_LOG=str(tmp_path / "outbound.log"),
               HOME=str(tmp_path), MPLCONFIGDIR=str(tmp_path / "mpl"))
    return env


def test_the_web_app_imports_builds_and_answers_with_outbound_sockets_blocked(tmp_path, embedding_cache):
    notes = write_corpus(tmp_path / "notes")
    env = _guarded_env(tmp_path)
    result = subprocess.run([PYTHON, "-c", APP_SCRIPT, str(notes), str(tmp_path / "index"), str(embedding_cache)],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["status"] == 200 and out["page"] == 200
    assert not out["answer"]["abstained"] and out["answer"]["citations"][0]["source"] == "kitchen.md"
    log = tmp_path / "outbound.log"
    assert not log.exists(), log.read_text()


def test_the_console_script_answers_with_outbound_sockets_blocked(tmp_path, embedding_cache):
    notes = write_corpus(tmp_path / "notes")
    env = _guarded_env(tmp_path)
    env.update(NOTES_ASSISTANT_NOTES_PATH=str(notes), NOTES_ASSISTANT_DATA_DIR=str(tmp_path / "index"),
               NOTES_ASSISTANT_EMBEDDING_CACHE_DIR=str(embedding_cache))
    result = subprocess.run([PYTHON, "-m", "assistant.cli", "ask", "what should I pack for a trip abroad?", "--json"],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    answer = json.loads(result.stdout.strip().splitlines()[-1])
    assert answer["citations"] and answer["citations"][0]["source"] == "travel/packing.md"
    assert not (tmp_path / "outbound.log").exists(), (tmp_path / "outbound.log").read_text()
