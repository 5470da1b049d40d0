"""End to end in real headless Chromium: ask, follow a citation, survive hostile notes, re-index, evals, login.

The app runs under uvicorn on a free 127.0.0.1 port with a tmp copy of part of
the bundled notes plus notes written here, one configured LLM endpoint (a fake
server) and one eval dataset folder. Chromium is the Debian package at
/usr/bin/chromium, driven by Python playwright (never ``playwright install``).
Every console message of every step is kept: the last test checks that the
Content-Security-Policy blocked nothing the UI needs. Screenshots of each step go
to the pytest tmp dir; with NA_UPDATE_SCREENSHOT=1 the main one is also copied
to docs/screenshot.png.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import threading
import time
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest

pytestmark = pytest.mark.browser

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
WAIT_MS = 180_000  # a slow 2-core machine answering while it also runs other tests
# Reported by the page itself (securitypolicyviolation events), in every frame, as console errors we can find.
CSP_WATCH = ("document.addEventListener('securitypolicyviolation', e => console.error("
             "'csp-violation', e.violatedDirective, e.blockedURI, e.sourceFile + ':' + e.lineNumber));")

HOSTILE = """# Quokka facts

## Payload

The quokka payload sentence: <script>window.__xss=1</script> and <img src=x onerror="window.__xss=1"> sit here.
"""

ZEPHYR = """# Zephyr station

## Readings

Zephyr readings are uploaded every ten minutes.
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def mini_dataset() -> list[dict]:
    """Four answerable golden questions inside the first 400 lines of the bundled notes, one unanswerable."""
    golden = [json.loads(line) for line in (REPO / "evals" / "datasets" / "golden.jsonl").read_text().splitlines()
              if line.strip()]
    picked = [r for r in golden if r.get("answerable") and r.get("gold_lines") and r["gold_lines"][1] <= 400][:4]
    return picked + [r for r in golden if not r.get("answerable")][:1]


def serve(app, port: int):
    """Run ``app`` under uvicorn on 127.0.0.1:``port`` in a thread; returns the server (set ``should_exit``)."""
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert server.started, "uvicorn did not start"
    server.thread = thread
    return server


@pytest.fixture(scope="module")
def llm_server():
    """The fake OpenAI-compatible server, configured as the app's one LLM endpoint ("fake")."""
    from tests.fake_llm_server import FakeLLMServer

    with FakeLLMServer() as server:
        yield server


@pytest.fixture(scope="module")
def live_app(tmp_path_factory, embedding_cache, embedder, llm_server):
    """The app on a free loopback port: (base url, notes folder)."""
    from app import build_app
    from assistant.engine import Engine
    from assistant.service import Assistant
    from assistant.settings import load_settings

    root = tmp_path_factory.mktemp("e2e")
    notes = root / "notes"
    notes.mkdir()
    bundled = (REPO / "notes" / "aws-notes.md").read_text(encoding="utf-8").split("\n")
    (notes / "aws-notes.md").write_text("\n".join(bundled[:400]) + "\n", encoding="utf-8")  # Lambda sections
    (notes / "quokka.md").write_text(HOSTILE, encoding="utf-8")
    (notes / "zephyr.md").write_text(ZEPHYR, encoding="utf-8")
    datasets = root / "datasets"
    datasets.mkdir()
    (datasets / "mini.jsonl").write_text("\n".join(json.dumps(r) for r in mini_dataset()) + "\n", encoding="utf-8")
    port = _free_port()
    settings = load_settings({}, notes_path=notes, data_dir=root / "index", embedding_cache_dir=embedding_cache,
                             port=port, llm_endpoints=f"fake={llm_server.openai_url}", llm_model="fake-model")
    engine = Engine(settings, embedder=embedder)
    engine.index()
    server = serve(build_app(settings, Assistant(engine, settings), eval_datasets=datasets), port)
    yield f"http://127.0.0.1:{port}", notes
    server.should_exit = True
    server.thread.join(15)


@pytest.fixture(scope="module")
def browser_page(live_app):
    """One Chromium page for the module (its ``requests`` collect every URL loaded by every test)."""
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    base, _ = live_app
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1440, "height": 900}, accept_downloads=True)
        page = context.new_page()
        page.set_default_timeout(WAIT_MS)
        page.requests = []  # every URL the page and its frames load
        page.on("request", lambda request: page.requests.append(request.url))
        page.console = []  # every console message of the page and its frames: (type, text)
        page.on("console", lambda message: page.console.append((message.type, message.text)))
        context.add_init_script(CSP_WATCH)
        yield page
        context.close()
        browser.close()


