"""Follow-up questions without an LLM: decide what a question leans on, and say it in the query.

Each user turn is read against the condensed query of the turn before it:

- **swap** — "what about SQS?", "and for DynamoDB?": same aspect, new subject. The earlier
  question's last run of names is replaced by the new subject, the rest is the aspect kept:
  "How is DynamoDB billed?" → "and for Aurora?" → "How is Aurora billed?".
- **pronoun** — "it", "they", "this feature"… with no subject of its own before it, whatever
  the question's length: the earlier subject is appended, "and how is it billed? (Lambda
  provisioned concurrency)".
- **elliptic** / **drill-down** — "and the maximum?", "And how long can messages stay?":
  too little of its own, or a continuation ("and", "but", "so") without a subject; the earlier
  subject is appended the same way.
- **new** — anything with a subject of its own ("Also, how do I tag an EC2 instance?",
  "Which storage class is cheapest for archives?") is searched as asked: the old subject
  is never dragged into a new topic.

A *name* is a word written like one: an acronym or a capital inside the sentence (``SQS``,
``DynamoDB``, ``Glacier``), or letters with digits (``S3``, ``EC2``). A deliberate
simplification: a lowercase product name ("what about sqs?") reads as an elliptic
follow-up, not a swap.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

__all__ = ["condense", "needs_context", "followup_kind", "content_words", "written_like_a_name", "KINDS"]

KINDS = ("swap", "pronoun", "elliptic", "drill_down", "new")

_STOP = set(
    "a an the of to in on for and or but is are was were be been do does did how what why when where which who "
    "whom can could should would will shall may might must i me my we our you your it its they them their this "
    "that these those there here with about from by at as into than then so if not no yes also just please tell "
    "explain show give know want need use using used work works get gets set has have had any some more most "
    "much many way ways there's what's how's it's i'm i've don't doesn't can't".split()
)
_WORD = re.compile(r"[\w][\w'.-]*[\w]|[\w]")
# Words that point back to an earlier turn. "that" only as a pronoun, not "messages that fail" (see _points_back).
_BACK = {"it", "its", "it's", "itself", "they", "them", "their", "theirs", "themselves", "this", "these", "those",
         "that", "one", "ones", "there"}
_SWAP = re.compile(
    r"^\s*(?:(?:and|or|but|so|ok|okay)[\s,]+)?"
    r"(?:(?:what|how)\s+about(?:\s+(?:for|in|with|on|from))?|what\s+of|and\s+(?:for|in|with|on|from)|"
    r"(?:is\s+it\s+|is\s+that\s+|and\s+)?(?:the\s+)?same\s+(?:for|with|in|on)|"
    r"does\s+(?:the\s+same|that|this)\s+(?:apply|hold|work)\s+(?:to|for|in|with|on)|(?:and|or)(?=\s))"
    r"\s+(?P<rest>.+?)[\s?.!]*$",
    re.I,
)
_CONTINUATION = re.compile(r"^\s*(?:and|but|so|then|or)\b", re.I)
_ARTICLE = re.compile(r"^(?:the|a|an)\s+", re.I)


def content_words(text: str) -> list[str]:
    """The lowercased words of ``text`` that carry meaning (stop words dropped), in order.

    >>> content_words("How is DynamoDB on-demand capacity billed?")
    ['dynamodb', 'on-demand', 'capacity', 'billed']
    """
    return [w.lower() for w in _WORD.findall(text) if w.lower() not in _STOP]


def _is_name(word: str, first: bool) -> bool:
    """Written like a name: an acronym, a capital not at the sentence start, or letters with digits.

    >>> _is_name("SQS", True), _is_name("Glacier", False), _is_name("How", True), _is_name("S3", True)
    (True, True, False, True)
    """
    if word.lower() in _STOP or word == "I":
        return False
    if any(c.isdigit() for c in word) and any(c.isalpha() for c in word):
        return True
    upper = sum(c.isupper() for c in word)
    return upper >= 2 or (upper == 1 and word[0].isupper() and not first)


def written_like_a_name(word: str) -> bool:
    """Written like a name even at a sentence start: an acronym, CamelCase or letters with digits.

    >>> written_like_a_name("SQS"), written_like_a_name("CloudFront"), written_like_a_name("Glacier")
    (True, True, False)
    """
    return _is_name(word, first=True)


def _names(text: str) -> list[str]:
    words = list(_WORD.finditer(text))
    return [m.group() for i, m in enumerate(words) if _is_name(m.group(), i == 0 or _sentence_start(text, m.start()))]


def _sentence_start(text: str, at: int) -> bool:
    before = text[:at].rstrip()
    return not before or before[-1] in ".?!:;"


def _points_back(question: str) -> bool:
    """A pronoun with no subject of the question's own before it (``it`` in "Can I use it with DynamoDB?").

    "that" counts only after a stop word or at the start ("is that billed?"), not after a noun
    ("messages that fail"); "there" only at the end ("what is the limit there?").
    """
    words = list(_WORD.finditer(question))
    for i, m in enumerate(words):
        word = m.group().lower()
        if word not in _BACK:
            continue
        if word == "that" and i and words[i - 1].group().lower() not in _STOP:
            continue
        if word == "there" and i != len(words) - 1:
            continue
        if word in ("one", "ones") and not (i and words[i - 1].group().lower() in {"this", "that", "which", "the"}):
            continue
        own = [w for j, w in enumerate(words[:i]) if _is_name(w.group(), j == 0 or _sentence_start(question, w.start()))]
        if not own:
            return True
    return False


def _swap_subject(question: str) -> str | None:
    """The new subject of an entity swap ("what about SQS FIFO queues?" → "SQS FIFO queues"), else None."""
    match = _SWAP.match(question)
    if not match:
        return None
    rest = _ARTICLE.sub("", match.group("rest").strip())
    words = _WORD.findall(rest)
    if not words or len(words) > 6 or any(w.lower() in _BACK for w in words):
        return None
    if not any(_is_name(w, False) for w in words):
        return None  # "what about the maximum?" changes the aspect, not the subject: elliptic
    # A verb-like stop word means a clause, not a noun phrase: "and how do I tag EC2?" is a question of its own.
    if any(w.lower() in _STOP - {"of", "and", "or", "for", "in", "on", "with"} for w in words):
        return None
    return rest


def followup_kind(question: str, context: str) -> str:
    """How ``question`` leans on ``context`` (the previous turn's condensed query): one of ``KINDS``.

    >>> followup_kind("what about SQS?", "What is the maximum message size in SNS?")
    'swap'
    >>> followup_kind("Once I have set it up, how do I check which alias receives the traffic?", "What is X?")
    'pronoun'
    >>> followup_kind("and the maximum?", "What is the default SQS visibility timeout?")
    'elliptic'
    >>> followup_kind("Also, how do I tag an EC2 instance?", "How does Lambda provisioned concurrency work?")
    'new'
    """
    if not context.strip():
        return "new"
    if _swap_subject(question) is not None:
        return "swap"
    if _points_back(question):
        return "pronoun"
    own_names = _names(question)
    content = content_words(question)
    if not own_names and len(content) <= 2:
        return "elliptic"
    if not own_names and _CONTINUATION.match(question):
        return "drill_down"
    return "new"


def needs_context(question: str, context: str = "(earlier turn)") -> bool:
    """True when ``question`` leans on the previous turn (anything but a new, self-contained question).

    >>> needs_context("and how is it billed?")
    True
    >>> needs_context("How does DynamoDB on-demand capacity get billed?")
    False
    """
    return followup_kind(question, context) != "new"


def _subject(text: str) -> str:
    words = _WORD.findall(text)
    return " ".join(w for w in words if w.lower() not in _STOP)


def _swap_into(context: str, subject: str) -> str:
    """``context`` with its last run of names replaced by ``subject`` (no name: its first run of content words).

    Only the names go: the words around them are the aspect the follow-up keeps.

    >>> _swap_into("How do I stop a Lambda function stuck in a loop triggered by S3?", "SQS")
    'How do I stop a Lambda function stuck in a loop triggered by SQS?'
    >>> _swap_into("How does SQS stay highly available?", "Redis")
    'How does Redis stay highly available?'
    >>> _swap_into("How is standard storage priced?", "Glacier")
    'How is Glacier priced?'
    >>> _swap_into("Can I encrypt an existing RDS database?", "EBS")  # the kind noun belonged to the old subject
    'Can I encrypt an existing EBS?'
    """
    words = list(_WORD.finditer(context))

    def runs(keep) -> list[list[re.Match]]:
        out: list[list[re.Match]] = []
        for i, m in enumerate(words):
            if not keep(i, m):
                continue
            if out and out[-1][-1] is words[i - 1] and not context[words[i - 1].end() : m.start()].strip():
                out[-1].append(m)
            else:
                out.append([m])
        return out

    named = runs(lambda i, m: _is_name(m.group(), i == 0 or _sentence_start(context, m.start())))
    if named:
        run = named[-1]
        after = words.index(run[-1]) + 1
        if after < len(words) and words[after].group().lower() in _KIND_NOUNS:  # "RDS database": one subject
            run = [*run, words[after]]
    else:
        plain = runs(lambda i, m: m.group().lower() not in _STOP and not _is_verb_like(m.group()))
        if not plain:
            return f"{context} {subject}"
        run = plain[0]
    return context[: run[0].start()] + subject + context[run[-1].end() :]


# What one named thing is a kind of ("an RDS database", "the S3 bucket"): swapped out with the name, since the new
# subject is another kind. Singular only: "Lambda functions", "EC2 instances", "AWS services" stay the aspect.
_KIND_NOUNS = set("database db bucket queue table function instance cluster topic stream volume".split())


def _is_verb_like(word: str) -> bool:
    # Past participles end a subject ("DynamoDB on-demand capacity | billed"); a deliberate simplification.
    return word.islower() and len(word) > 4 and word.endswith("ed")


def _condense_one(question: str, context: str) -> str:
    kind = followup_kind(question, context)
    if kind == "new":
        return question
    if kind == "swap":
        return _swap_into(context, _swap_subject(question) or "")
    subject = _subject(context)
    return f"{question} ({subject})" if subject else question


def condense(question: str, history: Sequence[dict]) -> str:
    """The retrieval query for ``question`` given earlier turns (deterministic).

    Earlier user turns are condensed in order, so a chain of follow-ups keeps
    the subject of the turn that introduced it.

    >>> condense("and how is it billed?", [{"role": "user", "content": "How does Lambda provisioned concurrency work?"}])
    'and how is it billed? (Lambda provisioned concurrency)'
    >>> condense("and for Aurora?", [{"role": "user", "content": "How is DynamoDB on-demand capacity billed?"}])
    'How is Aurora on-demand capacity billed?'
    """
    context = ""
    for turn in history or ():
        if isinstance(turn, dict) and turn.get("role") == "user" and str(turn.get("content", "")).strip():
            context = _condense_one(str(turn["content"]), context)
    return _condense_one(question, context)
