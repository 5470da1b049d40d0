"""The offline assistant on the real index of the bundled notes: answers, citations, abstention, follow-ups."""

from __future__ import annotations

import html
import re

import pytest

from assistant.answer import NOT_COVERED, RESET, Answer
from assistant.engine import Engine
from assistant.followup import condense, needs_context
from assistant.service import Assistant
from assistant.web.render import render_markdown
from tests.conftest import BUNDLED_NOTES

MARKER = re.compile(r"\s*\[\d+\]")


def _overlaps(citation, record) -> bool:
    first, last = record["gold_lines"]
    return citation.start_line <= last and first <= citation.end_line


@pytest.fixture(scope="module")
def golden_answers(assistant, golden):
    return [(record, assistant.ask(record["question"], record.get("history", ()))) for record in golden]


def test_quality_floors_on_the_golden_set(golden_answers):
    answerable = [(r, a) for r, a in golden_answers if r["answerable"]]
    unanswerable = [(r, a) for r, a in golden_answers if not r["answerable"]]
    assert len(unanswerable) >= 10

    answered = [(r, a) for r, a in answerable if not a.abstained]
    answered_rate = len(answered) / len(answerable)
    key_fact_recall = sum(
        sum(any(alt.lower() in a.answer.lower() for alt in group) for group in r["key_facts"]) / len(r["key_facts"])
        for r, a in answerable
    ) / len(answerable)
    citation_hit = sum(any(_overlaps(c, r) for c in a.citations) for r, a in answerable) / len(answerable)
    abstention = sum(a.abstained for _, a in unanswerable) / len(unanswerable)

    # Measured on 2026-11-27: recall 0.93, citation hit 0.95, abstention 1.00, answered 0.995.
    assert key_fact_recall >= 0.8
    assert citation_hit >= 0.9
    assert abstention >= 0.8
    assert answered_rate >= 0.9


def test_answers_quote_the_notes_and_cite_every_bullet(golden_answers):
    notes = BUNDLED_NOTES.read_text(encoding="utf-8")
    for record, answer in golden_answers[:60]:
        if answer.abstained:
            continue
        # Units start at column 0; their own continuation lines are indented.
        lead, *blocks = re.split(r"\n\n(?=\S)", answer.answer)
        assert lead.startswith("From your notes on **")
        assert blocks and all(re.search(r"\[\d+\]$", b.strip()) for b in blocks if not b.startswith("```"))
        numbers = {int(n) for n in re.findall(r"\[(\d+)\]", answer.answer)}
        assert numbers == {c.n for c in answer.citations}
        for block in blocks:
            for line in MARKER.sub("", block).split("\n"):
                text = line.strip().removeprefix("- ").strip()
                if text and not text.startswith("```"):
                    # Never invent words: every quoted line is (a piece of) a line of the notes.
                    assert html.unescape(text) in notes, (record["id"], text)


def test_citations_point_at_the_quoted_lines(golden_answers):
    lines = BUNDLED_NOTES.read_text(encoding="utf-8").split("\n")
    for _, answer in golden_answers[:60]:
        for citation in answer.citations:
            span = "\n".join(lines[citation.start_line - 1 : citation.end_line])
            for piece in citation.text.split("\n"):
                assert piece in span


def test_abstention_lists_the_three_closest_sections(assistant):
    answer = assistant.ask("How do I configure a ROS simulation in AWS RoboMaker?")
    assert answer.abstained and answer.citations == []
    assert answer.answer.startswith(NOT_COVERED)
    assert len(re.findall(r"\]\(/notes/aws-notes\.md\?lines=\d+-\d+#L\d+\)", answer.answer)) == 3
    assert answer.evidence["reasons"]


@pytest.mark.parametrize("question", ["?!?", "...", "¿Qué es un bucket de S3?", "什么是 Lambda", "🙂"])
def test_odd_questions_are_answered_or_abstained_without_error(assistant, question):
    answer = assistant.ask(question)
    assert isinstance(answer, Answer) and answer.answer


def test_follow_up_retrieves_with_the_conversation_subject(assistant):
    history = [
        {"role": "user", "content": "How does Lambda SnapStart work?"},
        {"role": "assistant", "content": "It snapshots the initialised execution environment."},
    ]
    answer = assistant.ask("and which runtimes can use it?", history)
    assert "SnapStart" in answer.condensed_query
    assert not answer.abstained
    assert any(c.heading_path[-1] == "SnapStart" for c in answer.citations)

    alone = assistant.ask("and which runtimes can use it?")
    assert not any(c.heading_path[-1] == "SnapStart" for c in alone.citations)


def test_follow_up_rewrite_rules():
    history = [{"role": "user", "content": "How does DynamoDB on-demand capacity work?"}]
    assert needs_context("what about its pricing?")
    assert not needs_context("How is S3 Glacier Deep Archive priced compared to Standard?")
    assert condense("what about its pricing?", history) == "what about its pricing? (DynamoDB on-demand capacity)"
    chained = history + [{"role": "user", "content": "and its limits?"}]
    assert "DynamoDB" in condense("and how do I monitor it?", chained)
    assert condense("How do I tag an EC2 instance?", history) == "How do I tag an EC2 instance?"


def test_stream_yields_text_then_the_final_answer(assistant):
    items = list(assistant.stream("How do Lambda layers affect cold starts?"))
    assert isinstance(items[-1], Answer)
    deltas = [i for i in items[:-1] if isinstance(i, str)]
    assert "".join(deltas) == items[-1].answer
    assert RESET not in items
    assert set(items[-1].timings_ms) >= {"retrieve", "answer", "total"}


def test_overlong_question_is_cut_with_a_notice(assistant):
    answer = assistant.ask("lambda cold starts " * 300)
    assert len(answer.question) == assistant.settings.max_question_chars
    assert any("cut to" in n for n in answer.notices)


def _ask_over(note: str, question: str, tmp_path, make_settings, embedder) -> Answer:
    """``question`` answered over a one-note corpus holding ``note``."""
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "note.md").write_text(note, encoding="utf-8")
    engine = Engine(make_settings(notes), embedder=embedder)
    engine.index()
    return Assistant(engine).ask(question)


def test_raw_html_in_notes_is_quoted_as_text_and_inert_when_rendered(tmp_path, make_settings, embedder):
    answer = _ask_over(
        "# Security quirks\n\n- the payload <script>window.__xss=1</script> was found in the **bucket policy** notes\n\n"
        '- an image tag <img src=x onerror="window.__xss=1"> also appeared in the bucket policy\n',
        "What payload was found in the bucket policy notes?", tmp_path, make_settings, embedder)
    assert not answer.abstained
    # The answer is the note's markdown, as written; the web renderer makes it inert.
    assert "<script>window.__xss=1</script>" in answer.answer and "**bucket policy**" in answer.answer
    rendered = render_markdown(answer.answer, answer.citations)
    assert "<script" not in rendered and "<img" not in rendered and "&lt;script&gt;" in rendered


def test_question_words_a_small_note_lacks_do_not_make_a_covered_question_unknown(tmp_path, make_settings, embedder):
    """Found against a real LLM server: on a one-note corpus "What is SnapStart?" abstained with
    "1 of 2 terms not in the notes" — the missing term was "what"."""
    answer = _ask_over(
        "# Lambda\n\n## Cold starts\n\n- SnapStart (Java) restores a snapshot of an initialised execution "
        "environment, so cold starts drop to under a second.\n- Provisioned concurrency keeps instances warm.\n",
        "What is SnapStart?", tmp_path, make_settings, embedder)
    assert not answer.abstained, answer.evidence
    assert "SnapStart" in answer.answer and answer.citations
