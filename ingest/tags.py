"""Tags: ``#tags`` in notes, ``tags:`` in front matter, and ``#tag`` / ``tag:x`` filters in questions.

One home for the tag syntax (Obsidian's): ``#`` at the start of a line or after
whitespace, then letters, digits, ``_``, ``-`` and ``/`` (nested tags,
``#project/alpha``), with at least one letter — so ``#42``, ``C#``, ``## Heading``
and ``page#anchor`` are not tags. Tags compare case-insensitively, and a filter
``#project`` also matches the nested ``#project/alpha``.

A note's tags are those of its front matter plus every inline tag outside code;
every chunk of the note carries them (``format_tags`` in its metadata), so the
search can be narrowed to the notes with a tag (``narrow``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

__all__ = [
    "normalize_tag", "inline_tags", "format_tags", "parse_tags", "tag_sources", "TagScope", "narrow",
]

_BODY = r"[\w/-]*[^\W\d_][\w/-]*"  # at least one letter
_INLINE_TAG = re.compile(rf"(?<!\S)#({_BODY})")
# A filter with the comma that may follow it ("tag:x, how …"): both leave the question.
_QUERY_TAG = re.compile(rf"(?<!\S)(?:(?i:tag):#?({_BODY})|#({_BODY}))(?=$|[\s,.;:!?)])[,;]?")
_CODE_SPAN = re.compile(r"(`+)(?:(?!\1).)+?\1")


def normalize_tag(tag: str) -> str:
    """``"#Project/Alpha/"`` → ``"project/alpha"`` (tags compare case-insensitively).

    >>> normalize_tag("#Project/Alpha/")
    'project/alpha'
    """
    return tag.strip().lstrip("#").strip("/-").casefold()


def inline_tags(text: str, code: Iterable[tuple[int, int]] = ()) -> tuple[str, ...]:
    """Tags written in ``text``, in order of first use; lines in ``code`` (1-based ranges) and code spans skipped.

    >>> inline_tags("#todo call Bob about #Project/Alpha\\n`#not` C# #42 ## h\\n```\\n#code\\n```", [(3, 5)])
    ('todo', 'project/alpha')
    """
    skip = set()
    for start, end in code:
        skip.update(range(start, end + 1))
    found: dict[str, None] = {}
    for number, line in enumerate(text.split("\n"), start=1):
        if number in skip or "#" not in line:
            continue
        for match in _INLINE_TAG.finditer(_CODE_SPAN.sub(" ", line)):
            tag = normalize_tag(match.group(1))
            if tag:
                found.setdefault(tag, None)
    return tuple(found)


def format_tags(tags: Iterable[str]) -> str:
    """Tags as one metadata string (vector stores keep scalars): ``("a", "b/c")`` → ``"a b/c"``."""
    return " ".join(tags)


def parse_tags(value: object) -> tuple[str, ...]:
    """The inverse of ``format_tags`` (anything else → no tags)."""
    return tuple(value.split()) if isinstance(value, str) else ()


def tag_sources(metadatas: Iterable[Mapping]) -> dict[str, frozenset[str]]:
    """Tag → the sources (notes) that have it, from chunk metadata (``source`` and ``tags``)."""
    found: dict[str, set[str]] = {}
    for meta in metadatas:
        for tag in parse_tags(meta.get("tags")):
            found.setdefault(tag, set()).add(meta["source"])
    return {tag: frozenset(sources) for tag, sources in found.items()}


@dataclass(frozen=True)
class TagScope:
    """A question split into the text to search and the notes to search in.

    ``sources`` is None when the search is not narrowed; ``tags`` are the filter tags
    some note has, ``unknown`` those no note has (they narrow nothing).
    """

    query: str
    tags: tuple[str, ...] = ()
    unknown: tuple[str, ...] = ()
    sources: frozenset[str] | None = None

    @property
    def notice(self) -> str | None:
        """What the user should be told about the filter (None when it did what was asked)."""
        parts = []
        if self.unknown:
            names = ", ".join(f"#{t}" for t in self.unknown)
            parts.append(f"No note is tagged {names}")
        if self.tags and self.sources is None:
            parts.append(f"no note has all of {', '.join(f'#{t}' for t in self.tags)}")
        if not parts:
            return None
        where = (f"searched only the notes tagged {', '.join(f'#{t}' for t in self.tags)}"
                 if self.sources is not None else "searched all your notes")
        text = "; ".join(parts)
        return f"{text[0].upper()}{text[1:]}; {where}."


def narrow(query: str, tags_to_sources: Mapping[str, frozenset[str]]) -> TagScope:
    """Take ``tag:x`` and ``#x`` filters out of ``query`` and find the notes that have all of them.

    A ``#x`` no note has stays in the text (it may be a word, like ``#include``);
    ``tag:x`` always goes. A question that was only filters searches for the tag words.

    >>> index = {"devops": frozenset({"k8s.md", "docker.md"}), "project/alpha": frozenset({"j.md"})}
    >>> s = narrow("list pods #DevOps", index)
    >>> s.query, s.tags, sorted(s.sources)
    ('list pods', ('devops',), ['docker.md', 'k8s.md'])
    >>> narrow("tag:project plans", index).sources
    frozenset({'j.md'})
    >>> s = narrow("what does #include do tag:nope", index)
    >>> s.query, s.unknown, s.sources, s.notice
    ('what does #include do', ('include', 'nope'), None, 'No note is tagged #include, #nope; searched all your notes.')
    """
    tags: dict[str, None] = {}
    unknown: dict[str, None] = {}
    sources: frozenset[str] | None = None

    def notes_with(tag: str) -> frozenset[str]:
        prefix = tag + "/"
        return frozenset().union(*(s for t, s in tags_to_sources.items() if t == tag or t.startswith(prefix)))

    def take(match: re.Match) -> str:
        nonlocal sources
        explicit = match.group(1) is not None
        tag = normalize_tag(match.group(1) or match.group(2))
        having = notes_with(tag) if tag else frozenset()
        if not having:
            unknown.setdefault(tag, None)
            return "" if explicit else match.group(0)
        tags.setdefault(tag, None)
        sources = having if sources is None else sources & having
        return ""

    text = " ".join(_QUERY_TAG.sub(take, query).split())
    if tags and not sources:
        sources = None  # known tags, but no note has them all: search everything (and say so)
    if not text:
        text = " ".join(t.replace("/", " ") for t in (*tags, *unknown))
    return TagScope(text, tuple(tags), tuple(u for u in unknown if u), sources)
