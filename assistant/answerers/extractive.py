"""The LLM-free answerer: pick the best bullets of the best sections, cite each.

From the top retrieved chunks it cuts *answer units* (a bullet with its
sub-bullets, a paragraph, a whole code block), scores each against the question
— cosine similarity of the embeddings, IDF-weighted term overlap, and the rank
of its chunk — picks a few with maximal marginal relevance so two units never
say the same thing, and renders them in note order under a one-line lead. The
only words it adds are the lead template; everything else is the notes' own
markdown.
"""

from __future__ import annotations

import hashlib
import math
import re
import textwrap
import threading
from collections import OrderedDict
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from assistant.answer import Citation
from ingest import code_line_ranges, count_tokens, split_units
from vectorstore import SearchResult
from vectorstore.bm25 import analyze
from vectorstore.text import embed_text

__all__ = ["ExtractiveAnswerer", "Draft", "Unit", "unit_texts_of", "units_of", "quoted_runs", "render_unit"]

# Weights of the unit score; calibrated on the golden set (README "Extractive answerer").
W_COSINE, W_OVERLAP, W_RANK = 0.55, 0.30, 0.15
MMR_LAMBDA = 0.75


@dataclass(frozen=True)
class Unit:
    result: SearchResult
    start_line: int
    end_line: int
    text: str


@dataclass
class Draft:
    """An answer before the assistant wraps it: markdown + citations."""

    answer: str
    citations: list[Citation]


def unit_texts_of(documents) -> list[str]:
    """What is embedded for the answer units of chunk ``documents``: heading path, then the unit's lines.

    The same formula as a chunk's (``vectorstore.text.embed_text``), so one cache serves both.
    """
    return [
        embed_text(d.metadata["heading"], text)
        for d in documents
        for _, _, text in units_of(d.page_content, d.metadata["start_line"])
    ]


_HTML_COMMENT = re.compile(r"^\s*<!--.*?-->\s*$", re.S)


@lru_cache(maxsize=8192)
def units_of(text: str, start_line: int) -> tuple[tuple[int, int, str], ...]:
    """Answer units of a chunk (see ``ingest.split_units``), minus blank ones and bare HTML comments.

    Cached: the same top chunks come back for many questions, and cutting them
    re-parses markdown.
    """
    return tuple(u for u in split_units(text, start_line) if u[2].strip() and not _HTML_COMMENT.match(u[2]))


class _VectorCache:
    """A bounded, thread-safe, in-memory cache of unit embeddings keyed by text hash.

    It sits in front of ``embeddings`` (normally the on-disk content-hash cache that
    indexing pre-fills with every unit, so a query embeds nothing but itself).
    """

    def __init__(self, capacity: int = 20000) -> None:
        self.capacity = capacity
        self._items: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def embed(self, embedder, texts: list[str]) -> np.ndarray:
        keys = [hashlib.sha1(t.encode("utf-8")).hexdigest() for t in texts]
        with self._lock:
            missing = [i for i, k in enumerate(keys) if k not in self._items]
        if missing:
            vectors = np.asarray(embedder.embed_documents([texts[i] for i in missing]), dtype=np.float32)
            with self._lock:
                for i, vector in zip(missing, vectors):
                    self._items[keys[i]] = vector
                while len(self._items) > self.capacity:
                    self._items.popitem(last=False)
        with self._lock:
            return np.stack([self._items[k] for k in keys])


