"""Answers, search results, reports and index status → HTML fragments for the web UI.

Markdown from notes and LLMs is rendered by markdown-it with raw HTML disabled
(``<script>`` in a note becomes the text ``<script>``), then cleaned by
``assistant.web.sanitize`` — everything shown that came from a note or a model
goes through ``sanitize_html`` last.

The answer HTML uses ``na-*`` classes; ``ANSWER_CSS`` styles them.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Iterable, Mapping, Sequence
from functools import lru_cache

from assistant.answer import Answer, Citation, says_not_covered, viewer_link
from assistant.citations import CITATION_MARKER
from assistant.web.sanitize import sanitize_html
from ingest.links import WIKILINK, WikiLink

LinkResolver = Callable[[WikiLink], "str | None"]  # a [[wikilink]] → the viewer URL of its note, or None

__all__ = [
    "ANSWER_CSS", "render_markdown", "answer_html", "reveal_html", "reveal_prefixes", "streaming_html",
    "question_html", "search_html", "error_html", "worst_html", "index_status_html", "calibration_text", "calibration_report_html", "header_html",
    "index_report_html", "indexing_banner_html", "report_html",
]

def _link_in_text(state, pattern, link_for) -> None:
    """Turn matches of ``pattern`` in plain text (not inside links or code) into links.

    ``link_for(match)`` returns ``(href or None, title, shown text)``, or None to leave the
    match as it is; a None href shows the text unlinked.
    """
    from markdown_it.token import Token

    for block in state.tokens:
        if block.type != "inline" or not block.children:
            continue
        out, depth = [], 0
        for tok in block.children:
            depth += tok.type == "link_open"
            depth -= tok.type == "link_close"
            if tok.type != "text" or depth or not pattern.search(tok.content):
                out.append(tok)
                continue
            last = 0
            for match in pattern.finditer(tok.content):
                link = link_for(match)
                if link is None:
                    continue
                href, attrs, text = link
                if match.start() > last:
                    out.append(Token("text", "", 0, content=tok.content[last : match.start()]))
                if href is not None:
                    out.append(Token("link_open", "a", 1, attrs={"href": href, **attrs}))
                out.append(Token("text", "", 0, content=text))
                if href is not None:
                    out.append(Token("link_close", "a", -1))
                last = match.end()
            if last < len(tok.content):
                out.append(Token("text", "", 0, content=tok.content[last:]))
        block.children = out


def _link_wikilinks(state) -> None:
    """markdown-it core rule: ``[[note#heading|label]]`` in text becomes a viewer link, or plain text.

    Only with a resolver in ``env["wikilinks"]`` (else the text stays as written). A link
    that names no indexed note shows its label as text: never a link that goes nowhere.
    """
    resolve: LinkResolver | None = state.env.get("wikilinks")
    if resolve is None:
        return

    def link_for(match):
        link = WikiLink.parse(match.group(1))
        return resolve(link), {"title": link.target or link.text}, link.text

    _link_in_text(state, WIKILINK, link_for)


def _link_citations(state) -> None:
    """markdown-it core rule: ``[n]`` in text becomes a link to the cited lines (not inside links or code)."""
    citations: Mapping[int, Citation] = state.env.get("citations") or {}
    if not citations:
        return

    def link_for(match):
        cite = citations.get(int(match.group(1)))
        if cite is None:
            return None
        href = viewer_link(cite.source, cite.start_line, cite.end_line)
        return href, {"class": "na-cite", "title": f"{cite.heading} ({cite.location})"}, match.group()

    _link_in_text(state, CITATION_MARKER, link_for)


def _image_as_text(self, tokens, idx, options, env) -> str:
    # Images would fetch remote URLs from the reader's browser (we are offline-first): show the alt text.
    alt = self.renderInlineAsText(tokens[idx].children or [], options, env)
    return f"[image: {html.escape(alt)}]" if alt else "[image]"


@lru_cache(maxsize=1)
def _markdown():
    from markdown_it import MarkdownIt

    md = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False})
    md.enable(["table", "strikethrough"])
    md.core.ruler.push("na_wikilinks", _link_wikilinks)
    md.core.ruler.push("na_citations", _link_citations)
    md.add_render_rule("image", _image_as_text)
    return md


def render_markdown(text: str, citations: Iterable[Citation] = (), links: LinkResolver | None = None) -> str:
    """Markdown → sanitized HTML; ``[n]`` markers that match a citation link to the viewer.

    With ``links``, ``[[wikilinks]]`` open their note in the viewer (plain text when unresolved).

    >>> render_markdown("**hi** <b>x</b>")
    '<p><strong>hi</strong> &lt;b&gt;x&lt;/b&gt;</p>\\n'
    >>> render_markdown("see [[k8s#Pods]] and [[nope|that]]", links=lambda l: "/notes/k.md" if l.target == "k8s" else None)
    '<p>see <a href="/notes/k.md" title="k8s" target="_blank" rel="noopener noreferrer">k8s &gt; Pods</a> and that</p>\\n'
    """
    env = {"citations": {c.n: c for c in citations}, "wikilinks": links}
    return sanitize_html(_markdown().render(text or "", env))


def _esc(text: str) -> str:
    return html.escape(str(text), quote=True)


def question_html(question: str) -> str:
    """A user's question, shown as plain text."""
    return f'<div class="na-body">{_esc(question)}</div>'


def streaming_html(partial: str) -> str:
    """The answer while it streams (markers are linked once the citations are known)."""
    body = render_markdown(partial) if partial.strip() else "<p>Searching your notes…</p>"
    return sanitize_html(f'<div class="na-answer na-pending"><div class="na-body">{body}</div></div>')


def error_html(message: str) -> str:
    return sanitize_html(f'<div class="na-answer"><div class="na-error">{_esc(message)}</div></div>')


def _sources_html(citations: Sequence[Citation], links: LinkResolver | None = None) -> str:
    items = []
    for c in citations:
        href = _esc(viewer_link(c.source, c.start_line, c.end_line))
        items.append(
            f'<li><a class="na-src" href="{href}">[{c.n}]</a> <span class="na-path">{_esc(c.heading)}</span> '
            f'<span class="na-loc">{_esc(c.location)}</span>'
            f'<div class="na-quote">{render_markdown(c.text, links=links)}</div></li>'
        )
    summary = f"<summary>Sources ({len(citations)})</summary>"
    return f'<details class="na-sources">{summary}<ol>{"".join(items)}</ol></details>'


def _without_refusal(text: str) -> str:
    """An abstention's text without its leading "not covered" sentence (the UI says it in a note).

    >>> _without_refusal("Your notes don't seem to cover this.\\n\\nThe closest sections are:")
    'The closest sections are:'
    >>> _without_refusal("Something else.")
    'Something else.'
    """
    first, _, rest = text.partition("\n")
    return rest.strip() if says_not_covered(first) else text


def _answer_head(answer: Answer) -> tuple[list[str], str]:
    """The notes above an answer's text, and the text to show (an abstention's refusal moved into its note)."""
    parts, body = [], answer.answer
    if answer.abstained:
        # Said once: this note replaces the answer's own "Your notes don't seem to cover this." (kept by the
        # API, the CLI and the export), and the body keeps only where to look instead.
        body = _without_refusal(body)
        look = ", or check the closest sections below" if body.strip() else ""
        parts.append('<div class="na-note">Not found in your notes — nothing matched well enough to answer. '
                     f"Try other words{look}.</div>")
    for notice in answer.notices:
        parts.append(f'<div class="na-warn">{_esc(notice)}</div>')
    if answer.condensed_query and answer.condensed_query != answer.question:
        parts.append(f'<div class="na-searched">Searched for: <em>{_esc(answer.condensed_query)}</em></div>')
    return parts, body


def answer_html(answer: Answer, links: LinkResolver | None = None) -> str:
    """The full reply bubble: notices, the searched-for query, the answer with linked markers, sources.

    ``links`` resolves ``[[wikilinks]]`` in the answer and its sources to viewer URLs.
    """
    head, body = _answer_head(answer)
    parts = ['<div class="na-answer">', *head,
             f'<div class="na-body">{render_markdown(body, answer.citations, links)}</div>']
    if answer.citations:
        parts.append(_sources_html(answer.citations, links))
    total = answer.timings_ms.get("total")
    timing = f" · {total:.0f} ms" if total is not None else ""
    parts.append(f'<div class="na-foot"><span class="na-muted">{_esc(answer.backend)}{timing}</span> '
                 '<button class="na-copy" type="button" title="Copy this answer">Copy</button></div>')
    parts.append("</div>")
    return sanitize_html("".join(parts))


def reveal_prefixes(text: str) -> list[str]:
    """``text`` (markdown) growing by one top-level block at a time — each item of a top-level list is one.

    Cut at block boundaries only, so every prefix renders as the start of the whole.

    >>> reveal_prefixes("Hi:\\n\\n- one [1]\\n  more\\n- two [2]")
    ['Hi:', 'Hi:\\n\\n- one [1]\\n  more', 'Hi:\\n\\n- one [1]\\n  more\\n- two [2]']
    >>> reveal_prefixes(""), reveal_prefixes("One paragraph.")
    ([], ['One paragraph.'])
    """
    lines = text.split("\n")
    ends = []
    for token in _markdown().parse(text):
        if not token.map or token.nesting == -1:
            continue
        top_block = token.level == 0 and token.type not in ("bullet_list_open", "ordered_list_open")
        if top_block or (token.type == "list_item_open" and token.level == 1):
            ends.append(token.map[1])
    return ["\n".join(lines[:end]).rstrip() for end in ends]


def reveal_html(answer: Answer, links: LinkResolver | None = None) -> list[str]:
    """An answer that arrived whole (extractive), as bubbles that grow block by block: the chat shows one per
    update, so it appears as progressively as a streamed LLM answer. The last is ``answer_html(answer)``.

    The steps are pending bubbles (notes, then the text so far, citations linked); sources and the
    footer come with the last.
    """
    head, body = _answer_head(answer)
    steps = []
    for partial in reveal_prefixes(body)[:-1]:
        text = render_markdown(partial, answer.citations, links)
        steps.append(sanitize_html("".join(['<div class="na-answer na-pending">', *head,
                                            f'<div class="na-body">{text}</div></div>'])))
    return [*steps, answer_html(answer, links)]


def search_html(query: str, results: Sequence, links: LinkResolver | None = None) -> str:
    """Search-only mode: ranked sections with heading path and ``source:start-end`` links."""
    if not results:
        return sanitize_html('<div class="na-answer"><div class="na-note">No matching sections.</div></div>')
    items = []
    for r in results:
        href = _esc(viewer_link(r.source, r.start_line, r.end_line))
        heading = " › ".join(r.heading_path) or r.source
        snippet = r.text if len(r.text) <= 400 else r.text[:400].rsplit(" ", 1)[0] + " …"
        items.append(
            f'<li><div class="na-hit"><a class="na-src" href="{href}">{_esc(heading)}</a> '
            f'<span class="na-loc">{_esc(r.source)}:{r.start_line}-{r.end_line}</span> '
            f'<span class="na-score">{_esc(f"{r.score:.4f}")}</span></div>'
            f'<div class="na-quote">{render_markdown(snippet, links=links)}</div></li>'
        )
    return sanitize_html(
        f'<div class="na-answer na-search"><div class="na-searched">Search only — top {len(results)} sections for '
        f'<em>{_esc(query)}</em> (score: weighted reciprocal-rank fusion, higher is better)</div>'
        f'<ol>{"".join(items)}</ol></div>'
    )


def worst_html(rows: Sequence) -> str:
    """The worst-scoring eval questions as a table (rows are dicts or dataclasses; cells shown as text)."""
    import dataclasses

    dicts = [dataclasses.asdict(r) if dataclasses.is_dataclass(r) else dict(r) for r in rows or ()]
    if not dicts:
        return ""
    columns = list(dicts[0])

    def cell(value) -> str:
        text = ", ".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)
        text = f"{value:.3f}" if isinstance(value, float) else text
        return _esc(text if len(text) <= 240 else text[:240] + " …")

    head = "".join(f"<th>{_esc(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{cell(d.get(c, ''))}</td>" for c in columns) + "</tr>" for d in dicts)
    return sanitize_html(
        f'<div class="na-worst"><details><summary>The {len(dicts)} worst questions, with the answers given</summary>'
        f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></details></div>"
    )


