"""``notes-assistant tune``: synthetic questions from the notes, a calibration stored in the data dir and used.

On the bundled notes (a private copy of the session's index): the command prints
before/after on the synthetic set and on a golden set, stores ``calibration.json``;
the engine, ``/healthz`` and the Index tab use and show it from the next question on;
settings set explicitly still win; a damaged or foreign calibration is reported, never fatal.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from assistant.abstain import DEFAULT_THRESHOLDS, Thresholds
from assistant.calibration import CALIBRATION_NAME, StoredCalibration, effective, save_calibration
from assistant.cli import cli

GOLDEN = Path(__file__).resolve().parents[1] / "evals" / "datasets" / "golden.jsonl"
TIL = Path(__file__).resolve().parents[1] / "evals" / "datasets" / "til.jsonl"


def _cli(settings, *args):
    return CliRunner().invoke(cli, ["--notes", str(settings.notes_path), "--data-dir", str(settings.data_dir), *args],
                              env={"NOTES_ASSISTANT_EMBEDDING_CACHE_DIR": str(settings.embedding_cache_dir)})


@pytest.fixture
def small_golden(tmp_path) -> Path:
    lines = GOLDEN.read_text(encoding="utf-8").splitlines()
    path = tmp_path / "mine.jsonl"
    path.write_text("\n".join(lines[:12] + [line for line in lines if '"answerable": false' in line][:3]) + "\n")
    return path


def test_synthetic_questions_come_from_the_notes_and_name_nothing_the_golden_sets_ask(bundled_engine):
    from evals.synthetic import ABSENT, make_questions
    from vectorstore.bm25 import analyze

    snap = bundled_engine.retriever.snapshot
    questions = make_questions(snap.ids, snap.texts, snap.metadatas, snap.bm25.doc_freq, 60, 20, seed=3)
    again = make_questions(snap.ids, snap.texts, snap.metadatas, snap.bm25.doc_freq, 60, 20, seed=3)
    assert questions == again  # deterministic for a seed
    answerable = [q for q in questions if q.answerable]
    unanswerable = [q for q in questions if not q.answerable]
    assert len(answerable) == 60 and len(unanswerable) == 20
    assert len({q.origin for q in answerable}) >= 4  # a mix: headings, bold, definitions, commands, keywords
    spans = {(m["source"], int(m["start_line"]), int(m["end_line"])) for m in snap.metadatas}
    assert all((q.source, *q.lines) in spans for q in answerable)  # each names the chunk it was made from
    for q in unanswerable:  # the absent name or topic really is absent
        name = next(n for n in ABSENT if n in q.question)
        assert all(not snap.bm25.doc_freq.get(t) for t in analyze(name))
    held_out = " ".join(json.loads(line)["question"] for path in (GOLDEN, TIL)
                        for line in path.read_text(encoding="utf-8").splitlines() if '"answerable": false' in line)
    asked = set(re.findall(r"[a-z0-9]+", held_out.lower()))
    assert not [n for n in ABSENT if n.lower() in asked]  # the golden sets' unanswerables stay unseen


def test_tune_stores_a_calibration_and_prints_before_and_after(bundled_copy, small_golden):
    result = _cli(bundled_copy, "tune", "--dataset", str(small_golden), "--questions", "40")
    assert result.exit_code == 0, result.output
    out = result.output
    assert "40 answerable + 13 unanswerable questions made from your notes" in out
    for row in ("synthetic hit@1", "synthetic abstention_recall", "golden hit@1", "golden key_fact_recall",
                "golden answerable_answered"):
        assert row in out
    stored_file = json.loads((Path(bundled_copy.data_dir) / CALIBRATION_NAME).read_text())
    assert stored_file["format"] == 2 and len(stored_file["calibrations"]) == 1
    stored = stored_file["calibrations"][0]
    assert stored["collection"].startswith("notes-")
    assert set(stored["fusion"]) == {"dense_weight", "bm25_weight", "rrf_k"}
    assert set(stored["abstention"]) == set(Thresholds().to_json())
    assert stored["report"]["synthetic_after"]["answered"] >= 0.98  # the constraint tune keeps
    questions = (Path(bundled_copy.data_dir) / "calibration-questions.jsonl").read_text().splitlines()
    assert len(questions) == 53 and json.loads(questions[0])["id"].startswith("syn-")

    as_json = json.loads(_cli(bundled_copy, "tune", "--dataset", str(small_golden), "--questions", "40",
                              "--json").stdout)
    assert as_json["calibration"]["origin"]["abstention"] == "tuned"
    assert set(as_json["golden"]["before"]) == set(as_json["golden"]["after"])

    reset = _cli(bundled_copy, "tune", "--reset")
    assert reset.exit_code == 0 and "defaults apply" in reset.output
    assert not (Path(bundled_copy.data_dir) / CALIBRATION_NAME).exists()


def test_tune_refuses_bad_values_in_one_line(bundled_copy, tmp_path):
    few = _cli(bundled_copy, "tune", "--questions", "3")
    assert few.exit_code == 2 and "Traceback" not in few.output
    missing = _cli(bundled_copy, "tune", "--dataset", str(tmp_path / "nope.jsonl"))
    assert missing.exit_code == 2 and "Traceback" not in missing.output and "nope.jsonl" in missing.output


def test_a_stored_calibration_is_used_from_the_next_question_on(bundled_copy):
    from assistant.engine import Engine
    from assistant.service import Assistant

    engine = Engine(bundled_copy)
    assistant = Assistant(engine)
    question = "How do I enable versioning on an S3 bucket?"
    assert not assistant.ask(question).abstained
    assert engine.calibration.origin["abstention"] == "default"
    strict = Thresholds(floor_cosine=0.99, floor_bm25=1e9)  # nothing is evidence enough: every question abstains
    save_calibration(bundled_copy.data_dir, StoredCalibration(engine.indexer.collection_name,
                     {"dense_weight": 1.0, "bm25_weight": 0.25, "rrf_k": 40}, strict))
    answer = assistant.ask(question)
    assert answer.abstained and any("weak matches" in r for r in answer.evidence["reasons"])
    assert engine.calibration.origin == {"dense_weight": "tuned", "bm25_weight": "tuned", "rrf_k": "tuned",
                                         "abstention": "tuned"}
    searched = [r.chunk_id for r in engine.search(question, 10)]
    assert searched == [r.chunk_id for r in engine.retriever.search(question, 10, fusion=(1.0, 0.25, 40))]
    assert searched != [r.chunk_id for r in engine.retriever.search(question, 10, fusion=(1.0, 0.5, 10))]

    # A changed file (not only a new one) is read again: same size, a new inode.
    save_calibration(bundled_copy.data_dir, StoredCalibration(engine.indexer.collection_name,
                     {"dense_weight": 1.0, "bm25_weight": 0.75, "rrf_k": 40}, DEFAULT_THRESHOLDS))
    assert not assistant.ask(question).abstained and engine.calibration.bm25_weight == 0.75


def test_explicit_settings_win_over_the_stored_fusion(bundled_copy):
    from assistant.engine import Engine
    from assistant.settings import load_settings

    save_calibration(bundled_copy.data_dir, StoredCalibration(
        Engine(bundled_copy).indexer.collection_name, {"dense_weight": 1.0, "bm25_weight": 1.5, "rrf_k": 5},
        DEFAULT_THRESHOLDS))
    env = {"NOTES_ASSISTANT_BM25_WEIGHT": "0.5"}
    settings = load_settings(env, notes_path=bundled_copy.notes_path, data_dir=bundled_copy.data_dir,
                             embedding_cache_dir=bundled_copy.embedding_cache_dir).with_overrides(top_k=5)
    calibration = Engine(settings).calibration
    assert (calibration.bm25_weight, calibration.rrf_k) == (0.5, 5)  # bm25 from the env, rrf_k from tune
    assert calibration.origin["bm25_weight"] == "settings" and calibration.origin["rrf_k"] == "tuned"


@pytest.mark.parametrize("content, problem", [
    ("{not json", "unusable"),
    ('{"format": 1, "collection": "x", "fusion": {"dense_weight": 1, "bm25_weight": 0.5, "rrf_k": NaN}, '
     '"abstention": {}}', "finite"),
    ('{"format": 1, "collection": "x", "fusion": {"dense_weight": 1, "bm25_weight": Infinity, "rrf_k": 10}, '
     '"abstention": {}}', "finite"),
    ('{"format": 1, "collection": "x", "fusion": {"dense_weight": 1, "bm25_weight": 0.5, "rrf_k": 10.7}, '
     '"abstention": {}}', "whole number"),
    ('{"format": 1, "collection": "x", "fusion": {"dense_weight": 1, "bm25_weight": 0.5, "rrf_k": 10}, '
     '"abstention": {"floor_cosine": -5, "missing_ratio": 7}}', "[-1, 1]"),
    ('{"format": 1, "collection": "x", "fusion": {"dense_weight": 1, "bm25_weight": -1, "rrf_k": 10}, '
     '"abstention": {}}', "unusable"),
    ('{"format": 1, "collection": "another-index", "fusion": {"dense_weight": 1, "bm25_weight": 1, "rrf_k": 10}, '
     '"abstention": {"floor_cosine": 0.99}}', "measured for the index 'another-index'"),
])
def test_a_damaged_or_foreign_calibration_falls_back_to_the_defaults(bundled_copy, content, problem, caplog):
    from assistant.engine import Engine
    from assistant.service import Assistant

    (Path(bundled_copy.data_dir) / CALIBRATION_NAME).write_text(content)
    engine = Engine(bundled_copy)
    with caplog.at_level(logging.WARNING):
        answer = Assistant(engine).ask("How do I enable versioning on an S3 bucket?")
    assert not answer.abstained
    calibration = engine.calibration
    assert problem in calibration.problem and "notes-assistant tune" in calibration.problem
    assert calibration.thresholds == DEFAULT_THRESHOLDS and calibration.origin["abstention"] == "default"


def test_a_damaged_calibration_never_stops_the_app_from_starting(bundled_copy):
    from fastapi.testclient import TestClient

    from app import build_app
    from assistant.engine import Engine
    from assistant.service import Assistant

    (Path(bundled_copy.data_dir) / CALIBRATION_NAME).write_text(
        '{"format": 1, "collection": "x", "fusion": {"dense_weight": 1, "bm25_weight": 0.5, "rrf_k": NaN}, "abstention": {}}')
    with TestClient(build_app(bundled_copy, Assistant(Engine(bundled_copy))), base_url="http://127.0.0.1:7860") as c:
        health = c.get("/healthz")
        asked = c.post("/api/ask", json={"question": "How do I enable versioning on an S3 bucket?"})
    assert health.status_code == 200 and "finite" in health.json()["calibration"]["problem"]
    assert asked.status_code == 200 and not asked.json()["abstained"]


def test_explicit_settings_are_never_stored_as_tuned(bundled_copy, small_golden):
    result = CliRunner().invoke(cli, ["--notes", str(bundled_copy.notes_path), "--data-dir", str(bundled_copy.data_dir),
                                      "tune", "--dataset", str(small_golden), "--questions", "40", "--json"],
                                env={"NOTES_ASSISTANT_EMBEDDING_CACHE_DIR": str(bundled_copy.embedding_cache_dir),
                                     "NOTES_ASSISTANT_BM25_WEIGHT": "3", "NOTES_ASSISTANT_RRF_K": "60"})
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["calibration"]["fusion"]["bm25_weight"] == 3 and out["calibration"]["origin"]["bm25_weight"] == "settings"
    stored = json.loads((Path(bundled_copy.data_dir) / CALIBRATION_NAME).read_text())["calibrations"][0]["fusion"]
    assert stored["bm25_weight"] != 3 and stored["rrf_k"] != 60  # what the sweep chose, not the env's values


def test_too_few_questions_store_nothing_and_say_so_in_one_line(tmp_path, embedding_cache):
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "kitchen.md").write_text("# Kitchen\n\nSourdough needs a starter.\n", encoding="utf-8")
    result = CliRunner().invoke(cli, ["--notes", str(notes), "--data-dir", str(tmp_path / "index"), "tune"],
                                env={"NOTES_ASSISTANT_EMBEDDING_CACHE_DIR": str(embedding_cache)})
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "nothing was stored" in result.output and "about other notes" in result.output
    assert len([line for line in result.output.splitlines() if line.strip()]) <= 8  # index progress, no dataset warnings
    assert not (tmp_path / "index" / CALIBRATION_NAME).exists()


def test_reset_removes_both_files_refuses_odd_paths_and_speaks_json(bundled_copy, tmp_path):
    data = Path(bundled_copy.data_dir)
    (data / CALIBRATION_NAME).write_text("{}")
    (data / "calibration-questions.jsonl").write_text("{}\n")
    done = _cli(bundled_copy, "tune", "--reset", "--json")
    assert done.exit_code == 0 and json.loads(done.stdout)["removed"] is True
    assert not (data / CALIBRATION_NAME).exists() and not (data / "calibration-questions.jsonl").exists()
    a_file = tmp_path / "afile"
    a_file.write_text("x")
    bad = CliRunner().invoke(cli, ["--data-dir", str(a_file), "tune", "--reset"])
    assert bad.exit_code == 2 and "Traceback" not in bad.output and "not a folder" in bad.output
    foreign = tmp_path / "someone-elses"
    foreign.mkdir()
    (foreign / CALIBRATION_NAME).write_text("{}")
    refused = CliRunner().invoke(cli, ["--data-dir", str(foreign), "tune", "--reset"])
    assert refused.exit_code == 2 and (foreign / CALIBRATION_NAME).exists()


def test_healthz_and_the_index_tab_show_the_calibration_a_cli_run_stored(bundled_copy):
    from fastapi.testclient import TestClient

    from app import build_app
    from assistant.engine import Engine
    from assistant.service import Assistant
    from assistant.web.context import AppContext

    engine = Engine(bundled_copy)
    with TestClient(build_app(bundled_copy, Assistant(engine)), base_url="http://127.0.0.1:7860") as client:
        before = client.get("/healthz").json()["calibration"]
        assert before["origin"]["abstention"] == "default" and before["tuned_at"] is None
        save_calibration(bundled_copy.data_dir, StoredCalibration(
            engine.indexer.collection_name, {"dense_weight": 1.0, "bm25_weight": 0.75, "rrf_k": 20},
            Thresholds(floor_bm25=2.5)))
        after = client.get("/healthz").json()["calibration"]
    assert after["fusion"] == {"dense_weight": 1.0, "bm25_weight": 0.75, "rrf_k": 20}
    assert after["abstention"]["floor_bm25"] == 2.5 and after["tuned_at"]
    status = AppContext(bundled_copy, Assistant(engine)).status_html()
    assert "tuned on your notes" in status and "bm25 0.75" in status


def test_calibration_text_says_how_to_calibrate_when_none_is_stored():
    from assistant.settings import Settings
    from assistant.web.render import calibration_text

    assert "run notes-assistant tune" in calibration_text(effective(Settings(), None))


def test_a_sweep_table_marks_variants_measured_without_the_stored_calibration():
    from evals.sweep import format_sweep_table

    row = {"chunks": 813, "summary": {"hit@1": 0.8}, "latency_ms": {}}
    mixed = [{**row, "label": "chunk_tokens=256", "calibration": "tuned"},
             {**row, "label": "chunk_tokens=128", "calibration": "default"}]
    table = format_sweep_table(mixed)
    assert "chunk_tokens=128 †" in table and "chunk_tokens=256 †" not in table and "another index configuration" in table
    same = [{**r, "calibration": "default"} for r in mixed]
    assert "†" not in format_sweep_table(same) and "†" not in format_sweep_table(same, markdown=True)


def test_each_index_configuration_keeps_its_own_calibration(bundled_copy):
    """Switching chunk settings and back must not throw the first configuration's calibration away."""
    from assistant.engine import Engine

    first = Engine(bundled_copy)
    save_calibration(bundled_copy.data_dir, StoredCalibration(
        first.indexer.collection_name, {"dense_weight": 1.0, "bm25_weight": 0.75, "rrf_k": 20}, DEFAULT_THRESHOLDS))
    save_calibration(bundled_copy.data_dir, StoredCalibration(
        "notes-other-128-0", {"dense_weight": 1.0, "bm25_weight": 0.25, "rrf_k": 5}, DEFAULT_THRESHOLDS))
    entries = json.loads((Path(bundled_copy.data_dir) / CALIBRATION_NAME).read_text())["calibrations"]
    assert sorted(e["collection"] for e in entries) == sorted([first.indexer.collection_name, "notes-other-128-0"])
    calibration = Engine(bundled_copy).calibration
    assert (calibration.bm25_weight, calibration.rrf_k) == (0.75, 20) and not calibration.problem
