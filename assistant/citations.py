"""Citation markers in answer markdown: find them, check them, and leave code alone.

One home for the ``[n]`` marker pattern, the "outside code" rule (code spans and
fenced blocks are never touched: ``arr[0]`` is code, not a citation) and validation
of an LLM's markers against the sources it was sent.

Answers stay plain markdown: no HTML escaping happens here. ``ask --json``, the CLI
and ``/api/ask`` show the notes' own characters (``>``, ``&``, ``<``); only the web
renderer turns markdown into HTML, with raw HTML disabled and an allow-list
(``assistant.web.render``), so a ``<script>`` in a note or a model's answer is text there.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from assistant.answer import Citation

__all__ = ["CITATION_MARKER", "outside_code", "strip_thinking", "validate_citations"]

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
