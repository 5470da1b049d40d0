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
import threading
from collections import OrderedDict
from collections.abc import Container
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from assistant.answer import Citation
from assistant.citations import quote_unit
from ingest import code_line_ranges, count_tokens, split_units
from vectorstore import SearchResult
from vectorstore.bm25 import analyze
from vectorstore.text import embed_text

__all__ = ["ExtractiveAnswerer", "Draft", "Unit", "unit_texts_of", "chunk_unit_texts", "units_of", "quoted_runs", "wants_fix"]

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
    return [text for d in documents for text in chunk_unit_texts(d.page_content, d.metadata)]


def chunk_unit_texts(text: str, metadata: dict) -> list[str]:
    """``unit_texts_of`` for one chunk given as text + metadata (as a search snapshot holds it)."""
    return [embed_text(metadata["heading"], unit) for _, _, unit in units_of(text, metadata["start_line"])]


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

    def select(self, question: str, query_vector: np.ndarray, results: list[SearchResult], doc_freq, corpus_size: int,
               whole_notes: Container[str] = frozenset()) -> list[Unit]:
        """The chosen units, best-first by MMR (see module doc).

        When the best unit's chunk is a whole short note (``whole_notes``) that fits the token budget,
        the answer quotes all of it: a short note is one answer — its problem, its fix, its caveat.
        """
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
        if wants_fix(question):
            scores = _favour_fixes(units, scores)
        top = units[int(np.argmax(scores))].result
        if top.source in whole_notes:
            note = [u for u in units if u.result is top and not _LINK_ONLY.match(u.text)]
            if sum(count_tokens(u.text) for u in note) <= self.max_tokens:
                return note
        return [units[i] for i in self._pick(units, scores, vectors)]

    def _pick(self, units: list[Unit], scores: np.ndarray, vectors: np.ndarray) -> list[int]:
        """MMR over the units scoring ≥ 75 % of the best; a lead-in is only taken with what it introduces."""
        follower = {i: i + 1 for i in range(len(units) - 1)
                    if units[i + 1].result is units[i].result and _is_lead_in(units[i], units[i + 1])}
        leads_without_follower = {i for i, u in enumerate(units) if u.text.rstrip().endswith(":") and i not in follower}
        chosen: list[int] = []
        picks = 0  # a lead-in and what it introduces count as one unit
        best = float(scores.max())
        budget = self.max_tokens
        candidates = [i for i in np.argsort(-scores) if scores[i] >= 0.75 * best and i not in leads_without_follower
                      and not _LINK_ONLY.match(units[i].text)]
        while candidates and picks < self.max_units:
            def mmr(i: int) -> float:
                redundancy = max((float(vectors[i] @ vectors[j]) for j in chosen), default=0.0)
                return MMR_LAMBDA * scores[i] - (1 - MMR_LAMBDA) * redundancy

            pick = max(candidates, key=mmr)
            candidates.remove(pick)
            if chosen and max(float(vectors[pick] @ vectors[j]) for j in chosen) > 0.92:
                continue  # near-duplicate of a chosen unit
            group = [pick] + ([follower[pick]] if pick in follower and follower[pick] not in chosen else [])
            tokens = sum(count_tokens(units[i].text) for i in group)
            if chosen and tokens > budget:
                continue
            chosen.extend(group)
            picks += 1
            budget -= tokens
            candidates = [i for i in candidates if i not in group]
        return chosen

    def answer(self, question: str, query_vector, results: list[SearchResult], doc_freq, corpus_size: int,
               whole_notes: Container[str] = frozenset()) -> Draft:
        """Render the selected units under a lead line; one citation per contiguous run of quoted lines.

        Units of one chunk that follow each other in the note (only blank lines between them)
        share a citation; a gap of unquoted lines starts a new one, so a citation never covers
        lines the answer does not quote.
        """
        chosen = self.select(question, query_vector, results, doc_freq, corpus_size, whole_notes)
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
                blocks.extend(quote_unit(unit.text, n, _is_code_block(unit)) for unit in run)
        headings = list(dict.fromkeys(c.heading for c in citations))
        lead = "From your notes on " + " and ".join(f"**{h}**" for h in headings[:3]) + ":"
        return Draft(lead + "\n\n" + "\n\n".join(blocks), citations)