@pytest.fixture
def page(browser_page, live_app):
    """The page, freshly loaded: each test starts from an empty chat and default settings, whatever ran before."""
    base, _ = live_app
    browser_page.goto(base + "/")
    browser_page.wait_for_selector("#na-question textarea")
    browser_page.wait_for_function("() => document.querySelectorAll('#na-chat .na-answer').length === 0")
    return browser_page


def clear(page) -> None:
    """Press Clear and wait until the chat is empty (the click returns before the DOM changes)."""
    page.click("#na-clear")
    page.wait_for_function("() => document.querySelectorAll('#na-chat .na-answer').length === 0")


@pytest.fixture(scope="module")
def shots(tmp_path_factory):
    return tmp_path_factory.mktemp("screenshots")


def ask(page, question: str) -> None:
    """Type a question, press Ask, wait until the streamed answer is final (its footer appears)."""
    done = page.locator("#na-chat .na-foot, #na-chat .na-search, #na-chat .na-error")
    before = done.count()
    page.fill("#na-question textarea", question)
    page.click("#na-send")
    page.wait_for_function(
        "n => document.querySelectorAll('#na-chat .na-foot, #na-chat .na-search, #na-chat .na-error').length > n",
        arg=before, timeout=WAIT_MS)


def last_answer(page):
    return page.locator("#na-chat .na-answer").last


def test_ask_then_follow_a_citation_into_the_viewer(page, shots):
    page.screenshot(path=str(shots / "01-first-load.png"))
    examples = page.locator("#na-chat").get_by_text("What do my notes say about")
    assert examples.count() >= 1  # example questions on first load

    ask(page, "A function triggered by S3 uploads keeps re-triggering itself. How do I stop it immediately?")
    answer = last_answer(page)
    assert "reserved concurrency" in answer.inner_text().lower()
    cite = answer.locator("a.na-cite").first
    href = cite.get_attribute("href")
    assert href.startswith("/notes/aws-notes.md?lines=")
    start, end = map(int, parse_qs(urlparse(href).query)["lines"][0].split("-"))
    page_scroll = page.evaluate("window.scrollY")
    cite.click()
    frame = page.frame_locator("#na-viewer iframe.na-frame")
    frame.locator(".ln.hl").first.wait_for()
    highlighted = frame.locator(".ln.hl")
    assert highlighted.count() == end - start + 1
    assert highlighted.first.get_attribute("id") == f"L{start}"
    assert "AWS Lambda" in frame.locator("nav.crumbs").inner_text()
    viewer = next(f for f in page.frames if "/notes/aws-notes.md" in f.url)
    in_view = "id => { const r = document.getElementById(id).getBoundingClientRect(); return r.top > 0 && r.top < innerHeight; }"  # noqa: E501
    assert viewer.evaluate(in_view, f"L{start}")  # the panel scrolled to the cited lines…
    assert page.evaluate("window.scrollY") == page_scroll  # …and the chat page did not move
    assert page.locator("#na-viewer a.na-open").get_attribute("href") == href
    assert len(page.context.pages) == 1  # the viewer opened in the side panel, the chat stayed
    page.screenshot(path=str(shots / "02-answer-and-viewer.png"))
    if os.environ.get("NA_UPDATE_SCREENSHOT") == "1":
        shutil.copy(shots / "02-answer-and-viewer.png", REPO / "docs" / "screenshot.png")

    answer.locator("details.na-sources summary").click()  # the collapsible sources: path, location, quote
    source = answer.locator("details.na-sources li").first
    assert "AWS Lambda" in source.inner_text() and "aws-notes.md:" in source.inner_text()
    assert source.locator("a.na-src").get_attribute("href").startswith("/notes/aws-notes.md?lines=")

    with page.expect_download() as download:
        page.click("#na-export")
    exported = Path(download.value.path()).read_text(encoding="utf-8")
    assert exported.startswith("# Conversation with my notes")
    assert "re-triggering itself" in exported and "aws-notes.md:" in exported


def test_hostile_note_is_shown_as_text_and_never_runs(page, shots, live_app):
    ask(page, "What is the quokka payload sentence?")
    answer = last_answer(page)
    text = answer.inner_text()
    assert "<script>window.__xss=1</script>" in text  # the payload reached the page, as text
    assert answer.locator("a.na-cite").first.get_attribute("href").startswith("/notes/quokka.md")
    assert answer.locator("script, img, iframe").count() == 0
    assert page.evaluate("typeof window.__xss") == "undefined"

    answer.locator("a.na-cite").first.click()
    frame = page.frame_locator("#na-viewer iframe.na-frame")
    frame.locator(".ln.hl").first.wait_for()
    assert "<script>window.__xss=1</script>" in frame.locator(".ln.hl").first.inner_text()
    viewer = next(f for f in page.frames if "/notes/quokka.md" in f.url)
    assert viewer.evaluate("typeof window.__xss") == "undefined"
    assert page.evaluate("typeof window.__xss") == "undefined"
    page.screenshot(path=str(shots / "03-hostile-note.png"))


