"""The UI on a laptop (1440×900) and a phone (390×844), in real headless Chromium.

What a new user saw (issue 12): the phone page opening scrolled past its header, the
viewer's line label cut off, a refusal said twice, two progress overlays during an
eval, blank charts until scrolled to, the answer settings below the fold under the
same name as Gradio's own "Settings", and extractive answers landing in one step
while LLM answers stream. Each test here reproduces one of them.

The app runs under uvicorn on a free 127.0.0.1 port (helpers from
``tests/test_e2e_browser.py``), with part of the bundled notes and a long log note
whose only fact sits on line 6351. Every page is freshly loaded. Screenshots go to
the pytest tmp dir and are listed at the end of the module's output.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.test_e2e_browser import (
    CHROMIUM, CHROMIUM_ARGS, CSP_WATCH, REPO, WAIT_MS, ZEPHYR, _free_port, ask, last_answer, mini_dataset, serve,
)

pytestmark = pytest.mark.browser

LAPTOP = {"width": 1440, "height": 900}
PHONE = {"width": 390, "height": 844}
SIZES = {"1440x900": LAPTOP, "390x844": PHONE}

LOG_LINES = 8745
FACT_LINE = 6351  # a four-digit line of a long note: the longest viewer label ("lines 6351–6351 of 8745")


def logbook() -> str:
    """A long note: a title, one dated fact on line 6351 under two headings, blank lines around it (cheap to index)."""
    lines = [""] * LOG_LINES
    lines[0] = "# Station logbook"
    lines[FACT_LINE - 5] = "## Instrumentation"  # a long word: the breadcrumb cannot get narrower than it
    lines[FACT_LINE - 3] = "### Anemometer"
    lines[FACT_LINE - 1] = "The anemometer at pier nine was recalibrated on the fourth of May."
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def ui_app(tmp_path_factory, embedding_cache, embedder):
    """The app on a free loopback port, serving a part of the bundled notes, zephyr.md and logbook.md."""
    from app import build_app
    from assistant.engine import Engine
    from assistant.service import Assistant
    from assistant.settings import load_settings

    root = tmp_path_factory.mktemp("ui")
    notes = root / "notes"
    notes.mkdir()
    bundled = (REPO / "notes" / "aws-notes.md").read_text(encoding="utf-8").split("\n")
    (notes / "aws-notes.md").write_text("\n".join(bundled[:400]) + "\n", encoding="utf-8")
    (notes / "zephyr.md").write_text(ZEPHYR, encoding="utf-8")
    (notes / "logbook.md").write_text(logbook(), encoding="utf-8")
    datasets = root / "datasets"
    datasets.mkdir()
    (datasets / "mini.jsonl").write_text("\n".join(json.dumps(r) for r in mini_dataset()) + "\n", encoding="utf-8")
    port = _free_port()
    settings = load_settings({}, notes_path=notes, data_dir=root / "index", embedding_cache_dir=embedding_cache,
                             port=port)
    engine = Engine(settings, embedder=embedder)
    engine.index()
    server = serve(build_app(settings, Assistant(engine, settings), eval_datasets=datasets), port)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    server.thread.join(15)


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def console():
    """Every console message of every page of this module: (type, text)."""
    return []


@pytest.fixture(scope="module")
def shots(tmp_path_factory, request):
    """The screenshot folder; every file saved in it is listed in the test output when the module ends."""
    folder = tmp_path_factory.mktemp("ui-screenshots")
    yield folder
    reporter = request.config.pluginmanager.getplugin("terminalreporter")
    capture = request.config.pluginmanager.getplugin("capturemanager")
    if reporter is not None and capture is not None:
        saved = sorted(folder.glob("*.png"))
        with capture.global_and_fixture_disabled():  # shown whether the tests passed or not
            reporter.write_line("")
            reporter.write_line(f"UI screenshots ({len(saved)}) in {folder}:")
            for path in saved:
                reporter.write_line(f"  {path}")


def open_page(browser, base: str, viewport: dict, console: list):
    """A fresh context at ``viewport`` with the app loaded and its chat ready."""
    context = browser.new_context(viewport=viewport)
    context.add_init_script(CSP_WATCH)
    page = context.new_page()
    page.set_default_timeout(WAIT_MS)
    page.on("console", lambda message: console.append((message.type, message.text)))
    page.goto(base + "/")
    page.wait_for_selector("#na-question textarea")
    page.wait_for_function("() => document.querySelector('#na-chat') && document.querySelector('#na-header-block h1')")
    # Two animation frames: whatever the page does as it mounts (focusing, scrolling) has happened by then.
    page.evaluate("() => new Promise(done => requestAnimationFrame(() => requestAnimationFrame(done)))")
    return page


@pytest.fixture(params=sorted(SIZES))
def sized_page(request, browser, ui_app, console):
    page = open_page(browser, ui_app, SIZES[request.param], console)
    page.size_name = request.param
    yield page
    page.context.close()


@pytest.fixture
def laptop(browser, ui_app, console):
    page = open_page(browser, ui_app, LAPTOP, console)
    yield page
    page.context.close()


@pytest.fixture
def phone(browser, ui_app, console):
    page = open_page(browser, ui_app, PHONE, console)
    yield page
    page.context.close()


def test_the_page_opens_at_the_top_with_its_header_visible(sized_page, shots):
    page = sized_page
    page.screenshot(path=str(shots / f"load-{page.size_name}.png"))
    assert page.evaluate("window.scrollY") == 0
    header = page.locator("#na-header-block").bounding_box()
    height = page.viewport_size["height"]
    assert header is not None and header["y"] >= 0 and header["y"] + header["height"] <= height
    assert page.get_by_role("heading", name="Notes assistant").is_visible()
    # The question box still has the focus on a laptop: one can type at once.
    if page.size_name == "1440x900":
        assert page.evaluate("document.activeElement === document.querySelector('#na-question textarea')")


def test_the_viewer_label_fits_on_a_phone(phone, shots):
    ask(phone, "When was the anemometer at pier nine recalibrated?")
    cite = last_answer(phone).locator("a.na-cite").first
    assert cite.get_attribute("href").startswith(f"/notes/logbook.md?lines={FACT_LINE}-")
    cite.click()
    phone.frame_locator("#na-viewer iframe.na-frame").locator(".ln.hl").first.wait_for()
    viewer = next(f for f in phone.frames if "/notes/logbook.md" in f.url)
    label = viewer.evaluate("""() => {
        const el = document.querySelector('.where'), box = el.getBoundingClientRect();
        return {text: el.textContent, title: el.title, left: box.left, right: box.right, width: innerWidth,
                clipped: el.scrollWidth > el.clientWidth};
    }""")
    phone.locator("#na-viewer").scroll_into_view_if_needed()
    phone.screenshot(path=str(shots / "viewer-label-390x844.png"))
    assert label["text"] == f"lines {FACT_LINE}–{FACT_LINE} of {LOG_LINES}"
    assert 0 <= label["left"] and label["right"] <= label["width"] and not label["clipped"], label
    assert label["title"] == label["text"]  # the whole label on hover, should a narrower frame cut it


def test_a_refusal_is_said_once(sized_page, shots):
    page = sized_page
    ask(page, "What is the capital of Peru?")
    text = last_answer(page).inner_text()
    page.screenshot(path=str(shots / f"refusal-{page.size_name}.png"))
    said = text.count("Not found in your notes") + text.count("don't seem to cover")
    assert said == 1, text
    assert "The closest sections are" in text  # where to look instead is still offered


def test_an_extractive_answer_is_revealed_bullet_by_bullet(sized_page, shots):
    """The answer grows in the page over several updates, as an LLM's does, and ends complete."""
    page = sized_page
    page.evaluate("""() => {
        window.__bodies = [];
        const chat = document.querySelector('#na-chat');
        new MutationObserver(() => {
            const answers = chat.querySelectorAll('.na-answer');
            const body = answers.length ? answers[answers.length - 1].querySelector('.na-body') : null;
            const text = body ? body.innerText.trim() : '';
            if (text && text !== window.__bodies[window.__bodies.length - 1]) window.__bodies.push(text);
        }).observe(chat, {childList: true, subtree: true, characterData: true});
    }""")
    ask(page, "A function triggered by S3 uploads keeps re-triggering itself. How do I stop it immediately?")
    final = last_answer(page).locator(".na-body").inner_text().strip()
    page.screenshot(path=str(shots / f"revealed-answer-{page.size_name}.png"))
    assert "reserved concurrency" in final.lower()
    bullets = last_answer(page).locator(".na-body > ul > li").count()
    assert bullets >= 2, final
    partial = [t for t in page.evaluate("window.__bodies") if t != "Searching your notes…" and t != final]
    assert len(partial) >= bullets - 1, partial  # one update per bullet before the last one
    lengths = [len(t) for t in partial] + [len(final)]
    assert lengths == sorted(lengths), lengths  # it only grows


