"""``Assistant``: question (+ history) → retrieval → abstain or answer with citations.

The one entry point the CLI, the web app and the evals share. ``ask`` returns an
``Answer``; ``stream`` yields text deltas and then the final ``Answer``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Sequence

import numpy as np

from assistant.abstain import Evidence, assess
from assistant.answer import NOT_COVERED, RESET, Answer, Citation, says_not_covered, viewer_link
from assistant.engine import Engine
from assistant.answerers.extractive import ExtractiveAnswerer
from assistant.followup import condense
from assistant.settings import Settings
from assistant.staleness import NoteLines, stale_citations

__all__ = ["Assistant", "BACKENDS"]

logger = logging.getLogger(__name__)

BACKENDS = ("extractive", "openai", "ollama")


def _ms(since: float) -> float:
    return (time.perf_counter() - since) * 1000


class Assistant:
    """Answers questions over the notes of ``engine``.

    Args:
        engine: the notes engine (index + retrieval).
        settings: defaults for backend, top-k and the LLM endpoint.
    """

    def __init__(self, engine: Engine, settings: Settings | None = None,
                 on_stale: Callable[[], None] | None = None) -> None:
        self.engine = engine
        self.settings = settings or engine.settings
        self.on_stale = on_stale  # told when a cited line no longer matches its note (the app re-indexes)
        self._extractive: ExtractiveAnswerer | None = None
        self._llms: dict[tuple, object] = {}
        self._note_lines = NoteLines(self.settings.notes_path)

    @property
    def extractive(self) -> ExtractiveAnswerer:
        if self._extractive is None:
            self._extractive = ExtractiveAnswerer(self.engine.unit_embeddings)
        return self._extractive

    def llm(self, backend: str, settings: Settings | None = None):
        """The LLM answerer for ``backend`` (built once per endpoint/model)."""
        from assistant.answerers.llm import LLMAnswerer

        s = settings or self.settings
        key = (backend, s.llm_base_url, s.llm_model, s.llm_api_key, s.llm_timeout, s.llm_context_tokens)
        if key not in self._llms:
            self._llms[key] = LLMAnswerer.from_settings(backend, s)
        return self._llms[key]

    # -- public API ------------------------------------------------------------
    def ask(self, question: str, history: Sequence[dict] = (), backend: str | None = None,
            top_k: int | None = None, settings: Settings | None = None) -> Answer:
        """Answer ``question``; ``history`` is a list of ``{"role", "content"}`` turns."""
        answer = None
        for item in self.stream(question, history, backend, top_k, settings):
            if isinstance(item, Answer):
                answer = item
        assert answer is not None
        return answer

    def stream(self, question: str, history: Sequence[dict] = (), backend: str | None = None,
               top_k: int | None = None, settings: Settings | None = None) -> Iterator[str | Answer]:
        """Yield answer text deltas, then the final ``Answer``.

        If an LLM fails after streaming some text, ``RESET`` is yielded before the
        extractive fallback's text: consumers discard what they showed so far.

        ``settings`` overrides the assistant's settings for this call (the web UI's
        per-session backend/endpoint fields).
        """
        s = settings or self.settings
        backend = backend or s.backend
        if backend not in BACKENDS:
            raise ValueError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
        started = time.perf_counter()
        timings: dict[str, float] = {}
        notices: list[str] = []
        question = " ".join(str(question).split())
        if len(question) > s.max_question_chars:
            question = question[: s.max_question_chars]
            notices.append(f"Your question was cut to {s.max_question_chars} characters.")

        llm = None
        if backend != "extractive":
            llm = self.llm(backend, s)
        t = time.perf_counter()
        scope = self.engine.narrow(question)  # "#tag" / "tag:x" narrow the search and leave the query text
        if scope.notice:
            notices.append(scope.notice)
        condensed = condense(scope.query, history)
        if llm is not None and history:
            try:
                condensed = llm.condense(scope.query, history) or condensed
            except Exception as e:  # noqa: BLE001 - any backend failure degrades to the deterministic rewrite
                # The answer call would hit the same endpoint: go offline for the whole turn.
                notices.append(f"{backend} backend unavailable ({_reason(e)}); showing the offline extractive answer instead.")
                logger.info("llm backend=%s condense failed: %s", backend, e)
                llm = None
        timings["condense"] = _ms(t)

        t = time.perf_counter()
        engine = self.engine
        query_vector = engine.embed_query(condensed)
        calibration = engine.calibration  # once per question: fusion and thresholds from the same file
        results = engine.search(condensed, top_k or s.top_k, query_vector=query_vector, sources=scope.sources,
                                calibration=calibration)
        snapshot = engine.retriever.snapshot
        top_cosine = max((r.cosine for r in results if r.cosine is not None), default=0.0)
        if results and engine.retriever.keyword_only:
            top_cosine = self._keyword_only_cosine(query_vector, results)
        top_bm25 = max((r.bm25 for r in results if r.bm25 is not None), default=0.0)
        evidence = assess(condensed, top_cosine, top_bm25, snapshot.bm25.doc_freq, calibration.thresholds)
        timings["retrieve"] = _ms(t)

        t = time.perf_counter()
        citations: list[Citation] = []
        flagged = False
        used_backend = backend if llm is not None else "extractive"
        if evidence.abstain or not results:
            text = _not_covered(results)
            abstained = True
            yield text
        else:
            abstained = False
            text = ""
            if llm is not None:
                try:
                    # The sources the prompt numbers (best-ranked that fit the context): [n] is sources[n-1].
                    sources = llm.fit_sources(question, condensed, results)
                    for delta in llm.stream(question, condensed, sources):
                        text += delta
                        yield delta
                    text, citations, dropped = llm.finalize(text, sources)
                    if dropped:
                        notices.append(f"Removed citation markers that point to no source: {', '.join(dropped)}.")
                    if not citations and says_not_covered(text):
                        text, abstained = _not_covered(results), True
                    elif not citations:
                        flagged = True
                        notices.append("This answer cites none of your notes; treat it with care.")
                except Exception as e:  # noqa: BLE001 - the endpoint's failure must not reach the user raw
                    notices.append(f"{backend} backend unavailable ({_reason(e)}); showing the offline extractive answer instead.")
                    logger.info("llm backend=%s failed: %s", backend, e)
                    if text:
                        yield RESET  # streaming consumers drop the partial LLM text
                    text, llm, used_backend = "", None, "extractive"
            if llm is None:
                draft = self.extractive.answer(condensed, query_vector, results, snapshot.bm25.doc_freq, len(snapshot),
                                               snapshot.whole_notes)
                text, citations = draft.answer, draft.citations
                if not citations:
                    text, abstained = _not_covered(results), True
                yield text
        stale = stale_citations(self._note_lines, citations)
        if stale:
            notices.append(self._stale_notice(stale, citations))
        if engine.retriever.keyword_only:
            notices.append("Keyword search only while your notes are being indexed for the first time; "
                           "answers improve when it finishes.")
        timings["answer"] = _ms(t)
        timings["total"] = _ms(started)
        yield Answer(
            question=question,
            answer=text,
            citations=citations,
            abstained=abstained,
            backend=used_backend,
            condensed_query=condensed,
            timings_ms=timings,
            notices=notices,
            flagged=flagged,
            evidence=_evidence_json(evidence),
            stale_citations=stale,
        )

    def _keyword_only_cosine(self, query_vector, results) -> float:
        """Best cosine of the query with the top keyword results, embedded now (abstention needs it).

        Only while the first index is built: three chunks through the numpy encoder and
        the content-hash cache, whose entries the background run then finds ready.
        """
        from vectorstore.text import embed_text

        texts = [embed_text(r.heading, r.text) for r in results[:3]]
        vectors = np.asarray(self.engine.unit_embeddings.embed_documents(texts), dtype=np.float32)
        query = np.asarray(query_vector, dtype=np.float32)
        return float(max(vectors @ query)) if len(vectors) else 0.0

    def _stale_notice(self, stale: list[int], citations: list[Citation]) -> str:
        where = ", ".join(f"[{c.n}] {c.location}" for c in citations if c.n in stale)
        notice = f"Your notes changed after they were indexed: {where} no longer match the file"
        if self.on_stale is None:
            return notice + "; run notes-assistant index to refresh."
        self.on_stale()
        return notice + "; re-indexing now — ask again in a moment."


def _reason(error: Exception) -> str:
    text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return text[:160]


def _not_covered(results) -> str:
    lines = [NOT_COVERED]
    closest = results[:3]
    if closest:
        lines.append("\nThe closest sections are:")
        for r in closest:
            title = (r.heading or r.source).replace("[", "\\[").replace("]", "\\]")
            lines.append(f"- [{title}]({viewer_link(r.source, r.start_line, r.end_line)}) ({r.source}:{r.start_line}-{r.end_line})")
    return "\n".join(lines)


def _evidence_json(evidence: Evidence) -> dict:
    return {
        "top_cosine": round(evidence.top_cosine, 4),
        "top_bm25": round(evidence.top_bm25, 3),
        "missing_terms": list(evidence.missing_terms),
        "missing_names": list(evidence.missing_names),
        "reasons": list(evidence.reasons),
    }