def test_search_only_mode_lists_ranked_sections(page, shots):
    page.check("#na-search-only input")  # in the answer settings above the chat, open from the start
    try:
        ask(page, "zephyr readings upload interval")
        results = last_answer(page)
        assert results.locator("li").count() >= 1
        first = results.locator("a.na-src").first
        assert first.get_attribute("href").startswith("/notes/zephyr.md?lines=")
        assert "Zephyr station › Readings" in first.inner_text()
        page.screenshot(path=str(shots / "04-search-only.png"))
    finally:
        page.uncheck("#na-search-only input")


def test_llm_backend_answers_and_falls_back_offline_when_the_stream_breaks(page, shots, llm_server):
    """Settings → openai at the configured endpoint, a fake OpenAI-compatible server (real HTTP + SSE on 127.0.0.1)."""
    from tests.fake_llm_server import Reply

    question = "A function triggered by S3 uploads keeps re-triggering itself. How do I stop it immediately?"
    llm = llm_server  # lives for the module: it is the app's configured endpoint "fake"
    clear(page)  # no history: the answer is the only request the fake server sees
    assert not page.locator("#na-endpoint").is_visible()  # the LLM's endpoint and model: only for an LLM
    page.get_by_label("openai", exact=True).check()
    page.locator("#na-endpoint").wait_for()
    assert page.get_by_label("LLM endpoint URL").count() == 0  # no free-text URL any more: a name, chosen
    assert page.locator("#na-endpoint input").input_value() == "fake"
    page.get_by_label("LLM model").fill("fake-model")
    try:
        llm.script(Reply(text="Set the reserved concurrency of the function to 0 to stop the loop [1]."))
        ask(page, question)
        answer = last_answer(page)
        assert "reserved concurrency of the function to 0" in answer.inner_text()
        assert answer.locator("a.na-cite").first.get_attribute("href").startswith("/notes/aws-notes.md")
        assert answer.locator(".na-foot").inner_text().startswith("openai")
        assert llm.requests and llm.requests[-1].body["model"] == "fake-model"

        # The stream dies half-way: the partial text is dropped (RESET) and the offline answer shown.
        clear(page)
        llm.script(Reply(text="Partial words that must vanish. " * 8, drop=True))
        ask(page, question)
        answer = last_answer(page)
        assert "must vanish" not in answer.inner_text()
        assert "openai backend unavailable" in answer.locator(".na-warn").inner_text()
        assert answer.locator(".na-foot").inner_text().startswith("extractive")
        assert "reserved concurrency" in answer.inner_text().lower()
        page.screenshot(path=str(shots / "05-llm-fallback.png"))
    finally:
        page.get_by_label("extractive", exact=True).check()


def test_edit_note_reindex_from_the_ui_and_ask_again(page, shots, live_app):
    _, notes = live_app
    (notes / "zephyr.md").write_text(
        ZEPHYR + "\n## Retention\n\nZephyr readings are kept for 90 days in the cold vault.\n", encoding="utf-8")
    page.get_by_role("tab", name="Index").click()
    page.click("text=Refresh status")
    page.wait_for_function("() => document.querySelector('#na-index-status').innerText.includes('stale')")
    page.click("#na-reindex")
    page.wait_for_function("() => document.querySelector('#na-index-report').innerText.includes('Re-indexed')")
    report = page.locator("#na-index-report").inner_text()
    assert "zephyr.md" in report and "deleted 0" in report
    added = int(report.split("added ")[1].split(",")[0])
    updated = int(report.split("updated ")[1].split(",")[0])
    assert added + updated >= 1
    assert "up to date" in page.locator("#na-index-status").inner_text()
    page.screenshot(path=str(shots / "06-reindexed.png"))

    page.get_by_role("tab", name="Chat").click()
    ask(page, "How long are zephyr readings kept in the cold vault?")
    answer = last_answer(page)
    assert "90 days" in answer.inner_text()
    assert answer.locator("a.na-cite").first.get_attribute("href").startswith("/notes/zephyr.md")
    page.screenshot(path=str(shots / "07-new-content.png"))


