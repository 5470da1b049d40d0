"""Auth on (``NOTES_ASSISTANT_AUTH=user:password``): every route behind it, and backoff for wrong passwords.

The throttle's clock is injected, so "a minute later" costs no waiting. Every
request goes through the real app (FastAPI + mounted Gradio) with ``TestClient``.
"""

from __future__ import annotations

import base64

import pytest

NOTE = "# Zephyr guide\n\n## Zephyr daemon setup\n\n- The zephyr daemon listens on port 4417 by default.\n"
SECRET_WORD = "zephyr"  # in the notes, in example questions and config; never in an anonymous reply

# Every kind of route the app serves, ours and Gradio 6's (pages, config, API, schema, files, assets, queue).
GETS = [
    "/openapi.json", "/config", "/config/", "/gradio_api/info", "/gradio_api/openapi.json", "/gradio_api/app_id",
    "/gradio_api/user", "/gradio_api/token", "/gradio_api/login_check", "/gradio_api/startup-events",
    "/gradio_api/deep_link", "/gradio_api/heartbeat/abc", "/gradio_api/queue/data?session_hash=abc",
    "/gradio_api/upload_progress?upload_id=abc", "/gradio_api/file=/etc/passwd", "/gradio_api/file/x",
    "/gradio_api/call/respond/abc", "/gradio_api/runs", "/gradio_api/vibe-code", "/theme.css", "/assets/index.js",
    "/static/img/logo.svg", "/svelte/x.js", "/monitoring", "/monitoring/summary", "/logout", "/docs", "/pwa_icon",
    "/healthz", "/notes/guide.md?lines=5-5", "/_na/app.js", "/anything/else",
]
POSTS = [
    "/api/ask", "/gradio_api/queue/join", "/gradio_api/upload", "/gradio_api/reset", "/gradio_api/cancel",
    "/gradio_api/run/respond", "/gradio_api/call/respond", "/gradio_api/api/respond", "/gradio_api/stream/abc",
    "/gradio_api/vibe-edit", "/gradio_api/process_recording",
]


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, embedding_cache, embedder):
    from assistant.engine import Engine
    from assistant.service import Assistant
    from assistant.settings import load_settings

    root = tmp_path_factory.mktemp("auth")
    (root / "notes").mkdir()
    (root / "notes" / "guide.md").write_text(NOTE, encoding="utf-8")
    settings = load_settings({}, notes_path=root / "notes", data_dir=root / "index",
                             embedding_cache_dir=embedding_cache, auth="ada:s3cret")
    engine = Engine(settings, embedder=embedder)
    engine.index()
    return settings, Assistant(engine, settings)


@pytest.fixture
def locked(corpus):
    """(app, client, clock): a fresh app with auth on and a hand-moved throttle clock."""
    from fastapi.testclient import TestClient

    from app import build_app
    from assistant.web.access import LoginThrottle

    clock = Clock()
    app = build_app(*corpus, login_throttle=LoginThrottle(clock=clock))
    with TestClient(app, base_url="http://127.0.0.1:7860", raise_server_exceptions=False) as client:
        yield app, client, clock


def basic(password: str) -> dict:
    return {"Authorization": "Basic " + base64.b64encode(f"ada:{password}".encode()).decode()}


@pytest.mark.parametrize("method, path", [("GET", p) for p in GETS] + [("POST", p) for p in POSTS])
def test_nothing_is_served_without_a_login(locked, method, path):
    _, client, _ = locked
    response = client.request(method, path, json={} if method == "POST" else None)
    assert response.status_code == 401, response.text[:200]
    assert len(response.content) < 200 and SECRET_WORD not in response.text.lower()


