"""The note viewer: one indexed note as an HTML page with numbered, linkable lines.

Deliberately simple: the page shows the note's raw markdown lines, HTML-escaped,
not rendered markdown, so nothing in a note can become markup. Each line has an
anchor (``#L120``), the cited range is highlighted and scrolled into view, and
the heading path of the range's first line is shown as a breadcrumb.

``resolve_note`` is the gate: only sources that are in the index *and* resolve
to a regular file inside the notes root are served. ``[[wikilinks]]`` resolve
only against those notes (``note_directory``), so a link can never name a path.
"""

from __future__ import annotations

import html
import logging
from collections.abc import Callable, Container, Iterable
from pathlib import Path, PurePosixPath
from urllib.parse import quote

from ingest import code_line_ranges, notes_root, parse_sections, read_note
from ingest.links import WIKILINK, LinkTarget, NoteDirectory, WikiLink
from ingest.reader import NoteFile
from ingest.sections import note_body

__all__ = [
    "parse_line_range", "resolve_note", "read_indexed_note", "note_page", "content_security_policy",
    "note_directory", "wikilink_href",
]

logger = logging.getLogger(__name__)

MAX_RANGE_CHARS = 32


def parse_line_range(value: str | None) -> tuple[int, int] | None:
    """``"A-B"`` (or ``"A"``) → ``(A, B)`` with ``A <= B``; anything else → None.

    >>> parse_line_range("12-20"), parse_line_range("7"), parse_line_range("9-3"), parse_line_range("x")
    ((12, 20), (7, 7), (3, 9), None)
    """
    if not value or len(value) > MAX_RANGE_CHARS:
        return None
    first, _, last = value.strip().partition("-")
    if not first.isdigit() or (last and not last.isdigit()):
        return None
    a, b = int(first), int(last or first)
    if a < 1 or b < 1:
        return None
    return (a, b) if a <= b else (b, a)


def resolve_note(notes_path: Path, source: str, indexed_sources: Container[str]) -> Path | None:
    """The file behind ``source`` if it may be served, else None.

    It may when ``source`` is one of ``indexed_sources`` (exact string), is a
    plain relative POSIX path (no ``..``, ``.``, empty part, backslash or NUL) and
    resolves — symlinks followed — to a regular file inside the notes root.

    >>> resolve_note(Path("/nonexistent"), "../etc/passwd", {"../etc/passwd"}) is None
    True
    """
    if not source or source not in indexed_sources:
        return None
    if "\x00" in source or "\\" in source or PurePosixPath(source).is_absolute():
        return None
    if any(part in ("", ".", "..") for part in source.split("/")):
        return None
    try:
        root = notes_root(Path(notes_path)).resolve(strict=True)
        path = (root / source).resolve(strict=True)
    except (OSError, RuntimeError):  # missing, a symlink loop, a permission error
        return None
    if not path.is_relative_to(root) or not path.is_file():
        logger.warning("viewer refused source=%s resolved=%s (outside the notes root or not a file)", source, path)
        return None
    return path


def read_indexed_note(notes_path: Path, source: str, indexed_sources: Container[str]) -> NoteFile | None:
    """Read a servable note (see ``resolve_note``); None if it may not be served or is not text."""
    path = resolve_note(notes_path, source, indexed_sources)
    if path is None:
        return None
    note = read_note(path, path.parent)
    return note if isinstance(note, NoteFile) else None


def note_directory(notes_path: Path, indexed_sources: Iterable[str]) -> NoteDirectory:
    """The names and headings of the servable indexed notes, for resolving ``[[wikilinks]]``."""
    notes = ((source, read_indexed_note(notes_path, source, {source})) for source in sorted(indexed_sources))
    return NoteDirectory((source, note.text) for source, note in notes if note is not None)


def wikilink_href(target: LinkTarget) -> str:
    """The viewer URL of a resolved link: the heading's lines when it named one, else the note.

    >>> wikilink_href(LinkTarget("a b.md", 3, 9)), wikilink_href(LinkTarget("a b.md"))
    ('/notes/a%20b.md?lines=3-9#L3', '/notes/a%20b.md')
    """
    if target.start_line is None or target.end_line is None:
        return f"/notes/{quote(target.source)}"
    return f"/notes/{quote(target.source)}?lines={target.start_line}-{target.end_line}#L{target.start_line}"


def _line_html(line: str, links: Callable[[WikiLink], str | None] | None) -> str:
    """One raw line, escaped; ``[[wikilinks]]`` that resolve become links (their text unchanged)."""
    if links is None or "[[" not in line:
        return html.escape(line)
    out, last = [], 0
    for match in WIKILINK.finditer(line):
        href = links(WikiLink.parse(match.group(1)))
        if href is None:
            continue
        out += [html.escape(line[last : match.start()]),
                f'<a href="{html.escape(href)}">{html.escape(match.group(0))}</a>']
        last = match.end()
    return "".join(out) + html.escape(line[last:])