def test_answer_settings_are_above_the_fold_under_one_name(laptop, shots):
    page = laptop
    page.screenshot(path=str(shots / "answer-settings-1440x900.png"))
    assert page.get_by_text("Settings", exact=True).count() == 1  # Gradio's footer link, and only it
    assert page.get_by_text("Answer settings", exact=True).count() == 1
    answerer = page.get_by_label("extractive", exact=True)
    box = answerer.bounding_box()
    assert answerer.is_visible() and box is not None and box["y"] + box["height"] <= LAPTOP["height"]
    assert page.get_by_label("Search only", exact=False).is_visible()
    question = page.locator("#na-question").bounding_box()
    assert question["y"] + question["height"] <= LAPTOP["height"]  # and the question box stays in view


OVERLAYS = """() => [...document.querySelectorAll('.wrap.full:not(.hide), .wrap.minimal:not(.hide)')]
    .filter(el => el.offsetParent !== null && el.getBoundingClientRect().height > 0).length"""


def test_a_running_eval_shows_one_progress_overlay_and_its_charts_with_the_report(sized_page, shots):
    page = sized_page
    page.get_by_role("tab", name="Evals").click()
    page.evaluate(f"""() => {{
        window.__overlays = 0;
        const count = {OVERLAYS};
        new MutationObserver(() => {{ window.__overlays = Math.max(window.__overlays, count()); }})
            .observe(document.body, {{childList: true, subtree: true, attributes: true, attributeFilter: ['class']}});
    }}""")
    page.click("#na-run-eval")
    page.wait_for_function("() => document.querySelector('#na-eval-report').innerText.includes('Summary')")
    assert page.evaluate("window.scrollY") == 0  # nobody scrolled down to the charts
    # Right after the report, without scrolling: the chart images are loaded (a lazy image below the fold is not).
    page.wait_for_function(
        "() => { const imgs = [...document.querySelectorAll('#na-eval-charts img')];"
        " return imgs.length > 0 && imgs.every(i => i.complete && i.naturalWidth > 0); }", timeout=10_000)
    page.screenshot(path=str(shots / f"eval-report-{page.size_name}.png"), full_page=True)
    assert page.evaluate("window.__overlays") == 1


def test_these_pages_violated_no_content_security_policy(browser, ui_app, console):
    """Every page above ran under the CSP without a violation — and a violation would have been seen."""
    violations = [text for kind, text in console if "csp-violation" in text or "Content Security Policy" in text]
    assert violations == []
    page = open_page(browser, ui_app, LAPTOP, console)
    try:  # the watch works: an inline script added now is blocked, and reported
        with page.expect_console_message(lambda message: "csp-violation" in message.text) as reported:
            page.evaluate("() => { const s = document.createElement('script'); s.textContent = 'window.__ran = 1';"
                          " document.body.appendChild(s); }")
        assert "script-src" in reported.value.text
        assert page.evaluate("typeof window.__ran") == "undefined"
    finally:
        page.context.close()
