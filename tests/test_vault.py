"""An Obsidian-style vault end to end: tag filters in the CLI and the API, aliases found by search,
front matter never cited, [[wikilinks]] resolved by the web app, hostile notes kept harmless."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from assistant.cli import cli
from ingest.frontmatter import read_front_matter
from tests.indexing_helpers import indexed_assistant

VAULT = Path(__file__).parent / "fixtures" / "vault"
FRONT_MATTER_LINES = {
    path.relative_to(VAULT).as_posix(): read_front_matter(path.read_text(encoding="utf-8")).line_count
    for path in VAULT.rglob("*.md")
}


@pytest.fixture(scope="module")
def vault_index(tmp_path_factory, embedding_cache, embedder):
    """The vault copied to tmp and indexed once (settings, assistant)."""
    root = tmp_path_factory.mktemp("vault")
    shutil.copytree(VAULT, root / "vault")
    return indexed_assistant(root / "vault", root / "index", embedding_cache, embedder)


@pytest.fixture(scope="module")
def env(vault_index):
    settings, _ = vault_index
    return {
        "NOTES_ASSISTANT_NOTES_PATH": str(settings.notes_path),
        "NOTES_ASSISTANT_DATA_DIR": str(settings.data_dir),
        "NOTES_ASSISTANT_EMBEDDING_CACHE_DIR": str(settings.embedding_cache_dir),
    }


def search(env, query, *args):
    result = CliRunner().invoke(cli, ["search", query, "--json", *args], env=env)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout), result.stderr


def ask(env, question):
    result = CliRunner().invoke(cli, ["ask", question, "--json"], env=env)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout), result.stderr


def sources(results) -> set[str]:
    return {r["source"] for r in results["results"]}


# -- tags narrow a search ----------------------------------------------------------------

def test_cli_search_tag_filter_narrows_to_the_tagged_notes(env):
    everywhere, _ = search(env, "roll back a deployment")
    assert everywhere["results"][0]["source"] == "Kubernetes.md"
    narrowed, stderr = search(env, "roll back a deployment tag:work")
    assert narrowed["query"] == "roll back a deployment tag:work"
    assert sources(narrowed) == {"journal/2024-05-01.md"} and stderr == ""


@pytest.mark.parametrize("query, expected", [
    ("#DevOps how do I delete volumes", {"Kubernetes.md", "tools/Docker.md"}),  # front-matter tags, any case
    ("#project what broke checkout", {"journal/2024-05-01.md"}),  # a parent tag matches #project/payments
    ("tag:weekend starter", {"journal/2024-05-01.md", "recipes/sourdough.md"}),  # inline tags
    ("tag:baking/bread", {"recipes/sourdough.md"}),  # a filter alone searches for its words
    ("#devops #containers images", {"Kubernetes.md"}),  # all of them
])
def test_cli_search_tag_filters(env, query, expected):
    results, stderr = search(env, query)
    assert results["results"] and sources(results) <= expected, results
    assert stderr == ""


def test_an_unknown_tag_is_a_notice_and_narrows_nothing(env):
    results, stderr = search(env, "pods in every namespace #nosuchtag")
    assert "notice: No note is tagged #nosuchtag; searched all your notes." in stderr
    assert results["results"][0]["source"] == "Kubernetes.md"


def test_tags_no_note_shares_are_a_notice(env):
    results, stderr = search(env, "starter tag:cooking tag:devops")
    assert "notice: No note has all of #cooking, #devops; searched all your notes." in stderr
    assert len(sources(results)) > 1


def test_cli_ask_with_a_tag_cites_only_tagged_notes(env):
    answer, _ = ask(env, "how long do I bake it? #cooking")
    assert not answer["abstained"]
    assert {c["source"] for c in answer["citations"]} == {"recipes/sourdough.md"}
    assert answer["condensed_query"] == "how long do I bake it?"


# -- front matter: searchable, never cited ----------------------------------------------------

@pytest.mark.parametrize("query, source", [("k8s", "Kubernetes.md"), ("levain loaf", "recipes/sourdough.md"),
                                           ("moby", "tools/Docker.md")])
def test_aliases_are_searchable(env, query, source):
    results, _ = search(env, query)
    assert results["results"][0]["source"] == source


@pytest.mark.parametrize("question", [
    "what are the aliases of the kubernetes cheatsheet?", "when was the kubernetes note created?",
    "which tags does the sourdough bread note have?", "how do I list pods with kube?",
    "what is the title of the hostile note?",
])
def test_front_matter_lines_are_never_cited_or_quoted(env, question):
    answer, _ = ask(env, question)
    for c in answer["citations"]:
        assert c["start_line"] > FRONT_MATTER_LINES[c["source"]], c
    for fragment in ("aliases:", "created: 2024", "tags:", "title:"):
        assert fragment not in answer["answer"]


# -- the API -------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def client(vault_index):
    from fastapi.testclient import TestClient

    from app import build_app

    with TestClient(build_app(*vault_index), base_url="http://127.0.0.1:7860") as c:
        yield c


def test_api_ask_tag_filter(client):
    body = client.post("/api/ask", json={"question": "roll back the payments deployment tag:work"}).json()
    assert body["citations"] and {c["source"] for c in body["citations"]} == {"journal/2024-05-01.md"}
    assert "notices" not in body
    unknown = client.post("/api/ask", json={"question": "roll back the payments deployment tag:nosuchtag"})
    assert unknown.status_code == 200
    assert unknown.json()["notices"] == ["No note is tagged #nosuchtag; searched all your notes."]
    unfiltered = client.post("/api/ask", json={"question": "roll back the payments deployment"}).json()
    assert unknown.json()["citations"] == unfiltered["citations"] and unfiltered["citations"]


def test_viewer_route_links_wikilinks_and_refuses_traversal(client):
    page = client.get("/notes/journal/2024-05-01.md")
    assert page.status_code == 200
    assert '<a href="/notes/Kubernetes.md?lines=18-21#L18">' in page.text
    assert '<a href="/notes/recipes/sourdough.md?lines=11-15#L11">' in page.text
    for path in ("/notes/../../etc/passwd", "/notes/%2e%2e/%2e%2e/etc/passwd", "/notes/..%2F..%2Fetc%2Fpasswd",
                 "/notes//etc/passwd"):
        assert client.get(path).status_code == 404, path
    hostile = client.get("/notes/hostile.md").text
    assert "<script>alert" not in hostile and "<img" not in hostile
    assert "etc/passwd" not in "".join(part.split('"')[0] for part in hostile.split('href="')[1:])


def test_chat_answers_link_wikilinks_through_the_app_context(vault_index):
    from assistant.web.context import AppContext
    from assistant.web.render import answer_html
    from ingest.links import WikiLink

    settings, assistant = vault_index
    ctx = AppContext(settings, assistant)
    assert ctx.link_href(WikiLink.parse("kube#Pods")) == "/notes/Kubernetes.md?lines=12-17#L12"
    assert ctx.link_href(WikiLink.parse("#Starter"), "recipes/sourdough.md") == "/notes/recipes/sourdough.md?lines=11-15#L11"
    assert ctx.link_href(WikiLink.parse("../../etc/passwd")) is None
    answer = assistant.ask("rolled back the payments deployment after release 2.3")
    html = answer_html(answer, ctx.link_href)
    assert any(c.source == "journal/2024-05-01.md" for c in answer.citations)
    assert 'href="/notes/Kubernetes.md?lines=18-21#L18"' in html and "[[" not in html.split("na-sources")[0]


def test_a_hostile_note_renders_as_text(vault_index):
    from assistant.web.render import answer_html

    _, assistant = vault_index
    answer = assistant.ask("a link out of the vault #security")
    assert {c.source for c in answer.citations} == {"hostile.md"}
    html = answer_html(answer, lambda link: None)
    assert "<script" not in html and "<img" not in html and "etc/passwd" in html
    assert "&lt;script&gt;" in html  # the title in the heading path, shown as text
