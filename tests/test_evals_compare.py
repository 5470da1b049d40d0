"""Comparing two eval runs written by hand: deltas, the paired test, flipped questions; report files and PNGs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from evals.compare import LoadedRun, compare_runs, format_comparison, load_run, significance
from evals.errors import CompareError
from evals.metrics import RETRIEVAL_METRICS, summarize
from evals.report import render_markdown, write_report


def _row(i: int, hit: bool, passed: bool, relevant=("c1",)) -> dict:
    score = 1.0 if hit else 0.0
    return {
        "id": f"q-{i:02d}", "kind": "factual" if i % 2 else "paraphrase", "question": f"question {i}?",
        "answerable": True, "abstained": False, "pass": passed, "problems": [] if passed else ["missing key facts: X"],
        "score": 1.0 if passed else 0.25, "answer": "a", "relevant_ids": list(relevant),
        "retrieval": {"hybrid": {"first_relevant_rank": 1 if hit else None, "ranked": [],
                                 "scores": {m: score for m in RETRIEVAL_METRICS} | {"hit@10": 1.0}}},
        "key_fact_recall": 1.0 if passed else 0.0, "citation_precision": 1.0, "citation_hit": True,
        "groundedness": 1.0, "timings_ms": {"retrieve": 100.0 + i, "answer": 10.0, "total": 110.0 + i},
    }


def _metrics(rows: list[dict], sha: str = "a" * 64, **config) -> dict:
    metrics = summarize(rows)
    metrics.update(
        config={"backend": "extractive", "chunks": 100, "chunk_tokens": 256, "dense_weight": 1.0, "bm25_weight": 0.5,
                "rrf_k": 10, **config},
        backends_used={"extractive": len(rows)},
        dataset={"path": "ds.jsonl", "sha256": sha, "records": len(rows), "skipped": []},
        git_commit=None, created="2026-01-01T00:00:00+00:00", timing_s={"total": 1.0},
        method={"relevance": "overlap", "groundedness": "verbatim", "pass": "all facts"},
    )
    return metrics


def _write(folder: Path, rows: list[dict], **config) -> Path:
    folder.mkdir(parents=True)
    (folder / "metrics.json").write_text(json.dumps(_metrics(rows, **config)), encoding="utf-8")
    (folder / "per_question.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return folder


@pytest.fixture
def runs(tmp_path):
    before = [_row(i, hit=True, passed=True) for i in range(12)]
    # After: retrieval broke for 10 of 12 questions; q-03 and q-07 now fail, q-11 was failing and passes.
    after = [_row(i, hit=i in (0, 1), passed=i not in (3, 7)) for i in range(12)]
    before[11] = _row(11, hit=True, passed=False)
    return _write(tmp_path / "before", before), _write(tmp_path / "after", after, bm25_weight=1.0)


def test_regression_is_detected(runs):
    comparison = compare_runs(load_run(runs[0]), load_run(runs[1]))
    assert comparison["deltas"]["hit@1"] == {"before": 1.0, "after": pytest.approx(2 / 12), "delta": pytest.approx(-10 / 12)}
    assert comparison["deltas"]["hit@10"]["delta"] == 0.0
    assert [f["id"] for f in comparison["flipped_to_fail"]] == ["q-03", "q-07"]
    assert comparison["flipped_to_fail"][0]["problems"] == ["missing key facts: X"]
    assert [f["id"] for f in comparison["flipped_to_pass"]] == ["q-11"]
    assert comparison["config_changes"] == {"bm25_weight": {"before": 0.5, "after": 1.0}}
    assert comparison["dataset_changed"] is False
    sig = comparison["significance"]
    assert sig["questions"] == 12 and sig["shared_qrels"] is True
    assert sig["metrics"]["hit@1"]["significant"] and sig["metrics"]["hit@1"]["p_value"] < 0.001
    assert sig["metrics"]["hit@10"] == {"p_value": 1.0, "significant": False, "before": 1.0, "after": 1.0}
    text = format_comparison(comparison)
    assert "flipped pass → fail: 2" in text and "q-03" in text and "q-07" in text
    assert "bm25_weight 0.5 → 1.0" in text


def test_small_differences_are_not_significant(tmp_path):
    before = [_row(i, hit=True, passed=True) for i in range(12)]
    after = [_row(i, hit=i != 5, passed=True) for i in range(12)]
    sig = significance(before, after)
    assert sig["metrics"]["hit@1"]["p_value"] > 0.05 and not sig["metrics"]["hit@1"]["significant"]


def test_changed_chunking_still_tested_on_stored_scores():
    before = [_row(i, hit=True, passed=True, relevant=("old",)) for i in range(6)]
    after = [_row(i, hit=False, passed=True, relevant=("new-a", "new-b")) for i in range(6)]
    sig = significance(before, after)
    assert sig["shared_qrels"] is False and sig["questions"] == 6
    assert sig["metrics"]["mrr@10"]["before"] == 1.0 and sig["metrics"]["mrr@10"]["after"] == 0.0


def test_too_few_shared_questions():
    sig = significance([_row(1, True, True)], [_row(2, True, True)])
    assert sig["questions"] == 0 and sig["metrics"] == {} and sig["test"].startswith("not run")


def test_compare_accepts_the_run_in_memory(runs):
    previous = load_run(runs[0])
    current = load_run(runs[1])
    comparison = compare_runs(previous, (current.metrics, current.rows))
    assert comparison["previous_dir"] == str(runs[0]) and len(comparison["flipped_to_fail"]) == 2


def test_load_run_errors(tmp_path):
    with pytest.raises(CompareError, match="not an eval report folder"):
        load_run(tmp_path / "nowhere")
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "metrics.json").write_text("{}", encoding="utf-8")
    (bad / "per_question.jsonl").write_text("", encoding="utf-8")
    with pytest.raises(CompareError, match='no "summary"'):
        load_run(bad)
    (bad / "metrics.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(CompareError, match="cannot read"):
        load_run(bad)


def _assert_png(path: Path) -> None:
    with Image.open(path) as image:
        assert image.format == "PNG" and image.size[0] > 300
        image.verify()


def test_report_files_and_charts(runs, tmp_path):
    previous, current = load_run(runs[0]), load_run(runs[1])
    comparison = compare_runs(previous, current)
    metrics = dict(current.metrics, compare=comparison)
    out = tmp_path / "report"
    worst = sorted(current.rows, key=lambda r: (r["pass"], r["score"]))[:10]
    charts = write_report(out, metrics, current.rows, worst, comparison)
    assert [p.name for p in charts] == ["metrics_by_kind.png", "latency.png", "compare.png"]
    for path in charts:
        _assert_png(path)
    assert json.loads((out / "metrics.json").read_text())["summary"]["hit@1"] == pytest.approx(2 / 12)
    assert len((out / "per_question.jsonl").read_text().splitlines()) == 12
    assert json.loads((out / "compare.json").read_text())["flipped_to_fail"][0]["id"] == "q-03"
    markdown = render_markdown(metrics, worst, charts, out)
    for needle in ("## Summary", "## By kind", "| paraphrase | 6 |", "## Latency (ms)", "## Compared with",
                   "flipped pass → fail: 2", "## The 10 worst questions", "**q-03**", "![metrics by kind](metrics_by_kind.png)",
                   "![compare](compare.png)"):
        assert needle in markdown


def test_report_without_out_dir_has_no_chart_links(runs):
    run = load_run(runs[1])
    markdown = render_markdown(run.metrics, [], [], None)
    assert "## Summary" in markdown and "![" not in markdown


def test_loaded_run_dataclass_roundtrip(runs):
    run = load_run(runs[0])
    assert isinstance(run, LoadedRun) and run.path == runs[0] and len(run.rows) == 12