# Questions that ask how / why / what to do (the fix is the point); keyword queries count too.
_FIX_QUESTION = re.compile(
    r"\b(?:how|why|way|ways|what now|what next|what should|what can i|what do i|is there (?:a|any)|can i|could i|"
    r"should i|fix|avoid|prevent|stop|get rid|workaround|instead|command|flag|option)\b|(?:^|[.?!]\s)\W*(?:can|could)\b", re.I)
_WH_WORD = re.compile(r"\b(?:what|which|who|whom|whose|when|where|why|how|is|are|does|do|can)\b|\?", re.I)
# Cues in the prose just before a code block: it shows the fix, or it shows the setup / an example output.
_ACTION_CUE = re.compile(
    r"\b(?:run|ran|use|used|using|try|tried|set|update|add|change|remove|delete|install|configure|enable|disable|"
    r"pass|call|create|instead|fix|fixed|solution|solve|trick|way|better|like so|this way|do this|can|tell|make|"
    r"switch|specify|define|provide|include|append|prefix|invoke|execute|type|hit|press|need to|have to)\b"
    r"|^\W*to\s+\w+", re.I)
_EXAMPLE_CUE = re.compile(
    r"\b(?:output|outputs|result|results|returns|returned|prints|printed|shows|showed|see|saw|look|looks|notice|"
    r"error|errors|fails|failed|failing|for instance|for example|e\.g\.|here is|here's|inspect|inspecting|"
    r"figure out|find out|check|current|currently|before|originally|was getting)\b", re.I)
# A fix scores (FIX_FLOOR + FIX_GAIN × evidence) × its chunk's best unit, + FIX_CONTEXT × the score of the
# prose before it (which fix: the one after the problem that matches the question). Tune split of both golden sets.
# Only in chunks whose best unit reaches FIX_CHUNK_SHARE × the best unit (lifting every command quoted other notes'
# commands: 0 → 0.847 key-fact recall on the TIL tune half, 0.8 → 0.878, 1.0 (best chunk only) → 0.847).
FIX_FLOOR, FIX_GAIN, FIX_CONTEXT, FIX_CHUNK_SHARE = 0.9, 0.15, 0.05, 0.8


def wants_fix(question: str) -> bool:
    """True when the question asks how / why / what to do, or is a bare keyword query.

    >>> wants_fix("How do I stop a container from starting on boot?"), wants_fix("What is S3 versioning?")
    (True, False)
    >>> wants_fix("git init default branch name main"), wants_fix("In what format is the TTL stored?")
    (True, False)
    """
    return bool(_FIX_QUESTION.search(question)) or not _WH_WORD.search(question)


_STRONG_CUE = re.compile(r"\b(?:use|run|ran|set|pass|call|try|instead|fix|solution|trick)\b", re.I)
# Inline code that reads as a command, a flag or a config line: `git rm --cached x`, `--pdb`, `core.pager = ''`.
_COMMAND = re.compile(r"`(?:-{1,2}\w[\w-]*(?:[ =][^`\n]*)?|[a-z][\w.-]*\s[^`\n]+|[\w.-]+\s*[=:]\s*[^`\n]+)`")
# A unit that is only a link ("[source](https://…)"): its words are the heading's, it says nothing itself.
_LINK_ONLY = re.compile(r"^\s*(?:[-*+]\s+)?(?:\[[^\]]{0,40}\]\([^)]*\)|<?https?://\S+>?)[\s.]*$")