def report_html(markdown: str) -> str:
    """An eval report (markdown) without its image section: the web UI shows the charts in a gallery."""
    kept = [line for line in markdown.split("\n") if not line.startswith("![") and line.strip() != "## Charts"]
    return render_markdown("\n".join(kept))


def calibration_text(calibration) -> str:
    """One line on the fusion weights and abstention thresholds in use (a ``Calibration``), and their origin."""
    if calibration.tuned_at:
        origin = f"tuned on your notes {calibration.tuned_at.replace('T', ' ')[:16]} UTC"
    else:
        origin = "defaults (run notes-assistant tune to calibrate on your notes)"
    if calibration.problem:
        origin += f" — {calibration.problem}"
    t = calibration.thresholds
    return (f"{origin} · fusion dense {calibration.dense_weight:g} / bm25 {calibration.bm25_weight:g} / rrf_k "
            f"{calibration.rrf_k} · abstain below cosine {t.floor_cosine:g} (bm25 {t.floor_bm25:g}), "
            f"names {t.name_cosine:g}, {t.missing_ratio:.0%} unknown words {t.vocab_cosine:g}")


def index_status_html(status, notes_path, embedding_model: str, calibration=None) -> str:
    """The Index panel's table from an ``IndexStatus`` (files, chunks, last indexed, stale or not)."""
    changed = status.stale_sources + status.new_sources + status.removed_sources
    if not status.indexed:
        state = "not indexed yet — press Re-index"
    elif status.stale:
        state = "stale: " + (", ".join(changed[:5]) + (" …" if len(changed) > 5 else "") or "settings changed")
    else:
        state = "up to date"
    rows = [("Notes", status.sources), ("Chunks", status.chunks), ("Last indexed", status.last_indexed or "never"),
            ("State", state), ("Notes folder", notes_path), ("Embedding model", embedding_model)]
    if calibration is not None:
        rows.append(("Calibration", calibration_text(calibration)))
    cells = "".join(f"<tr><th>{_esc(k)}</th><td>{_esc(v)}</td></tr>" for k, v in rows)
    return f'<table class="na-status">{cells}</table>'


