"""[[wikilinks]]: parsing, resolution by stem / title / alias / path / #heading, safe rendering in answers and the viewer."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from assistant.answer import Answer, Citation
from assistant.web.render import answer_html, render_markdown, search_html
from assistant.web.viewer import note_page, wikilink_href
from ingest import read_notes
from ingest.links import LinkTarget, NoteDirectory, WikiLink

VAULT = Path(__file__).parent / "fixtures" / "vault"


@pytest.fixture(scope="module")
def directory() -> NoteDirectory:
    notes, _ = read_notes(VAULT)
    return NoteDirectory((n.source, n.text) for n in notes)


def href_of(directory):
    def resolve(link: WikiLink) -> str | None:
        target = directory.resolve(link)
        return wikilink_href(target) if target else None

    return resolve


@pytest.mark.parametrize("inner, expected", [
    ("note", WikiLink("note")),
    ("note#Heading", WikiLink("note", ("Heading",))),
    ("note#A#B|label", WikiLink("note", ("A", "B"), "label")),
    ("  spaced name  |  shown  ", WikiLink("spaced name", (), "shown")),
    ("#Local heading", WikiLink("", ("Local heading",))),
    ("table\\|label", WikiLink("table", (), "label")),
    ("note|", WikiLink("note")),
    ("☕ café#🚀", WikiLink("☕ café", ("🚀",))),
])
def test_parse(inner, expected):
    assert WikiLink.parse(inner) == expected


@pytest.mark.parametrize("link, expected", [
    ("Kubernetes", LinkTarget("Kubernetes.md")),  # file stem
    ("kubernetes", LinkTarget("Kubernetes.md")),  # case-insensitive
    ("Kubernetes Cheatsheet", LinkTarget("Kubernetes.md")),  # front-matter title
    ("K8S", LinkTarget("Kubernetes.md")),  # alias
    ("kube#Pods", LinkTarget("Kubernetes.md", 12, 17)),  # alias + heading: the heading's lines
    ("Kubernetes#deployments|rollback notes", LinkTarget("Kubernetes.md", 18, 21)),
    ("Docker#Images", LinkTarget("tools/Docker.md", 7, 11)),
    ("tools/Docker", LinkTarget("tools/Docker.md")),  # a path from the vault root
    ("tools/Docker.md#Volumes", LinkTarget("tools/Docker.md", 12, 14)),
    ("Docker#Docker#Volumes", LinkTarget("tools/Docker.md", 12, 14)),  # nested headings
    ("container engine", LinkTarget("tools/Docker.md")),  # an alias with a space
    ("MOBY", LinkTarget("tools/Docker.md")),
    ("bread#Starter", LinkTarget("recipes/sourdough.md", 11, 15)),
    ("Sourdough Bread#bake", LinkTarget("recipes/sourdough.md", 16, 18)),
    ("sourdough#Sourdough", LinkTarget("recipes/sourdough.md", 9, 18)),  # the H1: everything under it
    ("Kubernetes#No such heading", LinkTarget("Kubernetes.md")),  # the note, not a dead end
    ("Terraform", None),
    ("../../etc/passwd", None),
    ("/etc/passwd", None),
    ("..", None),
    ("javascript:alert(1)", None),
    ("", None),
    ("Broken front matter", None),  # an H1 is not a title
])
def test_resolve(directory, link, expected):
    assert directory.resolve(link) == expected


def test_same_note_heading_link_needs_the_current_note(directory):
    assert directory.resolve("#Pods") is None
    assert directory.resolve("#Pods", current="Kubernetes.md") == LinkTarget("Kubernetes.md", 12, 17)


def test_shortest_path_wins_a_shared_name():
    directory = NoteDirectory([("deep/er/todo.md", "# A"), ("todo.md", "# B"), ("deep/todo.md", "# C")])
    assert directory.resolve("todo").source == "todo.md"
    assert directory.resolve("er/todo").source == "deep/er/todo.md"


# -- rendering in answers ---------------------------------------------------------------

def test_resolved_links_open_the_viewer_at_the_heading_and_unresolved_ones_are_text(directory):
    html = render_markdown("See [[Kubernetes#Deployments|rollback notes]], [[k8s]] and [[Terraform]].",
                           links=href_of(directory))
    assert '<a href="/notes/Kubernetes.md?lines=18-21#L18"' in html and ">rollback notes</a>" in html
    assert '<a href="/notes/Kubernetes.md"' in html and ">k8s</a>" in html
    assert "Terraform" in html and "[[" not in html
    assert html.count("<a ") == 2


def test_links_in_code_stay_code(directory):
    html = render_markdown("`[[k8s]]`\n\n```\n[[k8s]]\n```", links=href_of(directory))
    assert "<a " not in html and html.count("[[k8s]]") == 2


def test_without_a_resolver_the_text_is_as_written():
    assert render_markdown("[[k8s]]") == "<p>[[k8s]]</p>\n"


@pytest.mark.parametrize("text", [
    "[[../../etc/passwd]]", "[[/etc/passwd]]", "[[javascript:alert(1)]]", "[[Kubernetes|<script>alert(1)</script>]]",
    "[[<img src=x onerror=alert(1)>]]", "[[k8s|x\" onmouseover=\"alert(1)]]",
])
def test_hostile_links_render_safely(directory, text):
    html = render_markdown(text, links=href_of(directory))
    assert "<script" not in html and "<img" not in html and "onerror=" not in html.replace("onerror=alert", "")
    for href in re.findall(r'href="([^"]*)"', html):
        assert href.startswith("/notes/") and ".." not in href
    assert "etc/passwd" not in "".join(re.findall(r'href="([^"]*)"', html))
    assert not re.search(r"<a [^>]*onmouseover", html)


def test_answer_html_links_answer_and_sources(directory):
    cite = Citation(1, "journal/2024-05-01.md", ("Journal 2024-05-01",), 3, 3,
                    "- Rolled back the payments deployment, see [[Kubernetes#Deployments|rollback notes]] #work")
    answer = Answer("q", f"{cite.text} [1]", [cite], False, "extractive", "q")
    html = answer_html(answer, href_of(directory))
    assert html.count('href="/notes/Kubernetes.md?lines=18-21#L18"') == 2  # in the answer and in its source
    assert 'class="na-cite"' in html
    plain = answer_html(answer)
    assert "[[Kubernetes#Deployments|rollback notes]]" in plain and "Kubernetes.md" not in plain


def test_search_html_links_snippets(directory):
    from vectorstore.retriever import SearchResult

    hit = SearchResult(1, "c", "journal/2024-05-01.md", ("Journal",), 3, 3, 0.5, "rrf", "see [[bread#Starter]]")
    html = search_html("q", [hit], href_of(directory))
    assert 'href="/notes/recipes/sourdough.md?lines=11-15#L11"' in html


# -- the viewer page ---------------------------------------------------------------------

def test_viewer_links_wikilinks_outside_code_and_escapes_the_rest(directory):
    text = (VAULT / "journal" / "2024-05-01.md").read_text(encoding="utf-8")
    page = note_page("journal/2024-05-01.md", text + "```\n[[k8s]]\n```\n", (3, 3), "n0nce",
                     lambda link: href_of(directory)(link) if link.target else None)
    assert '<a href="/notes/Kubernetes.md?lines=18-21#L18">[[Kubernetes#Deployments|rollback notes]]</a>' in page
    assert '<a href="/notes/recipes/sourdough.md?lines=11-15#L11">[[bread#Starter]]</a>' in page
    assert "[[Terraform]]" in page and 'href="/notes/Terraform' not in page
    assert "[[k8s]]</span>" in page  # inside the code block: left as text


def test_viewer_shows_hostile_front_matter_as_text():
    text = (VAULT / "hostile.md").read_text(encoding="utf-8")
    page = note_page("hostile.md", text, None, "n0nce", lambda link: None)
    assert "<script>alert" not in page and "&lt;script&gt;alert(&quot;front matter&quot;)&lt;/script&gt;" in page
    assert "<img" not in page
