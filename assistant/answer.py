"""What an answer is: markdown with ``[n]`` markers, the citations they point to, and how it was made."""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import quote

__all__ = ["Citation", "Answer", "RESET", "NOT_COVERED", "viewer_link", "says_not_covered"]

NOT_COVERED = "Your notes don't seem to cover this."


class _Reset:
    """Streamed when text already sent must be dropped (an LLM failed mid-answer)."""

    def __repr__(self) -> str:
        return "RESET"


RESET = _Reset()


@dataclass(frozen=True)
class Citation:
    """Where ``[n]`` points: a line span of a note and the quoted text."""

    n: int
    source: str
    heading_path: tuple[str, ...]
    start_line: int
    end_line: int
    text: str

    @property
    def heading(self) -> str:
        return " › ".join(self.heading_path) or self.source

    @property
    def location(self) -> str:
        return f"{self.source}:{self.start_line}-{self.end_line}"

    def to_json(self, with_text: bool = False) -> dict:
        out = {
            "n": self.n,
            "source": self.source,
            "heading_path": list(self.heading_path),
            "start_line": self.start_line,
            "end_line": self.end_line,
        }
        if with_text:
            out["text"] = self.text
        return out


@dataclass
class Answer:
    """One reply. ``answer`` is markdown whose ``[n]`` markers index ``citations``."""

    question: str
    answer: str
    citations: list[Citation]
    abstained: bool
    backend: str
    condensed_query: str
    timings_ms: dict[str, float] = field(default_factory=dict)
    notices: list[str] = field(default_factory=list)  # e.g. "LLM unreachable: fell back to extractive"
    flagged: bool = False  # an LLM answer without one valid citation
    evidence: dict = field(default_factory=dict)
    stale_citations: list[int] = field(default_factory=list)  # n of citations whose lines changed on disk

    def to_json(self, with_text: bool = False) -> dict:
        """The ``ask --json`` contract (``with_text`` adds each citation's quoted text)."""
        out = {
            "question": self.question,
            "answer": self.answer,
            "abstained": self.abstained,
            "backend": self.backend,
            "condensed_query": self.condensed_query,
            "citations": [c.to_json(with_text) for c in self.citations],
            "timings_ms": {k: round(v, 1) for k, v in self.timings_ms.items()},
        }
        if self.notices:
            out["notices"] = list(self.notices)
        if self.flagged:
            out["flagged"] = True
        if self.stale_citations:
            out["stale_citations"] = list(self.stale_citations)
        return out


def viewer_link(source: str, start_line: int, end_line: int) -> str:
    """The web viewer URL of a line span (``/notes/<source>?lines=A-B#LA``)."""
    return f"/notes/{quote(source)}?lines={start_line}-{end_line}#L{start_line}"


def says_not_covered(text: str) -> bool:
    """True when ``text`` uses the "not covered" sentence (any apostrophe style), e.g. from an LLM.

    >>> says_not_covered("Your notes don\u2019t seem to cover this."), says_not_covered("S3 is storage.")
    (True, False)
    """
    norm = (text or "").replace("\u2019", "'").lower()
    return "notes don't seem to cover this" in norm or "notes do not seem to cover this" in norm
