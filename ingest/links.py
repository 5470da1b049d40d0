"""``[[wikilinks]]``: parsing ``[[note]]``, ``[[note#heading]]``, ``[[note|label]]``, and finding their notes.

A link names a note by its file name (stem, or a path relative to the notes
folder), its front-matter ``title`` or one of its ``aliases`` — case-insensitively,
in that order; of several notes with one name the shortest path wins (Obsidian's
rule). ``#heading`` (or ``#parent#child``) picks a section: the target's lines run
from the heading to the end of its last subsection. A link that names no note
resolves to None — it is never guessed, and never turned into a path: only
sources the directory was built from can come out.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import PurePosixPath

from ingest.frontmatter import read_front_matter
from ingest.sections import parse_sections

__all__ = ["WIKILINK", "WikiLink", "LinkTarget", "NoteDirectory"]

# ``[[…]]`` on one line, without brackets inside; long enough for any real note name.
WIKILINK = re.compile(r"\[\[([^\[\]\n]{1,300})\]\]")


def _key(name: str) -> str:
    return " ".join(name.split()).casefold()


@dataclass(frozen=True)
class WikiLink:
    """One parsed link: ``target`` (note name or path; "" for ``[[#heading]]``), ``headings``, ``label``.

    >>> WikiLink.parse("Kubernetes#Pods#Probes|probes")
    WikiLink(target='Kubernetes', headings=('Pods', 'Probes'), label='probes')
    >>> WikiLink.parse("bread").text, WikiLink.parse("k8s#Pods").text
    ('bread', 'k8s > Pods')
    """

    target: str
    headings: tuple[str, ...] = ()
    label: str | None = None

    @classmethod
    def parse(cls, inner: str) -> "WikiLink":
        """The text between ``[[`` and ``]]``; ``\\|`` (a link inside a markdown table) is a ``|``."""
        inner = inner.replace("\\|", "|")
        target, _, label = inner.partition("|")
        name, *headings = target.split("#")
        return cls(name.strip(), tuple(h.strip() for h in headings if h.strip()), label.strip() or None)

    @property
    def text(self) -> str:
        """What a reader sees: the label, else ``note > heading`` (Obsidian's display)."""
        if self.label:
            return self.label
        return " > ".join(part for part in (self.target, *self.headings) if part)


@dataclass(frozen=True)
class LinkTarget:
    """Where a link goes: a note, and the line span of the heading when one was named (else None)."""

    source: str
    start_line: int | None = None
    end_line: int | None = None


@dataclass(frozen=True)
class _Heading:
    titles: tuple[str, ...]  # keys of the heading and its ancestors, root first
    start_line: int
    end_line: int  # the end of its last subsection


class NoteDirectory:
    """Every note's names and headings, to resolve links against (build once per index version).

    Args:
        notes: ``(source, text)`` pairs — e.g. ``(n.source, n.text)`` of ``read_notes``.
    """

    def __init__(self, notes: Iterable[tuple[str, str]]) -> None:
        self._by_path: dict[str, str] = {}
        self._by_name: list[dict[str, list[str]]] = [{}, {}, {}]  # stem, title, alias → sources
        self._headings: dict[str, list[_Heading]] = {}
        for source, text in notes:
            self._add(source, text)
        for table in self._by_name:
            for sources in table.values():
                sources.sort(key=lambda s: (s.count("/"), len(s), s))

    def __len__(self) -> int:
        return len(self._headings)

    def _add(self, source: str, text: str) -> None:
        path = PurePosixPath(source)
        self._by_path[_key(source)] = source
        self._by_path[_key(str(path.with_suffix("")))] = source
        front_matter = read_front_matter(text, source)
        names = ([path.stem], [front_matter.title] if front_matter.title else [], list(front_matter.aliases))
        for table, values in zip(self._by_name, names):
            for value in values:
                table.setdefault(_key(value), []).append(source)
        sections = [s for s in parse_sections(text, source) if s.level]
        headings, stack = [], []  # stack: (level, key)
        for i, section in enumerate(sections):
            while stack and stack[-1][0] >= section.level:
                stack.pop()
            stack.append((section.level, _key(section.title)))
            end = next((later.start_line - 1 for later in sections[i + 1:] if later.level <= section.level),
                       sections[-1].end_line)
            headings.append(_Heading(tuple(k for _, k in stack), section.start_line, end))
        self._headings[source] = headings

    def _note(self, target: str) -> str | None:
        key = _key(target.removesuffix(".md").removesuffix(".markdown").removesuffix(".txt"))
        if not key:
            return None
        if "/" in key:
            if key in self._by_path or _key(target) in self._by_path:
                return self._by_path.get(key) or self._by_path[_key(target)]
            ends = sorted((s for k, s in self._by_path.items() if k.endswith("/" + key)),
                          key=lambda s: (s.count("/"), len(s), s))
            return ends[0] if ends else None
        for table in self._by_name:
            if key in table:
                return table[key][0]
        return None

    def resolve(self, link: WikiLink | str, current: str | None = None) -> LinkTarget | None:
        """The note (and heading lines) ``link`` points at, or None when no note has that name.

        ``current`` is the note the link is written in (for ``[[#heading]]``). A heading
        the note does not have leaves the link pointing at the whole note.

        >>> d = NoteDirectory([("tools/k8s.md", "---\\naliases: [kube]\\n---\\n# K\\n## Pods\\nx\\n### Probes\\ny\\n## Jobs\\n")])
        >>> d.resolve("KUBE#pods"), d.resolve("k8s#Nope"), d.resolve("../../etc/passwd")
        (LinkTarget(source='tools/k8s.md', start_line=5, end_line=8), LinkTarget(source='tools/k8s.md', start_line=None, end_line=None), None)
        """
        if isinstance(link, str):
            link = WikiLink.parse(link)
        source = self._note(link.target) if link.target else (current if current in self._headings else None)
        if source is None:
            return None
        if link.headings:
            wanted = [_key(h) for h in link.headings]
            for heading in self._headings.get(source, ()):
                if heading.titles[-1] == wanted[-1] and _in_order(wanted[:-1], heading.titles[:-1]):
                    return LinkTarget(source, heading.start_line, heading.end_line)
        return LinkTarget(source)


def _in_order(wanted: list[str], titles: tuple[str, ...]) -> bool:
    """True when ``wanted`` appear among ``titles`` in this order (not necessarily adjacent)."""
    it = iter(titles)
    return all(any(w == t for t in it) for w in wanted)
