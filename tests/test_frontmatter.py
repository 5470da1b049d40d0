"""Front matter is metadata: exact line spans after it, never quoted, title/aliases/tags in the heading path."""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ingest import chunk_note, parse_sections, read_notes
from ingest.chunker import note_tags
from ingest.frontmatter import read_front_matter
from tests.conftest import BUNDLED_NOTES

VAULT = Path(__file__).parent / "fixtures" / "vault"


@pytest.fixture(scope="module")
def vault() -> dict[str, str]:
    notes, skipped = read_notes(VAULT)
    assert not skipped
    return {n.source: n.text for n in notes}


def chunks_of(vault, source):
    return chunk_note(vault[source], source)


# -- what the front matter says ------------------------------------------------------

@pytest.mark.parametrize("block, title, aliases, tags", [
    ("title: K8s\naliases: [k8s, kube]\ntags: [DevOps, containers]", "K8s", ("k8s", "kube"), ("devops", "containers")),
    ("tags:\n  - a\n  - '#B'\naliases:\n  - x y", None, ("x y",), ("a", "b")),
    ("tags: \"a, b c #d\"  # a YAML comment", None, (), ("a", "b", "c", "d")),
    ("tag: one\nalias: Single Alias", None, ("Single Alias",), ("one",)),
    ("aliases: bread, levain loaf", None, ("bread", "levain loaf"), ()),
    ("title: 2024\ntags: [project/Alpha/, project/alpha]", "2024", (), ("project/alpha",)),
    ("Title: Upper Keys\nTAGS: x", "Upper Keys", (), ("x",)),
    ("title:\n  nested: mapping\ntags: {a: 1}", None, (), ()),
    ("", None, (), ()),
    ("title: ☕ café 🚀\ntags: [naïve]", "☕ café 🚀", (), ("naïve",)),
    ("title: " + "x" * 5000, "x" * 5000, (), ()),
], ids=["lists", "yaml-lists", "string-tags", "singular-keys", "comma-aliases", "nested-tags-dedup", "key-case",
        "nested-values-ignored", "empty", "emoji", "huge-title"])
def test_front_matter_fields(block, title, aliases, tags):
    text = f"---\n{block}\n---\n# H\n- x\n" if block else "---\n---\n# H\n- x\n"
    front_matter = read_front_matter(text)
    assert (front_matter.title, front_matter.aliases, front_matter.tags) == (title, aliases, tags)
    assert front_matter.line_count == (block.count("\n") + 3 if block else 2)
    assert [(c.start_line, c.text) for c in chunk_note(text, "n.md")] == [(front_matter.line_count + 2, "- x")]


def test_dots_close_a_front_matter_block_too():
    assert read_front_matter("---\ntitle: T\n...\nbody").line_count == 3


# -- line spans and quoting ---------------------------------------------------------

def test_line_spans_after_front_matter_are_the_files_own(vault):
    lines = vault["Kubernetes.md"].split("\n")
    chunks = chunks_of(vault, "Kubernetes.md")
    assert [(c.heading_path[1:], c.start_line, c.end_line) for c in chunks] == [
        ((), 10, 10), (("Pods",), 14, 16), (("Deployments",), 20, 21),
    ]
    for c in chunks:
        assert c.text == "\n".join(lines[c.start_line - 1 : c.end_line])
    assert lines[13].startswith("- `kubectl get pods -A`")


@pytest.mark.parametrize("source", ["Kubernetes.md", "tools/Docker.md", "recipes/sourdough.md", "hostile.md"])
def test_front_matter_is_in_no_section_and_never_quoted(vault, source):
    front_matter = read_front_matter(vault[source], source)
    assert front_matter.line_count > 0
    for section in parse_sections(vault[source], source):
        assert section.start_line > front_matter.line_count
    for chunk in chunks_of(vault, source):
        assert chunk.start_line > front_matter.line_count
        assert "aliases:" not in chunk.text and "tags:" not in chunk.text and chunk.text.strip() != "---"


def test_title_is_the_root_heading_of_a_note_without_h1_with_aliases_and_tags(vault):
    paths = {c.heading_path for c in chunks_of(vault, "Kubernetes.md")}
    root = "Kubernetes Cheatsheet (k8s, kube) #devops #containers"
    assert paths == {(root,), (root, "Pods"), (root, "Deployments")}


def test_an_h1_stays_the_root_and_carries_the_title_aliases_and_tags(vault):
    heading_paths = [c.heading_path for c in chunks_of(vault, "recipes/sourdough.md")]
    root = "Sourdough (Sourdough Bread, bread, levain loaf) #cooking #baking/bread"
    assert heading_paths == [(root, "Starter"), (root, "Bake")]
    assert [c.heading_path for c in chunks_of(vault, "tools/Docker.md")] == [
        ("Docker (Moby, container engine) #devops", "Images"), ("Docker (Moby, container engine) #devops", "Volumes"),
    ]


def test_front_matter_without_title_aliases_or_tags_changes_no_heading():
    text = "---\ncreated: 2024-01-01\n---\n## Only\n- x\n"
    assert [(c.heading_path, c.start_line) for c in chunk_note(text, "n.md")] == [(("Only",), 5)]


