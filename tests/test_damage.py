"""A damaged index is found, named in one line, and repaired — never a traceback, never the notes touched.

Each damage kind of issue 10 is made on real files of a real index (embedded Chroma),
then the real CLI runs in its own process, as a user would run it:

- ``index --check`` names the damage in one line and exits 1;
- plain ``search``, ``ask`` and ``index`` exit 2 with one line naming ``--repair``;
- ``index --repair`` (or ``--rebuild``) moves the damaged files into
  ``<data dir>/damaged-<time>/`` and rebuilds: ``--check`` is clean, every chunk is
  back, the notes are byte for byte what they were.

Server mode (a real ``chroma run``): a garbage record store and a collection the
server lost are found and repaired the same way.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

import pytest

from assistant.engine import Engine
from tests.indexing_helpers import PYTHON, REPO, ChromaServer, cli_env, expected_chunks, write_corpus
from vectorstore.generations import visible_rows


def truncate_chroma(data_dir: Path) -> None:
    database = data_dir / "chroma" / "chroma.sqlite3"
    with open(database, "r+b") as f:
        f.truncate(database.stat().st_size // 2)


def empty_chroma(data_dir: Path) -> None:
    (data_dir / "chroma" / "chroma.sqlite3").write_bytes(b"")


def garbage_records(data_dir: Path) -> None:
    records = data_dir / "records.sqlite"
    records.write_bytes(hashlib.sha256(b"garbage").digest() * (records.stat().st_size // 32))


def remove_manifest(data_dir: Path) -> None:
    (data_dir / "manifest.json").unlink()


# kind → (how to damage, what the one line of --check says, the files a repair moves aside)
DAMAGE = {
    "truncated-chroma": (truncate_chroma, "the Chroma store", {"chroma", "records.sqlite", "manifest.json"}),
    "empty-chroma": (empty_chroma, "chroma.sqlite3 is damaged (empty file)", {"chroma", "records.sqlite", "manifest.json"}),
    "garbage-records": (garbage_records, "the record store", {"records.sqlite"}),
    "missing-manifest": (remove_manifest, "manifest.json is damaged (missing", set()),
}


@pytest.fixture(scope="module")
def template(tmp_path_factory, embedder, embedding_cache):
    """A small indexed corpus, built once; tests damage private copies of it."""
    from assistant.settings import load_settings

    root = tmp_path_factory.mktemp("damage-template")
    notes = write_corpus(root / "notes")
    settings = load_settings({}, notes_path=notes, data_dir=root / "index", embedding_cache_dir=embedding_cache)
    engine = Engine(settings, embedder=embedder)
    engine.index()
    assert engine.check().ok
    return root


@pytest.fixture
def copy(template, tmp_path, embedding_cache):
    """``(notes, data_dir, env)`` of a private copy of the template (never opened by this process)."""
    root = tmp_path / "case"
    shutil.copytree(template, root)
    return root / "notes", root / "index", cli_env(root / "notes", root / "index", embedding_cache)


def cli(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([PYTHON, "-m", "assistant.cli", *args], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=600)


def lines_of(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


def fingerprint(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*"))
            if p.is_file()}


def assert_one_line_naming_repair(result: subprocess.CompletedProcess) -> None:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    errors = lines_of(result.stderr)
    assert len(errors) == 1 and errors[0].startswith("error: ") and "index --repair" in errors[0], errors


def assert_whole_again(notes: Path, data_dir: Path, env: dict, settings_for) -> None:
    checked = cli(env, "index", "--check")
    assert checked.returncode == 0 and "ok: no problems" in checked.stdout, checked.stdout + checked.stderr
    engine = Engine(settings_for(notes, data_dir))  # what a fresh process sees (this one never opened the copy)
    assert set(visible_rows(engine.indexer.collection())[1]) == set(expected_chunks(notes))
    assert engine.search("how often should a sourdough starter be fed", 1, mode="bm25")[0].source == "kitchen.md"


@pytest.fixture
def settings_for(embedding_cache):
    from assistant.settings import load_settings

    return lambda notes, data_dir: load_settings({}, notes_path=notes, data_dir=data_dir,
                                                  embedding_cache_dir=embedding_cache)


@pytest.mark.slow
@pytest.mark.parametrize("kind", sorted(DAMAGE))
def test_check_names_the_damage_plain_commands_refuse_and_repair_restores(kind, copy, settings_for):
    damage, says, moved = DAMAGE[kind]
    notes, data_dir, env = copy
    notes_before = fingerprint(notes)
    damage(data_dir)

    checked = cli(env, "index", "--check")
    assert checked.returncode == 1 and "Traceback" not in checked.stderr, checked.stdout + checked.stderr
    named = [line for line in lines_of(checked.stdout) if "is damaged" in line]
    assert len(named) == 1 and says in named[0] and "index --repair" in named[0], checked.stdout

    for command in (["search", "roses"], ["ask", "when should roses be pruned"], ["index"]):
        assert_one_line_naming_repair(cli(env, *command))

    repaired = cli(env, "index", "--repair")
    assert repaired.returncode == 0 and "Traceback" not in repaired.stderr, repaired.stdout + repaired.stderr
    aside = sorted(data_dir.glob("damaged-*"))
    if moved:
        assert len(aside) == 1 and {p.name for p in aside[0].iterdir()} == moved
        assert any(str(aside[0]) in line for line in lines_of(repaired.stderr))
    else:
        assert not aside  # nothing was damaged on disk: the lost entry is rebuilt
    assert_whole_again(notes, data_dir, env, settings_for)
    assert fingerprint(notes) == notes_before  # the notes are never touched


@pytest.mark.slow
@pytest.mark.parametrize("kind", sorted(DAMAGE))
def test_rebuild_recovers_from_each_damage(kind, copy, settings_for):
    damage, _, moved = DAMAGE[kind]
    notes, data_dir, env = copy
    damage(data_dir)
    rebuilt = cli(env, "index", "--rebuild")
    assert rebuilt.returncode == 0 and "Traceback" not in rebuilt.stderr, rebuilt.stdout + rebuilt.stderr
    assert f"added {len(expected_chunks(notes))}," in rebuilt.stdout
    assert {p.name for d in data_dir.glob("damaged-*") for p in d.iterdir()} == moved
    assert_whole_again(notes, data_dir, env, settings_for)


def test_check_json_reports_damage(copy):
    notes, data_dir, env = copy
    empty_chroma(data_dir)
    import json

    result = cli(env, "index", "--check", "--json")
    report = json.loads(result.stdout)
    assert result.returncode == 1 and report["ok"] is False and len(report["damage"]) == 1


def test_a_collection_that_lost_its_rows_is_named_and_rebuilt(copy, settings_for, embedder):
    """The store opens fine but the index's collection is gone (e.g. an empty store re-created by Chroma)."""
    notes, data_dir, _ = copy
    engine = Engine(settings_for(notes, data_dir), embedder=embedder)
    engine.client.delete_collection(engine.indexer.collection_name)
    status = engine.status()
    assert status.stale and len(status.damage) == 1 and "the store has no such collection" in status.damage[0]
    report = engine.check()
    assert not report.ok and report.damage == status.damage
    from vectorstore.errors import DamagedIndexError

    with pytest.raises(DamagedIndexError, match="index --repair"):
        engine.index()
    repaired = engine.repair()
    assert repaired.added == len(expected_chunks(notes)) and repaired.embedded == 0  # vectors from the cache
    assert engine.check().ok and not engine.status().damage


