"""The layout contract: pinned public surfaces, small modules, layers that point inward, no import-time effects."""

from __future__ import annotations

import ast
import importlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("assistant", "ingest", "vectorstore", "evals")
MAX_LINES = 400

EXPECTED_ALL = {
    "assistant": [
        "abstain", "answer", "answerers", "bootstrap", "calibration", "citations", "cli", "engine", "errors", "followup", "service",
        "settings", "watch", "web",
    ],
    "assistant.answerers": ["backends", "extractive", "llm", "prompt"],
    "assistant.cli": ["cli", "main"],
    "assistant.web": [
        "access", "assets", "chat_state", "chat_tab", "context", "evals_tab", "gate", "index_tab", "render", "routes",
        "sanitize", "security", "ui", "viewer",
    ],
    "ingest": [
        "Chunk", "chunk_note", "chunk_sections", "count_tokens", "split_units",
        "IngestError", "NoNotesError", "NotesNotFoundError",
        "NoteFile", "SkippedFile", "discover", "notes_root", "read_note", "read_notes",
        "Section", "code_line_ranges", "parse_sections",
    ],
    "vectorstore": [
        "LocalEmbeddings", "load_embedder",
        "VectorStoreError", "CorruptIndexError", "IndexNotBuiltError", "StoreUnavailableError",
        "IndexReport", "Indexer", "IndexStatus", "NotesSync",
        "HybridRetriever", "Mode", "SearchResult", "Snapshot",
        "make_client",
    ],
    "evals": ["charts", "cli", "compare", "dataset", "errors", "metrics", "report", "runner", "scoring", "sweep", "synthetic",
              "tune"],
}


def _modules() -> list[tuple[str, Path]]:
    found = []
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            if "corpora" in path.parts:
                continue
            parts = path.relative_to(REPO).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found.append((name, path))
    return found


@pytest.mark.parametrize("package", sorted(EXPECTED_ALL))
def test_each_package_exports_exactly_its_pinned_names(package):
    module = importlib.import_module(package)
    assert sorted(module.__all__) == sorted(EXPECTED_ALL[package])
    for name in module.__all__:  # lazy (PEP 562) or submodule names must resolve too
        assert getattr(module, name, None) is not None or importlib.import_module(f"{package}.{name}")


@pytest.mark.parametrize("name, path", [m for m in _modules() if not m[0].endswith("__main__")], ids=lambda v: str(v))
def test_every_module_declares_all_and_every_name_in_it_exists(name, path):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    declared = [n for n in tree.body if isinstance(n, ast.Assign) and any(getattr(t, "id", "") == "__all__" for t in n.targets)]
    assert declared, f"{name} has no __all__"
    module = importlib.import_module(name)
    missing = [n for n in module.__all__ if not hasattr(module, n) and not (REPO / name.replace(".", "/") / f"{n}.py").exists()
               and not (REPO / name.replace(".", "/") / n / "__init__.py").exists()]
    assert not missing, f"{name}.__all__ names what it lacks: {missing}"


def test_no_module_is_longer_than_the_limit():
    long = {name: n for name, path in _modules() if (n := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    app_lines = len((REPO / "app.py").read_text(encoding="utf-8").splitlines())
    assert not long and app_lines <= MAX_LINES, long


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


def test_layers_point_inward():
    """ingest and vectorstore never import assistant; the domain never imports its edges; nothing imports app."""
    edges = ("assistant.cli", "assistant.web")
    for name, path in _modules():
        imported = _imports(path)
        assert "app" not in imported, f"{name} imports app.py"
        if name.startswith(("ingest", "vectorstore")):
            assert not [i for i in imported if i.startswith(("assistant", "evals"))], f"{name} imports upward"
        if name.startswith("assistant") and not name.startswith(edges):
            assert not [i for i in imported if i.startswith(edges + ("evals",))], f"{name} imports an edge"
        if name.startswith("assistant.cli"):
            assert not [i for i in imported if i.startswith("assistant.web")], f"{name} imports the other edge"


def test_importing_library_modules_changes_nothing_in_the_environment(tmp_path):
    """Only the entry points' bootstrap sets variables; importing any library module leaves os.environ alone."""
    names = [name for name, _ in _modules() if not name.endswith("__main__")]
    script = (
        "import importlib, json, os, sys\n"
        "before = dict(os.environ)\n"
        f"for name in {names!r}:\n"
        "    importlib.import_module(name)\n"
        "after = dict(os.environ)\n"
        "print(json.dumps({k: after.get(k) for k in set(before) | set(after) if before.get(k) != after.get(k)}))\n"
    )
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "PYTHONPATH": str(REPO), "MPLCONFIGDIR": str(tmp_path)}
    result = subprocess.run([sys.executable, "-c", script], cwd=REPO, env=env, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads(result.stdout.strip().splitlines()[-1]) == {}