def test_the_anonymous_page_is_our_login_form_with_nothing_of_the_app(locked):
    _, client, _ = locked
    response = client.get("/")
    assert response.status_code == 200
    page = response.text
    assert '<form id="na-login"' in page and 'action="/login"' in page
    assert "gradio_config" not in page and "gradio_api_info" not in page and SECRET_WORD not in page.lower()
    csp = response.headers["content-security-policy"]
    assert csp.startswith("default-src 'none'") and "'nonce-" in csp and "'unsafe-eval'" not in csp
    assert response.headers["x-frame-options"] == "SAMEORIGIN"


@pytest.mark.parametrize("path", ["/favicon.ico", "/manifest.json", "/robots.txt"])
def test_static_files_browsers_fetch_without_cookies_stay_public(locked, path):
    _, client, _ = locked
    response = client.get(path)
    assert response.status_code == 200 and SECRET_WORD not in response.text.lower()


def test_a_login_opens_every_route(locked):
    _, client, _ = locked
    assert client.post("/login", data={"username": "ada", "password": "s3cret"}).status_code == 200
    assert "gradio_config" in client.get("/").text
    assert SECRET_WORD in client.get("/config").text.lower()
    assert client.get("/healthz").status_code == 200
    assert client.get("/notes/guide.md").status_code == 200
    assert client.post("/api/ask", json={"question": "Which port does the zephyr daemon use?"}).status_code == 200


def test_basic_credentials_open_our_routes(locked):
    _, client, _ = locked
    assert client.get("/healthz", headers=basic("s3cret")).status_code == 200
    assert client.post("/api/ask", json={"question": "zephyr port?"}, headers=basic("s3cret")).status_code == 200
    assert client.get("/healthz", headers=basic("nope")).status_code == 401
    # Gradio's own routes pass the gate with them but still want Gradio's session (its login_check).
    assert client.get("/config", headers=basic("s3cret")).status_code == 401


def test_wrong_logins_are_refused_after_ten_until_the_window_has_passed(locked):
    _, client, clock = locked
    statuses = []
    for attempt in range(20):  # all within the same second
        response = client.post("/login", data={"username": "ada", "password": f"guess{attempt}"})
        statuses.append(response.status_code)
    assert statuses == [400] * 10 + [429] * 10
    assert int(response.headers["retry-after"]) == 60 and "try again in 60 s" in response.text
    # Locked out means locked out: the right password is not even checked.
    assert client.post("/login", data={"username": "ada", "password": "s3cret"}).status_code == 429
    assert client.get("/healthz", headers=basic("s3cret")).status_code == 429

    clock.now += 61
    assert client.post("/login", data={"username": "ada", "password": "s3cret"}).status_code == 200
    assert client.get("/config").status_code == 200  # the session works at once


def test_wrong_basic_credentials_are_throttled_and_lockouts_double(locked):
    _, client, clock = locked
    statuses = [client.get("/healthz", headers=basic(f"guess{i}")).status_code for i in range(20)]
    assert statuses == [401] * 10 + [429] * 10
    clock.now += 61
    statuses = [client.get("/healthz", headers=basic(f"again{i}")).status_code for i in range(11)]
    assert statuses == [401] * 10 + [429]
    assert client.get("/healthz", headers=basic("s3cret")).headers["retry-after"] == "120"  # the second: twice as long
    clock.now += 121
    assert client.get("/healthz", headers=basic("s3cret")).status_code == 200


def test_one_clients_lockout_does_not_lock_out_another(locked):
    from fastapi.testclient import TestClient

    app, client, _ = locked
    for attempt in range(10):
        client.post("/login", data={"username": "ada", "password": f"guess{attempt}"})
    assert client.post("/login", data={"username": "ada", "password": "s3cret"}).status_code == 429
    other = TestClient(app, base_url="http://127.0.0.1:7860", client=("127.0.0.2", 50001))
    assert other.post("/login", data={"username": "ada", "password": "s3cret"}).status_code == 200


def test_a_big_login_body_is_refused_unread(locked):
    _, client, _ = locked
    response = client.post("/login", content=b"username=ada&password=" + b"x" * 100_000,
                           headers={"content-type": "application/x-www-form-urlencoded"})
    assert response.status_code == 413