def _fix_evidence(units: list[Unit], i: int) -> float:
    """How surely unit ``i`` carries the fix, from 0 to 1.

    A code block after an action cue ("I ran this:", "use", "then update it to…:") is 1, one with no
    cue 0.5, one after a setup or example-output cue ("here is", "I can see", "the output:") 0; prose
    is 1 when it names a command or flag in inline code with an action cue ("run it with the `--pdb` flag").
    """
    unit = units[i]
    if _ends_in_code(unit) and not _is_code_block(unit):  # "Hit" + an indented command, cut as one unit
        return 0.0 if _EXAMPLE_CUE.search(unit.text) else 1.0 if _ACTION_CUE.search(unit.text) else 0.5
    if not _is_code_block(unit):
        cued = _ACTION_CUE.search(unit.text) and not _EXAMPLE_CUE.search(unit.text)
        named = _COMMAND.search(unit.text) or (_STRONG_CUE.search(unit.text) and "`" in unit.text)
        return 1.0 if cued and named else 0.0
    lead = units[i - 1] if i and units[i - 1].result is unit.result and not _is_code_block(units[i - 1]) else None
    if lead is None:
        return 0.5
    if _EXAMPLE_CUE.search(lead.text):
        return 0.0
    return 1.0 if _ACTION_CUE.search(lead.text) else 0.5


def _favour_fixes(units: list[Unit], scores: np.ndarray) -> np.ndarray:
    """Lift the units that carry a fix to (or above) the best unit of their chunk.

    Why: a how-to note states the problem in words close to the question, then gives the
    fix as a command or code block that shares few words with it; by similarity alone the
    answer quoted the problem and example output and stopped before the fix (issue 11).
    A fix scores (FIX_FLOOR + FIX_GAIN × evidence) × its chunk's best, plus FIX_CONTEXT × the
    best score of the prose just before it (up to two units, not past another code block), so
    among several commands the one after the problem that matches the question comes first.
    """
    chunk_best: dict[str, float] = {}
    for unit, score in zip(units, scores):
        chunk_best[unit.result.chunk_id] = max(chunk_best.get(unit.result.chunk_id, 0.0), float(score))
    best = float(scores.max())
    out = scores.copy()
    for i, unit in enumerate(units):
        if chunk_best[unit.result.chunk_id] < FIX_CHUNK_SHARE * best or (evidence := _fix_evidence(units, i)) == 0:
            continue
        context = 0.0 if _is_code_block(unit) else float(scores[i])
        for j in (i - 1, i - 2):
            if j < 0 or units[j].result is not unit.result or _is_code_block(units[j]):
                break
            context = max(context, float(scores[j]))
        top = chunk_best[unit.result.chunk_id]
        out[i] = max(out[i], top * (FIX_FLOOR + FIX_GAIN * evidence) + FIX_CONTEXT * context)
    return out


def _is_lead_in(unit: Unit, following: Unit) -> bool:
    """``unit`` introduces ``following``: it ends with ":", or it is an unfinished sentence before code ("Hit" ```…```)."""
    text = unit.text.rstrip()
    if text.endswith(":"):
        return True
    return not _is_code_block(unit) and _is_code_block(following) and text[-1:] not in ".!?)\"'`*_]>|"


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


@lru_cache(maxsize=4096)
def _code_lines(text: str, start_line: int) -> frozenset[int]:
    """Note line numbers inside code blocks of a chunk's ``text`` that starts at ``start_line``."""
    return frozenset(n for a, b in code_line_ranges(text) for n in range(a + start_line - 1, b + start_line))


def _ends_in_code(unit: Unit) -> bool:
    return unit.end_line in _code_lines(unit.result.text, unit.result.start_line)


def _is_code_block(unit: Unit) -> bool:
    """The unit is code in its chunk's own parse (an indented paragraph of a list item is not)."""
    code = _code_lines(unit.result.text, unit.result.start_line)
    lines = unit.text.split("\n")
    numbered = [unit.start_line + i for i, line in enumerate(lines) if line.strip()]
    return bool(numbered) and all(n in code for n in numbered)
