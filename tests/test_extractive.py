"""The extractive answerer's quoting (issue 11, item 3): markers outside code, citations on exactly the quoted lines,
the fix rather than the setup, lead-ins never left dangling."""

from __future__ import annotations

import re

import pytest

from assistant.answerers.extractive import render_unit

MARKER = re.compile(r"\[(\d+)\]")


def _marker_places(markdown: str) -> dict[str, list[str]]:
    """Where ``[n]`` markers land once markdown-it parses ``markdown``: {"text": [...], "code": [...]}."""
    from markdown_it import MarkdownIt

    md = MarkdownIt("commonmark", {"html": False}).enable(["table"])
    places: dict[str, list[str]] = {"text": [], "code": []}
    for token in md.parse(markdown):
        if token.type in ("fence", "code_block"):
            places["code"] += MARKER.findall(token.content)
        for child in token.children or ():
            if child.type == "code_inline":
                places["code"] += MARKER.findall(child.content)
            elif child.type == "text":
                places["text"] += MARKER.findall(child.content)
    return places


UNITS = [
    "- **a** b",
    "plain sentence.",
    "1. first step",
    "- 🙂",
    "x",
    "```sh\nmake build --jobs 4\n```",
    "~~~\nwith ``` inside\n~~~",
    "    make build --jobs 4",
    "- To grant read access I ran:\n\n      GRANT SELECT ON ALL TABLES IN SCHEMA public TO reporter;",
    "- Run:\n  ```\n  make\n  ```",
    "Set it in the config:\n\n```toml\n[tool]\nx = 1\n```",
    "| flag | meaning |\n|---|---|\n| --quokka | render quokkas |",
    "> Read more: the quokka guide",
    "- uses `arr[0]` and `--force-with-lease`",
]


@pytest.mark.parametrize("text", UNITS)
def test_marker_lands_in_text_never_in_code(text):
    rendered = render_unit(text, 7)
    places = _marker_places(rendered)
    assert places["text"] == ["7"], rendered
    assert "7" not in places["code"], rendered


def test_indented_code_stays_code_and_tables_keep_their_cells():
    from markdown_it import MarkdownIt

    rendered = render_unit("    make build --jobs 4", 1)
    assert rendered.startswith("```\nmake build --jobs 4\n```")
    md = MarkdownIt("commonmark").enable(["table"])
    table = md.render(render_unit("| flag | meaning |\n|---|---|\n| --quokka | render quokkas |", 2))
    assert "<td>render quokkas</td>" in table and table.count("<td>") == 2 and "[2]" in table


def test_answers_on_the_golden_set_put_every_marker_outside_code(golden_answers_quick):
    for record, answer in golden_answers_quick:
        if answer.abstained:
            continue
        places = _marker_places(answer.answer)
        assert not places["code"], (record["id"], answer.answer)
        assert {int(n) for n in places["text"]} == {c.n for c in answer.citations}, record["id"]


def test_citations_cover_only_quoted_lines(golden_answers_quick):
    """A citation never spans unquoted lines (was: lines 3–19 cited while quoting 3 and 19 only)."""
    from tests.conftest import BUNDLED_NOTES

    lines = BUNDLED_NOTES.read_text(encoding="utf-8").split("\n")
    for record, answer in golden_answers_quick:
        for citation in answer.citations:
            quoted = [p.strip() for p in citation.text.split("\n") if p.strip()]
            for number in range(citation.start_line, citation.end_line + 1):
                line = lines[number - 1].strip()
                if line:
                    assert any(line in p or p in line for p in quoted), (record["id"], number, line)


@pytest.fixture(scope="module")
def golden_answers_quick(assistant, golden):
    return [(r, assistant.ask(r["question"], r.get("history", ()))) for r in golden[:120]]
