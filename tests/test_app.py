"""The web app's HTTP surface: note viewer, traversal refusals, /healthz, /api/ask, auth, sanitizing.

One small tmp corpus is indexed once for the module (real model, real Chroma);
the FastAPI app is driven with ``TestClient``. Paths that an HTTP client would
normalise (``../``) are sent straight to the ASGI app, exactly as uvicorn would
pass them on.
"""

from __future__ import annotations

import asyncio
import base64
import re
import threading
from pathlib import Path
from urllib.parse import unquote

import pytest

GUIDE = """# Zephyr guide

The zephyr toolkit manages little weather stations.

## Setup

- Install the zephyr toolkit with `zz install`.
- The zephyr daemon listens on port 4417 by default.
- Its config lives in `/etc/zephyr/zephyr.toml`.

## Usage

### Calibration

Calibrate the anemometer every spring by spinning it at a known speed.
"""

XSS = """# Hostile note

## Payloads

The quokka payload line: <script>window.__xss=1</script> and <img src=x onerror="window.__xss=1">.
A [quokka link](javascript:alert(1)) and <iframe src="https://example.org"></iframe>.
"""

SECRET = "TOP-SECRET-OUTSIDE-THE-NOTES-ROOT"


def _write_corpus(root: Path) -> Path:
    notes = root / "notes"
    (notes / "deep" / "er").mkdir(parents=True)
    (notes / "guide.md").write_text(GUIDE, encoding="utf-8")
    (notes / "xss.md").write_text(XSS, encoding="utf-8")
    (notes / "deep" / "er" / "space name.md").write_text("# Deep\n\n## Nested heading\n\nMarmots whistle.\n")
    (notes / ".hidden.md").write_text(f"# Hidden\n\n{SECRET}\n")  # on disk, but never indexed
    (root / "secret.md").write_text(f"# Secret\n\n{SECRET}\n")
    (notes / "escape.md").symlink_to(root / "secret.md")  # the reader skips it; the viewer must refuse it too
    return notes


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, embedding_cache, embedder):
    from assistant.engine import Engine
    from assistant.service import Assistant
    from assistant.settings import load_settings

    root = tmp_path_factory.mktemp("webapp")
    notes = _write_corpus(root)
    settings = load_settings({}, notes_path=notes, data_dir=root / "index", embedding_cache_dir=embedding_cache)
    engine = Engine(settings, embedder=embedder)
    engine.index()
    return settings, Assistant(engine, settings), root


@pytest.fixture(scope="module")
def client(corpus):
    from fastapi.testclient import TestClient

    from app import build_app

    settings, assistant, _ = corpus
    with TestClient(build_app(settings, assistant), base_url="http://127.0.0.1:7860") as test_client:
        yield test_client


def raw_get(app, raw_path: str) -> tuple[int, bytes]:
    """GET ``raw_path`` byte for byte (no client-side ``..`` normalisation), decoded as uvicorn does."""
    path, _, query = raw_path.partition("?")
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET", "scheme": "http",
        "path": unquote(path), "raw_path": path.encode("latin-1"), "root_path": "", "query_string": query.encode(),
        "headers": [(b"host", b"127.0.0.1:7860")], "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 7860),
    }
    sent: list[dict] = []

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    return status, b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")


# -- the note viewer ---------------------------------------------------------------


def test_viewer_numbers_every_line_highlights_the_range_and_shows_the_heading_path(client):
    response = client.get("/notes/guide.md", params={"lines": "7-8"})
    assert response.status_code == 200
    page = response.text
    line_count = len(GUIDE.rstrip("\n").split("\n"))
    assert re.findall(r'id="L(\d+)"', page) == [str(n) for n in range(1, line_count + 1)]
    highlighted = re.findall(r'<div class="ln hl[^"]*" id="L(\d+)"', page)
    assert highlighted == ["7", "8"]
    assert "The zephyr daemon listens on port 4417 by default." in page
    # The breadcrumb is the heading path of line 7: the note, then "Zephyr guide › Setup".
    crumbs = re.search(r'<nav class="crumbs"[^>]*>(.*?)</nav>', page).group(1)
    assert re.sub(r"<[^>]+>", "", crumbs) == "guide.md › Zephyr guide › Setup"
    assert 'getElementById("L7")' in page and 'getElementById("L8")' in page and "scrollTo(" in page


