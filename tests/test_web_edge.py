"""The HTTP edge under hostile input: odd JSON, big bodies, short errors, security headers.

A small tmp corpus is indexed once for the module (real model, real Chroma); the
app is driven with ``TestClient`` (server exceptions become 500s, as a browser
would see them) and, for bodies a client library would refuse to send, straight
through ASGI.
"""

from __future__ import annotations

import asyncio
import json

import pytest
from hypothesis import HealthCheck, given, settings as hypothesis_settings
from hypothesis import strategies as st

from tests.indexing_helpers import indexed_assistant

NOTE = """# Zephyr guide

## Setup

- The zephyr daemon listens on port 4417 by default.
- Its config lives in `/etc/zephyr/zephyr.toml`.
"""

CAP = 256 * 1024
SHORT = 2048  # no rejection may be longer than this, whatever was sent


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, embedding_cache, embedder):
    root = tmp_path_factory.mktemp("edge")
    (root / "notes").mkdir()
    (root / "notes" / "guide.md").write_text(NOTE, encoding="utf-8")
    return indexed_assistant(root / "notes", root / "index", embedding_cache, embedder)


@pytest.fixture(scope="module")
def client(corpus):
    from fastapi.testclient import TestClient

    from app import build_app

    with TestClient(build_app(*corpus), base_url="http://127.0.0.1:7860", raise_server_exceptions=False) as c:
        yield c


def post_raw(client, body: bytes, **headers):
    return client.post("/api/ask", content=body, headers={"content-type": "application/json", **headers})


def asgi_post(app, chunks: list[bytes], headers: list[tuple[bytes, bytes]]) -> tuple[int, dict, bytes, int]:
    """POST ``chunks`` to /api/ask through ASGI; returns (status, headers, body, chunks the app read)."""
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
        "path": "/api/ask", "raw_path": b"/api/ask", "root_path": "", "query_string": b"",
        "headers": [(b"host", b"127.0.0.1:7860"), (b"content-type", b"application/json"), *headers],
        "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 7860),
    }
    pending, sent = list(chunks), []

    async def receive():
        if pending:
            chunk = pending.pop(0)
            return {"type": "http.request", "body": chunk, "more_body": bool(pending)}
        return {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start["status"], {k.decode(): v.decode() for k, v in start["headers"]}, body, len(chunks) - len(pending)


# -- odd JSON ----------------------------------------------------------------------------------
ODD = {
    "nan_question": b'{"question": NaN}',
    "infinite_top_k": b'{"question": "zephyr port?", "top_k": Infinity}',
    "negative_infinite_top_k": b'{"question": "zephyr port?", "top_k": -Infinity}',
    "huge_top_k": b'{"question": "zephyr port?", "top_k": 1e400}',
    "surrogate_question": b'{"question": "zephyr \\ud800 port?"}',
    "surrogate_history": b'{"question": "and the port?", "history": [{"role": "user", "content": "\\udfff"}]}',
    "surrogate_key": b'{"question": "q", "\\ud800": 1}',
    "reversed_pair": b'{"question": "\\ude00\\ud83d"}',
    "url_field": b'{"question": "zephyr port?", "llm_base_url": "http://127.0.0.1:9/v1"}',
    "not_json": b"question=zephyr",
    "deep": b"[" * 100_000,
    "null": b"null",
    "list": b"[]",
}


@pytest.mark.parametrize("case", list(ODD))
def test_odd_json_is_a_short_4xx_not_a_500(client, case):
    response = post_raw(client, ODD[case])
    assert response.status_code in (400, 422), response.text
    assert len(response.content) < SHORT and "Traceback" not in response.text
    json.loads(response.content)  # still JSON, still UTF-8 (no surrogate echoed back)


def test_a_paired_surrogate_is_an_ordinary_character(client):
    response = post_raw(client, b'{"question": "zephyr \\ud83d\\ude00 port?"}')
    assert response.status_code == 200 and "\U0001F600" in response.json()["question"]


def test_the_api_takes_no_url(client):
    """The server's owner picks LLM endpoints; a request naming one is refused, not ignored."""
    response = client.post("/api/ask", json={"question": "zephyr port?", "llm_base_url": "http://127.0.0.1:9/v1"})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "llm_base_url"]


