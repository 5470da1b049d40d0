"""Markdown → sections with heading paths and exact 1-based line spans.

Headings are found by a CommonMark parser (markdown-it-py), so ``#`` lines inside
fenced or indented code are not headings, setext headings are, and ``#######``
(seven hashes) is a paragraph, exactly as a markdown renderer sees them.

YAML front matter (``ingest.frontmatter``) is metadata: its lines belong to no
section, and its title, aliases and tags name the note's root heading.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

from ingest.frontmatter import mask_front_matter, note_root, read_front_matter

__all__ = ["Section", "parse_sections", "code_line_ranges"]


@dataclass(frozen=True)
class Section:
    """A heading and the lines up to the next heading.

    ``start_line``/``end_line`` are 1-based and inclusive; ``heading_line`` is the
    line of the heading itself (0 for the preamble before the first heading), and
    ``lines`` are the section's lines, ``lines[0]`` being line ``start_line``.
    """

    source: str
    heading_path: tuple[str, ...]
    start_line: int
    end_line: int
    lines: tuple[str, ...] = field(repr=False)
    heading_line_count: int = 0  # 1 for ATX, 2 for setext, 0 for the preamble
    level: int = 0  # 1 for ``#``, 2 for ``##`` …; 0 for the preamble
    title: str = ""  # the heading's own text as written (``heading_path[-1]`` may carry the note's keywords)

    @property
    def text(self) -> str:
        return "\n".join(self.lines)

    @property
    def body_start(self) -> int:
        """First line after the heading."""
        return self.start_line + self.heading_line_count


@lru_cache(maxsize=1)
def _parser():
    from markdown_it import MarkdownIt

    # Only block structure matters: skipping the inline pass halves the parse time.
    # A heading's inline token still carries its raw text in ``content``.
    return MarkdownIt("commonmark").disable(["inline", "text_join"], ignoreInvalid=True)


@lru_cache(maxsize=4)
def _block_tokens(text: str):
    # Cached: parse_sections and code_line_ranges read the same parse of one file.
    return _parser().parse(text)


def code_line_ranges(text: str) -> list[tuple[int, int]]:
    """1-based inclusive line ranges of fenced and indented code blocks.

    >>> code_line_ranges("a\\n```\\n# x\\n```\\n")
    [(2, 4)]
    """
    return [
        (tok.map[0] + 1, tok.map[1])
        for tok in _block_tokens(text)
        if tok.type in ("fence", "code_block") and tok.map
    ]


def note_body(text: str, source: str = "") -> str:
    """``text`` with its front matter lines emptied (line numbers kept): what is parsed and chunked.

    >>> note_body("---\\ntags: [a]\\n---\\nx")
    '\\n\\n\\nx'
    """
    return mask_front_matter(text, read_front_matter(text, source))


def parse_sections(text: str, source: str) -> list[Section]:
    """Split ``text`` into sections; together they cover every line exactly once (front matter: none).

    >>> [(s.heading_path, s.start_line, s.end_line) for s in parse_sections("# A\\nx\\n## B\\ny", "n.md")]
    [(('A',), 1, 2), (('A', 'B'), 3, 4)]
    >>> [(s.heading_path, s.start_line) for s in parse_sections("---\\ntitle: K\\n---\\nx\\n## B\\ny", "k.md")]
    [(('K',), 4), (('K', 'B'), 5)]
    """
    front_matter = read_front_matter(text, source)
    text = mask_front_matter(text, front_matter)
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()  # a trailing newline does not start another line
    tokens = _block_tokens(text)
    headings: list[tuple[int, int, int, str]] = []  # (level, first line 0-based, line count, text)
    for i, tok in enumerate(tokens):
        if tok.type == "heading_open" and tok.map:
            inline = tokens[i + 1]
            title = " ".join(inline.content.split()) or f"(untitled, line {tok.map[0] + 1})"
            headings.append((int(tok.tag[1:]), tok.map[0], tok.map[1] - tok.map[0], title))

    sections: list[Section] = []
    if not lines:
        return sections
    # A front-matter note is rooted at its title (else its file name) carrying its aliases and tags;
    # under an ``# H1`` the H1 stays the root and carries them (see ``note_root``).
    root = note_root(front_matter, source, None)
    body = front_matter.line_count  # 0-based index of the first line after the front matter
    first_heading = headings[0][1] if headings else len(lines)
    if first_heading > body and any(line.strip() for line in lines[body:first_heading]):
        preamble = (root,) if root else ()
        sections.append(Section(source, preamble, body + 1, first_heading, tuple(lines[body:first_heading]), 0))

    stack: list[tuple[int, str]] = []
    for n, (level, start, count, title) in enumerate(headings):
        end = headings[n + 1][1] if n + 1 < len(headings) else len(lines)
        while stack and stack[-1][0] >= level:
            stack.pop()
        stack.append((level, title))
        path = tuple(t for _, t in stack)
        if root and stack[0][0] == 1:
            path = (note_root(front_matter, source, path[0]) or path[0], *path[1:])
        elif root:
            path = (root, *path)
        sections.append(Section(source, path, start + 1, end, tuple(lines[start:end]), count, level, title))
    return sections
