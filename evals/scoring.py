"""Per-answer scores: key facts found, citations on the gold lines, grounded statements.

All pure functions of an answer's text and citations, so they are tested on
hand-written cases. Retrieval metrics live in ``evals.metrics`` (ranx).
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

__all__ = [
    "GROUNDING_THRESHOLD",
    "GROUNDING_METHOD",
    "FactCheck",
    "CitationCheck",
    "Grounding",
    "normalize",
    "spans_overlap",
    "check_key_facts",
    "check_citations",
    "statements",
    "check_grounding",
]

GROUNDING_THRESHOLD = 0.75
GROUNDING_METHOD = (
    "Each answer sentence/bullet (lead-in lines ending with ':' skipped) is supported when its normalised text "
    "occurs verbatim in the text of the answer's citations; otherwise when its embedding's cosine similarity "
    f"(higher is closer) to the best-matching cited line or sentence is >= {GROUNDING_THRESHOLD}. "
    "Groundedness = supported statements / statements."
)

_MARKER = re.compile(r"\s*\[\d{1,3}\]")
_LIST = re.compile(r"^\s*(?:[-*+]|\d{1,3}[.)])\s+")
_HEADING = re.compile(r"^\s*#{1,6}\s+")
_ESCAPE = re.compile(r"\\([\\`*_{}\[\]()#+\-.!<>|])")
_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(\[])")
_FENCE = re.compile(r"^\s*(`{3,}|~{3,})")
_WORDY = re.compile(r"[A-Za-z0-9]")


def normalize(text: str) -> str:
    """Lower-case text without markdown emphasis, citation markers, list bullets or extra spaces.

    >>> normalize("- **NAT  gateway** in a `public` subnet [2]")
    'nat gateway in a public subnet'
    """
    lines = []
    for line in html.unescape(text).split("\n"):
        line = _HEADING.sub("", _LIST.sub("", line))
        lines.append(line)
    text = _MARKER.sub("", " ".join(lines))
    text = _ESCAPE.sub(r"\1", text).replace("*", "").replace("`", "")
    return " ".join(text.split()).lower()


def spans_overlap(a_start: int, a_end: int, b_start: int, b_end: int) -> bool:
    """Whether two inclusive line spans share a line.

    >>> spans_overlap(1, 5, 5, 9), spans_overlap(1, 4, 5, 9)
    (True, False)
    """
    return a_start <= b_end and b_start <= a_end


@dataclass(frozen=True)
class FactCheck:
    """Which key-fact groups an answer contains (a group counts when any alternative occurs)."""

    found: tuple[str, ...]
    missing: tuple[str, ...]

    @property
    def recall(self) -> float | None:
        total = len(self.found) + len(self.missing)
        return len(self.found) / total if total else None


def check_key_facts(answer: str, key_facts: Sequence[Sequence[str]]) -> FactCheck:
    """Case-insensitive containment of each group's alternatives in the normalised answer.

    Groups are reported by their first alternative.

    >>> check_key_facts("Add a **NAT gateway** [1]", [["NAT gateway", "NAT"], ["public IP"]])
    FactCheck(found=('NAT gateway',), missing=('public IP',))
    """
    text = normalize(answer)
    found, missing = [], []
    for group in key_facts:
        (found if any(normalize(alt) in text for alt in group) else missing).append(group[0])
    return FactCheck(tuple(found), tuple(missing))


@dataclass(frozen=True)
class CitationCheck:
    """Citations against the gold span: ``on_gold[i]`` says whether citation i overlaps it."""

    on_gold: tuple[bool, ...]

    @property
    def precision(self) -> float | None:
        return sum(self.on_gold) / len(self.on_gold) if self.on_gold else None

    @property
    def hit(self) -> bool:
        return any(self.on_gold)


def check_citations(citations: Sequence, source: str | None, gold_lines: tuple[int, int]) -> CitationCheck:
    """Which citations (objects with ``source``, ``start_line``, ``end_line``) overlap the gold lines.

    ``source`` None matches any source (a dataset over a one-file corpus without ``source``).
    """
    first, last = gold_lines
    return CitationCheck(tuple(
        (source is None or c.source == source) and spans_overlap(c.start_line, c.end_line, first, last)
        for c in citations
    ))


def statements(answer: str) -> list[str]:
    """The checkable statements of a markdown answer: sentences of its lines, code blocks whole.

    Lead-ins ending with ':' ("From your notes on X:") and fragments without a letter or
    digit are skipped.

    >>> statements("From your notes on **S3**:\\n\\n- Versioning keeps old copies. It costs more. [1]")
    ['Versioning keeps old copies.', 'It costs more.']
    """
    out: list[str] = []
    fence: list[str] | None = None
    for line in answer.split("\n"):
        if _FENCE.match(line):
            if fence is None:
                fence = []
            else:
                if any(_WORDY.search(f) for f in fence):
                    out.append("\n".join(fence))
                fence = None
            continue
        if fence is not None:
            fence.append(line)
            continue
        line = _MARKER.sub("", _HEADING.sub("", _LIST.sub("", line))).strip()
        for sentence in _SENTENCE.split(line):
            sentence = sentence.strip()
            if sentence and _WORDY.search(sentence) and not sentence.endswith(":"):
                out.append(sentence)
    if fence:  # an unclosed fence still says something
        out.append("\n".join(fence))
    return out


@dataclass
class Grounding:
    """How many statements the cited text supports, and by which test."""

    statements: int = 0
    verbatim: int = 0
    by_embedding: int = 0
    unsupported: list[str] = field(default_factory=list)

    @property
    def supported(self) -> int:
        return self.verbatim + self.by_embedding

    @property
    def score(self) -> float | None:
        return self.supported / self.statements if self.statements else None


def _pieces(cited_texts: Sequence[str]) -> list[str]:
    pieces = []
    for text in cited_texts:
        for line in text.split("\n"):
            pieces.extend(s for s in _SENTENCE.split(normalize(line)) if _WORDY.search(s))
    return pieces


def check_grounding(
    answer: str,
    cited_texts: Sequence[str],
    embed: Callable[[str], np.ndarray] | None = None,
    threshold: float = GROUNDING_THRESHOLD,
) -> Grounding:
    """Share of ``answer``'s statements supported by ``cited_texts`` (see ``GROUNDING_METHOD``).

    Deliberate simplification: a statement may be supported by any citation of the
    answer, not only the one its ``[n]`` marker names (the extractive answerer puts one
    marker per bullet, on its last line).

    Args:
        answer: the answer markdown.
        cited_texts: the quoted text of every citation.
        embed: text → normalised vector; None = verbatim test only.
        threshold: cosine similarity at or above which a statement counts as supported.
    """
    result = Grounding()
    haystack = " ".join(normalize(t) for t in cited_texts)
    pending = []
    for statement in statements(answer):
        result.statements += 1
        if haystack and normalize(statement) in haystack:
            result.verbatim += 1
        else:
            pending.append(statement)
    if not pending:
        return result
    pieces = _pieces(cited_texts) if embed is not None else []
    if not pieces:
        result.unsupported.extend(pending)
        return result
    matrix = np.stack([embed(p) for p in pieces])
    for statement in pending:
        best = float(np.max(matrix @ embed(normalize(statement))))
        if best >= threshold:
            result.by_embedding += 1
        else:
            result.unsupported.append(statement)
    return result