def test_viewer_breadcrumb_follows_nested_headings_and_percent_encoded_names(client):
    from assistant.answer import viewer_link

    response = client.get(viewer_link("deep/er/space name.md", 5, 5).split("#")[0])
    assert response.status_code == 200
    crumbs = re.search(r'<nav class="crumbs"[^>]*>(.*?)</nav>', response.text).group(1)
    assert re.sub(r"<[^>]+>", "", crumbs) == "deep/er/space name.md › Deep › Nested heading"


def test_viewer_escapes_note_html_and_locks_the_page_down(client):
    response = client.get("/notes/xss.md", params={"lines": "5-5"})
    assert response.status_code == 200
    page = response.text
    assert "&lt;script&gt;window.__xss=1&lt;/script&gt;" in page
    assert "<script>window" not in page and "<img" not in page and "<iframe" not in page
    csp = response.headers["content-security-policy"]
    nonce = re.search(r"'nonce-([^']+)'", csp).group(1)
    assert "default-src 'none'" in csp and "frame-ancestors 'self'" in csp
    # Every script on the page is ours (carries the nonce); nothing else could run under the CSP.
    scripts = re.findall(r"<script([^>]*)>", page)
    assert scripts and all(f'nonce="{nonce}"' in attrs for attrs in scripts)
    assert response.headers["x-content-type-options"] == "nosniff"


@pytest.mark.parametrize("lines", ["", "abc", "0-0", "-5", "3-", "99999-100000", "9-2"])
def test_viewer_tolerates_odd_line_ranges(client, lines):
    response = client.get("/notes/guide.md", params={"lines": lines})
    assert response.status_code == 200
    highlighted = re.findall(r'<div class="ln hl[^"]*" id="L(\d+)"', response.text)
    last = str(len(GUIDE.rstrip("\n").split("\n")))  # a range past the end is clamped to the last line
    expected = {"9-2": [str(n) for n in range(2, 10)], "99999-100000": [last], "3-": ["3"]}.get(lines, [])
    assert highlighted == expected


TRAVERSALS = [
    "/notes/../secret.md",  # plain dot-dot
    "/notes/%2e%2e/secret.md",  # encoded dots
    "/notes/%2E%2E%2Fsecret.md",  # encoded dots and slash
    "/notes/%252e%252e/secret.md",  # double encoding
    "/notes/..%5csecret.md",  # backslash
    "/notes//etc/passwd",  # absolute path
    "/notes/%2Fetc%2Fpasswd",  # encoded absolute path
    "/notes/guide.md%00.png",  # NUL byte
    "/notes/deep/../../secret.md",  # dot-dot after a real folder
    "/notes/./guide.md",  # a non-canonical spelling of an indexed source
    "/notes/escape.md",  # a symlink out of the notes root
    "/notes/.hidden.md",  # inside the root, not indexed
    "/notes/notes.md",  # does not exist
]


@pytest.mark.parametrize("raw_path", TRAVERSALS)
def test_viewer_refuses_everything_but_indexed_notes_inside_the_root(client, corpus, raw_path):
    status, body = raw_get(client.app, raw_path)
    assert status == 404
    assert SECRET.encode() not in body


def test_symlink_out_of_the_root_is_neither_indexed_nor_served(client, corpus):
    _, assistant, _ = corpus
    from assistant.web.viewer import resolve_note

    sources = {m["source"] for m in assistant.engine.retriever.snapshot.metadatas}
    assert "escape.md" not in sources  # the reader refuses symlinks out of the notes folder
    # Even if an older index held it, the viewer's own root check refuses to serve it.
    assert resolve_note(corpus[0].notes_path, "escape.md", sources | {"escape.md"}) is None
    assert resolve_note(corpus[0].notes_path, "guide.md", sources) == (corpus[0].notes_path / "guide.md").resolve()


