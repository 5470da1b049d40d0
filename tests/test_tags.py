"""Tag syntax: what is a tag in a note, what is a filter in a question, and how a filter narrows the notes."""

from __future__ import annotations

import pytest

from ingest.tags import format_tags, inline_tags, narrow, parse_tags, tag_sources

INDEX = {
    "devops": frozenset({"k8s.md", "docker.md"}),
    "containers": frozenset({"k8s.md"}),
    "project/payments": frozenset({"journal.md"}),
    "cooking": frozenset({"bread.md"}),
    "café": frozenset({"cafe.md"}),
}


@pytest.mark.parametrize("line, tags", [
    ("#todo", ("todo",)),
    ("- call Bob #Work, then #work again.", ("work",)),
    ("nested #project/alpha/beta/ tag", ("project/alpha/beta",)),
    ("#café ☕ #🚀", ("café",)),
    ("C# and F#, issue #42, #1984", ()),
    ("## Heading and ####### seven", ()),
    ("[link](#anchor) https://x.org/#frag a#b &#123;", ()),
    ("`#code` and ``#more `code` `` only", ()),
    ("#x_y-z", ("x_y-z",)),
    ("", ()),
    ("#", ()),
    ("#" * 10_000 + " #" + "a" * 10_000, ("a" * 10_000,)),
])
def test_inline_tags(line, tags):
    assert inline_tags(line) == tags


def test_tags_round_trip_through_metadata():
    tags = ("devops", "project/alpha")
    assert parse_tags(format_tags(tags)) == tags
    assert parse_tags(None) == parse_tags(3) == ()
    metadatas = [{"source": "a.md", "tags": "x y"}, {"source": "b.md", "tags": "y"}, {"source": "c.md"}]
    assert tag_sources(metadatas) == {"x": frozenset({"a.md"}), "y": frozenset({"a.md", "b.md"})}


@pytest.mark.parametrize("question, query, tags, sources", [
    ("list pods #devops", "list pods", ("devops",), {"k8s.md", "docker.md"}),
    ("TAG:DevOps list pods", "list pods", ("devops",), {"k8s.md", "docker.md"}),
    ("tag:#devops, list pods", "list pods", ("devops",), {"k8s.md", "docker.md"}),
    ("images #devops #containers", "images", ("devops", "containers"), {"k8s.md"}),
    ("what broke? tag:project", "what broke?", ("project",), {"journal.md"}),  # a parent tag
    ("#project/payments", "project payments", ("project/payments",), {"journal.md"}),  # only a filter
    ("#café recipes", "recipes", ("café",), {"cafe.md"}),
    ("What's new in C#? issue #42", "What's new in C#? issue #42", (), None),  # no tags here
    ("what does #include do", "what does #include do", (), None),  # unknown #x stays a word
    ("pods tag:nope", "pods", (), None),  # unknown tag:x goes
    ("", "", (), None),
    ("#", "#", (), None),
    ("🙂 #devops 🙂", "🙂 🙂", ("devops",), {"k8s.md", "docker.md"}),
])
def test_narrow(question, query, tags, sources):
    scope = narrow(question, INDEX)
    assert (scope.query, scope.tags) == (query, tags)
    assert scope.sources == (frozenset(sources) if sources is not None else None)


@pytest.mark.parametrize("question, notice", [
    ("pods #devops", None),
    ("pods tag:nope", "No note is tagged #nope; searched all your notes."),
    ("pods #devops tag:nope", "No note is tagged #nope; searched only the notes tagged #devops."),
    ("bread tag:cooking tag:devops", "No note has all of #cooking, #devops; searched all your notes."),
])
def test_notice_says_what_was_searched(question, notice):
    assert narrow(question, INDEX).notice == notice


def test_no_tags_in_the_index_narrows_nothing():
    scope = narrow("list pods #devops", {})
    assert (scope.query, scope.sources, scope.unknown) == ("list pods #devops", None, ("devops",))


def test_a_huge_question_is_handled_in_one_pass():
    question = ("word #devops " * 5000).strip()
    scope = narrow(question, INDEX)
    assert scope.query == " ".join(["word"] * 5000) and scope.tags == ("devops",)