def header_html(status) -> str:
    """The page header with a one-line index summary."""
    stale = " · <b>index stale</b> (see the Index tab)" if status.stale else ""
    return (f'<div class="na-header"><h1>Notes assistant</h1><p>Answers from your notes, with citations to the '
            f'lines they come from · {status.sources} notes · {status.chunks} chunks{stale}</p></div>')


def indexing_banner_html(progress, keyword_only: bool) -> str:
    """One honest line while a background index run works (an ``IndexProgress``); empty otherwise.

    >>> from assistant.watch import IndexProgress
    >>> indexing_banner_html(IndexProgress(True, 41, 100, 35.0), True)
    '<div class="na-note">Keyword-only while indexing: 41 % · ETA 0:35</div>'
    """
    if progress is None or not progress.running:
        return ""
    eta = "" if progress.eta_seconds is None else f" · ETA {int(progress.eta_seconds) // 60}:{int(progress.eta_seconds) % 60:02d}"
    what = "Keyword-only while indexing" if keyword_only else "Updating the index (answers use the last one)"
    return f'<div class="na-note">{what}: {progress.percent} %{eta}</div>'


def calibration_report_html(result) -> str:
    """What a calibration run measured (an ``evals.tune.TuneResult``), before → after."""
    b, a = result.before.to_json(), result.after.to_json()
    cells = " · ".join(f"{name} {b[name]:.3f} → **{a[name]:.3f}**" for name in b)
    n = sum(q.answerable for q in result.questions)
    return render_markdown(f"**Calibrated** on {n} answerable + {len(result.questions) - n} unanswerable questions "
                           f"made from your notes: {cells}. Used from the next question on.")


