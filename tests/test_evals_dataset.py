"""Loading eval datasets: the accepted format, and each kind of malformed line reported with its number."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from evals.dataset import SPLITS, Dataset, load_dataset, select_split, split_of
from evals.errors import DatasetError

CORPUS = {"notes.md": 50}
GOOD = {"id": "q-1", "question": "What is X?", "answerable": True, "source": "notes.md", "gold_lines": [3, 5],
        "key_facts": [["x", "ex"]], "kind": "factual"}
UNANSWERABLE = {"id": "q-u1", "question": "How do I prune tomatoes?", "answerable": False, "kind": "unanswerable"}


def write(tmp_path, *lines) -> object:
    path = tmp_path / "ds.jsonl"
    path.write_text("\n".join(line if isinstance(line, str) else json.dumps(line) for line in lines) + "\n", encoding="utf-8")
    return path


def load(tmp_path, *lines, corpus=CORPUS) -> Dataset:
    return load_dataset(write(tmp_path, *lines), corpus)


def test_valid_records_are_loaded(tmp_path):
    ds = load(tmp_path, GOOD, "", UNANSWERABLE,
              {**GOOD, "id": "q-2", "kind": "followup", "history": [{"role": "user", "content": "What is X?"}]})
    assert ds.problems == []
    assert [r.id for r in ds.records] == ["q-1", "q-u1", "q-2"]
    first = ds.records[0]
    assert (first.source, first.gold_lines, first.key_facts, first.line) == ("notes.md", (3, 5), (("x", "ex"),), 1)
    assert ds.records[1].line == 3 and not ds.records[1].answerable
    assert ds.records[2].history == ({"role": "user", "content": "What is X?"},)
    assert len(ds.sha256) == 64


def test_bad_json_is_reported_with_its_line_and_skipped(tmp_path):
    ds = load(tmp_path, GOOD, '{"id": "q-2", "question": ', UNANSWERABLE)
    assert [r.id for r in ds.records] == ["q-1", "q-u1"]
    assert len(ds.problems) == 1 and ds.problems[0].line == 2
    assert "not valid JSON" in ds.problems[0].message


@pytest.mark.parametrize(
    "change, message",
    [
        ({"question": None}, '"question" must be a non-empty string'),
        ({"question": "  "}, '"question" must be a non-empty string'),
        ({"id": ""}, '"id" must be a non-empty string'),
        ({"answerable": "yes"}, '"answerable" must be true or false'),
        ({"gold_lines": "3-5"}, '"gold_lines" must be [first, last]'),
        ({"gold_lines": [5, 3]}, "1 <= first <= last"),
        ({"gold_lines": [0, 3]}, "1 <= first <= last"),
        ({"gold_lines": [3, 51]}, "out of range: notes.md has 50 lines"),
        ({"gold_lines": [3.0, 4]}, '"gold_lines" must be [first, last]'),
        ({"key_facts": []}, '"key_facts" must be a non-empty list'),
        ({"key_facts": [["ok"], []]}, 'each "key_facts" group'),
        ({"key_facts": ["flat"]}, 'each "key_facts" group'),
        ({"kind": "trivia"}, '"kind" must be one of'),
        ({"kind": "unanswerable"}, "contradicts"),
        ({"source": "other.md"}, "is not among the notes"),
        ({"history": [{"role": "bot", "content": "hi"}]}, 'each "history" turn'),
        ({"followup_kind": "sideways", "history": [{"role": "user", "content": "q?"}]}, '"followup_kind" must be one of'),
        ({"followup_kind": "swap"}, '"followup_kind" needs a "history"'),
    ],
)
def test_invalid_fields(tmp_path, change, message):
    record = {**GOOD, **change}
    record = {k: v for k, v in record.items() if v is not None}
    ds = load(tmp_path, UNANSWERABLE, record)
    assert [r.id for r in ds.records] == ["q-u1"]
    assert len(ds.problems) == 1 and ds.problems[0].line == 2
    assert message in ds.problems[0].message


@pytest.mark.parametrize("field", ["id", "question", "answerable", "gold_lines", "key_facts"])
def test_missing_required_field(tmp_path, field):
    ds = load(tmp_path, {k: v for k, v in GOOD.items() if k != field})
    assert ds.records == [] and ds.problems[0].line == 1 and f'"{field}"' in ds.problems[0].message


def test_unknown_fields_ignored_and_optional_fields_default(tmp_path):
    record = {k: v for k, v in GOOD.items() if k not in ("source", "kind")}
    ds = load(tmp_path, {**record, "difficulty": "hard", "tags": ["x"]})
    assert ds.problems == []
    assert ds.records[0].source == "notes.md"  # the only note
    assert ds.records[0].kind == "factual"


def test_source_required_when_several_notes(tmp_path):
    record = {k: v for k, v in GOOD.items() if k != "source"}
    ds = load(tmp_path, record, corpus={"a.md": 10, "b.md": 10})
    assert ds.records == [] and "required: the notes hold 2 files" in ds.problems[0].message


def test_without_corpus_ranges_are_not_checked(tmp_path):
    ds = load(tmp_path, {**GOOD, "gold_lines": [3, 9999]}, corpus=None)
    assert ds.problems == [] and ds.records[0].gold_lines == (3, 9999)


def test_duplicate_ids_and_non_objects(tmp_path):
    ds = load(tmp_path, GOOD, GOOD, "[1, 2]", "42")
    assert [r.id for r in ds.records] == ["q-1"]
    assert [(p.line, p.message) for p in ds.problems] == [
        (2, "duplicate \"id\" 'q-1'"), (3, "each line must be a JSON object"), (4, "each line must be a JSON object"),
    ]


def test_bom_and_crlf_are_accepted(tmp_path):
    path = tmp_path / "ds.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + (json.dumps(GOOD) + "\r\n" + json.dumps(UNANSWERABLE) + "\r\n").encode())
    ds = load_dataset(path, CORPUS)
    assert ds.problems == [] and len(ds.records) == 2


def test_unreadable_files_raise(tmp_path):
    with pytest.raises(DatasetError, match="cannot read dataset"):
        load_dataset(tmp_path / "missing.jsonl")
    bad = tmp_path / "latin1.jsonl"
    bad.write_bytes(b'{"id": "caf\xe9"}\n')
    with pytest.raises(DatasetError, match="not UTF-8"):
        load_dataset(bad)


def test_the_golden_set_loads_cleanly_against_the_bundled_notes():
    from evals.cli import default_dataset
    from evals.dataset import corpus_lines

    ds = load_dataset(default_dataset(), corpus_lines(Path(__file__).resolve().parents[1] / "notes" / "aws-notes.md"))
    assert ds.problems == []
    assert len(ds.records) >= 80
    assert sum(not r.answerable for r in ds.records) >= 10
    assert all(r.source == "aws-notes.md" for r in ds.records if r.answerable)


def test_followup_kind_is_kept(tmp_path):
    record = {**GOOD, "kind": "followup", "followup_kind": "swap", "history": [{"role": "user", "content": "What is X?"}]}
    ds = load(tmp_path, record)
    assert ds.problems == [] and ds.records[0].followup_kind == "swap"


@pytest.mark.parametrize("qid", ["q-001", "q-u01", "til-121", "x", "🙂", "a" * 500])
def test_split_is_a_pure_function_of_the_id(qid):
    assert split_of(qid) in SPLITS
    assert split_of(qid) == split_of(str(qid))


def test_split_halves_are_disjoint_stable_and_balanced(tmp_path):
    records = [{**GOOD, "id": f"q-{i:03d}"} for i in range(200)]
    ds = load(tmp_path, *records)
    tune, report = select_split(ds, "tune"), select_split(ds, "report")
    assert (tune.split, report.split) == ("tune", "report")
    ids_tune, ids_report = {r.id for r in tune.records}, {r.id for r in report.records}
    assert not ids_tune & ids_report and len(ids_tune | ids_report) == 200
    assert 70 <= len(ids_tune) <= 130
    # Adding or reordering questions never moves another one.
    reordered = load(tmp_path, *reversed(records), {**GOOD, "id": "q-new"})
    assert {r.id for r in select_split(reordered, "tune").records} - {"q-new"} == ids_tune
    assert select_split(ds, None) is ds
    with pytest.raises(ValueError):
        select_split(ds, "test")


def test_both_golden_sets_split_into_halves_with_every_kind():
    from evals.cli import default_dataset

    for path in (default_dataset(), default_dataset().with_name("til.jsonl")):
        ds = load_dataset(path)
        for split in SPLITS:
            half = select_split(ds, split)
            assert {r.kind for r in half.records} == {r.kind for r in ds.records}, (path.name, split)
            assert sum(not r.answerable for r in half.records) >= 5
