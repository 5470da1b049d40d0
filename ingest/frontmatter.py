"""YAML front matter: the ``---`` block at the very top of a note is metadata, not text.

Obsidian, Jekyll, Hugo and most static-site tools put a YAML mapping between a
``---`` line at line 1 and the next ``---`` (or ``...``) line. We read ``title``,
``aliases`` (``alias``) and ``tags`` (``tag``) from it; everything else is kept
out of the way. The block's lines are never part of a section or a chunk, and the
lines after it keep their numbers in the file.

A block that does not parse as a YAML mapping is not front matter: the note is
read as plain markdown (one warning per note and text, never an exception).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import PurePosixPath

from ingest.tags import normalize_tag

__all__ = ["FrontMatter", "NO_FRONT_MATTER", "read_front_matter", "mask_front_matter", "note_root"]

logger = logging.getLogger(__name__)

# Deliberate limits, not tuning: a "front matter" longer than this is not metadata anyone
# wrote by hand, and a root heading stuffed with 300 aliases would drown the note's words.
MAX_FRONT_MATTER_CHARS = 64 * 1024
MAX_KEYWORDS = 12  # aliases and tags each, in the root heading (all tags still filter)

_OPEN = re.compile(r"---[ \t]*")
_CLOSE = re.compile(r"(?:---|\.\.\.)[ \t]*")
_SPLIT = re.compile(r"[,\s]+")


@dataclass(frozen=True)
class FrontMatter:
    """What a note's front matter says. ``line_count`` is how many lines the block takes (0: none).

    ``tags`` are normalised (lower case, no ``#``); ``aliases`` keep their spelling.
    """

    title: str | None = None
    aliases: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    line_count: int = 0

    def __bool__(self) -> bool:
        return self.line_count > 0


NO_FRONT_MATTER = FrontMatter()


def _text(value) -> str | None:
    """A scalar as one line of text (None for nested structures and empty values)."""
    if value is None or isinstance(value, (dict, list, tuple, set)):
        return None
    text = " ".join(str(value).split())
    return text or None


def _strings(value, split: bool) -> list[str]:
    """A YAML value as a list of strings: a list of scalars, or one string (split on commas/spaces if ``split``)."""
    if isinstance(value, (list, tuple)):
        return [t for t in (_text(v) for v in value) if t]
    text = _text(value)
    if text is None:
        return []
    return [p for p in _SPLIT.split(text) if p] if split else [p.strip() for p in text.split(",") if p.strip()]


def _unique(items) -> tuple[str, ...]:
    seen: dict[str, str] = {}
    for item in items:
        seen.setdefault(item.casefold(), item)
    return tuple(seen.values())


def read_front_matter(text: str, source: str = "") -> FrontMatter:
    """The front matter at the top of ``text`` (``NO_FRONT_MATTER`` when there is none or it is malformed).

    >>> fm = read_front_matter("---\\ntitle: K8s\\naliases: [kube]\\ntags: [DevOps]\\n---\\n# Pods\\n")
    >>> fm.title, fm.aliases, fm.tags, fm.line_count
    ('K8s', ('kube',), ('devops',), 5)
    >>> read_front_matter("---\\nnot: [closed\\n---\\ntext").line_count
    0
    """
    if not text.startswith("---"):
        return NO_FRONT_MATTER
    lines = text.split("\n", 1)
    if not _OPEN.fullmatch(lines[0]) or len(lines) == 1:
        return NO_FRONT_MATTER
    end = None
    body_lines = lines[1][:MAX_FRONT_MATTER_CHARS + 1].split("\n")
    for i, line in enumerate(body_lines):
        if _CLOSE.fullmatch(line):
            end = i
            break
    if end is None:
        return NO_FRONT_MATTER  # no closing line: a thematic break (``---``) at the top, plain markdown
    return _parse_block("\n".join(body_lines[:end]), end + 2, source)


@lru_cache(maxsize=256)
def _parse_block(block: str, line_count: int, source: str) -> FrontMatter:
    # Cached by the block alone (small): the viewer, the preview and the indexer parse
    # the same notes again and again, and a malformed block is reported once.
    try:
        import yaml

        data = yaml.load(block, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except Exception as e:  # noqa: BLE001 - any YAML error: the block is text (yaml raises several kinds)
        reason = " ".join(str(e).split())[:160]
        logger.warning("front matter not parsed source=%s reason=%s; read as text", source or "?", reason)
        return NO_FRONT_MATTER
    if data is None:
        data = {}
    if not isinstance(data, dict):
        logger.warning("front matter not parsed source=%s reason=not a mapping (%s); read as text",
                       source or "?", type(data).__name__)
        return NO_FRONT_MATTER
    data = {str(k).casefold(): v for k, v in data.items()}
    aliases = _strings(data.get("aliases", data.get("alias")), split=False)
    tags = [normalize_tag(t) for t in _strings(data.get("tags", data.get("tag")), split=True)]
    return FrontMatter(
        title=_text(data.get("title")),
        aliases=_unique(aliases),
        tags=_unique(t for t in tags if t),
        line_count=line_count,  # the opening line, the block, the closing line
    )


def mask_front_matter(text: str, front_matter: FrontMatter) -> str:
    """``text`` with the front matter's lines emptied: same line numbers, nothing left to parse or quote.

    >>> mask_front_matter("---\\ntitle: x\\n---\\n# H", read_front_matter("---\\ntitle: x\\n---\\n# H"))
    '\\n\\n\\n# H'
    """
    if not front_matter:
        return text
    rest = text.split("\n", front_matter.line_count)
    return "\n" * front_matter.line_count + (rest[front_matter.line_count] if len(rest) > front_matter.line_count else "")


def note_root(front_matter: FrontMatter, source: str, first_root: str | None) -> str | None:
    """The root heading a front-matter note's sections get, or None to keep the note's own.

    ``first_root`` is the note's first ``# H1`` (None when it has none). Without an
    H1 the title (else the file name) becomes the root; the aliases and front-matter
    tags are appended to it so that searching for them finds the note. With an H1,
    the H1 stays the root and carries the keywords (and the title when it differs).

    >>> note_root(read_front_matter("---\\ntitle: Kubernetes\\naliases: [k8s]\\ntags: devops\\n---\\n"), "k.md", None)
    'Kubernetes (k8s) #devops'
    >>> note_root(NO_FRONT_MATTER, "k.md", None) is None
    True
    """
    if not front_matter or not (front_matter.title or front_matter.aliases or front_matter.tags):
        return None
    names = list(front_matter.aliases[:MAX_KEYWORDS])
    if first_root is None:
        label = front_matter.title or PurePosixPath(source).stem
    else:
        label = first_root
        if front_matter.title and front_matter.title.casefold() != first_root.casefold():
            names.insert(0, front_matter.title)
    names = [n for n in names if n.casefold() != label.casefold()]
    root = f"{label} ({', '.join(names)})" if names else label
    tags = " ".join(f"#{t}" for t in front_matter.tags[:MAX_KEYWORDS])
    return f"{root} {tags}" if tags else root
