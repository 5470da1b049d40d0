"""Should we answer at all? Evidence from the question's terms, BM25 and dense similarity.

Cosine alone cannot separate "an AWS topic absent from the notes" from a real
question (paraphrased answerable questions score as low as ~0.39 while absent
AWS services reach ~0.5 on all-MiniLM-L6-v2). So three rules combine signals;
any one firing means abstain:

1. **absent name** — the question names something (a capitalised word that is not
   a sentence start, ≥ 3 letters) that occurs nowhere in the notes, and the best
   dense match is below ``NAME_COSINE`` (a strong match means the notes cover it
   under another name).
2. **absent vocabulary** — at least ``MISSING_RATIO`` of the question's content
   terms occur nowhere in the notes and the best dense match is below
   ``VOCAB_COSINE``.
3. **no evidence** — best cosine below ``FLOOR_COSINE`` and best BM25 below
   ``FLOOR_BM25``.

Thresholds were calibrated on ``evals/datasets/golden.jsonl`` (207 answerable,
15 unanswerable questions); see README "Abstention calibration".
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from vectorstore.bm25 import analyze

__all__ = ["Evidence", "assess", "NAME_COSINE", "VOCAB_COSINE", "MISSING_RATIO", "FLOOR_COSINE", "FLOOR_BM25"]

NAME_COSINE = 0.60
VOCAB_COSINE = 0.45
MISSING_RATIO = 0.25
FLOOR_COSINE = 0.30
FLOOR_BM25 = 5.0

@dataclass(frozen=True)
class Evidence:
    """The signals behind an abstain/answer decision (shown in JSON and evals)."""

    top_cosine: float
    top_bm25: float
    content_terms: int
    missing_terms: tuple[str, ...] = ()
    missing_names: tuple[str, ...] = ()
    reasons: tuple[str, ...] = field(default_factory=tuple)

    @property
    def abstain(self) -> bool:
        return bool(self.reasons)


def _names(question: str) -> list[str]:
    """Capitalised words that are not the first word of a sentence.

    >>> _names("How do I use Amazon Braket? Is it cheap")
    ['Amazon', 'Braket']
    """
    names = []
    sentence_start = True
    for match in re.finditer(r"[A-Za-z][A-Za-z0-9-]*|[.?!:]", question):
        token = match.group()
        if token in ".?!:":
            sentence_start = True
            continue
        if not sentence_start and token[0].isupper() and len(token) >= 3:
            names.append(token)
        sentence_start = False
    return names


def assess(question: str, top_cosine: float, top_bm25: float, doc_freq) -> Evidence:
    """Decide whether the notes cover ``question``.

    Args:
        question: the (condensed) retrieval query.
        top_cosine: best dense cosine similarity among retrieved chunks (0 if none).
        top_bm25: best BM25 score (0 if none).
        doc_freq: mapping term → number of chunks containing it (BM25 analysis).
    """
    terms = analyze(question)
    missing = tuple(t for t in dict.fromkeys(terms) if not doc_freq.get(t))
    names = tuple(
        name for name in dict.fromkeys(_names(question))
        if (parts := analyze(name)) and all(not doc_freq.get(p) for p in parts)
    )
    reasons = []
    if not terms:
        reasons.append("no searchable words in the question")
    if names and top_cosine < NAME_COSINE:
        reasons.append(f"names not in the notes: {', '.join(names)}")
    if terms and len(missing) / len(terms) >= MISSING_RATIO and top_cosine < VOCAB_COSINE:
        reasons.append(f"{len(missing)} of {len(terms)} terms not in the notes")
    if top_cosine < FLOOR_COSINE and top_bm25 < FLOOR_BM25:
        reasons.append(f"weak matches (cosine {top_cosine:.2f}, bm25 {top_bm25:.1f})")
    return Evidence(top_cosine, top_bm25, len(terms), missing, names, tuple(reasons))