def test_calibrate_from_the_index_tab_stores_and_shows_the_calibration(page, shots, live_app):
    """The Index tab's Calibrate runs what ``notes-assistant tune`` runs; the status then says so."""
    _, notes = live_app
    stored = notes.parent / "index" / "calibration.json"
    page.get_by_role("tab", name="Index").click()
    assert "run notes-assistant tune" in page.locator("#na-index-status").inner_text()
    try:
        page.click("#na-calibrate")
        page.wait_for_function("() => document.querySelector('#na-index-report').innerText.includes('Calibrated')")
        report = page.locator("#na-index-report").inner_text()
        assert "unanswerable questions made from your notes" in report and "abstention_recall" in report
        assert "tuned on your notes" in page.locator("#na-index-status").inner_text()
        assert json.loads(stored.read_text())["format"] == 2
        page.screenshot(path=str(shots / "08-calibrated.png"))
    finally:
        stored.unlink(missing_ok=True)  # the other tests of this module answer with the defaults


def test_the_page_loaded_nothing_from_outside(page, live_app):
    base, _ = live_app
    outside = [url for url in page.requests if not url.startswith((base, "about:", "data:", "blob:"))]
    assert page.requests and outside == []


def test_evals_tab_runs_a_dataset_and_shows_report_charts_and_worst(page, shots):
    picked = mini_dataset()
    page.get_by_role("tab", name="Evals").click()
    assert page.locator("#na-eval-dataset input").input_value() == "mini.jsonl"  # the configured folder's only one
    assert page.get_by_placeholder("/path/to/questions.jsonl").count() == 0  # no free path to probe the disk with
    page.click("#na-run-eval")
    page.wait_for_function("() => document.querySelector('#na-eval-report').innerText.includes('Summary')")
    report = page.locator("#na-eval-report").inner_text()
    assert "Eval report" in report and "mini.jsonl" in report and f"{len(picked)} questions" in report
    page.wait_for_function("() => [...document.querySelectorAll('#na-eval-charts img')].some(i => i.naturalWidth > 0)")
    page.locator("#na-eval-worst summary").click()
    assert page.locator("#na-eval-worst tbody tr").count() == len(picked)  # fewer than 10: all are listed
    worst = page.locator("#na-eval-worst").inner_text()
    assert all(record["id"] in worst for record in picked)
    page.screenshot(path=str(shots / "08-evals.png"), full_page=True)


def test_the_content_security_policy_blocked_nothing(page):
    """Load, chat, citation clicks into the viewer, LLM streaming, search, index and eval tabs all ran above."""
    violations = [text for kind, text in page.console if "csp-violation" in text or "Content Security Policy" in text]
    assert page.console is not None and violations == []
    assert not [text for kind, text in page.console if "Error evaluating template" in text]


def test_with_auth_on_the_login_page_leads_into_the_app(browser_page, tmp_path, embedding_cache, embedder, shots):
    """Auth on: our login page (wrong password, then the right one), then the app works behind the gate."""
    from app import build_app
    from assistant.engine import Engine
    from assistant.service import Assistant
    from assistant.settings import load_settings

    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "zephyr.md").write_text(ZEPHYR, encoding="utf-8")
    port = _free_port()
    settings = load_settings({}, notes_path=notes, data_dir=tmp_path / "index", embedding_cache_dir=embedding_cache,
                             port=port, auth="ada:s3cret")
    engine = Engine(settings, embedder=embedder)
    engine.index()
    server = serve(build_app(settings, Assistant(engine, settings)), port)
    context = browser_page.context.browser.new_context(viewport={"width": 1440, "height": 900})  # no cookies yet
    try:
        context.add_init_script(CSP_WATCH)
        page = context.new_page()
        page.set_default_timeout(WAIT_MS)
        console = []
        page.on("console", lambda message: console.append(message.text))
        page.goto(f"http://127.0.0.1:{port}/")
        page.fill("input[name=username]", "ada")
        page.fill("input[name=password]", "wrong")
        page.click("button[type=submit]")
        page.wait_for_function("() => document.querySelector('#na-login-message').innerText.includes('Wrong')")
        page.screenshot(path=str(shots / "09-login-refused.png"))
        page.fill("input[name=password]", "s3cret")
        page.click("button[type=submit]")
        page.wait_for_selector("#na-question textarea")
        ask(page, "How often are zephyr readings uploaded?")
        assert "ten minutes" in last_answer(page).inner_text()
        page.screenshot(path=str(shots / "10-logged-in.png"))
    finally:
        context.close()
        server.should_exit = True
        server.thread.join(15)
    assert [text for text in console if "csp-violation" in text or "Content Security Policy" in text] == []