class ExtractiveAnswerer:
    """Answers by quoting the notes.

    Args:
        embeddings: a langchain ``Embeddings`` for answer units; the engine passes its
            content-hash cache, which indexing pre-fills.
        max_units: most units in one answer.
        max_tokens: token budget of the quoted units.
        sections: how many top chunks are mined for units.
    """

    name = "extractive"

    def __init__(self, embeddings, max_units: int = 4, max_tokens: int = 320, sections: int = 5) -> None:
        self.embeddings = embeddings
        self.max_units = max_units
        self.max_tokens = max_tokens
        self.sections = sections
        self._cache = _VectorCache()

    def units(self, results: list[SearchResult]) -> list[Unit]:
        out = []
        for result in results[: self.sections]:
            for start, end, text in units_of(result.text, result.start_line):
                out.append(Unit(result, start, end, text))
        return out

    def select(self, question: str, query_vector: np.ndarray, results: list[SearchResult], doc_freq, corpus_size: int) -> list[Unit]:
        """The chosen units, best-first by MMR (see module doc)."""
        units = self.units(results)
        if not units:
            return []
        vectors = self._cache.embed(self.embeddings, [embed_text(u.result.heading, u.text) for u in units])
        cosine = vectors @ np.asarray(query_vector, dtype=np.float32)

        def idf(term: str) -> float:
            return math.log(1 + corpus_size / (1 + doc_freq.get(term, 0)))

        q_terms = {t for t in analyze(question) if doc_freq.get(t)}
        q_weight = sum(idf(t) for t in q_terms) or 1.0
        rank_of = {r.chunk_id: i for i, r in enumerate(results)}
        scores = []
        for unit, cos in zip(units, cosine):
            u_terms = set(analyze(f"{unit.result.heading} {unit.text}"))
            overlap = sum(idf(t) for t in q_terms & u_terms) / q_weight
            prior = 1.0 / (1.0 + 0.5 * rank_of[unit.result.chunk_id])
            scores.append(W_COSINE * float(cos) + W_OVERLAP * overlap + W_RANK * prior)
        scores = np.asarray(scores)

        chosen: list[int] = []
        best = float(scores.max())
        budget = self.max_tokens
        candidates = [i for i in np.argsort(-scores) if scores[i] >= 0.75 * best]
        while candidates and len(chosen) < self.max_units:
            def mmr(i: int) -> float:
                redundancy = max((float(vectors[i] @ vectors[j]) for j in chosen), default=0.0)
                return MMR_LAMBDA * scores[i] - (1 - MMR_LAMBDA) * redundancy

            pick = max(candidates, key=mmr)
            candidates.remove(pick)
            if chosen and max(float(vectors[pick] @ vectors[j]) for j in chosen) > 0.92:
                continue  # near-duplicate of a chosen unit
            tokens = count_tokens(units[pick].text)
            if chosen and tokens > budget:
                continue
            chosen.append(pick)
            budget -= tokens
        return [units[i] for i in chosen]

    def answer(self, question: str, query_vector, results: list[SearchResult], doc_freq, corpus_size: int) -> Draft:
        """Render the selected units under a lead line; one citation per contiguous run of quoted lines.

        Units of one chunk that follow each other in the note (only blank lines between them)
        share a citation; a gap of unquoted lines starts a new one, so a citation never covers
        lines the answer does not quote.
        """
        chosen = self.select(question, query_vector, results, doc_freq, corpus_size)
        if not chosen:
            return Draft("", [])
        # Group by chunk, groups in order of their best unit, units in note order.
        groups: dict[str, list[Unit]] = {}
        for unit in chosen:
            groups.setdefault(unit.result.chunk_id, []).append(unit)
        citations: list[Citation] = []
        blocks: list[str] = []
        for units in groups.values():
            units.sort(key=lambda u: u.start_line)
            for run in quoted_runs(units):
                n = len(citations) + 1
                result = run[0].result
                citations.append(Citation(
                    n, result.source, result.heading_path, run[0].start_line, run[-1].end_line,
                    "\n".join(u.text for u in run),
                ))
                blocks.extend(render_unit(unit.text, n, _is_code_block(unit)) for unit in run)
        headings = list(dict.fromkeys(c.heading for c in citations))
        lead = "From your notes on " + " and ".join(f"**{h}**" for h in headings[:3]) + ":"
        return Draft(lead + "\n\n" + "\n\n".join(blocks), citations)