# -- sizes ---------------------------------------------------------------------------------------
def test_a_declared_big_body_is_refused_before_it_is_read(client):
    status, headers, body, read = asgi_post(client.app, [b"{" + b" " * 1000] * 400,
                                            [(b"content-length", str(400 * 1001).encode())])
    assert status == 413 and read == 0
    assert len(body) < SHORT and headers["content-type"].startswith("application/json")


@pytest.mark.parametrize("declared", [None, b"20"])
def test_an_undeclared_or_understated_big_body_is_cut_off_while_streaming(client, declared):
    chunks = [b'{"question": "' + b"a" * 64 * 1024] * 10
    headers = [(b"content-length", declared)] if declared else [(b"transfer-encoding", b"chunked")]
    status, _, body, read = asgi_post(client.app, chunks, headers)
    assert status == 413 and read <= CAP // (64 * 1024) + 1  # stopped reading just past the cap
    assert len(body) < SHORT


def test_a_big_rejection_echoes_only_a_short_excerpt(client):
    """A 200 KB history turn that fails validation: the 422 names the field, not its content."""
    big = "x" * 200_000
    response = client.post("/api/ask", json={"question": "q", "history": [{"role": "system", "content": big}],
                                            "y" * 5000: 1})
    assert response.status_code == 422 and len(response.content) < SHORT
    assert "xxxxxxxxxx" not in response.text and "yyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyy" not in response.text


@pytest.mark.parametrize("field, value", [
    ("question", "q" * 8_001),
    ("history", [{"role": "user", "content": "c" * 8_001}]),
    ("history", [{"role": "user", "content": "c"}] * 41),
    ("history", [{"role": "user", "content": "c" * 8_000}] * 5),  # 40,000 > 32,000 characters in all
])
def test_schema_limits(client, field, value):
    body = {"question": "zephyr port?", field: value}
    assert client.post("/api/ask", json=body).status_code == 422


def test_the_largest_valid_request_fits_inside_the_body_cap(client):
    """Every limit at its maximum, every character \\u-escaped (what json.dumps sends for non-ASCII)."""
    from assistant.web.chat_state import MAX_HISTORY_CHARS, MAX_QUESTION_CHARS, MAX_TURN_CHARS, MAX_TURNS

    per_turn = min(MAX_TURN_CHARS, MAX_HISTORY_CHARS // MAX_TURNS)
    body = {"question": "é" * MAX_QUESTION_CHARS, "top_k": 100, "backend": "extractive",
            "history": [{"role": "assistant", "content": "é" * per_turn}] * MAX_TURNS}
    raw = json.dumps(body).encode()
    assert len(raw) <= CAP
    assert post_raw(client, raw).status_code == 200


# -- security headers ----------------------------------------------------------------------------
REQUESTS = {
    "ui": ("GET", "/", None), "healthz": ("GET", "/healthz", None), "ask": ("POST", "/api/ask", {"question": "port?"}),
    "viewer": ("GET", "/notes/guide.md?lines=3-4", None), "script": ("GET", "/_na/app.js", None),
    "gradio_config": ("GET", "/config", None), "theme": ("GET", "/theme.css", None),
    "missing": ("GET", "/notes/nope.md", None), "rejected": ("POST", "/api/ask", {"question": 1}),
}


@pytest.mark.parametrize("name", list(REQUESTS))
def test_every_response_carries_the_security_headers(client, name):
    method, path, body = REQUESTS[name]
    response = client.request(method, path, json=body)
    assert response.status_code < 500
    headers = response.headers
    assert headers["x-frame-options"] == "SAMEORIGIN"
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["referrer-policy"] == "no-referrer"
    csp = headers["content-security-policy"]
    assert "frame-ancestors 'self'" in csp and "*" not in csp
    assert "'unsafe-inline'" not in csp.split("script-src")[1].split(";")[0]


def test_the_ui_page_allows_exactly_its_own_inline_scripts(client):
    import base64
    import hashlib
    import re

    response = client.get("/", headers={"accept-encoding": "gzip, br"})
    assert response.status_code == 200 and "content-encoding" not in response.headers
    scripts = re.findall(r"<script(?![^>]*\ssrc=)[^>]*>(.*?)</script>", response.text, re.DOTALL)
    assert len(scripts) >= 3  # Gradio's config, API info and loader
    script_src = response.headers["content-security-policy"].split("script-src ")[1].split(";")[0].split()
    allowed = sorted(s for s in script_src if s.startswith("'sha256-"))
    expected = sorted(f"'sha256-{base64.b64encode(hashlib.sha256(s.encode()).digest()).decode()}'" for s in scripts)
    assert allowed == expected and script_src[:2] == ["'self'", "'unsafe-eval'"]


def test_the_viewer_keeps_its_own_stricter_policy(client):
    csp = client.get("/notes/guide.md").headers["content-security-policy"]
    assert csp.startswith("default-src 'none'") and "'nonce-" in csp and "'unsafe-eval'" not in csp


# -- anything at all -----------------------------------------------------------------------------
TEXT = st.text(st.characters(codec=None, exclude_categories=()), max_size=40)  # lone surrogates included
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True, allow_infinity=True) | TEXT,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(TEXT, children, max_size=4),
    max_leaves=12,
)
TURN = st.fixed_dictionaries({"role": st.sampled_from(["user", "assistant", "system"]) | JSON_VALUES,
                              "content": TEXT | JSON_VALUES})
