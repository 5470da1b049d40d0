"""``notes-assistant eval`` end to end on a tiny corpus, floors' exit codes, sweeps; ``run_eval`` on the bundled notes."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image

from assistant.cli import cli

COMPUTE = """# Compute notes

## Widgets service

### Scaling
- Widgets scale out by adding shards; each shard serves 500 requests per second.
- The shard limit per account is 40 shards, raised through a support ticket.

### Billing
- Widgets are billed per shard-hour at 0.12 dollars.
- Idle shards are still billed, so delete the ones you do not use.

## Gizmo queue

### Retries
- Gizmo retries a failed message 3 times before moving it to the dead-letter queue.
- The visibility timeout defaults to 30 seconds and can be raised to 12 hours.

### Billing
- Gizmo bills per million messages; the first million each month is free.
"""

STORAGE = """# Storage notes

## Vault archive

### Retrieval
- Expedited retrieval takes 1-5 minutes; standard retrieval takes 3-5 hours.
- Bulk retrieval is the cheapest option and takes 5-12 hours.

Vault archives are written once and read rarely. Each archive is identified by an
archive id that the service returns on upload; keep it, because listing a vault takes
an inventory job that runs for hours. Archives can be deleted, but objects younger
than 90 days are charged for the remaining days of the minimum storage duration.
Multipart uploads help with archives larger than 100 megabytes and let a failed part
be retried alone instead of restarting the whole upload from the beginning.