def test_a_title_alone_names_the_preamble_and_sections():
    text = "---\ntitle: Plain Title\n---\nintro line\n## Sub\n- y"
    assert [(s.heading_path, s.start_line, s.end_line) for s in parse_sections(text, "p.md")] == [
        (("Plain Title",), 4, 4), (("Plain Title", "Sub"), 5, 6),
    ]


# -- not front matter -----------------------------------------------------------------

def test_malformed_front_matter_is_text_with_one_log_line(vault, caplog):
    text = vault["malformed.md"].replace("unclosed", "unclosed-for-this-test")  # a block no cache has seen
    with caplog.at_level(logging.WARNING, logger="ingest.frontmatter"):
        chunks = chunk_note(text, "malformed.md")
        chunk_note(text, "malformed.md")  # parsed again (the viewer, the preview): no second line
    records = [r for r in caplog.records if r.name == "ingest.frontmatter"]
    assert len(records) == 1 and "source=malformed.md" in records[0].getMessage()
    assert "\n" not in records[0].getMessage()
    assert read_front_matter(text).line_count == 0
    assert any("not valid YAML" in c.text for c in chunks)
    assert all(not c.tags for c in chunks)  # its "tags: devops" is text, not a tag


@pytest.mark.parametrize("text", [
    "---\n\n# Plain\n- x",  # never closed: a thematic break
    "---\njust a sentence, not a mapping\n---\n- x",
    "---\n- a list\n- not a mapping\n---\n- x",
    "--- \nkey: value\n--- \n- x",  # trailing spaces are allowed on the fences…
    " ---\nkey: value\n---\n- x",  # …but not an indented opening line
    "-",
    "---",
    "",
    "---\n" + "k: v\n" * 20000 + "---\n- x",  # longer than any hand-written block: text
])
def test_what_is_not_front_matter_is_read_as_text(text):
    chunks = chunk_note(text, "n.md")
    front_matter = read_front_matter(text)
    if text.startswith("--- \n"):
        assert front_matter.line_count == 3
    else:
        assert front_matter.line_count == 0
        assert sum(len(c.text) for c in chunks) > 0 or not text.strip("-\n ")


def test_notes_without_front_matter_keep_their_chunk_ids():
    """The bundled notes' ids as they were before front matter and tags existed (the index relies on them)."""
    text = BUNDLED_NOTES.read_text(encoding="utf-8")
    expected = {
        256: (813, "da598b2176284dd503f8555edb86ca8415df44f6b7f61e87983c9541a544089c"),
        64: (1818, "35d5deafb9f9770f4a12afe582ede1a5002c9b76f19453cc2738ee1fef5c7baa"),
    }
    for max_tokens, (count, digest) in expected.items():
        ids = [c.chunk_id for c in chunk_note(text, "aws-notes.md", max_tokens)]
        assert (len(ids), hashlib.sha256("\n".join(ids).encode()).hexdigest()) == (count, digest)


# -- tags -------------------------------------------------------------------------------

def test_note_tags_are_front_matter_then_inline_outside_code(vault):
    assert note_tags(vault["journal/2024-05-01.md"]) == ("work", "project/payments", "weekend")
    assert note_tags(vault["recipes/sourdough.md"]) == ("cooking", "baking/bread", "weekend")
    assert note_tags(vault["malformed.md"]) == ()
    assert note_tags(BUNDLED_NOTES.read_text(encoding="utf-8")) == ()


def test_tags_are_part_of_a_tagged_chunks_id():
    """A tag written in one section re-ids the note's other chunks: the index rewrites them with the new tags."""
    plain = chunk_note("# A\n- one\n# B\n- two\n", "n.md")[0]
    tagged = chunk_note("# A\n- one\n# B\n- two #x\n", "n.md")[0]
    assert plain.tags == () and tagged.tags == ("x",)
    assert plain.text == tagged.text == "- one" and plain.chunk_id != tagged.chunk_id


# -- property: front matter + any body ----------------------------------------------------

_body_line = st.one_of(
    st.sampled_from(["", "- bullet #tag", "## Sub", "# Top", "```", "---", "text line.", "title: not meta"]),
    st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"),
            max_size=40),
)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(["title: T", "tags: [a, b]", "aliases: x", "n: 1"]), max_size=4),
       st.lists(_body_line, max_size=25))
def test_body_lines_are_covered_once_and_front_matter_never(meta, body):
    text = "\n".join(["---", *meta, "---", *body])
    fence = len(meta) + 2
    assert read_front_matter(text).line_count == fence
    owner = {}
    for section in parse_sections(text, "p.md"):
        assert section.start_line > fence
        for n in range(section.start_line, section.end_line + 1):
            assert n not in owner
            owner[n] = section
    lines = text.split("\n")
    for n, line in enumerate(lines[fence:], start=fence + 1):
        if line.strip():
            assert n in owner
    for chunk in chunk_note(text, "p.md", max_tokens=32):
        assert chunk.start_line > fence
        whole = "\n".join(lines[chunk.start_line - 1 : chunk.end_line])
        assert chunk.text == whole or chunk.text in whole