# -- server mode ------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def chroma_server(tmp_path_factory):
    server = ChromaServer(tmp_path_factory.mktemp("damage-server") / "data")
    yield server
    server.stop()


@pytest.mark.server
def test_server_mode_garbage_records_and_a_lost_collection_are_repaired(chroma_server, tmp_path, embedding_cache,
                                                                       embedder):
    from assistant.settings import load_settings

    notes = write_corpus(tmp_path / "notes")
    settings = load_settings({}, notes_path=notes, data_dir=tmp_path / "index", embedding_cache_dir=embedding_cache,
                             collection="damage", chroma_host=chroma_server.host, chroma_port=chroma_server.port)
    Engine(settings, embedder=embedder).index()
    env = cli_env(notes, tmp_path / "index", embedding_cache, NOTES_ASSISTANT_COLLECTION="damage",
                  NOTES_ASSISTANT_CHROMA_HOST=chroma_server.host, NOTES_ASSISTANT_CHROMA_PORT=str(chroma_server.port))

    garbage_records(tmp_path / "index")
    checked = cli(env, "index", "--check")
    assert checked.returncode == 1 and sum("the record store" in line for line in lines_of(checked.stdout)) == 1
    assert_one_line_naming_repair(cli(env, "search", "roses"))
    repaired = cli(env, "index", "--repair")
    assert repaired.returncode == 0 and "ok: no problems" in repaired.stdout, repaired.stdout + repaired.stderr
    assert [p.name for d in (tmp_path / "index").glob("damaged-*") for p in d.iterdir()] == ["records.sqlite"]

    engine = Engine(settings, embedder=embedder)  # the server lost the collection (its data wiped, say)
    engine.client.delete_collection(engine.indexer.collection_name)
    checked = cli(env, "index", "--check")
    assert checked.returncode == 1 and any("the store has no such collection" in line for line in lines_of(checked.stdout))
    assert_one_line_naming_repair(cli(env, "index"))
    assert cli(env, "index", "--repair").returncode == 0
    fresh = Engine(settings, embedder=embedder)
    assert fresh.check().ok
    assert set(visible_rows(fresh.indexer.collection())[1]) == set(expected_chunks(notes))
