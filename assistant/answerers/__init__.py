"""The answerers: ``extractive`` (offline, quotes the notes) and ``llm`` (an LLM endpoint), with the
LLM's ``prompt`` and its chat-model ``backends``."""

__all__ = ["backends", "extractive", "llm", "prompt"]
