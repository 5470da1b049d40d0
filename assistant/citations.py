"""Citation markers in answer markdown: find them, check them, and leave code alone.

One home for the ``[n]`` marker pattern, the "outside code" rule (code spans and
fenced blocks are never touched: ``arr[0]`` is code, not a citation), validation
of an LLM's markers against the sources it was sent, and ``quote_unit``: a quoted
piece of a note with its marker placed outside code and tables.

Answers stay plain markdown: no HTML escaping happens here. ``ask --json``, the CLI
and ``/api/ask`` show the notes' own characters (``>``, ``&``, ``<``); only the web
renderer turns markdown into HTML, with raw HTML disabled and an allow-list
(``assistant.web.render``), so a ``<script>`` in a note or a model's answer is text there.
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Callable, Sequence

from assistant.answer import Citation
from ingest import code_line_ranges

__all__ = ["CITATION_MARKER", "outside_code", "strip_thinking", "validate_citations", "quote_unit"]

CITATION_MARKER = re.compile(r"\[(\d{1,3})\]")
_CODE = re.compile(r"(`+)(?:.*?)\1|^ {0,3}(`{3,}|~{3,}).*?^ {0,3}\2[`~]*\s*$", re.DOTALL | re.MULTILINE)
_THINK = re.compile(r"<think>.*?(?:</think>|$)", re.DOTALL | re.IGNORECASE)
_GROUP = re.compile(r"\[(?:(?:sources?|src)\s*:?\s*)?(\d{1,3}(?:\s*[,;]\s*\d{1,3})*)\]", re.IGNORECASE)
_MARKER = re.compile(r"[ \t]?\[(\d{1,3})\](?!\()")


def outside_code(markdown: str, fn: Callable[[str], str]) -> str:
    """Apply ``fn`` to the parts of ``markdown`` outside code spans and fenced blocks.

    >>> outside_code("a `b` c", str.upper)
    'A `b` C'
    """
    out, last = [], 0
    for match in _CODE.finditer(markdown):
        out.append(fn(markdown[last : match.start()]))
        out.append(match.group())
        last = match.end()
    out.append(fn(markdown[last:]))
    return "".join(out)


def strip_thinking(text: str) -> str:
    """Drop a reasoning model's ``<think>…</think>`` block (closed or not).

    >>> strip_thinking("<think>hmm</think>S3 [1]")
    'S3 [1]'
    """
    return _THINK.sub("", text or "")


def validate_citations(text: str, sources: Sequence) -> tuple[str, list[Citation], list[str]]:
    """Keep ``[n]`` markers that name a source, drop the others; the rest of the markdown is kept as is.

    Grouped markers are split first (``[1, 3]`` → ``[1][3]``, ``[source 2]`` → ``[2]``);
    code spans and fences are left alone (``arr[0]`` is code, not a citation).

    Returns:
        (answer markdown, citations of the cited sources ordered by n, dropped markers like ``"[7]"``).

    Example: with two sources, ``"A [1]. B [7]."`` → ``("A [1]. B.", [Citation(n=1, …)], ["[7]"])``.
    """
    cited: list[int] = []
    dropped: list[str] = []

    def split_groups(segment: str) -> str:
        return _GROUP.sub(lambda m: "".join(f"[{int(x)}]" for x in re.split(r"\s*[,;]\s*", m.group(1))), segment)

    def check(match: re.Match) -> str:
        n = int(match.group(1))
        if 1 <= n <= len(sources):
            cited.append(n)
            return match.group(0)
        dropped.append(f"[{n}]")
        return ""

    text = strip_thinking(text)
    text = outside_code(text, lambda segment: _MARKER.sub(check, split_groups(segment)))
    citations = []
    for n in sorted(set(cited)):
        r = sources[n - 1]
        citations.append(Citation(n, r.source, tuple(r.heading_path), r.start_line, r.end_line, r.text))
    return text.strip(), citations, list(dict.fromkeys(dropped))


_FENCE_LINE = re.compile(r"^\s*(`{3,}|~{3,})(.*)$")


def _fence(code: str) -> str:
    """``code`` (with or without its own fence lines) inside one fresh fence that nothing in it can close.

    >>> _fence("```sh\\nmake\\n```"), _fence("    make"), _fence("a\\n```")
    ('```sh\\nmake\\n```', '```\\nmake\\n```', '```\\na\\n```')
    """
    lines = code.split("\n")
    info = ""
    if lines and (m := _FENCE_LINE.match(lines[0])):
        info, lines = m.group(2).strip(), lines[1:]
    if lines and (m := _FENCE_LINE.match(lines[-1])) and not m.group(2).strip():
        lines = lines[:-1]
    inner = textwrap.dedent("\n".join(lines))
    fence = "`" * max(3, 1 + max((len(m) for m in re.findall(r"`+", inner)), default=0))
    return f"{fence}{info}\n{inner}\n{fence}"


def _close_open_fence(body: str) -> str:
    """``body`` with a fence left open at its end closed (a unit cut from inside a long code block)."""
    open_fence = None
    for line in body.split("\n"):
        m = _FENCE_LINE.match(line)
        if m is None:
            continue
        run = m.group(1)
        if open_fence is None:
            open_fence = (line[: len(line) - len(line.lstrip())], run)
        elif run[0] == open_fence[1][0] and len(run) >= len(open_fence[1]) and not m.group(2).strip():
            open_fence = None
    return body if open_fence is None else f"{body}\n{open_fence[0]}{open_fence[1]}"


def _one_code_block(text: str) -> bool:
    """True when ``text`` is exactly one fenced or indented code block."""
    code = code_line_ranges(text)
    return len(code) == 1 and code[0][0] == 1 and code[0][1] >= len(text.split("\n"))


_LIST_ITEM = re.compile(r"^(?:[-*+]|\d{1,9}[.)])(?: |$)")


def quote_unit(text: str, n: int, code_block: bool | None = None) -> str:
    """A unit as markdown ending with its ``[n]`` marker — never inside code, never breaking a table.

    Prose becomes a list item; a code block stays a code block (an indented one is fenced, since
    it loses its indentation here) with the marker on its own line after it. ``code_block`` says
    whether the unit is one code block in its note (None: judge from ``text`` alone).

    >>> quote_unit("- **a** b", 1)
    '- **a** b [1]'
    >>> quote_unit("plain sentence.", 2)
    '- plain sentence. [2]'
    >>> quote_unit("    make build", 3)
    '```\\nmake build\\n```\\n\\n[3]'
    >>> quote_unit("Run this:\\n```\\nmake\\n```", 4)
    '- Run this:\\n  ```\\n  make\\n  ```\\n\\n  [4]'
    """
    marker = f"[{n}]"
    if code_block is None:
        code_block = _one_code_block(text.strip("\n"))
    body = textwrap.dedent(text).strip("\n")
    if code_block:
        # The whole unit is code: keep it a block. Fenced afresh, since it may be indented code or a
        # piece of a long fenced block cut without its opening or closing fence.
        return f"{_fence(body)}\n\n{marker}"
    if _LIST_ITEM.match(body):
        indent = " " * (len(_LIST_ITEM.match(body).group()) if body[0].isdigit() else 2)
    else:
        body, indent = "- " + body.replace("\n", "\n  "), "  "
    body = _close_open_fence(body)
    last = len(body.split("\n"))
    ends_in_code = any(a <= last <= b for a, b in code_line_ranges(body))
    ends_in_table = body.rstrip().endswith("|") or body.split("\n")[-1].lstrip().startswith("|")
    if ends_in_code or ends_in_table:
        return f"{body}\n\n{indent}{marker}"
    return f"{body} {marker}"
