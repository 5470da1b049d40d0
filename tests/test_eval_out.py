"""``notes-assistant eval --out``: an existing folder is reused, any other existing path is refused before the run."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

NOTE = "# Zephyr guide\n\n## Setup\n\n- The zephyr daemon listens on port 4417 by default.\n"
RECORD = {"id": "z-1", "question": "Which port does the zephyr daemon listen on?", "answerable": True,
          "source": "guide.md", "gold_lines": [5, 5], "gold_heading": "Zephyr guide > Setup",
          "key_facts": [["4417"]], "kind": "paraphrase"}


@pytest.fixture
def run_eval_cli(tmp_path, embedding_cache):
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "guide.md").write_text(NOTE, encoding="utf-8")
    dataset = tmp_path / "mini.jsonl"
    dataset.write_text(json.dumps(RECORD) + "\n", encoding="utf-8")
    env = {"NOTES_ASSISTANT_NOTES_PATH": str(tmp_path / "notes"), "NOTES_ASSISTANT_DATA_DIR": str(tmp_path / "index"),
           "NOTES_ASSISTANT_EMBEDDING_CACHE_DIR": str(embedding_cache)}

    def run(out):
        from assistant.cli import cli

        return CliRunner().invoke(cli, ["eval", "--dataset", str(dataset), "--out", str(out)], env=env)

    return run


@pytest.mark.parametrize("inside", [False, True])
def test_an_existing_file_as_out_is_refused_before_the_run(run_eval_cli, tmp_path, inside):
    existing = tmp_path / "report.md"
    existing.write_text("keep me\n", encoding="utf-8")
    result = run_eval_cli(existing / "sub" if inside else existing)

    assert result.exit_code == 2 and result.stdout == ""
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("error: --out ") and "exists and is not a folder" in line
    assert "Traceback" not in result.stderr and existing.read_text(encoding="utf-8") == "keep me\n"
    assert not (tmp_path / "index").exists()  # refused before the index was even opened


def test_an_existing_folder_as_out_is_reused(run_eval_cli, tmp_path):
    folder = tmp_path / "reports"
    folder.mkdir()
    result = run_eval_cli(folder)

    assert result.exit_code == 0, result.stderr
    assert (folder / "report.md").is_file()
