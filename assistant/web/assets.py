"""The web page's own CSS and script: plain DOM, no framework, no remote resources.

The script does these things in the browser, by event delegation or by watching
the DOM, so it keeps working while Gradio re-renders:

- a plain left click on a link to the note viewer (``/notes/...``) opens it in the
  side panel instead of leaving the page (ctrl/cmd/middle click still opens a tab);
- the "Copy" button of an answer copies its text and sources as plain text;
- the question box gets the focus on load without scrolling the page (and not on
  touch screens); the eval charts load as soon as they are shown.
"""

from __future__ import annotations

__all__ = ["APP_CSS", "APP_HEAD", "APP_SCRIPT", "APP_SCRIPT_PATH", "VIEWER_PANEL"]

# Served as a file by our own route, not inline: the page's CSP allows same-origin scripts and only the
# inline scripts of Gradio's own template (by hash), so nothing inline that arrives later can run.
APP_SCRIPT_PATH = "/_na/app.js"
APP_HEAD = f'<script src="{APP_SCRIPT_PATH}"></script>'

APP_SCRIPT = """
(() => {
  "use strict";
  const VIEWER_PREFIX = "/notes/";

  function openInPanel(src, href) {
    const panel = document.querySelector("#na-viewer");
    const frame = panel && panel.querySelector("iframe.na-frame");
    if (!frame || panel.offsetParent === null) return false;  // no panel, or another tab is showing
    frame.src = src;
    panel.classList.add("na-has-note");
    const open = panel.querySelector("a.na-open");
    if (open) open.href = href;
    if (window.innerWidth < 1000) panel.scrollIntoView({behavior: "smooth", block: "start"});
    return true;
  }

  function answerText(answer) {
    const parts = [...answer.querySelectorAll(".na-note, .na-body")].map((el) => el.innerText.trim());
    let text = parts.filter(Boolean).join("\\n\\n");
    const sources = [...answer.querySelectorAll(".na-sources li")].map((li) => {
      const part = (sel) => (li.querySelector(sel) || {textContent: ""}).textContent.trim();
      return `${part(".na-src")} ${part(".na-path")} (${part(".na-loc")})`;
    });
    if (sources.length) text += "\\n\\nSources:\\n" + sources.join("\\n");
    return text;
  }

  async function copy(text) {
    if (navigator.clipboard && window.isSecureContext) return navigator.clipboard.writeText(text);
    const area = document.createElement("textarea");
    area.value = text;
    area.style.position = "fixed";
    area.style.opacity = "0";
    document.body.appendChild(area);
    area.select();
    document.execCommand("copy");
    area.remove();
  }

  document.addEventListener("click", (event) => {
    const target = event.target instanceof Element ? event.target : null;
    if (!target) return;
    const button = target.closest("button.na-copy");
    if (button) {
      event.preventDefault();
      event.stopPropagation();
      const answer = button.closest(".na-answer");
      if (!answer) return;
      copy(answerText(answer)).then(() => {
        button.textContent = "Copied";
        setTimeout(() => { button.textContent = "Copy"; }, 1500);
      });
      return;
    }
    const link = target.closest("a[href]");
    if (!link || link.closest("#na-viewer")) return;
    if (event.button !== 0 || event.ctrlKey || event.metaKey || event.shiftKey || event.altKey) return;
    const url = new URL(link.getAttribute("href"), window.location.href);
    if (url.origin !== window.location.origin || !url.pathname.startsWith(VIEWER_PREFIX)) return;
    // Without the #L anchor: the viewer scrolls itself, and an anchor jump would scroll this page too.
    if (openInPanel(url.pathname + url.search, url.pathname + url.search + url.hash)) {
      event.preventDefault();
      event.stopPropagation();
    }
  }, true);

  // Gradio's own autofocus calls focus() plainly, which scrolls the box into view: a phone-sized page opened
  // ~480 px down, its header hidden. Focus without scrolling instead, and only with a mouse: on a touch
  // screen a focused box opens the keyboard over the page.
  let focused = !window.matchMedia("(hover: hover) and (pointer: fine)").matches;
  function focusQuestion() {
    const box = document.querySelector("#na-question textarea");
    if (!box) return;
    focused = true;
    if (!document.activeElement || document.activeElement === document.body) box.focus({preventScroll: true});
  }

  // Gradio's gallery loads its images lazily: eval charts below the fold stayed blank until scrolled to
  // (Chromium defers a lazy image more than ~1250 px below the viewport). They load when the report appears.
  function loadCharts() {
    for (const img of document.querySelectorAll('#na-eval-charts img[loading="lazy"]')) img.loading = "eager";
  }

  new MutationObserver(() => {
    if (!focused) focusQuestion();
    loadCharts();
  }).observe(document.documentElement, {childList: true, subtree: true});
})();
"""

APP_CSS = """
.gradio-container { max-width: 1560px !important; }
.na-header h1 { font-size: 1.45rem; font-weight: 700; margin: .3rem 0 0; }
.na-header p { margin: .15rem 0 .3rem; color: var(--body-text-color-subdued); font-size: .95rem; }
#na-viewer { display: flex; flex-direction: column; min-height: 700px; height: 100%;
  border: 1px solid var(--border-color-primary); border-radius: var(--radius-lg); overflow: hidden;
  background: var(--block-background-fill); }
#na-viewer > div { display: flex; flex-direction: column; flex: 1; }
.na-viewer-bar { display: flex; justify-content: space-between; align-items: baseline; padding: .5rem .8rem;
  font-weight: 600; font-size: .9rem; border-bottom: 1px solid var(--border-color-primary); }
.na-viewer-bar a { font-weight: 400; font-size: .85rem; }
.na-viewer-empty { margin: auto; padding: 2rem 1.5rem; max-width: 22rem; text-align: center;
  color: var(--body-text-color-subdued); }
.na-frame { flex: 1; width: 100%; min-height: 650px; border: 0; background: #fff; }
#na-viewer:not(.na-has-note) .na-frame, #na-viewer:not(.na-has-note) .na-open { display: none; }
#na-viewer.na-has-note .na-viewer-empty { display: none; }
.na-status th { text-align: left; padding: .2rem 1.5rem .2rem 0; font-weight: 600; }
.na-status td { padding: .2rem 0; }
.na-worst td, .na-worst th, #na-eval-report td, #na-eval-report th { padding: .25rem .6rem; vertical-align: top;
  text-align: left; border-bottom: 1px solid var(--border-color-primary); }
#na-eval-report table, .na-worst table { border-collapse: collapse; margin: .4rem 0 1rem; font-size: .92rem; }
.na-status { border-collapse: collapse; }
.na-status th, .na-status td { border: 0; border-bottom: 1px solid var(--border-color-primary); }
#na-eval-report { min-height: 4rem; }
#na-indexing:not(:has(.na-note)) { display: none; }  /* no empty gap above the tabs when nothing is indexing */
#na-settings-row { align-items: center; }
"""

# The side panel the script above loads notes into (the chat tab's right column).
VIEWER_PANEL = """
<div class="na-viewer-bar"><span>Note viewer</span>
<a class="na-open" href="#" target="_blank" rel="noopener">open in a new tab ↗</a></div>
<div class="na-viewer-empty">Click a citation like <b>[1]</b> or a source to see the cited lines here.</div>
<iframe class="na-frame" title="Note viewer" src="about:blank"></iframe>
"""
