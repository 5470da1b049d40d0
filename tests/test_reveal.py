"""Extractive answers revealed block by block in the chat (``render.reveal_html``), and a refusal said once."""

from __future__ import annotations

import re

import pytest

from assistant.answer import NOT_COVERED, Answer, Citation
from assistant.web.render import answer_html, reveal_html, reveal_prefixes

CITE = Citation(1, "zephyr.md", ("Zephyr station", "Readings"), 5, 5, "Zephyr readings are uploaded every ten minutes.")

TEXTS = {
    "empty": "",
    "one paragraph": "Zephyr readings are uploaded every ten minutes [1].",
    "emoji": "🌬️ [1]",
    "intro and bullets": "From your notes on **Zephyr**:\n\n- Uploaded every ten minutes. [1]\n\n- Kept 90 days. [1]",
    "nested bullets": "Intro:\n\n- Do not run the defaults.\n  - Frameworks apply them.\n    - Not the best. [1]\n- Two. [1]",
    "code and quote": "Run:\n\n```bash\naws lambda put-function-concurrency --reserved 0\n```\n\n> a quote [1]\n\n1. first\n2. second",
    "table": "| a | b |\n|---|---|\n| 1 | 2 |\n\nAfter the table [1].",
    "hostile": "- <script>window.__xss=1</script> [1]\n- <img src=x onerror=alert(1)> two",
    "huge": "\n\n".join(f"- bullet {n} says something [1]" for n in range(200)),
}


def _answer(text: str, abstained: bool = False) -> Answer:
    return Answer("q", text, [] if abstained else [CITE], abstained, "extractive", "q", {"total": 3.0})


def _visible_text(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html)).strip()


@pytest.mark.parametrize("name", sorted(TEXTS))
def test_the_steps_grow_block_by_block_and_end_as_the_answer(name):
    text = TEXTS[name]
    steps = reveal_html(_answer(text))
    assert steps[-1] == answer_html(_answer(text))  # the last step is exactly the final bubble
    prefixes = reveal_prefixes(text)
    assert len(steps) == max(len(prefixes), 1)
    assert not prefixes or prefixes[-1] == text.rstrip()  # nothing of the answer is lost
    for step in steps[:-1]:
        assert "na-pending" in step and "na-foot" not in step and "na-sources" not in step
    bodies = [_visible_text(step.split('class="na-body">', 1)[1].split('<div class="na-foot"', 1)[0]) for step in steps]
    assert [len(b) for b in bodies] == sorted(len(b) for b in bodies)
    assert all("<script" not in step and "<img" not in step for step in steps)  # a note's markup stays text


def test_each_bullet_of_a_list_is_a_step_of_its_own():
    prefixes = reveal_prefixes(TEXTS["intro and bullets"])
    assert prefixes == [
        "From your notes on **Zephyr**:",
        "From your notes on **Zephyr**:\n\n- Uploaded every ten minutes. [1]",
        TEXTS["intro and bullets"],
    ]
    assert len(reveal_prefixes(TEXTS["nested bullets"])) == 3  # nested items ride with their parent
    assert len(reveal_prefixes(TEXTS["huge"])) == 200


def test_citation_markers_are_links_in_every_step():
    steps = reveal_html(_answer(TEXTS["intro and bullets"]))
    assert 'class="na-cite"' not in steps[0]  # the intro has no marker yet
    assert all('href="/notes/zephyr.md?lines=5-5#L5"' in step for step in steps[1:])


@pytest.mark.parametrize("closest", ["", "\n\nThe closest sections are:\n- [Zephyr](/notes/zephyr.md?lines=1-3#L1) (zephyr.md:1-3)"])
def test_a_refusal_is_said_once_in_every_step(closest):
    answer = _answer(NOT_COVERED + closest, abstained=True)
    for step in reveal_html(answer):
        text = _visible_text(step)
        assert text.count("Not found in your notes") + text.count("seem to cover") == 1, text
    final = _visible_text(answer_html(answer))
    assert ("closest sections below" in final) == bool(closest)  # points below only when something is there
