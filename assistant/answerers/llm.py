"""LLM answer backends through langchain: ``openai`` (any OpenAI-compatible endpoint) and ``ollama``.

``LLMAnswerer`` sends the prompt of ``answerers.prompt`` to the chat models of
``answerers.backends``, streams the reply, and ``finalize`` checks every ``[n]``
marker against the sources that were actually sent (``assistant.citations``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence

from assistant.answer import Citation
from assistant.answerers.backends import (
    CONDENSE_TIMEOUT, example_url, ollama_models, ollama_root, openai_models, unavailable,
)
from assistant.answerers.prompt import CONDENSE_PROMPT, build_messages, clean_condensed, condense_message, fit_sources
from assistant.citations import validate_citations
from assistant.errors import BackendNotConfiguredError, BackendUnavailableError
from assistant.settings import LLM_BACKENDS, Settings

__all__ = ["LLMAnswerer", "STREAM_DEADLINE_FACTOR"]

logger = logging.getLogger(__name__)

STREAM_DEADLINE_FACTOR = 4  # a whole answer may take this many llm_timeouts (the timeout itself is per read)


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
        """Yield the answer's text deltas as the model produces them.

        Raises:
            BackendUnavailableError: refused, HTTP error, timeout, a broken or
                truncated stream, an empty answer, or no room for sources.
        """
        sources = self.fit_sources(question, condensed, results)
        if not sources:
            raise BackendUnavailableError(
                f"no room for sources in {self.settings.llm_context_tokens} context tokens; "
                "raise NOTES_ASSISTANT_LLM_CONTEXT_TOKENS"
            )
        timeout = self.settings.llm_timeout
        deadline = time.monotonic() + timeout * STREAM_DEADLINE_FACTOR
        finished = produced = False
        chunks = self._chat.stream(build_messages(question, condensed, sources))
        try:
            for chunk in chunks:
                meta = chunk.response_metadata or {}
                finished = finished or bool(meta.get("finish_reason") or meta.get("done_reason") or meta.get("done"))
                delta = chunk.text
                if delta:
                    produced = True
                    yield delta
                if time.monotonic() > deadline:
                    raise BackendUnavailableError(f"{self.endpoint} took over {timeout * STREAM_DEADLINE_FACTOR:g}s to answer")
        except BackendUnavailableError:
            raise
        except Exception as e:  # every endpoint failure becomes one clear error
            raise self._unavailable(e, timeout) from e
        finally:
            chunks.close()
        if not finished:
            raise BackendUnavailableError(f"the reply from {self.endpoint} ended before the answer was complete")
        if not produced:
            raise BackendUnavailableError(f"{self.endpoint} returned an empty answer")

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