def quoted_runs(units: list[Unit]) -> list[list[Unit]]:
    """Units of one chunk (in note order) → runs with nothing but blank lines between neighbours.

    >>> from vectorstore import SearchResult
    >>> r = SearchResult(rank=1, chunk_id="c", source="n.md", heading_path=("H",), start_line=1, end_line=5,
    ...                  score=1.0, score_kind="rrf", text="a\\n\\nb\\nc\\nd")
    >>> [[u.start_line for u in run] for run in quoted_runs([Unit(r, 1, 1, "a"), Unit(r, 3, 3, "b"), Unit(r, 5, 5, "d")])]
    [[1, 3], [5]]
    """
    runs: list[list[Unit]] = []
    for unit in units:
        if runs and _only_blank_between(runs[-1][-1], unit):
            runs[-1].append(unit)
        else:
            runs.append([unit])
    return runs


def _only_blank_between(before: Unit, after: Unit) -> bool:
    lines = before.result.text.split("\n")
    offset = before.result.start_line
    between = lines[before.end_line + 1 - offset : after.start_line - offset]
    return after.start_line > before.end_line and all(not line.strip() for line in between)


def _one_code_block(text: str) -> bool:
    """True when ``text`` is exactly one fenced or indented code block."""
    code = code_line_ranges(text)
    return len(code) == 1 and code[0][0] == 1 and code[0][1] >= len(text.split("\n"))


@lru_cache(maxsize=4096)
def _code_lines(text: str, start_line: int) -> frozenset[int]:
    """Note line numbers inside code blocks of a chunk's ``text`` that starts at ``start_line``."""
    return frozenset(n for a, b in code_line_ranges(text) for n in range(a + start_line - 1, b + start_line))


def _is_code_block(unit: Unit) -> bool:
    """The unit is code in its chunk's own parse (an indented paragraph of a list item is not)."""
    code = _code_lines(unit.result.text, unit.result.start_line)
    lines = unit.text.split("\n")
    numbered = [unit.start_line + i for i, line in enumerate(lines) if line.strip()]
    return bool(numbered) and all(n in code for n in numbered)


_LIST_ITEM = re.compile(r"^(?:[-*+]|\d{1,9}[.)])(?: |$)")


def render_unit(text: str, n: int, code_block: bool | None = None) -> str:
    """A unit as markdown ending with its ``[n]`` marker — never inside code, never breaking a table.

    Prose becomes a list item; a code block stays a code block (an indented one is fenced, since
    it loses its indentation here) with the marker on its own line after it. ``code_block`` says
    whether the unit is one code block in its note (None: judge from ``text`` alone).

    >>> render_unit("- **a** b", 1)
    '- **a** b [1]'
    >>> render_unit("plain sentence.", 2)
    '- plain sentence. [2]'
    >>> render_unit("    make build", 3)
    '```\\nmake build\\n```\\n\\n[3]'
    >>> render_unit("Run this:\\n```\\nmake\\n```", 4)
    '- Run this:\\n  ```\\n  make\\n  ```\\n\\n  [4]'
    """
    marker = f"[{n}]"
    if code_block is None:
        code_block = _one_code_block(text.strip("\n"))
    body = textwrap.dedent(text).strip("\n")
    if code_block:
        # The whole unit is one code block: keep it a block, fence it if it was indented.
        if not body.lstrip().startswith(("```", "~~~")):
            fence = "`" * max(3, 1 + max((len(m) for m in re.findall(r"`+", body)), default=0))
            body = f"{fence}\n{textwrap.dedent(body)}\n{fence}"
        return f"{body}\n\n{marker}"
    if _LIST_ITEM.match(body):
        indent = " " * (len(_LIST_ITEM.match(body).group()) if body[0].isdigit() else 2)
    else:
        body, indent = "- " + body.replace("\n", "\n  "), "  "
    last = len(body.split("\n"))
    ends_in_code = any(a <= last <= b for a, b in code_line_ranges(body))
    ends_in_table = body.rstrip().endswith("|") or body.split("\n")[-1].lstrip().startswith("|")
    if ends_in_code or ends_in_table:
        return f"{body}\n\n{indent}{marker}"
    return f"{body} {marker}"
