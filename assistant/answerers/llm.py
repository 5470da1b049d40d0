"""LLM answer backends through langchain: ``openai`` (any OpenAI-compatible endpoint) and ``ollama``.

``LLMAnswerer`` sends the prompt of ``answerers.prompt`` to the chat models of
``answerers.backends``, streams the reply within ``Deadlines``, and ``finalize``
checks every ``[n]`` marker against the sources that were actually sent
(``assistant.citations``).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from assistant.answer import Citation
from assistant.answerers.backends import (
    CONDENSE_TIMEOUT, example_url, ollama_models, ollama_root, openai_models, unavailable,
)
from assistant.answerers.prompt import (
    CONDENSE_PROMPT, answer_reserve, build_messages, clean_condensed, condense_message, fit_sources,
)
from assistant.citations import validate_citations
from assistant.errors import BackendNotConfiguredError, BackendUnavailableError
from assistant.settings import LLM_BACKENDS, Settings

__all__ = ["LLMAnswerer", "Deadlines"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Deadlines:
    """How long one streamed answer may take (seconds) and how long it may be (tokens).

    Attributes:
        first_token: from the request to the first token of the answer (the endpoint reads the prompt first).
        stall: between two tokens once the answer flows.
        total: for the whole answer; a steady but slow stream stops here.
        max_tokens: the answer's length cap, sent to the endpoint and also counted here
            (one streamed chunk is at least one token), in case the endpoint ignores it.

    >>> Deadlines.from_settings(Settings(llm_timeout=30))
    Deadlines(first_token=30.0, stall=10.0, total=60.0, max_tokens=1024)
    """

    first_token: float
    stall: float
    total: float
    max_tokens: int

    @classmethod
    def from_settings(cls, settings: Settings) -> Deadlines:
        """``llm_timeout`` for the first token, a third of it between tokens, twice it in all.

        A third: a local CPU model emits a token every 0.05–0.5 s, so 10 s of silence mid-answer means it is
        stuck. Twice: the user waited ``llm_timeout`` at most for the first word, and as long again for the
        rest (a 1 B model writes the 1024-token cap in ~40 s on our 2-core machines); past that the extractive
        answer, ready in milliseconds, serves them better.
        """
        timeout = settings.llm_timeout
        return cls(timeout, timeout / 3, timeout * 2, answer_reserve(settings.llm_context_tokens))


_CHUNK, _ERROR, _END = "chunk", "error", "end"


class LLMAnswerer:
    """Answers from numbered sources with a chat model behind langchain.

    Build it with ``from_settings``, which makes the langchain chat models; one
    answerer serves every question sent to its endpoint (it keeps no per-call state).

    Args:
        name: ``"openai"`` or ``"ollama"``.
        settings: endpoint, model, timeout and context budget.
        chat: the streaming chat model for answers.
        condense_chat: the chat model for follow-up rewrites (shorter timeout).
    """

    def __init__(self, name: str, settings: Settings, chat, condense_chat) -> None:
        self.name = name
        self.settings = settings
        self.endpoint = ollama_root(settings.llm_base_url) if name == "ollama" else settings.llm_base_url
        self.deadlines = Deadlines.from_settings(settings)
        self._chat = chat
        self._condense_chat = condense_chat

    @classmethod
    def from_settings(cls, backend: str, settings: Settings) -> LLMAnswerer:
        """Build the ``backend`` answerer from ``settings``.

        Raises:
            BackendNotConfiguredError: the base URL or model is missing (the message says how to set them).
        """
        if backend not in LLM_BACKENDS:
            raise ValueError(f"unknown LLM backend {backend!r}; choose one of {', '.join(LLM_BACKENDS)}")
        missing = [name for name, value in (("NOTES_ASSISTANT_LLM_BASE_URL", settings.llm_base_url),
                                            ("NOTES_ASSISTANT_LLM_MODEL", settings.llm_model)) if not value]
        if missing:
            raise BackendNotConfiguredError(
                f"the {backend} backend needs {' and '.join(missing)} (e.g. {example_url(backend)} and a model name; "
                f"CLI: --llm-base-url/--llm-model), or use the extractive backend"
            )
        build = openai_models if backend == "openai" else ollama_models
        try:
            chat, condense_chat = build(settings)
        except ImportError as e:
            raise BackendNotConfiguredError(f"the {backend} backend needs langchain-{backend}: pip install langchain-{backend}") from e
        except Exception as e:  # e.g. pydantic rejecting a malformed URL
            raise BackendNotConfiguredError(f"cannot configure the {backend} backend: {str(e).splitlines()[0]}") from e
        logger.info("llm backend=%s url=%s model=%s", backend, settings.llm_base_url, settings.llm_model)
        return cls(backend, settings, chat, condense_chat)

    def fit_sources(self, question: str, condensed: str, results: Sequence) -> list:
        """``fit_sources`` with this model's context budget (the sources the prompt will number)."""
        return fit_sources(question, condensed, results, self.settings.llm_context_tokens)

    def condense(self, question: str, history: Sequence[dict]) -> str:
        """The usual condense-question step: ``question`` rewritten to stand alone ("" if the model gave nothing).

        Raises:
            BackendUnavailableError: the endpoint failed or timed out.
        """
        messages = [("system", CONDENSE_PROMPT), ("human", condense_message(question, history))]
        try:
            reply = self._condense_chat.invoke(messages)
        except Exception as e:  # every endpoint failure becomes one clear error
            raise self._unavailable(e, min(self.settings.llm_timeout, CONDENSE_TIMEOUT)) from e
        condensed = clean_condensed(reply.text)
        logger.info("llm condense backend=%s question=%r condensed=%r", self.name, question, condensed)
        return condensed

    def stream(self, question: str, condensed: str, results: Sequence) -> Iterator[str]:
        """Yield the answer's text deltas as the model produces them, within ``self.deadlines``.

        The endpoint is read on a helper thread and this generator waits on it with
        the deadline that applies next, so a deadline holds even while a read blocks.
        When the generator stops early (a deadline, an error, the consumer closing it
        because the user went away), the helper closes the HTTP stream at its next
        chunk, or when its read times out (``llm_timeout``) if none comes.

        Raises:
            BackendUnavailableError: refused, HTTP error, timeout, a deadline of
                ``self.deadlines`` passed, a broken or truncated stream, an empty
                answer, or no room for sources.
        """
        sources = self.fit_sources(question, condensed, results)
        if not sources:
            raise BackendUnavailableError(
                f"no room for sources in {self.settings.llm_context_tokens} context tokens; "
                "raise NOTES_ASSISTANT_LLM_CONTEXT_TOKENS"
            )
        limits = self.deadlines
        events: queue.SimpleQueue = queue.SimpleQueue()
        stop = threading.Event()
        started = last_token = time.monotonic()
        threading.Thread(target=self._read_stream, args=(build_messages(question, condensed, sources), events, stop),
                         name="llm-stream", daemon=True).start()
        tokens, finish = 0, ""
        try:
            while True:
                deadline, failure = started + limits.total, f"{self.endpoint} took over {limits.total:g}s to answer"
                if not tokens and started + limits.first_token < deadline:
                    deadline, failure = started + limits.first_token, f"no answer from {self.endpoint} within {limits.first_token:g}s"
                elif tokens and last_token + limits.stall < deadline:
                    deadline, failure = last_token + limits.stall, f"{self.endpoint} stalled: no token for {limits.stall:g}s"
                try:
                    kind, value = events.get(timeout=max(0.0, deadline - time.monotonic()))
                except queue.Empty:
                    raise BackendUnavailableError(failure) from None
                if kind == _END:
                    break
                if kind == _ERROR:
                    raise self._unavailable(value, self.settings.llm_timeout) from value
                meta = value.response_metadata or {}
                finish = finish or str(meta.get("finish_reason") or meta.get("done_reason") or "")
                finish = finish or ("stop" if meta.get("done") else "")
                if value.text:
                    tokens += 1
                    last_token = time.monotonic()
                    if tokens > limits.max_tokens:  # the endpoint ignored the cap we sent
                        finish = "length"
                        break
                    yield value.text
        finally:
            stop.set()  # the reader closes the HTTP stream: the endpoint stops generating for nobody
        if finish == "length":
            raise BackendUnavailableError(f"the answer from {self.endpoint} passed the {limits.max_tokens}-token cap")
        if not finish:
            raise BackendUnavailableError(f"the reply from {self.endpoint} ended before the answer was complete")
        if not tokens:
            raise BackendUnavailableError(f"{self.endpoint} returned an empty answer")

    def _read_stream(self, messages: list, events: queue.SimpleQueue, stop: threading.Event) -> None:
        """The helper thread of ``stream``: chat chunks (or the error) into ``events`` until the end or ``stop``."""
        chunks = self._chat.stream(messages)
        try:
            for chunk in chunks:
                if stop.is_set():
                    return
                events.put((_CHUNK, chunk))
            events.put((_END, None))
        except Exception as e:  # noqa: BLE001 - handed to the consumer, which turns it into one clear error
            events.put((_ERROR, e))
        finally:
            chunks.close()

    def finalize(self, text: str, results: Sequence) -> tuple[str, list[Citation], list[str]]:
        """Validate the streamed ``text`` against ``results`` (source n = ``results[n-1]``).

        Returns:
            (safe markdown answer, citations used, dropped markers such as ``"[7]"``).
        """
        answer, citations, dropped = validate_citations(text, results)
        if dropped:
            logger.info("llm backend=%s dropped_markers=%s", self.name, ",".join(dropped))
        return answer, citations, dropped

    def _unavailable(self, error: BaseException, timeout: float) -> BackendUnavailableError:
        return unavailable(error, self.name, self.endpoint, self.settings, timeout)
