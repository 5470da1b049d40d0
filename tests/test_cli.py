"""The `notes-assistant` CLI contract: JSON shapes, batch mode, and one-line errors for bad input."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from click.testing import CliRunner

from assistant.cli import cli

SEARCH_KEYS = {"rank", "source", "heading_path", "start_line", "end_line", "score", "text"}
ASK_KEYS = {"question", "answer", "abstained", "backend", "condensed_query", "citations", "timings_ms"}


@pytest.fixture
def small_notes(tmp_path):
    notes = tmp_path / "notes"
    (notes / "aws").mkdir(parents=True)
    (notes / "aws" / "lambda.md").write_text(
        "# AWS Lambda\n\n## Inside VPC\n\n"
        "- place a **NAT gateway** in a public subnet so a function in a VPC can reach the internet\n\n"
        "- lambdas get an ENI that never gets a public IP\n\n"
        "## Cold starts\n\n- provisioned concurrency keeps execution environments warm\n",
        encoding="utf-8",
    )
    (notes / "s3.md").write_text(
        "# S3\n\n## Storage classes\n\n- Glacier Deep Archive is the cheapest class for rarely accessed data\n",
        encoding="utf-8",
    )
    return notes


@pytest.fixture
def env(tmp_path, small_notes, embedding_cache):
    return {
        "NOTES_ASSISTANT_NOTES_PATH": str(small_notes),
        "NOTES_ASSISTANT_DATA_DIR": str(tmp_path / "index"),
        "NOTES_ASSISTANT_EMBEDDING_CACHE_DIR": str(embedding_cache),
    }


def run(env, *args, input=None):
    result = CliRunner().invoke(cli, list(args), env=env, input=input)
    return result


def test_index_prints_counts_and_second_run_skips(env):
    first = run(env, "index", "--json")
    assert first.exit_code == 0, first.output
    report = json.loads(first.stdout)
    assert report["added"] == 3 and report["sources"] == 2
    second = json.loads(run(env, "index", "--json").stdout)
    assert (second["added"], second["deleted"], second["skipped"]) == (0, 0, 3)
    human = run(env, "index")
    assert "added 0, updated 0, deleted 0, skipped 3" in human.stdout


def test_search_json_contract(env):
    result = run(env, "search", "how does a function in a VPC reach the internet", "-k", "2", "--json")
    assert result.exit_code == 0, result.output
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1
    obj = json.loads(lines[0])
    assert set(obj) == {"query", "results"}
    assert obj["query"] == "how does a function in a VPC reach the internet"
    assert len(obj["results"]) == 2
    top = obj["results"][0]
    assert set(top) == SEARCH_KEYS
    assert top == {**top, "rank": 1, "source": "aws/lambda.md", "heading_path": ["AWS Lambda", "Inside VPC"],
                   "start_line": 5, "end_line": 7}
    assert isinstance(top["score"], float) and "NAT gateway" in top["text"]


def test_search_builds_missing_index_and_says_so(env):
    result = run(env, "search", "glacier")
    assert result.exit_code == 0
    assert "building it" in result.stderr
    assert "S3 > Storage classes  (s3.md:5-5)" in result.stdout


def test_search_batch_mode(env, tmp_path):
    questions = tmp_path / "q.jsonl"
    questions.write_text(
        json.dumps({"id": "a", "question": "cheapest storage class", "extra": 1}) + "\n\n"
        + json.dumps({"id": 7, "question": "warm execution environments"}) + "\n",
        encoding="utf-8",
    )
    result = run(env, "search", "--questions", str(questions), "-k", "1", "--json")
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.strip().splitlines()]
    assert [r["id"] for r in rows] == ["a", 7]
    assert rows[0]["results"][0]["source"] == "s3.md"
    assert rows[1]["results"][0]["heading_path"] == ["AWS Lambda", "Cold starts"]
    assert all(set(r) == {"id", "query", "results"} for r in rows)


def test_ask_json_contract(env):
    result = run(env, "ask", "Why can't my function inside a VPC reach the internet?", "--json")
    assert result.exit_code == 0, result.output
    obj = json.loads(result.stdout)
    assert set(obj) == ASK_KEYS
    assert obj["abstained"] is False and obj["backend"] == "extractive"
    assert "NAT gateway" in obj["answer"] and "[1]" in obj["answer"]
    cited = obj["citations"][0]
    # The span is the quoted bullets' lines: the NAT bullet (line 5), perhaps with the ENI one (line 7).
    assert cited in ({"n": 1, "source": "aws/lambda.md", "heading_path": ["AWS Lambda", "Inside VPC"],
                      "start_line": 5, "end_line": end} for end in (5, 7))
    assert set(obj["timings_ms"]) >= {"retrieve", "answer", "total"}


def test_ask_human_output_lists_sources(env):
    result = run(env, "ask", "what is the cheapest S3 storage class?")
    assert result.exit_code == 0
    assert "Glacier Deep Archive" in result.stdout
    assert "[1] S3 › Storage classes (s3.md:5-5)" in result.stdout


def test_ask_batch_with_history(env, tmp_path):
    questions = tmp_path / "q.jsonl"
    questions.write_text(
        json.dumps({"id": "f1", "question": "and what keeps them warm?",
                    "history": [{"role": "user", "content": "Tell me about Lambda cold starts"}]}) + "\n",
        encoding="utf-8",
    )
    result = run(env, "ask", "--questions", str(questions), "--json")
    assert result.exit_code == 0, result.output
    row = json.loads(result.stdout)
    assert row["id"] == "f1"
    assert "Lambda cold starts" in row["condensed_query"]
    assert row["citations"][0]["heading_path"] == ["AWS Lambda", "Cold starts"]


def test_ask_off_topic_abstains(env):
    obj = json.loads(run(env, "ask", "How do I prune tomatoes in my garden?", "--json").stdout)
    assert obj["abstained"] is True and obj["citations"] == []
    assert obj["answer"].startswith("Your notes don't seem to cover this.")


@pytest.mark.parametrize("question", ["???", "¿Cómo escala Lambda en una VPC?", "🙂🙂🙂", "λ"])
def test_odd_questions_do_not_crash(env, question):
    result = run(env, "ask", question, "--json")
    assert result.exit_code == 0, result.output
    assert set(json.loads(result.stdout)) == ASK_KEYS


# -- bad input: one clear line on stderr, exit 2, never a traceback --------------------------------

def _assert_user_error(result, *fragments):
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in lines[0]


@pytest.mark.parametrize("query", ["", "   ", "\t\n"])
def test_empty_query(env, query):
    _assert_user_error(run(env, "search", query), "empty")
    _assert_user_error(run(env, "ask", query), "empty")


def test_overlong_query_is_truncated_with_a_notice(env):
    result = run(env, "search", "glacier " * 400, "--json")
    assert result.exit_code == 0
    assert "truncated to 2000 characters" in result.stderr
    assert len(json.loads(result.stdout)["query"]) == 2000


def test_missing_notes_path(env, tmp_path):
    _assert_user_error(run({**env, "NOTES_ASSISTANT_NOTES_PATH": str(tmp_path / "nope")}, "search", "x"), "not found", "--notes")


def test_empty_notes_folder(env, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    _assert_user_error(run({**env, "NOTES_ASSISTANT_NOTES_PATH": str(empty)}, "index"), "no readable")


def test_data_dir_that_is_a_file(env, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    _assert_user_error(run({**env, "NOTES_ASSISTANT_DATA_DIR": str(blocker)}, "search", "x"), "not a folder")


def test_foreign_data_dir_suggests_rebuild(env, tmp_path):
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "thesis.docx").write_text("mine")
    _assert_user_error(run({**env, "NOTES_ASSISTANT_DATA_DIR": str(foreign)}, "search", "x"), "--rebuild")
    assert run({**env, "NOTES_ASSISTANT_DATA_DIR": str(foreign)}, "index", "--rebuild").exit_code == 0
    assert (foreign / "thesis.docx").exists()  # taking over never deletes the user's files


def test_corrupt_manifest_suggests_rebuild(env):
    assert run(env, "index").exit_code == 0
    (env_dir := __import__("pathlib").Path(env["NOTES_ASSISTANT_DATA_DIR"]))
    (env_dir / "manifest.json").write_text("{not json")
    _assert_user_error(run(env, "search", "glacier"), "--rebuild")
    assert run(env, "index", "--rebuild").exit_code == 0
    assert run(env, "search", "glacier").exit_code == 0


def test_bad_setting_value(env):
    _assert_user_error(run({**env, "NOTES_ASSISTANT_TOP_K": "lots"}, "search", "x"), "NOTES_ASSISTANT_TOP_K")


def test_bad_questions_file(env, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": 1, "question": "ok"}\n{oops\n', encoding="utf-8")
    _assert_user_error(run(env, "search", "--questions", str(bad), "--json"), "bad.jsonl:2")
    _assert_user_error(run(env, "search", "--questions", str(tmp_path / "none.jsonl"), "--json"), "cannot read")


def test_console_script_runs_in_a_real_process(env):
    """The installed entry point, as a user runs it (process start to JSON)."""
    proc = subprocess.run(
        [sys.executable, "-m", "assistant.cli", "search", "glacier", "--json", "-k", "1"],
        env={**__import__("os").environ, **env}, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["results"][0]["source"] == "s3.md"
