"""A BM25 index (bm25s) over chunk texts with their heading paths, plus corpus term statistics."""

from __future__ import annotations

import logging
from collections import Counter
from functools import lru_cache

import numpy as np

__all__ = ["Bm25Index", "analyze", "analyze_many"]


@lru_cache(maxsize=1)
def _stemmer():
    import Stemmer

    return Stemmer.Stemmer("english")


@lru_cache(maxsize=4096)
def _analyze_cached(text: str) -> tuple[str, ...]:
    import bm25s

    tokens = bm25s.tokenize([text], stopwords="en", stemmer=_stemmer(), return_ids=False, show_progress=False)
    return tuple(tokens[0])


def analyze_many(texts: list[str]) -> list[list[str]]:
    """``analyze`` for many texts in one bm25s call (much faster than one call per text)."""
    import bm25s

    return bm25s.tokenize(list(texts), stopwords="en", stemmer=_stemmer(), return_ids=False, show_progress=False)


def analyze(text: str) -> list[str]:
    """Lower-cased, stop-word-free, stemmed terms — the same analysis BM25 uses.

    >>> analyze("Lambda functions inside the VPC")
    ['lambda', 'function', 'insid', 'vpc']
    """
    return list(_analyze_cached(text))


class Bm25Index:
    """BM25 over a fixed list of texts; ``doc_freq`` tells in how many texts a term occurs."""

    def __init__(self, texts: list[str]) -> None:
        import bm25s

        # bm25s sets its own logger to DEBUG on import; keep its chatter out of our logs.
        logging.getLogger("bm25s").setLevel(logging.WARNING)
        self.size = len(texts)
        analyzed = analyze_many(texts) if texts else []
        self.doc_freq: Counter[str] = Counter()
        for terms in analyzed:
            self.doc_freq.update(set(terms))
        self._retriever = None
        if self.size and self.doc_freq:
            vocab: dict[str, int] = {term: i for i, term in enumerate(self.doc_freq)}
            ids = [[vocab[t] for t in terms] for terms in analyzed]
            self._retriever = bm25s.BM25()
            self._retriever.index(bm25s.tokenization.Tokenized(ids=ids, vocab=vocab), show_progress=False)

    def scores(self, query: str) -> np.ndarray:
        """BM25 score of every text for ``query`` (zeros when no query term is in the corpus)."""
        terms = [t for t in analyze(query) if t in self.doc_freq]
        if self._retriever is None or not terms:
            return np.zeros(self.size, dtype=np.float32)
        return self._retriever.get_scores(terms)

    def top(self, query: str, k: int) -> list[tuple[int, float]]:
        """Indices and scores of the ``k`` best texts with a positive score, best first."""
        scores = self.scores(query)
        if not scores.size:
            return []
        k = min(k, scores.size)
        best = np.argpartition(-scores, k - 1)[:k]
        ranked = sorted(((int(i), float(scores[i])) for i in best if scores[i] > 0), key=lambda p: (-p[1], p[0]))
        return ranked