# -- /healthz and /api/ask -------------------------------------------------------------


def test_healthz_reports_the_index(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    health = response.json()
    assert health["sources"] == 3 and health["chunks"] >= 3  # guide, xss, deep/er/space name (escape.md skipped)
    assert health["stale"] is False and health["indexed"] is True
    assert health["last_indexed"] and health["backend"] == "extractive"
    assert "MiniLM" in health["embedding_model"]


def test_api_ask_answers_with_cited_lines(client):
    response = client.post("/api/ask", json={"question": "Which port does the zephyr daemon listen on?"})
    assert response.status_code == 200
    body = response.json()
    assert set(body) >= {"question", "answer", "abstained", "backend", "condensed_query", "citations", "timings_ms"}
    assert body["abstained"] is False and body["backend"] == "extractive"
    assert "4417" in body["answer"]
    cited = [c for c in body["citations"] if "4417" in c["text"]]
    assert cited and cited[0]["source"] == "guide.md" and cited[0]["start_line"] <= 8 <= cited[0]["end_line"]
    assert cited[0]["heading_path"] == ["Zephyr guide", "Setup"]
    assert f"[{cited[0]['n']}]" in body["answer"]


def test_api_ask_uses_history_for_follow_ups(client):
    history = [{"role": "user", "content": "How do I calibrate the zephyr anemometer?"},
               {"role": "assistant", "content": "Spin it at a known speed every spring [1]."}]
    body = client.post("/api/ask", json={"question": "and how often?", "history": history}).json()
    assert body["condensed_query"] != body["question"]
    assert "anemometer" in body["condensed_query"].lower()


def test_api_ask_abstains_when_the_notes_do_not_cover_it(client):
    body = client.post("/api/ask", json={"question": "What is the recipe for sourdough bread?"}).json()
    assert body["abstained"] is True and body["citations"] == []


@pytest.mark.parametrize("payload", [
    {"question": "   "}, {}, {"question": "ok", "backend": "gpt-9"}, {"question": "ok", "top_k": 0},
    {"question": "ok", "history": [{"role": "system", "content": "x"}]},
])
def test_api_ask_rejects_bad_requests(client, payload):
    assert client.post("/api/ask", json=payload).status_code == 422


def test_api_ask_cuts_long_questions_with_a_notice(client, corpus):
    limit = corpus[0].max_question_chars
    body = client.post("/api/ask", json={"question": "zephyr port " * 400}).json()
    assert len(body["question"]) == limit
    assert any(str(limit) in notice for notice in body["notices"])


def test_queries_keep_working_while_an_index_run_holds_the_lock(client, corpus):
    settings, assistant, _ = corpus
    engine = assistant.engine
    guide = Path(settings.notes_path) / "guide.md"
    original = guide.read_text(encoding="utf-8")
    in_run, release = threading.Event(), threading.Event()

    def progress(done, total):  # called while the index run embeds: park it there
        in_run.set()
        release.wait(60)

    guide.write_text(original + "\n## Storage\n\nReadings are kept for 90 days in the zephyr vault.\n")
    runner = threading.Thread(target=lambda: engine.index(progress=progress))
    runner.start()
    try:
        assert in_run.wait(120), "the index run never reached its embedding phase"
        assert engine._index_lock.locked()
        response = client.post("/api/ask", json={"question": "Which port does the zephyr daemon listen on?"})
        assert response.status_code == 200 and "4417" in response.json()["answer"]
        assert client.get("/healthz").json()["stale"] is True  # the new text is not served yet
    finally:
        release.set()
        runner.join(120)
        guide.write_text(original, encoding="utf-8")
        engine.index()
    assert client.get("/healthz").json()["stale"] is False


# -- auth and exposure -------------------------------------------------------------------


@pytest.mark.parametrize("host", ["evil.example", "evil.example:7860", "127.0.0.1.nip.io"])
def test_loopback_server_answers_only_to_loopback_host_names(client, host):
    """DNS rebinding: a page on another site must not read the notes through a host name it controls."""
    for path in ("/notes/guide.md", "/healthz", "/"):
        assert client.get(path, headers={"host": host}).status_code == 400
    assert client.get("/notes/guide.md", headers={"host": "localhost:7860"}).status_code == 200
    assert client.get("/healthz", headers={"host": "[::1]:7860"}).status_code == 200


def test_non_loopback_host_without_auth_refuses_to_start(corpus, capsys):
    from app import main

    settings, _, root = corpus
    code = main(["--host", "0.0.0.0", "--port", "1", "--notes", str(settings.notes_path),
                 "--data-dir", str(root / "never-created")])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "refusing to listen on 0.0.0.0" in err[0] and "NOTES_ASSISTANT_AUTH" in err[0]
    assert not (root / "never-created").exists()  # refused before touching anything


@pytest.mark.parametrize("auth", ["nocolon", ":pw", "user:"])
def test_malformed_auth_refuses_to_start(corpus, capsys, monkeypatch, auth):
    from app import main

    monkeypatch.setenv("NOTES_ASSISTANT_AUTH", auth)
    settings, _, root = corpus
    assert main(["--port", "1", "--notes", str(settings.notes_path), "--data-dir", str(root / "x")]) == 2
    assert "user:password" in capsys.readouterr().err


def test_exposure_rules():
    from assistant.web.access import exposure_problem

    assert exposure_problem("127.0.0.1", "") is None
    assert exposure_problem("::1", "") is None
    assert exposure_problem("localhost", "") is None
    assert exposure_problem("0.0.0.0", "ada:pw") is None
    assert "refusing" in exposure_problem("0.0.0.0", "")
    assert "refusing" in exposure_problem("192.168.1.20", "")


def test_auth_protects_our_routes_too(corpus):
    from fastapi.testclient import TestClient

    from app import build_app

    settings, assistant, _ = corpus
    locked = settings.with_overrides(auth="ada:s3cret")
    with TestClient(build_app(locked, assistant), base_url="http://127.0.0.1:7860") as anonymous:
        assert anonymous.get("/healthz").status_code == 401
        assert anonymous.get("/notes/guide.md").status_code == 401
        assert anonymous.post("/api/ask", json={"question": "zephyr port?"}).status_code == 401
        wrong = {"Authorization": "Basic " + base64.b64encode(b"ada:nope").decode()}
        assert anonymous.get("/healthz", headers=wrong).status_code == 401
        right = {"Authorization": "Basic " + base64.b64encode(b"ada:s3cret").decode()}
        assert anonymous.get("/healthz", headers=right).status_code == 200
        # The Gradio login cookie (what the browser has after the login page) opens the viewer too.
        assert anonymous.post("/login", data={"username": "ada", "password": "s3cret"}).status_code == 200
        assert anonymous.get("/notes/guide.md").status_code == 200


# -- markdown → safe HTML ------------------------------------------------------------------

HOSTILE = [
    "<script>window.__xss=1</script>",
    '<img src=x onerror="window.__xss=1">',
    "[click me](javascript:alert(1))",
    '<a href="javascript:alert(1)">click</a>',
    '<iframe src="https://example.org"></iframe>',
    "<style>body{display:none}</style>",
    '<svg onload="alert(1)"></svg>',
    '<b onclick="alert(1)">bold</b>',
    "[data](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)",
    "![pixel](https://tracker.example/p.png)",
    '<div class="na-warn">fake notice</div>',
]


@pytest.mark.parametrize("markdown", HOSTILE)
def test_rendered_markdown_has_no_live_code(markdown):
    from assistant.web.render import render_markdown
    from assistant.web.sanitize import sanitize_html

    rendered = [render_markdown(markdown), render_markdown(f"- item\n\n  {markdown}")]
    for html in [*rendered, sanitize_html(markdown)]:
        tags = re.findall(r"<[^>]*>", html.lower())  # the text may mention anything; tags may not
        names = {re.match(r"</?([a-z0-9]+)", tag).group(1) for tag in tags}
        assert not names & {"script", "iframe", "style", "svg", "img", "object", "embed"}, html
        assert not [tag for tag in tags if re.search(r"\son\w+\s*=|javascript:|data:", tag)], html
    # Raw HTML in markdown stays text, so a note cannot dress up as one of our notices.
    assert not [tag for html in rendered for tag in re.findall(r"<[^>]*>", html) if "na-warn" in tag]


def test_citation_markers_link_to_the_viewer_and_unknown_ones_stay_text():
    from assistant.answer import Citation
    from assistant.web.render import render_markdown

    cite = Citation(1, "deep/er/space name.md", ("Deep", "Nested heading"), 5, 5, "Marmots whistle.")
    html = render_markdown("Marmots whistle [1]; see also [2]. `[1]` in code stays.", [cite])
    links = re.findall(r'<a href="([^"]+)" class="na-cite"[^>]*>\[1\]</a>', html)
    assert links == ["/notes/deep/er/space%20name.md?lines=5-5#L5"]
    assert "[2]" in html and "<code>[1]</code>" in html


def test_answer_html_shows_notices_condensed_query_and_sources_escaped():
    from assistant.answer import Answer, Citation
    from assistant.web.render import answer_html

    answer = Answer(
        question="and <b>how</b>?", answer="Spin it [1].", abstained=False, backend="extractive",
        citations=[Citation(1, "guide.md", ("Zephyr guide", "Usage", "Calibration"), 15, 15, "Calibrate <script>")],
        condensed_query="and how? (calibrate <img src=x onerror=alert(1)>)",
        notices=["openai backend unavailable (<script>x</script>); showing the offline extractive answer instead."],
    )
    html = answer_html(answer)
    assert '<div class="na-warn">openai backend unavailable (&lt;script&gt;x&lt;/script&gt;)' in html
    assert "Searched for: <em>and how? (calibrate &lt;img" in html
    assert '<details class="na-sources"><summary>Sources (1)</summary>' in html
    assert "Zephyr guide › Usage › Calibration" in html and "guide.md:15-15" in html
    assert "<script" not in html and "<img" not in html


def test_abstained_answers_say_so():
    from assistant.answer import NOT_COVERED, Answer
    from assistant.web.render import answer_html

    html = answer_html(Answer("q", NOT_COVERED, [], True, "extractive", "q"))
    assert 'class="na-note"' in html and "Not found in your notes" in html


def test_conversation_export_is_markdown_with_sources():
    from datetime import datetime, timezone

    from assistant.web.chat_state import chat_history, conversation_markdown

    turns = [
        {"kind": "answer", "question": "Which port?", "answer": "Port 4417 [1].", "condensed_query": "Which port?",
         "citations": [{"n": 1, "source": "guide.md", "heading_path": ["Zephyr guide", "Setup"],
                        "start_line": 8, "end_line": 8}]},
        {"kind": "search", "question": "calibration", "results": [
            {"rank": 1, "source": "guide.md", "heading_path": ["Zephyr guide", "Usage"], "start_line": 11,
             "end_line": 15}]},
    ]
    text = conversation_markdown(turns, now=datetime(2026, 1, 2, 3, 4, tzinfo=timezone.utc))
    assert text.startswith("# Conversation with my notes\n\n_Exported 2026-01-02 03:04 UTC._")
    assert "## Which port?\n\nPort 4417 [1].\n\n**Sources**\n\n- [1] Zephyr guide › Setup (`guide.md:8-8`)" in text
    assert "## calibration\n\n1. Zephyr guide › Usage (`guide.md:11-15`)" in text
    assert chat_history(turns) == [{"role": "user", "content": "Which port?"},
                                   {"role": "assistant", "content": "Port 4417 [1]."}]