ASK_LIKE = st.fixed_dictionaries({}, optional={
    "question": TEXT | JSON_VALUES, "history": st.lists(TURN, max_size=3) | JSON_VALUES,
    "backend": st.sampled_from(["extractive", "openai", "gpt-9"]) | JSON_VALUES,
    "top_k": st.integers(-5, 200) | JSON_VALUES, "llm_base_url": TEXT,
})
BODIES = st.one_of(
    JSON_VALUES.map(lambda v: json.dumps(v).encode()),
    ASK_LIKE.map(lambda v: json.dumps(v).encode()),
    st.binary(max_size=200),
)


@hypothesis_settings(max_examples=150, deadline=None, database=None,
                     suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(body=BODIES)
def test_no_body_gives_a_5xx_or_a_long_error(client, body):
    response = post_raw(client, body)
    assert response.status_code < 500, (body, response.text)
    if response.status_code != 200:
        assert len(response.content) < SHORT, (body, response.text)
    assert len(response.content) < 64 * 1024


# -- the chat UI -----------------------------------------------------------------------------------
def ui_handler(client, name: str):
    """The Python function behind a Gradio event (what the queue calls with the browser's values)."""
    blocks = client.app.state.context.gradio_app.get_blocks()
    return next(f.fn for f in blocks.fns.values() if f.name == name)


def chat_inputs(client, question: str) -> list:
    """The respond handler's inputs: question, chat, turns, backend, endpoint name, model, top-k, search only."""
    return [question, [], [], "extractive", None, "", 4, False]


def test_a_lone_surrogate_in_the_chat_is_replaced_with_a_clear_warning(client):
    respond = ui_handler(client, "respond")
    with pytest.warns(UserWarning, match=r"1 invalid character \(unpaired UTF-16 surrogates\)"):
        *_, (_, chat, turns, _) = respond(*chat_inputs(client, "Which port does the zephyr \ud800 daemon use?"))
    assert "Could not answer" not in chat[-1]["content"] and "4417" in chat[-1]["content"]
    assert turns[-1]["question"] == "Which port does the zephyr \ufffd daemon use?"


# -- LLM endpoints: the owner names them, the UI picks a name ----------------------------------------
def test_the_chat_sends_llm_requests_only_to_configured_endpoints(corpus):
    from fastapi.testclient import TestClient

    from app import build_app
    from tests.fake_llm_server import FakeLLMServer, Reply

    settings, assistant = corpus
    question = "Which port does the zephyr daemon listen on?"
    with FakeLLMServer() as llm, FakeLLMServer() as elsewhere:
        configured = settings.with_overrides(llm_endpoints=f"fake={llm.openai_url}", llm_model="fake")
        with TestClient(build_app(configured, assistant), base_url="http://127.0.0.1:7860") as client:
            respond = ui_handler(client, "respond")
            llm.script(Reply(text="The zephyr daemon listens on port 4417 [1]."))
            *_, (_, chat, turns, _) = respond(question, [], [], "openai", "fake", "fake", 4, False)
            assert turns[-1]["backend"] == "openai" and len(llm.requests) == 1
            assert "4417" in chat[-1]["content"]

            # A client sending a URL where the name goes (the old free-text field) gets a message; nothing is sent.
            *_, (_, chat, _, _) = respond(question, [], [], "openai", elsewhere.openai_url, "fake", 4, False)
            assert "choose one of the configured LLM endpoints: fake" in chat[-1]["content"]
            *_, (_, chat, _, _) = respond(question, [], [], "openai", "fake", "../x?y=1 z", 4, False)
            assert "a model name is" in chat[-1]["content"]
            assert elsewhere.requests == [] and len(llm.requests) == 1

            config = client.get("/config").text  # what the browser is told: names, never URLs
            assert '"fake"' in config and llm.openai_url not in config and "LLM endpoint URL" not in config


@pytest.mark.parametrize("spec, expected", [
    ("", {}),
    ("a=http://127.0.0.1:8080/v1", {"a": "http://127.0.0.1:8080/v1"}),
    (" a = http://x:1 , b=https://y/v1 ,", {"a": "http://x:1", "b": "https://y/v1"}),
])
def test_llm_endpoints_setting(spec, expected):
    from assistant.settings import load_settings

    assert load_settings({"NOTES_ASSISTANT_LLM_ENDPOINTS": spec} if spec else {}).llm_endpoint_urls == expected


@pytest.mark.parametrize("spec", ["a", "a=", "=http://x", "a=ftp://x", "a=http://x,a=http://y", "a b=http://x"])
def test_bad_llm_endpoints_are_a_settings_error(spec):
    from assistant.settings import SettingsError, load_settings

    with pytest.raises(SettingsError, match="NOTES_ASSISTANT_LLM_ENDPOINTS"):
        load_settings({"NOTES_ASSISTANT_LLM_ENDPOINTS": spec})


# -- the Evals tab -----------------------------------------------------------------------------------
def test_the_evals_tab_offers_only_the_configured_datasets(corpus, tmp_path):
    import gradio as gr
    from fastapi.testclient import TestClient

    from app import build_app

    record = {"id": "z-1", "question": "Which port does the zephyr daemon listen on?", "answerable": True,
              "source": "guide.md", "gold_lines": [5, 5], "gold_heading": "Zephyr guide > Setup",
              "key_facts": [["4417"]], "kind": "paraphrase"}
    folder = tmp_path / "datasets"
    folder.mkdir()
    (folder / "mini.jsonl").write_text(json.dumps(record) + "\n", encoding="utf-8")
    (tmp_path / "outside.jsonl").write_text(json.dumps(record) + "\n", encoding="utf-8")
    with TestClient(build_app(*corpus, eval_datasets=folder), base_url="http://127.0.0.1:7860") as client:
        config = client.get("/config").text
        assert "mini.jsonl" in config and "golden.jsonl" not in config and "path of a .jsonl" not in config
        run = ui_handler(client, "run")
        refusals = set()
        for probe in [str(tmp_path / "outside.jsonl"), str(tmp_path / "missing.jsonl"), "../outside.jsonl",
                      "golden.jsonl", None, ["mini.jsonl"]]:
            with pytest.raises(gr.Error) as info:
                run(probe, False, "extractive")
            refusals.add(str(info.value))
        assert len(refusals) == 1 and "mini.jsonl" in refusals.pop()  # one answer: no oracle for files on disk
        report, _, worst = run("mini.jsonl", False, "extractive")
        assert "Summary" in report and "z-1" in worst
