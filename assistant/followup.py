"""Follow-up questions without an LLM: carry the conversation's subject into the query.

"and how is it billed?" after "How does Lambda provisioned concurrency work?"
retrieves with "and how is it billed? (Lambda provisioned concurrency work)".
"""

from __future__ import annotations

import re
from collections.abc import Sequence

__all__ = ["condense", "needs_context"]

_PRONOUN_LED = re.compile(
    r"^\s*(and|also|but|so|then|what about|how about|and what|and how|what of|same for|"
    r"it|its|it's|they|them|their|this|that|these|those|there|which|why|how come)\b",
    re.I,
)
_PRONOUN = re.compile(r"\b(it|its|it's|they|them|their|this|that|these|those|one|ones|he|she)\b", re.I)
_STOP = set(
    "a an the of to in on for and or but is are was were be been do does did how what why when where which who "
    "whom can could should would will shall may might must i me my we our you your it its they them their this "
    "that these those there here with about from by at as into than then so if not no yes also just please tell "
    "explain show give know want need use using used work works".split()
)


def needs_context(question: str) -> bool:
    """True when a question leans on the previous turn (short or pronoun-led).

    >>> needs_context("and how is it billed?")
    True
    >>> needs_context("How does DynamoDB on-demand capacity get billed?")
    False
    """
    words = re.findall(r"[\w'-]+", question)
    content = [w for w in words if w.lower() not in _STOP]
    return bool(_PRONOUN_LED.match(question)) or len(content) <= 2 or (len(words) <= 8 and bool(_PRONOUN.search(question)))


def _subject(text: str) -> str:
    words = re.findall(r"[\w'-]+", text)
    return " ".join(w for w in words if w.lower() not in _STOP)


def _condense_one(question: str, context: str) -> str:
    if not context or not needs_context(question):
        return question
    subject = _subject(context)
    return f"{question} ({subject})" if subject else question


def condense(question: str, history: Sequence[dict]) -> str:
    """The retrieval query for ``question`` given earlier turns (deterministic).

    Earlier user turns are condensed in order, so a chain of follow-ups keeps
    the subject of the turn that introduced it.

    >>> condense("and how is it billed?", [{"role": "user", "content": "How does Lambda provisioned concurrency work?"}])
    'and how is it billed? (Lambda provisioned concurrency)'
    """
    context = ""
    for turn in history or ():
        if isinstance(turn, dict) and turn.get("role") == "user" and str(turn.get("content", "")).strip():
            context = _condense_one(str(turn["content"]), context)
    return _condense_one(question, context)
