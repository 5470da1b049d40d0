"""Global options work before or after every subcommand; bad values are one line and exit 2."""

from __future__ import annotations

import json
import subprocess

import pytest
from click.testing import CliRunner

from assistant.cli import cli
from tests.indexing_helpers import PYTHON, REPO, free_port, write_corpus

NOTES = {
    "lambda.md": "# AWS Lambda\n\n## Inside VPC\n\n- a NAT gateway in a public subnet lets a VPC function reach the internet\n",
    "s3.md": "# S3\n\n## Storage classes\n\n- Glacier Deep Archive is the cheapest class for rarely accessed data\n",
}


@pytest.fixture
def places(tmp_path, embedding_cache):
    notes = write_corpus(tmp_path / "notes", NOTES)
    env = {"NOTES_ASSISTANT_EMBEDDING_CACHE_DIR": str(embedding_cache)}  # no notes path or data dir in the env
    return notes, tmp_path / "index", env


def _command(name: str, tmp_path) -> list[str]:
    if name == "eval":
        dataset = tmp_path / "questions.jsonl"
        dataset.write_text(json.dumps({
            "id": "q1", "question": "What lets a function in a VPC reach the internet?", "answerable": True,
            "source": "lambda.md", "gold_lines": [5, 5], "key_facts": [["NAT gateway"]], "kind": "paraphrase",
        }) + "\n", encoding="utf-8")
        return ["eval", "--dataset", str(dataset), "--out", str(tmp_path / "report"), "--json"]
    return {"index": ["index", "--json"], "search": ["search", "glacier", "--json"],
            "ask": ["ask", "cheapest storage class", "--json"]}[name]


@pytest.mark.parametrize("position", ["before", "after"])
@pytest.mark.parametrize("name", ["index", "search", "ask", "eval"])
def test_notes_and_data_dir_work_before_or_after_each_subcommand(places, tmp_path, name, position):
    notes, index, env = places
    options = ["--notes", str(notes), "--data-dir", str(index)]
    command = _command(name, tmp_path)
    args = options + command if position == "before" else command + options
    result = CliRunner().invoke(cli, args, env=env)
    assert result.exit_code == 0, result.output
    assert (index / "manifest.json").exists()  # the index went where the option said
    if name == "search":
        assert json.loads(result.stdout)["results"][0]["source"] == "s3.md"


def test_an_option_after_the_subcommand_wins_over_the_one_before(places, tmp_path):
    notes, index, env = places
    elsewhere = tmp_path / "other-index"
    result = CliRunner().invoke(cli, ["--data-dir", str(elsewhere), "index", "--notes", str(notes),
                                      "--data-dir", str(index)], env=env)
    assert result.exit_code == 0, result.output
    assert (index / "manifest.json").exists() and not elsewhere.exists()


def _main(monkeypatch, capsys, args) -> tuple[int, list[str]]:
    from assistant.cli.root import main

    monkeypatch.setattr("assistant.bootstrap.prepare_process", lambda environ=None: None)  # keep this process's env
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    return exit_info.value.code, capsys.readouterr().err.strip().splitlines()


@pytest.mark.parametrize("name", ["index", "search", "ask", "eval"])
@pytest.mark.parametrize("position", ["before", "after"])
def test_a_missing_notes_folder_is_one_line_and_exit_2(monkeypatch, capsys, tmp_path, name, position):
    monkeypatch.setenv("NOTES_ASSISTANT_DATA_DIR", str(tmp_path / "index"))
    options = ["--notes", "/nonexistent/notes"]
    command = _command(name, tmp_path)
    code, err = _main(monkeypatch, capsys, options + command if position == "before" else command + options)
    assert code == 2 and len(err) == 1, err
    assert err[0].startswith("error:") and "/nonexistent/notes" in err[0]


@pytest.mark.parametrize("args, words", [
    (["--chroma-port", "abc", "index"], "--chroma-port"),
    (["index", "--chroma-port", "99999"], "--chroma-port"),
    (["search", "q", "--chunk-tokens", "5"], "--chunk-tokens"),
    (["index", "--no-such-option"], "--no-such-option"),
    (["no-such-command"], "no-such-command"),
    (["ask", "q", "--backend", "gpt"], "--backend"),
])
def test_bad_option_values_are_one_line_and_exit_2(monkeypatch, capsys, args, words):
    code, err = _main(monkeypatch, capsys, args)
    assert code == 2 and len(err) == 1, err
    assert err[0].startswith("error:") and words in err[0] and "--help" in err[0]


def test_serve_takes_global_options_after_the_subcommand(tmp_path):
    """``serve`` hands its options to the web app's process: a bad notes path ends there, in one line."""
    result = subprocess.run(
        [PYTHON, "-m", "assistant.cli", "serve", "--port", str(free_port()), "--notes", str(tmp_path / "missing"),
         "--data-dir", str(tmp_path / "index")],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and "missing" in lines[0]
