"""Conversation helpers of the web chat: the ``/api/ask`` body, example questions, history, export.

A turn of the chat is a plain dict (it lives in the browser session's state):
``{"kind": "answer", **Answer.to_json(with_text=True)}`` or
``{"kind": "search", "question": ..., "results": [SearchResult.to_json(), ...]}``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timezone
from typing import Literal

from assistant.settings import Backend

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = [
    "AskRequest", "ChatTurn", "MAX_BODY_BYTES", "MAX_QUESTION_CHARS", "MAX_TURN_CHARS", "MAX_TURNS",
    "MAX_HISTORY_CHARS", "replace_lone_surrogates", "example_questions", "chat_history", "conversation_markdown",
]

# ``POST /api/ask`` bodies above this are refused (413) before they are parsed.
MAX_BODY_BYTES = 256 * 1024
# What a request may carry. These are transport bounds, not the product rule: a question longer than
# ``settings.max_question_chars`` (2,000 by default) is still answered, cut, with a notice. Sized so the
# largest valid request fits inside MAX_BODY_BYTES even with every character \u-escaped (6 bytes, what
# json.dumps sends for non-ASCII text): (8,000 + 32,000) × 6 = 240 KB plus the JSON around it.
MAX_QUESTION_CHARS = 8_000
MAX_TURN_CHARS = 8_000
MAX_TURNS = 40
MAX_HISTORY_CHARS = 32_000

_SURROGATE = re.compile("[\ud800-\udfff]")


def replace_lone_surrogates(text: str) -> tuple[str, int]:
    """``text`` with unpaired UTF-16 surrogates replaced by U+FFFD, and how many there were.

    A browser's JSON can carry them (``"\\ud800"``); they are not text (no UTF-8 encoding, tokenizers
    refuse them). A pair spelled as two code points becomes the one character it encodes.

    >>> replace_lone_surrogates("a\\ud800b"), replace_lone_surrogates("\\ud83d\\ude00")
    (('a�b', 1), ('😀', 0))
    """
    if not _SURROGATE.search(text):
        return text, 0
    joined = text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
    return joined, joined.count("\ufffd") - text.count("\ufffd")


def _valid_text(value: str) -> str:
    if _SURROGATE.search(value):
        raise ValueError("contains an unpaired UTF-16 surrogate, which is not text")
    return value


class ChatTurn(BaseModel):
    """One earlier turn of the conversation (what ``Assistant.ask`` takes as history)."""

    model_config = ConfigDict(extra="forbid")

    role: Literal["user", "assistant"]
    content: str = Field(max_length=MAX_TURN_CHARS)

    _text = field_validator("content")(_valid_text)


class AskRequest(BaseModel):
    """``POST /api/ask`` body; the reply is ``Answer.to_json(with_text=True)``.

    Unknown fields are refused (422), an LLM endpoint URL above all: the server's owner configures those.
    """

    model_config = ConfigDict(extra="forbid")

    question: str = Field(max_length=MAX_QUESTION_CHARS)
    history: list[ChatTurn] = Field(default_factory=list, max_length=MAX_TURNS)
    backend: Backend | None = None
    top_k: int | None = Field(None, ge=1, le=100)

    _text = field_validator("question")(_valid_text)

    @model_validator(mode="after")
    def _history_size(self) -> "AskRequest":
        if sum(len(turn.content) for turn in self.history) > MAX_HISTORY_CHARS:
            raise ValueError(f"the history is longer than {MAX_HISTORY_CHARS} characters in all")
        return self


def example_questions(metadatas: Iterable[Mapping], count: int = 4) -> list[str]:
    """Questions built from the notes' own sub-headings (two to six words), spread over the notes.

    >>> example_questions([{"heading": "AWS > Lambda cold starts"}, {"heading": "AWS"}], 2)
    ['What do my notes say about Lambda cold starts?']
    """
    leaves: list[str] = []
    for meta in metadatas:
        path = meta.get("heading", "").split(" > ")
        leaf = path[-1].strip()
        if len(path) >= 2 and 2 <= len(leaf.split()) <= 6 and len(leaf) <= 40 and leaf.isprintable() \
                and leaf not in leaves:
            leaves.append(leaf)
    picked = [leaves[i * len(leaves) // count] for i in range(count)] if len(leaves) >= count else leaves
    return [f"What do my notes say about {leaf}?" for leaf in picked]


def chat_history(turns: Sequence[Mapping]) -> list[dict]:
    """The ``{"role", "content"}`` history ``Assistant.stream`` wants (search-only turns are left out)."""
    out: list[dict] = []
    for turn in turns:
        if turn.get("kind") == "answer":
            out += [{"role": "user", "content": turn["question"]}, {"role": "assistant", "content": turn["answer"]}]
    return out


def conversation_markdown(turns: Sequence[Mapping], now: datetime | None = None) -> str:
    """A conversation as a markdown document (the export download).

    ``turns`` are dicts: ``{"kind": "answer", **Answer.to_json(with_text=True)}``
    or ``{"kind": "search", "question": ..., "results": [SearchResult.to_json()]}``.
    """
    stamp = (now or datetime.now(timezone.utc)).strftime("%Y-%m-%d %H:%M UTC")
    lines = ["# Conversation with my notes", "", f"_Exported {stamp}._", ""]
    for turn in turns:
        lines += [f"## {turn['question']}", ""]
        if turn.get("kind") == "search":
            for r in turn.get("results", []):
                heading = " › ".join(r["heading_path"]) or r["source"]
                lines.append(f"{r['rank']}. {heading} (`{r['source']}:{r['start_line']}-{r['end_line']}`)")
            lines.append("")
            continue
        if turn.get("condensed_query") and turn["condensed_query"] != turn["question"]:
            lines += [f"_Searched for: {turn['condensed_query']}_", ""]
        lines += [turn["answer"], ""]
        for notice in turn.get("notices", []):
            lines += [f"> {notice}", ""]
        if turn.get("citations"):
            lines += ["**Sources**", ""]
            for c in turn["citations"]:
                heading = " › ".join(c["heading_path"]) or c["source"]
                lines.append(f"- [{c['n']}] {heading} (`{c['source']}:{c['start_line']}-{c['end_line']}`)")
            lines.append("")
    return "\n".join(lines).rstrip() + "\n"