def index_report_html(report) -> str:
    """What a Re-index run did (an ``IndexReport``): added/updated/deleted/skipped counts."""
    text = (f"**Re-indexed** in {report.seconds:.1f} s: added **{report.added}**, updated **{report.updated}**, "
            f"deleted **{report.deleted}**, skipped **{report.skipped}** (unchanged) · {report.chunks} chunks "
            f"from {report.sources} notes.")
    changed = report.changed_sources + report.removed_sources
    if changed:
        text += "\n\nChanged: " + ", ".join(f"`{source}`" for source in changed)
    return render_markdown(text)


ANSWER_CSS = """
.na-answer { display: flex; flex-direction: column; gap: .45rem; }
.na-answer, .na-answer *, .na-body { white-space: normal; }
.na-answer pre, .na-answer pre * { white-space: pre-wrap; }
.na-body p { margin: .25rem 0; }
.na-body ul, .na-body ol, .na-quote ul { margin: .25rem 0 .25rem 1.1rem; }
.na-cite { font-size: .8em; font-weight: 600; text-decoration: none; padding: 0 .15em; border-radius: 4px;
  background: var(--color-accent-soft, #eef2ff); vertical-align: super; line-height: 1; }
.na-note, .na-warn, .na-error, .na-searched { font-size: .88em; padding: .35rem .6rem; border-radius: 6px; }
.na-note { background: #fff7e6; border-left: 3px solid #f59e0b; color: #6b4500; }
.na-warn { background: #fdecea; border-left: 3px solid #e11d48; color: #7f1d1d; }
.na-error { background: #fdecea; border-left: 3px solid #e11d48; color: #7f1d1d; }
.na-searched { background: var(--block-background-fill, #f6f6f8); color: var(--body-text-color-subdued, #555); }
.na-sources { font-size: .9em; border-top: 1px solid var(--border-color-primary, #e5e7eb); padding-top: .3rem; }
.na-sources summary { cursor: pointer; font-weight: 600; }
.na-sources ol, .na-search ol { list-style: none; margin: .3rem 0 0 0; padding: 0; }
.na-sources li, .na-search li { margin: .4rem 0; }
.na-path { font-weight: 600; }
.na-loc { font-family: var(--font-mono, monospace); font-size: .85em; color: var(--body-text-color-subdued, #666); }
.na-score { font-size: .8em; color: var(--body-text-color-subdued, #777); }
.na-quote { margin: .2rem 0 0 .2rem; padding: .1rem .6rem; border-left: 3px solid var(--border-color-primary, #ddd);
  color: var(--body-text-color-subdued, #444); max-height: 12rem; overflow: auto; }
.na-foot { display: flex; align-items: center; justify-content: space-between; font-size: .78em; }
.na-muted { color: var(--body-text-color-subdued, #888); }
.na-copy { font-size: .95em; padding: .05rem .5rem; border-radius: 5px; cursor: pointer;
  border: 1px solid var(--border-color-primary, #ddd); background: transparent; color: inherit; }
.na-pending .na-body { opacity: .8; }
"""
