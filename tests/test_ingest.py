"""Parsing and chunking: heading paths, exact line spans, token bounds, stable ids."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ingest import chunk_note, count_tokens, parse_sections, read_notes, split_units
from ingest.errors import NotesNotFoundError
from tests.conftest import BUNDLED_NOTES


def spans(text: str):
    return [(s.heading_path, s.start_line, s.end_line) for s in parse_sections(text, "n.md")]


def test_heading_paths_and_line_spans():
    text = "# Top\nintro\n## A\na1\n### A1\ndeep\n## B\nb\n"
    assert spans(text) == [
        (("Top",), 1, 2),
        (("Top", "A"), 3, 4),
        (("Top", "A", "A1"), 5, 6),
        (("Top", "B"), 7, 8),
    ]


def test_hashes_inside_code_fences_are_not_headings():
    text = "# T\n```bash\n# not a heading\n## nor this\n```\n## Real\nx"
    assert [p for p, _, _ in spans(text)] == [("T",), ("T", "Real")]


def test_nested_fences_of_different_lengths():
    text = "# T\n````md\n```\n# inside\n```\n````\n## After\nx"
    assert spans(text) == [(("T",), 1, 6), (("T", "After"), 7, 8)]


def test_seven_hashes_is_a_paragraph_not_a_heading():
    text = "# T\n####### Seven\nbody"
    assert spans(text) == [(("T",), 1, 3)]


def test_setext_headings():
    text = "Title\n=====\nintro\n\nSub\n---\nbody"
    assert spans(text) == [(("Title",), 1, 4), (("Title", "Sub"), 5, 7)]
    chunks = chunk_note(text, "n.md")
    assert [(c.start_line, c.text) for c in chunks] == [(3, "intro"), (7, "body")]


def test_preamble_before_first_heading_and_empty_sections():
    text = "preface\n\n# A\n## Empty\n## B\nb"
    assert spans(text) == [((), 1, 2), (("A",), 3, 3), (("A", "Empty"), 4, 4), (("A", "B"), 5, 6)]
    chunks = chunk_note(text, "n.md")
    assert [(c.heading_path, c.start_line, c.end_line) for c in chunks] == [((), 1, 1), (("A", "B"), 6, 6)]


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_crlf_and_missing_trailing_newline(tmp_path, newline):
    raw = newline.join(["# T", "- one", "", "## S", "- two"])  # no trailing newline
    (tmp_path / "n.md").write_bytes(raw.encode())
    notes, skipped = read_notes(tmp_path)
    assert not skipped
    chunks = chunk_note(notes[0].text, notes[0].source)
    assert [(c.heading, c.start_line, c.end_line, c.text) for c in chunks] == [
        ("T", 2, 2, "- one"),
        ("T > S", 5, 5, "- two"),
    ]


def test_emoji_and_non_ascii_keep_exact_text():
    text = "# Café ☕\n- naïve 🚀 emoji line\n- ünïcödé"
    chunk = chunk_note(text, "n.md")[0]
    assert chunk.heading_path == ("Café ☕",)
    assert chunk.text == "- naïve 🚀 emoji line\n- ünïcödé"


def test_five_thousand_line_file():
    lines = ["# Big"]
    for i in range(1, 1001):
        lines += [f"## Part {i}", f"- fact number {i} about topic {i % 7}", "", f"  - detail {i}", ""]
    text = "\n".join(lines)
    assert len(lines) >= 5000
    chunks = chunk_note(text, "big.md", max_tokens=64)
    assert len(chunks) == 1000
    assert (chunks[-1].heading, chunks[-1].start_line, chunks[-1].end_line) == ("Big > Part 1000", 4998, 5000)


def test_chunks_respect_token_budget_and_keep_original_lines():
    text = BUNDLED_NOTES.read_text(encoding="utf-8")
    lines = text.split("\n")
    for max_tokens in (64, 256):
        chunks = chunk_note(text, "aws-notes.md", max_tokens=max_tokens)
        for c in chunks:
            assert count_tokens(c.text) <= max_tokens or " " not in c.text.strip()
            if c.text == "\n".join(lines[c.start_line - 1 : c.end_line]):
                continue
            # Only a single over-long line may be cut, and then into whole words of that line.
            assert c.start_line == c.end_line and c.text in lines[c.start_line - 1]


def test_long_bullet_is_split_at_sub_bullets_not_mid_word():
    subs = "\n".join(f"  - sub point {i} " + "word " * 30 for i in range(12))
    text = "# T\n- parent bullet\n" + subs
    chunks = chunk_note(text, "n.md", max_tokens=80)
    assert len(chunks) > 2
    for c in chunks:
        for line in c.text.split("\n"):
            assert line in text.split("\n")  # whole lines only


def test_overlong_single_line_is_cut_between_sentences():
    sentence = "This sentence has exactly nine words in it. "
    text = "# T\n" + sentence * 60
    chunks = chunk_note(text, "n.md", max_tokens=40)
    assert len(chunks) > 5
    assert all(c.start_line == c.end_line == 2 for c in chunks)
    assert all(c.text.endswith("it.") for c in chunks)


def test_embed_text_carries_heading_path_but_text_is_original():
    from vectorstore.text import embed_text

    chunk = chunk_note("# Lambda\n## Inside VPC\n- needs a NAT gateway", "n.md")[0]
    assert embed_text(chunk.heading, chunk.text).split("\n")[0] == "Lambda > Inside VPC"
    assert chunk.text == "- needs a NAT gateway"


def test_chunk_ids_are_stable_and_change_with_content():
    text = "# A\n- one\n\n- two"
    first = [c.chunk_id for c in chunk_note(text, "n.md")]
    assert first == [c.chunk_id for c in chunk_note(text, "n.md")]
    assert first != [c.chunk_id for c in chunk_note(text.replace("two", "three"), "n.md")]
    assert first != [c.chunk_id for c in chunk_note(text, "other.md")]


def test_split_units_keeps_sub_bullets_with_their_bullet_and_code_whole():
    text = "- a\n  - a.1\n\n- b\n\n```py\nx = 1\n\ny = 2\n```"
    units = split_units(text, 10)
    assert units == [(10, 11, "- a\n  - a.1"), (13, 13, "- b"), (15, 19, "```py\nx = 1\n\ny = 2\n```")]


def test_binary_and_non_utf8_files_are_skipped_with_a_reason(tmp_path, caplog):
    (tmp_path / "good.md").write_text("# Good\n- fine")
    (tmp_path / "latin1.md").write_bytes("# Bad\ncaf\xe9".encode("latin-1"))
    (tmp_path / "blob.txt").write_bytes(b"abc\x00def")
    (tmp_path / "image.png").write_bytes(b"\x89PNG")
    notes, skipped = read_notes(tmp_path)
    assert [n.source for n in notes] == ["good.md"]
    reasons = {s.source: s.reason for s in skipped}
    assert reasons["latin1.md"] == "not valid UTF-8 (byte offset 9)"
    assert reasons["blob.txt"] == "binary file (NUL byte at offset 3)"
    assert "latin1.md" in caplog.text


def test_missing_notes_path_raises_with_hint(tmp_path):
    with pytest.raises(NotesNotFoundError, match="--notes"):
        read_notes(tmp_path / "nope")


def test_folder_is_read_recursively_with_relative_sources(tmp_path):
    (tmp_path / "sub" / "deeper").mkdir(parents=True)
    (tmp_path / "a.md").write_text("# A")
    (tmp_path / "sub" / "b.markdown").write_text("# B")
    (tmp_path / "sub" / "deeper" / "c.txt").write_text("c")
    (tmp_path / ".hidden").mkdir()
    (tmp_path / ".hidden" / "x.md").write_text("# X")
    notes, _ = read_notes(tmp_path)
    assert [n.source for n in notes] == ["a.md", "sub/b.markdown", "sub/deeper/c.txt"]


def test_bundled_notes_parse_into_772_sections():
    text = BUNDLED_NOTES.read_text(encoding="utf-8")
    sections = parse_sections(text, "aws-notes.md")
    assert len(sections) == 772  # 773 '#' lines, one of them the 7-hash paragraph
    by_line = {s.start_line: s.heading_path for s in sections}
    assert by_line[169] == ("AWS Stuff", "AWS Lambda", "Inside VPC")
    assert 5485 not in by_line


# -- property tests ---------------------------------------------------------------

_line = st.one_of(
    st.sampled_from(["", "   ", "- bullet", "  - sub bullet", "1. numbered", "```", "~~~", "text line.", "> quote"]),
    st.builds(lambda n, t: "#" * n + " " + t, st.integers(1, 7), st.text("abc xyz", min_size=1, max_size=8)),
    st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"), max_size=60),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_line, max_size=40))
def test_every_nonblank_line_is_in_exactly_one_section_and_chunks_stay_inside(lines):
    text = "\n".join(lines)
    sections = parse_sections(text, "p.md")
    owner = {}
    for s in sections:
        for n in range(s.start_line, s.end_line + 1):
            assert n not in owner, "sections overlap"
            owner[n] = s
    for n, line in enumerate(text.split("\n"), start=1):
        if line.strip():
            assert n in owner, f"line {n} belongs to no section"
    for chunk in chunk_note(text, "p.md", max_tokens=32):
        section = owner[chunk.start_line]
        assert section.start_line <= chunk.start_line <= chunk.end_line <= section.end_line
        assert chunk.heading_path == section.heading_path


def test_symlinks_out_of_the_notes_folder_are_not_indexed(tmp_path):
    outside = tmp_path / "secret.md"
    outside.write_text("# Secret\n- password hunter2")
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "ok.md").write_text("# Ok")
    (notes / "link.md").symlink_to(outside)
    (notes / "inner-link.md").symlink_to(notes / "ok.md")
    read, _ = read_notes(notes)
    assert [n.source for n in read] == ["inner-link.md", "ok.md"]