### Locking
- Vault Lock policies become immutable once the 24 hour in-progress window is completed.
"""


def _line(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.split("\n"), start=1) if needle in line)


def _record(qid, question, source, text, needle, facts, kind="factual", **extra):
    line = _line(text, needle)
    return {"id": qid, "question": question, "answerable": True, "source": source, "gold_lines": [line, line],
            "key_facts": facts, "kind": kind, "reference_answer": needle, **extra}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("evals-cli")
    notes = root / "notes"
    notes.mkdir()
    (notes / "compute.md").write_text(COMPUTE, encoding="utf-8")
    (notes / "storage.md").write_text(STORAGE, encoding="utf-8")
    records = [
        _record("q-1", "How many times does Gizmo retry a failed message before the dead-letter queue?", "compute.md",
                COMPUTE, "retries a failed message", [["3 times", "three"]]),
        _record("q-2", "What is the maximum number of widget shards per account?", "compute.md", COMPUTE,
                "shard limit per account", [["40"]], kind="paraphrase"),
        _record("q-3", "How long does expedited retrieval from the vault archive take?", "storage.md", STORAGE,
                "Expedited retrieval", [["1-5 minutes"]]),
        _record("q-4", "and how is it billed?", "compute.md", COMPUTE, "billed per shard-hour", [["shard-hour"]],
                kind="followup", history=[{"role": "user", "content": "How do Widgets shards scale?"}]),
        {"id": "q-u1", "question": "How do I prune tomato plants in my garden?", "answerable": False, "kind": "unanswerable"},
        {"id": "q-u2", "question": "How much does Amazon Braket charge per quantum task?", "answerable": False,
         "kind": "unanswerable"},
    ]
    dataset = root / "small.jsonl"
    dataset.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return {"root": root, "notes": notes, "data_dir": root / "index", "dataset": dataset}


@pytest.fixture
def run_cli(corpus, embedding_cache):
    def run(*args, data_dir=None):
        base = ["--notes", str(corpus["notes"]), "--data-dir", str(data_dir or corpus["data_dir"]), "eval"]
        env = {"NOTES_ASSISTANT_EMBEDDING_CACHE_DIR": str(embedding_cache), "HF_HUB_OFFLINE": "1"}
        return CliRunner().invoke(cli, [*base, *args], env=env, catch_exceptions=False)

    return run


def _assert_png(path: Path) -> None:
    with Image.open(path) as image:
        assert image.format == "PNG"
        image.verify()


# -- argument errors: exit 2 before anything runs --------------------------------------------------
def test_unknown_floor_metric_exits_2_with_the_valid_names(run_cli, corpus, tmp_path):
    result = run_cli("--dataset", str(corpus["dataset"]), "--out", str(tmp_path / "o"), "--min", "hit@7=0.5")
    assert result.exit_code == 2
    assert "unknown metric 'hit@7'" in result.stderr
    for name in ("hit@5", "mrr@10", "ndcg@10", "key_fact_recall", "abstention_f1", "groundedness"):
        assert name in result.stderr
    assert "dense.hit@5" not in result.stderr  # ablation metrics are valid only with --ablate
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("spec", ["hit@5", "hit@5=", "hit@5=high"])
def test_malformed_floor_exits_2(run_cli, spec):
    result = run_cli("--min", spec)
    assert result.exit_code == 2 and "write METRIC=VALUE" in result.stderr


def test_ablation_floor_needs_ablate(run_cli, corpus, tmp_path):
    result = run_cli("--dataset", str(corpus["dataset"]), "--min", "bm25.hit@5=0.5")
    assert result.exit_code == 2 and "unknown metric" in result.stderr


@pytest.mark.parametrize(
    "args, message",
    [
        (["--sweep", "chunk_tokens"], "write SETTING=V1,V2"),
        (["--sweep", "backend=openai,ollama"], "cannot sweep 'backend'"),
        (["--sweep", "chunk_tokens=128", "--min", "hit@5=0.5"], "run --compare/--min without --sweep"),
    ],
)
def test_bad_sweeps_exit_2(run_cli, tmp_path, args, message):
    result = run_cli("--out", str(tmp_path / "o"), *args)
    assert result.exit_code == 2 and message in result.stderr


def test_missing_compare_folder_exits_2(run_cli, tmp_path):
    result = run_cli("--compare", str(tmp_path / "nope"), "--out", str(tmp_path / "o"))
    assert result.exit_code == 2 and "not an eval report folder" in result.stderr


def test_missing_dataset_exits_2(run_cli, tmp_path):
    result = run_cli("--dataset", str(tmp_path / "missing.jsonl"), "--out", str(tmp_path / "o"))
    assert result.exit_code == 2 and "cannot read dataset" in result.stderr


def test_dataset_without_usable_lines_exits_2(run_cli, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": 1\n{"id": "x", "question": "q?"}\n', encoding="utf-8")
    result = run_cli("--dataset", str(bad), "--out", str(tmp_path / "o"))
    assert result.exit_code == 2
    assert f"warning: {bad}:1: not valid JSON" in result.stderr
    assert "holds no usable question" in result.stderr


# -- a real run --------------------------------------------------------------------------------
def test_eval_report_json_floors_and_compare(run_cli, corpus, tmp_path):
    first = tmp_path / "first"
    result = run_cli("--dataset", str(corpus["dataset"]), "--out", str(first), "--json", "--ablate",
                     "--min", "hit@10=0.5", "--min", "dense.hit@10=0.5")
    assert result.exit_code == 0, result.stderr
    metrics = json.loads(result.stdout)  # --json: stdout is the metrics object only
    assert metrics == json.loads((first / "metrics.json").read_text())
    assert metrics["counts"] == {**metrics["counts"], "questions": 6, "answerable": 4, "unanswerable": 2}
    assert set(metrics["retrieval"]) == {"hybrid", "dense", "bm25"} and "bm25.mrr@10" in metrics["summary"]
    assert metrics["dataset"]["sha256"] == hashlib.sha256(corpus["dataset"].read_bytes()).hexdigest()
    assert metrics["config"]["sources"] == 2 and metrics["config"]["chunks"] > 0
    assert set(metrics["by_kind"]) == {"factual", "paraphrase", "followup", "unanswerable"}
    assert "verbatim" in metrics["method"]["groundedness"]
    rows = [json.loads(line) for line in (first / "per_question.jsonl").read_text().splitlines()]
    assert [r["id"] for r in rows] == ["q-1", "q-2", "q-3", "q-4", "q-u1", "q-u2"]
    followup = rows[3]
    assert followup["history"] and followup["condensed_query"] != followup["question"]
    for row in rows[:4]:
        ranked = row["retrieval"]["hybrid"]["ranked"]
        assert 0 < len(ranked) <= 10
        first_hit = next((r["rank"] for r in ranked if r["relevant"]), None)
        assert row["retrieval"]["hybrid"]["first_relevant_rank"] == first_hit
        assert row["retrieval"]["hybrid"]["scores"]["hit@10"] == (1.0 if first_hit else 0.0)
    report = (first / "report.md").read_text()
    assert "## Summary" in report and "## By kind" in report and "## Retrieval by mode (ablation)" in report
    for name in ("metrics_by_kind.png", "latency.png"):
        _assert_png(first / name)

    second = tmp_path / "second"
    result = run_cli("--dataset", str(corpus["dataset"]), "--out", str(second), "--compare", str(first),
                     "--min", "hit@1=1.01", "--min", "answered_rate=0")
    assert result.exit_code == 1
    assert "floor missed: hit@1 = " in result.stderr and "< 1.01" in result.stderr
    assert "answered_rate" not in result.stderr  # that floor is met
    assert "compared with" in result.stdout and "flipped pass → fail: 0" in result.stdout
    comparison = json.loads((second / "compare.json").read_text())
    assert comparison["significance"]["questions"] == 4
    assert comparison["config_changes"] == {"modes": {"before": ["hybrid", "dense", "bm25"], "after": ["hybrid"]}}
    # Same index, same questions: identical retrieval, so no metric differs significantly.
    assert all(not m["significant"] for m in comparison["significance"]["metrics"].values())
    _assert_png(second / "compare.png")
    assert "## Compared with" in (second / "report.md").read_text()


def test_undefined_metric_misses_its_floor(run_cli, corpus, tmp_path):
    answerable_only = tmp_path / "answerable.jsonl"
    lines = corpus["dataset"].read_text().splitlines()[:2]
    answerable_only.write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = run_cli("--dataset", str(answerable_only), "--out", str(tmp_path / "o"), "--min", "abstention_recall=0.5")
    assert result.exit_code == 1
    assert "abstention_recall is not defined for this dataset" in result.stderr


def test_sweep_indexes_each_chunking_into_temporary_stores(run_cli, corpus, tmp_path):
    user_index = tmp_path / "user-index"
    out = tmp_path / "sweep"
    result = run_cli("--dataset", str(corpus["dataset"]), "--out", str(out), "--json",
                     "--sweep", "chunk_tokens=48,512", "--sweep", "bm25_weight=0.5,1.0", data_dir=user_index)
    assert result.exit_code == 0, result.stderr
    results = json.loads(result.stdout)["sweep"]
    assert [r["label"] for r in results] == [
        "chunk_tokens=48,bm25_weight=0.5", "chunk_tokens=48,bm25_weight=1.0",
        "chunk_tokens=512,bm25_weight=0.5", "chunk_tokens=512,bm25_weight=1.0",
    ]
    assert results[0]["chunks"] == results[1]["chunks"] > results[2]["chunks"] == results[3]["chunks"]
    assert not user_index.exists()  # neither chunking is the configured one: only temporary stores were built
    for r in results:
        metrics = json.loads((Path(r["out_dir"]) / "metrics.json").read_text())
        assert metrics["config"]["chunk_tokens"] == int(r["settings"]["chunk_tokens"])
        assert metrics["config"]["bm25_weight"] == float(r["settings"]["bm25_weight"])
    table = (out / "sweep.md").read_text()
    assert table.count("| chunk_tokens=") == 4 and "hit@5" in table


# -- run_eval, the web tab's entry point, on the bundled notes --------------------------------------
def test_run_eval_on_golden_records(assistant, golden, tmp_path):
    from evals.runner import EvalResult, run_eval

    picked = [r for r in golden if r["answerable"] and r["kind"] != "followup"][:5]
    picked += [r for r in golden if r["kind"] == "followup"][:1]
    picked += [r for r in golden if not r["answerable"]][:2]
    dataset = tmp_path / "eight.jsonl"
    dataset.write_text("".join(json.dumps(r) + "\n" for r in picked), encoding="utf-8")
    calls = []
    result = run_eval(assistant, dataset, tmp_path / "out", ablate=True, progress=lambda d, t: calls.append((d, t)))
    assert isinstance(result, EvalResult)
    assert calls == [(i, 8) for i in range(1, 9)]
    m = result.metrics
    assert m["counts"]["questions"] == 8 and m["counts"]["unanswerable"] == 2
    assert m["config"]["chunks"] == len(assistant.engine.retriever.snapshot)
    rows = [json.loads(line) for line in (tmp_path / "out" / "per_question.jsonl").read_text().splitlines()]
    answerable = [r for r in rows if r["answerable"]]
    # ranx's numbers agree with the first relevant rank read off each ranking.
    for k in (1, 3, 5, 10):
        expected = sum(1 for r in answerable if (r["retrieval"]["hybrid"]["first_relevant_rank"] or 99) <= k) / 6
        assert m["summary"][f"hit@{k}"] == pytest.approx(expected)
    rr = [1 / r["retrieval"]["hybrid"]["first_relevant_rank"] if r["retrieval"]["hybrid"]["first_relevant_rank"] else 0
          for r in answerable]
    assert m["summary"]["mrr@10"] == pytest.approx(sum(rr) / 6)
    for r in answerable:
        first, last = r["gold_lines"]
        for hit in r["retrieval"]["bm25"]["ranked"]:
            assert hit["relevant"] == (hit["start_line"] <= last and first <= hit["end_line"])
        assert set(r["relevant_ids"]) >= {h["chunk_id"] for h in r["retrieval"]["hybrid"]["ranked"] if h["relevant"]}
    unanswerable = [r for r in rows if not r["answerable"]]
    assert m["summary"]["abstention_recall"] == pytest.approx(sum(r["abstained"] for r in unanswerable) / 2)
    assert m["summary"]["answered_rate"] == pytest.approx(sum(not r["abstained"] for r in rows) / 8)
    assert result.report_markdown == (tmp_path / "out" / "report.md").read_text()
    assert [p.name for p in result.chart_paths] == ["metrics_by_kind.png", "latency.png"]
    for path in result.chart_paths:
        _assert_png(path)
    assert len(result.worst) == 8 and [w["pass"] for w in result.worst] == sorted(w["pass"] for w in result.worst)
    assert m["git_commit"] is None or len(m["git_commit"]) == 40


def test_run_eval_without_out_dir_writes_nothing(assistant, golden, tmp_path):
    from evals.runner import run_eval

    dataset = tmp_path / "two.jsonl"
    dataset.write_text("".join(json.dumps(r) + "\n" for r in golden[:2]), encoding="utf-8")
    result = run_eval(assistant, dataset)
    assert result.out_dir is None and result.chart_paths == []
    assert "## Summary" in result.report_markdown and result.metrics["counts"]["questions"] == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["two.jsonl"]


def test_default_paths_live_in_the_evals_package():
    from datetime import datetime

    import evals
    from evals.cli import default_dataset, default_out_dir

    assert default_dataset() == Path(__file__).resolve().parents[1] / "evals" / "datasets" / "golden.jsonl"
    path = default_out_dir(datetime(2030, 1, 2, 3, 4, 5))
    assert path == Path(evals.__file__).parent / "reports" / "20300102-030405"


def test_split_keeps_one_stable_half_and_says_so(run_cli, corpus, tmp_path):
    from evals.dataset import split_of

    records = [json.loads(line) for line in corpus["dataset"].read_text().splitlines()]
    records[3] = {**records[3], "followup_kind": "pronoun"}
    records.append({**records[0], "id": "q-5", "question": "Also, how long does bulk retrieval from the vault take?",
                    "source": "storage.md", "gold_lines": [_line(STORAGE, "Bulk retrieval")] * 2,
                    "key_facts": [["5-12 hours"]], "kind": "followup", "followup_kind": "topic_change",
                    "history": [{"role": "user", "content": "How do Widgets shards scale?"}]})
    dataset = tmp_path / "split.jsonl"
    dataset.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    halves = {}
    for split in ("tune", "report"):
        out = tmp_path / split
        result = run_cli("--dataset", str(dataset), "--out", str(out), "--split", split, "--json")
        assert result.exit_code == 0, result.stderr
        metrics = json.loads(result.stdout)
        halves[split] = {json.loads(line)["id"] for line in (out / "per_question.jsonl").read_text().splitlines()}
        assert halves[split] == {r["id"] for r in records if split_of(r["id"]) == split}
        assert metrics["dataset"]["split"] == split and metrics["counts"]["questions"] == len(halves[split])
        assert f"only the **{split}** half" in (out / "report.md").read_text()
    assert halves["tune"] | halves["report"] == {r["id"] for r in records} and not halves["tune"] & halves["report"]

    whole = tmp_path / "whole"
    result = run_cli("--dataset", str(dataset), "--out", str(whole), "--json")
    metrics = json.loads(result.stdout)
    assert set(metrics["by_followup_kind"]) == {"pronoun", "topic_change"}
    assert metrics["by_followup_kind"]["topic_change"]["carried_subject"] == 0
    rows = {json.loads(line)["id"]: json.loads(line) for line in (whole / "per_question.jsonl").read_text().splitlines()}
    assert rows["q-5"]["condensed_query"] == rows["q-5"]["question"] and rows["q-5"]["carried_terms"] == []
    assert rows["q-4"]["carried_terms"]  # the pronoun follow-up is searched with the earlier subject
    assert "## Follow-ups by kind" in (whole / "report.md").read_text()


def test_split_rejects_an_unknown_half(run_cli, tmp_path):
    result = run_cli("--split", "test", "--out", str(tmp_path / "o"))
    assert result.exit_code == 2 and "'test' is not one of 'tune', 'report'" in result.stderr
