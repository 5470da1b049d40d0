"""The chat models behind the LLM backends (langchain ``ChatOpenAI`` / ``ChatOllama``) and their failures.

``langchain_openai`` / ``langchain_ollama`` are imported only when a model is
built, so the CLI's extractive path never pays for them (several seconds each).
``unavailable`` turns any endpoint failure into one short line.
"""

from __future__ import annotations

import logging
import os
import re

from assistant.answerers.prompt import answer_reserve
from assistant.errors import BackendUnavailableError
from assistant.settings import Settings

__all__ = ["CONDENSE_TIMEOUT", "CONDENSE_MAX_TOKENS", "example_url", "openai_models", "ollama_models", "ollama_root",
           "unavailable"]

logger = logging.getLogger(__name__)

CONDENSE_TIMEOUT = 10.0  # seconds at most for the rewrite: it is a few tokens, a slow endpoint should fail fast
CONDENSE_MAX_TOKENS = 96

def example_url(backend: str) -> str:
    return "http://127.0.0.1:11434" if backend == "ollama" else "http://127.0.0.1:8080/v1"


def openai_models(settings: Settings):
    from langchain_openai import ChatOpenAI

    common = {
        "base_url": settings.llm_base_url,
        "model": settings.llm_model,
        "api_key": settings.llm_api_key or os.environ.get("OPENAI_API_KEY") or "not-needed",
        "max_retries": 0,
    }
    if not re.match(r"o\d", settings.llm_model.lower()):  # o-series reasoning models reject temperature=0
        common["temperature"] = 0
    chat = ChatOpenAI(**common, timeout=settings.llm_timeout, streaming=True,
                      max_tokens=answer_reserve(settings.llm_context_tokens))
    condense = ChatOpenAI(**common, timeout=min(settings.llm_timeout, CONDENSE_TIMEOUT), streaming=False,
                          max_tokens=CONDENSE_MAX_TOKENS)
    return chat, condense


def ollama_root(url: str) -> str:
    """Ollama's native API lives at the server root; forgive a URL copied from the /v1 setup.

    >>> ollama_root("http://127.0.0.1:11434/v1/")
    'http://127.0.0.1:11434'
    """
    return re.sub(r"/(?:v1|api)$", "", url.rstrip("/"))


def ollama_models(settings: Settings):
    from langchain_ollama import ChatOllama

    base_url = ollama_root(settings.llm_base_url)
    headers = {"Authorization": f"Bearer {settings.llm_api_key}"} if settings.llm_api_key else {}
    common = {"base_url": base_url, "model": settings.llm_model, "temperature": 0}

    def client(timeout: float) -> dict:
        return {"timeout": timeout, **({"headers": headers} if headers else {})}

    chat = ChatOllama(**common, num_ctx=settings.llm_context_tokens,
                      num_predict=answer_reserve(settings.llm_context_tokens),
                      client_kwargs=client(settings.llm_timeout))
    condense = ChatOllama(**common, num_ctx=settings.llm_context_tokens, num_predict=CONDENSE_MAX_TOKENS,
                          client_kwargs=client(min(settings.llm_timeout, CONDENSE_TIMEOUT)))
    return chat, condense


def _chain(error: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    while error is not None and error not in seen:
        seen.append(error)
        error = error.__cause__ or error.__context__
    return seen


def _is(error: BaseException, *names: str) -> bool:
    return any(name in cls.__name__ for cls in type(error).__mro__ for name in names)


def unavailable(error: BaseException, backend: str, url: str, settings: Settings, timeout: float) -> BackendUnavailableError:
    """One line saying what went wrong with the endpoint at ``url``."""
    chain = _chain(error)
    logger.info("llm backend=%s url=%s error=%s: %s", backend, url, type(error).__name__, error)
    if any(_is(e, "RemoteProtocolError", "IncompleteRead") for e in chain):
        return BackendUnavailableError(f"{url} closed the connection before the answer was complete")
    if any(_is(e, "Timeout") or isinstance(e, TimeoutError) for e in chain):
        return BackendUnavailableError(f"no reply from {url} within {timeout:g}s")
    status = next((s for e in chain if isinstance(s := getattr(e, "status_code", None), int)), None)
    if status is not None:
        hint = ""
        if status == 404:
            hint = f" (check the model name {settings.llm_model!r} and the base URL"
            hint += "; OpenAI-compatible URLs usually end in /v1)" if backend == "openai" else ")"
        elif status in (401, 403):
            hint = " (check NOTES_ASSISTANT_LLM_API_KEY)"
        return BackendUnavailableError(f"{url} answered HTTP {status}{hint}")
    if any(_is(e, "ConnectError", "APIConnectionError") or isinstance(e, ConnectionError) for e in chain):
        return BackendUnavailableError(f"cannot connect to {url}; is the server running?")
    return BackendUnavailableError(f"malformed reply from {url} ({type(error).__name__})")
