"""Conversation helpers of the web chat: the ``/api/ask`` body, example questions, history, export.

A turn of the chat is a plain dict (it lives in the browser session's state):
``{"kind": "answer", **Answer.to_json(with_text=True)}`` or
``{"kind": "search", "question": ..., "results": [SearchResult.to_json(), ...]}``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timezone
from typing import Literal

from assistant.settings import Backend

from pydantic import BaseModel, Field

__all__ = ["AskRequest", "ChatTurn", "example_questions", "chat_history", "conversation_markdown"]


class ChatTurn(BaseModel):
    """One earlier turn of the conversation (what ``Assistant.ask`` takes as history)."""

    role: Literal["user", "assistant"]
    content: str = Field(max_length=100_000)


class AskRequest(BaseModel):
    """``POST /api/ask`` body; the reply is ``Answer.to_json(with_text=True)``."""

    question: str = Field(max_length=100_000)
    history: list[ChatTurn] = Field(default_factory=list, max_length=100)
    backend: Backend | None = None
    top_k: int | None = Field(None, ge=1, le=100)


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
