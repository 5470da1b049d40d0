"""Answers are plain markdown everywhere text is expected; HTML exists only where the web renders it (issue 11, item 6).

One small corpus with the characters that used to leak as entities (``>``, ``&``, ``<``),
a blockquote, a table and code; asked through the assistant, ``ask --json`` and ``/api/ask``.
"""

from __future__ import annotations

import html
import json
import re

import pytest
from click.testing import CliRunner

ENTITY = re.compile(r"&(?:[a-z]+|#\d+|#x[0-9a-f]+);", re.I)

QUIRKS = """# Pipes and quotes

## Shell redirects

- Redirect stderr with `2>&1` so both streams land in the same file: cmd > out.log 2>&1 & then tail it.
- Read more about redirection in the bash manual.

> Read more: the quokka redirect guide says to append with >> and never truncate shared logs.

## Zorblat markup

The zorblat renderer once printed <script>window.__xss=1</script> into the quokka page.

| zorblat flag | meaning |
|---|---|
| --quokka | render quokkas & wombats |
| --plain | no markup at all |
"""


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, embedding_cache, embedder):
    from assistant.engine import Engine
    from assistant.service import Assistant
    from assistant.settings import load_settings

    root = tmp_path_factory.mktemp("answer-text")
    notes = root / "notes"
    notes.mkdir()
    (notes / "quirks.md").write_text(QUIRKS, encoding="utf-8")
    settings = load_settings({}, notes_path=notes, data_dir=root / "index", embedding_cache_dir=embedding_cache)
    engine = Engine(settings, embedder=embedder)
    engine.index()
    return settings, Assistant(engine, settings)


def test_quoted_blockquote_keeps_its_angle_bracket(corpus):
    _, assistant = corpus
    answer = assistant.ask("What does the quokka redirect guide say about appending to shared logs?")
    assert not answer.abstained
    assert "> Read more: the quokka redirect guide" in answer.answer  # was "- &gt; Read more: …"
    assert not ENTITY.search(answer.answer), answer.answer


def test_ampersands_and_redirects_are_not_entities(corpus):
    _, assistant = corpus
    answer = assistant.ask("How do I send stderr and stdout to the same log file?")
    assert "cmd > out.log 2>&1 & then tail it" in answer.answer
    assert not ENTITY.search(answer.answer), answer.answer


def test_raw_html_in_a_note_is_text_in_the_answer_and_inert_when_rendered(corpus):
    from assistant.web.render import answer_html, render_markdown

    _, assistant = corpus
    answer = assistant.ask("What did the zorblat renderer print into the quokka page?")
    assert "<script>window.__xss=1</script>" in answer.answer  # plain text: the note's own characters
    assert not ENTITY.search(answer.answer)
    for rendered in (render_markdown(answer.answer, answer.citations), answer_html(answer)):
        assert "<script" not in rendered
        assert "&lt;script&gt;window.__xss=1&lt;/script&gt;" in rendered


def test_blockquote_table_and_code_render_as_such():
    from assistant.web.render import render_markdown

    rendered = render_markdown("- > quoted line [1]\n\n- | a | b |\n  |---|---|\n  | 1 | 2 |\n\n  [2]\n\n```\nx > y && z\n```\n\n[3]")
    assert "<blockquote>" in rendered and "<table>" in rendered and "<pre><code>x &gt; y &amp;&amp; z" in rendered
    assert "<script>" not in render_markdown("<script>alert(1)</script> [1]")


def test_ask_json_on_the_cli_prints_plain_markdown(corpus, embedding_cache):
    from assistant.cli import cli

    settings, _ = corpus
    env = {"NOTES_ASSISTANT_NOTES_PATH": str(settings.notes_path), "NOTES_ASSISTANT_DATA_DIR": str(settings.data_dir),
           "NOTES_ASSISTANT_EMBEDDING_CACHE_DIR": str(embedding_cache)}
    question = "What does the quokka redirect guide say about appending to shared logs?"
    result = CliRunner().invoke(cli, ["ask", question, "--json"], env=env)
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    assert "> Read more: the quokka redirect guide" in body["answer"] and not ENTITY.search(body["answer"])
    human = CliRunner().invoke(cli, ["ask", question], env=env)
    assert "> Read more: the quokka redirect guide" in human.stdout and "&gt;" not in human.stdout


def test_api_ask_answer_is_plain_markdown(corpus):
    from fastapi.testclient import TestClient

    from app import build_app

    settings, assistant = corpus
    with TestClient(build_app(settings, assistant), base_url="http://127.0.0.1:7860") as client:
        body = client.post("/api/ask", json={"question": "Which zorblat flag renders quokkas and wombats?"}).json()
    assert body["abstained"] is False
    assert "render quokkas & wombats" in body["answer"] and not ENTITY.search(body["answer"])
    assert html.unescape(body["answer"]) == body["answer"]


def test_not_covered_links_keep_heading_characters(corpus):
    _, assistant = corpus
    answer = assistant.ask("How do I prune tomato plants in my garden?")
    assert answer.abstained and not ENTITY.search(answer.answer)