def content_security_policy(nonce: str) -> str:
    """The viewer's CSP: nothing loads or runs except our own nonce'd style and script."""
    return (
        f"default-src 'none'; style-src 'nonce-{nonce}'; script-src 'nonce-{nonce}'; img-src 'none'; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'self'"
    )


def note_page(source: str, text: str, line_range: tuple[int, int] | None, nonce: str,
              links: Callable[[WikiLink], str | None] | None = None) -> str:
    """The viewer page for ``text`` with ``line_range`` (1-based, inclusive) highlighted.

    The range is clamped to the note; ``nonce`` must match ``content_security_policy``.
    ``links`` resolves ``[[wikilinks]]`` outside code to viewer URLs (unresolved ones stay text).
    """
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    count = len(lines)
    sections = parse_sections(text, source)
    heading_lines = {
        line for s in sections for line in range(s.start_line, s.start_line + s.heading_line_count)
    }
    code_lines = {n for a, b in code_line_ranges(note_body(text, source)) for n in range(a, b + 1)} if links else set()
    start = end = 0
    if line_range and count:
        start, end = min(line_range[0], count), min(line_range[1], count)
    crumbs = [f'<span class="src">{html.escape(source)}</span>']
    if start:
        section = next((s for s in sections if s.start_line <= start <= s.end_line), None)
        crumbs += [f"<span>{html.escape(h)}</span>" for h in (section.heading_path if section else ())]
    where = f"lines {start}–{end} of {count}" if start else f"{count} lines"

    rows = []
    for number, line in enumerate(lines, start=1):
        classes = ["ln"]
        if start <= number <= end and start:
            classes.append("hl")
        if number in heading_lines:
            classes.append("h")
        rows.append(
            f'<div class="{" ".join(classes)}" id="L{number}"><a class="num" href="#L{number}">{number}</a>'
            f'<span class="tx">{_line_html(line, None if number in code_lines else links)}</span></div>'
        )
    scroll = ""
    if start:
        # Centre the range (or put its top under the header when it is taller than the window). window.scrollTo
        # scrolls this document only: scrollIntoView would also scroll the chat page around the iframe.
        scroll = (
            f'<script nonce="{nonce}">(function(){{var a=document.getElementById("L{start}"),'
            f'b=document.getElementById("L{end}");if(!a||!b)return;'
            "var h=document.querySelector('header').offsetHeight,top=a.getBoundingClientRect().top+scrollY,"
            "height=b.getBoundingClientRect().bottom+scrollY-top,room=innerHeight-h;"
            "scrollTo(0,height<room?top-h-(room-height)/2:top-h-8);})();</script>"
        )
    title = html.escape(f"{source} · {where}")
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{title}</title><style nonce=\"{nonce}\">{_CSS}</style></head><body>"
        f'<header><nav class="crumbs" aria-label="Heading path">{" › ".join(crumbs)}</nav>'
        f'<span class="where" title="{html.escape(where)}">{html.escape(where)}</span></header>'
        f'<main class="note">{"".join(rows)}</main>{scroll}</body></html>'
    )


_CSS = """
:root { color-scheme: light dark; --hl: #fff3bf; --hl-edge: #f59e0b; --muted: #8a8f98; --bar: #f7f7f9; }
@media (prefers-color-scheme: dark) { :root { --hl: #4a3b0a; --bar: #1f2024; } }
body { margin: 0; font: 14px/1.5 ui-sans-serif, system-ui, -apple-system, "Segoe UI", sans-serif; }
header { position: sticky; top: 0; z-index: 1; display: flex; flex-wrap: wrap; gap: .1rem 1rem;
  justify-content: space-between; align-items: baseline; padding: .5rem .9rem; background: var(--bar);
  border-bottom: 1px solid #0002; }
.crumbs { flex: 1 1 10rem; min-width: 0; font-weight: 600; overflow-wrap: anywhere; }
.crumbs .src { font-family: ui-monospace, monospace; font-weight: 500; }
/* A narrow panel (a phone) puts the label on a line of its own; narrower still, it ends in "…" (title: all). */
.where { margin-left: auto; max-width: 100%; overflow: hidden; text-overflow: ellipsis; color: var(--muted);
  white-space: nowrap; font-size: .9em; }
.note { padding: .4rem 0 40vh 0; font: 13px/1.5 ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; }
.ln { display: flex; min-height: 1.5em; scroll-margin-top: 4rem; border-left: 3px solid transparent; }
.ln:target { outline: 1px dashed var(--hl-edge); }
.ln.hl { background: var(--hl); border-left-color: var(--hl-edge); }
.ln.h .tx { font-weight: 700; }
.num { flex: 0 0 4.2em; text-align: right; padding-right: .9em; color: var(--muted); text-decoration: none;
  user-select: none; }
.tx { white-space: pre-wrap; overflow-wrap: anywhere; padding-right: .8rem; }
"""
