"""Should we answer at all? Evidence from the question's terms, BM25 and dense similarity.

Cosine alone cannot separate "an AWS topic absent from the notes" from a real
question (paraphrased answerable questions score as low as ~0.39 while absent
AWS services reach ~0.5 on all-MiniLM-L6-v2). So three rules combine signals;
any one firing means abstain:

1. **absent name** — the question names something (a capitalised word that is not
   a sentence start, ≥ 3 letters) that occurs nowhere in the notes, and the best
   dense match is below ``name_cosine`` (a strong match means the notes cover it
   under another name).
2. **absent vocabulary** — at least ``missing_ratio`` of the question's content
   terms occur nowhere in the notes and the best dense match is below
   ``vocab_cosine``.
3. **no evidence** — best cosine below ``floor_cosine`` and best BM25 below
   ``floor_bm25``.

The thresholds are a ``Thresholds`` value passed in. ``DEFAULT_THRESHOLDS`` is only
the starting point, set by hand on the bundled AWS notes; ``notes-assistant tune``
calibrates them on questions made from the user's own notes
(``assistant.calibration``, README "Self-calibration").
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from assistant.followup import content_words
from vectorstore.bm25 import analyze

__all__ = ["Evidence", "Thresholds", "DEFAULT_THRESHOLDS", "Signals", "signals", "assess", "abstains"]


@dataclass(frozen=True)
class Thresholds:
    """Where each rule fires (see the module docstring)."""

    name_cosine: float = 0.60
    vocab_cosine: float = 0.45
    missing_ratio: float = 0.25
    floor_cosine: float = 0.30
    floor_bm25: float = 5.0

    def to_json(self) -> dict:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


DEFAULT_THRESHOLDS = Thresholds()  # hand-set on the bundled notes; ``notes-assistant tune`` replaces them

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


@dataclass(frozen=True)
class Signals:
    """What the rules look at, for one question: its terms against the notes, and the best matches."""

    top_cosine: float
    top_bm25: float
    terms: int
    missing_terms: tuple[str, ...]
    missing_names: tuple[str, ...]

    @property
    def missing_ratio(self) -> float:
        return len(self.missing_terms) / self.terms if self.terms else 0.0


@dataclass(frozen=True)
class Evidence(Signals):
    """The signals behind an abstain/answer decision and the rules that fired (shown in JSON and evals)."""

    reasons: tuple[str, ...] = ()

    @property
    def abstain(self) -> bool:
        return bool(self.reasons)


def signals(question: str, top_cosine: float, top_bm25: float, doc_freq) -> Signals:
    """The rules' inputs for ``question``; ``doc_freq``: term → number of chunks containing it.

    Terms are the question's content words (``followup.content_words``: no "what", "how", "my"),
    analysed as BM25 does: a short note that never says "what" must not make "What is SnapStart?"
    half unknown.

    >>> s = signals("What is SnapStart?", 0.3, 1.0, {"snapstart": 1})
    >>> s.terms, s.missing_terms
    (1, ())
    """
    terms = analyze(" ".join(content_words(question)))
    missing = tuple(t for t in dict.fromkeys(terms) if not doc_freq.get(t))
    names = tuple(
        name for name in dict.fromkeys(_names(question))
        if (parts := analyze(name)) and all(not doc_freq.get(p) for p in parts)
    )
    return Signals(top_cosine, top_bm25, len(terms), missing, names)


def abstains(t: Thresholds, top_cosine, top_bm25, terms, missing_ratio, has_names):
    """The rules as one formula, on scalars or on numpy arrays alike (``tune`` sweeps thresholds with it).

    Returns ``(no_terms, absent_name, absent_vocabulary, no_evidence)``; any one true means abstain.
    """
    no_terms = terms == 0
    absent_name = has_names & (top_cosine < t.name_cosine)
    absent_vocabulary = (terms > 0) & (missing_ratio >= t.missing_ratio) & (top_cosine < t.vocab_cosine)
    no_evidence = (top_cosine < t.floor_cosine) & (top_bm25 < t.floor_bm25)
    return no_terms, absent_name, absent_vocabulary, no_evidence


def assess(question: str, top_cosine: float, top_bm25: float, doc_freq,
           thresholds: Thresholds = DEFAULT_THRESHOLDS) -> Evidence:
    """Decide whether the notes cover ``question``.

    Args:
        question: the (condensed) retrieval query.
        top_cosine: best dense cosine similarity among retrieved chunks (0 if none).
        top_bm25: best BM25 score (0 if none).
        doc_freq: mapping term → number of chunks containing it (BM25 analysis).
        thresholds: where the rules fire (the calibrated ones in the product).
    """
    s = signals(question, top_cosine, top_bm25, doc_freq)
    fired = abstains(thresholds, s.top_cosine, s.top_bm25, s.terms, s.missing_ratio, bool(s.missing_names))
    messages = (
        "no searchable words in the question",
        f"names not in the notes: {', '.join(s.missing_names)}",
        f"{len(s.missing_terms)} of {s.terms} terms not in the notes",
        f"weak matches (cosine {top_cosine:.2f}, bm25 {top_bm25:.1f})",
    )
    reasons = tuple(message for message, fire in zip(messages, fired) if fire)
    return Evidence(top_cosine, top_bm25, s.terms, s.missing_terms, s.missing_names, reasons)
