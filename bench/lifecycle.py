"""The index lifecycle as a user lives it, timed from process start, in one run on this machine.

    .venv/bin/python bench/lifecycle.py [--runs 3] [--trials 20] [--skip-til]

Rows (each a separate process where a user would start one; caches cold where a user's are):
1. ``serve`` on a fresh notes folder (empty data dir and embedding cache) → first answered
   ``/api/ask``, imports included; then → the background index committed (hybrid answers).
2. Full index of the bundled notes vs the LangChain tutorial recipe: fresh data dir and
   empty cache, model load included, each in its own process, order alternated over
   ``--runs`` runs; ours is timed until ``index --check`` is clean, and the answer units
   it embeds after the chunks are committed are their own row.
3. ``notes-assistant index`` wall time after a one-bullet edit, and with no change.
4. ``notes-assistant index`` in a shell → the running app answers with the new text:
   the maximum over ``--trials`` edits, embedded Chroma and a ``chroma run`` server.
5. The scale corpus (``evals/corpora/jbranchaud-til``, 1,871 notes): first answer, full
   index, RSS, warm search p95.
Targets are printed beside each row; nothing here is a test (the machine is shared).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from _common import golden_records, percentile  # noqa: E402

from tests.indexing_helpers import ChromaServer, free_port  # noqa: E402

PYTHON = sys.executable
TIL = REPO / "evals" / "corpora" / "jbranchaud-til"
EDIT_FROM = "limit is **350 ENIs per region**"

TUTORIAL_SCRIPT = r'''
import sys, time
t0 = time.perf_counter()
import chromadb
from chromadb.config import Settings
from langchain_chroma import Chroma
from langchain_core.documents import Document
from langchain_text_splitters import RecursiveCharacterTextSplitter
from assistant.bootstrap import prepare_process
prepare_process()
from assistant.settings import default_model_path
from vectorstore.embeddings import LocalEmbeddings
notes, path = sys.argv[1], sys.argv[2]
from ingest import read_notes
docs = [Document(page_content=n.text, metadata={"source": n.source}) for n in read_notes(notes)[0]]
splits = RecursiveCharacterTextSplitter(chunk_size=1000, chunk_overlap=200).split_documents(docs)
client = chromadb.PersistentClient(path=path, settings=Settings(anonymized_telemetry=False))
Chroma(client=client, collection_name="tutorial", embedding_function=LocalEmbeddings(default_model_path())).add_documents(splits)
print(len(splits), time.perf_counter() - t0)
'''


def env_for(notes: Path, data_dir: Path, cache: Path, **extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NOTES_ASSISTANT_")}
    env.update(NOTES_ASSISTANT_NOTES_PATH=str(notes), NOTES_ASSISTANT_DATA_DIR=str(data_dir),
               NOTES_ASSISTANT_EMBEDDING_CACHE_DIR=str(cache), PYTHONPATH=str(REPO), **extra)
    return env


def cli(env: dict, *args: str) -> tuple[float, subprocess.CompletedProcess]:
    started = time.perf_counter()
    done = subprocess.run([PYTHON, "-m", "assistant.cli", *args], cwd=REPO, env=env, capture_output=True, text=True)
    return time.perf_counter() - started, done


def post(url: str, question: str) -> dict:
    request = urllib.request.Request(url + "/api/ask", data=json.dumps({"question": question}).encode(),
                                     headers={"content-type": "application/json"})
    with urllib.request.urlopen(request, timeout=120) as response:
        return json.loads(response.read())


def health(url: str) -> dict:
    with urllib.request.urlopen(url + "/healthz", timeout=30) as response:
        return json.loads(response.read())


def copy_notes(source: Path, root: Path) -> Path:
    notes = root / "notes"
    if source.is_dir():
        shutil.copytree(source, notes)
    else:
        notes.mkdir(parents=True)
        shutil.copy(source, notes / source.name)
    return notes


def start_app(env: dict) -> tuple[subprocess.Popen, str, float]:
    """Start ``app.py``; returns (process, url, process start time)."""
    port = free_port()
    started = time.perf_counter()
    process = subprocess.Popen([PYTHON, "app.py", "--port", str(port)], cwd=REPO, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return process, f"http://127.0.0.1:{port}", started


def first_answer(source: Path, question: str) -> dict:
    """Row 1/5: serve on fresh notes → first answer, → index committed; RSS of the app at the end."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        notes = copy_notes(source, root)
        process, url, started = start_app(env_for(notes, root / "index", root / "cache"))
        try:
            while True:
                try:
                    answer = post(url, question)
                    break
                except OSError:
                    if process.poll() is not None:
                        raise SystemExit("the app exited")
                    time.sleep(0.05)
            first = time.perf_counter() - started
            while not (h := health(url))["indexed"] or (h.get("indexing") or {}).get("running"):
                time.sleep(0.5)
            committed = time.perf_counter() - started
            rss = _rss_mb(process.pid)
        finally:
            process.terminate()
            process.wait(30)
    return {"first_answer": first, "committed": committed, "keyword_only": "Keyword" in " ".join(answer.get("notices", [])),
            "rss_mb": rss}


def _rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def full_index(source: Path, runs: int) -> dict:
    """Row 2: ours (index, then --check clean) vs the tutorial recipe, alternated, each in its own process."""
    ours, units, theirs, checks, chunks = [], [], [], [], None
    for run in range(runs):
        order = ("ours", "tutorial") if run % 2 == 0 else ("tutorial", "ours")
        for who in order:
            with tempfile.TemporaryDirectory() as tmp:
                root = Path(tmp)
                notes = copy_notes(source, root)
                if who == "ours":
                    env = env_for(notes, root / "index", root / "cache")
                    seconds, done = cli(env, "index", "--json")
                    assert done.returncode == 0, done.stderr[-500:]
                    check_seconds, check = cli(env, "index", "--check")
                    assert check.returncode == 0, check.stdout[-500:]
                    report = json.loads(done.stdout.strip().splitlines()[-1])
                    # Searchable (chunks committed) before the deferred answer units: timed apart.
                    ours.append(seconds - report["units_seconds"])
                    units.append(report["units_seconds"])
                    checks.append(check_seconds)
                    chunks = report["chunks"]
                else:
                    started = time.perf_counter()
                    done = subprocess.run([PYTHON, "-c", TUTORIAL_SCRIPT, str(notes), str(root / "chroma")], cwd=REPO,
                                          env=env_for(notes, root / "x", root / "y"), capture_output=True, text=True)
                    assert done.returncode == 0, done.stderr[-800:]
                    theirs.append(time.perf_counter() - started)
                    tutorial_chunks = int(done.stdout.split()[0])
    return {"ours": statistics.median(ours), "units": statistics.median(units), "check": statistics.median(checks),
            "tutorial": statistics.median(theirs),
            "chunks": chunks, "tutorial_chunks": tutorial_chunks, "all_ours": ours, "all_tutorial": theirs}


def edits(source: Path) -> dict:
    """Row 3: wall time of `notes-assistant index` after a one-bullet edit, and after no change."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        notes = copy_notes(source, root)
        env = env_for(notes, root / "index", REPO / ".cache" / "test-embeddings")
        assert cli(env, "index")[1].returncode == 0
        no_change = [cli(env, "index")[0] for _ in range(3)]
        path = notes / "aws-notes.md"
        original = path.read_text(encoding="utf-8")
        one_edit = []
        for _ in range(3):  # a new text each time: the embedding cache has never seen it
            path.write_text(original.replace(EDIT_FROM, f"limit is **{time.time_ns()} ENIs per region**"),
                            encoding="utf-8")
            seconds, done = cli(env, "index")
            assert done.returncode == 0 and "added 1" in done.stdout, done.stdout + done.stderr
            one_edit.append(seconds)
            path.write_text(original, encoding="utf-8")
            cli(env, "index")
    return {"no_change": statistics.median(no_change), "one_edit": statistics.median(one_edit)}


def cli_to_app(source: Path, trials: int, server: bool) -> dict:
    """Row 4: after `notes-assistant index` returns, how long until the running app answers with the new text."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        notes = copy_notes(source, root)
        chroma = ChromaServer(root / "chroma") if server else None
        extra = {"NOTES_ASSISTANT_CHROMA_HOST": chroma.host, "NOTES_ASSISTANT_CHROMA_PORT": str(chroma.port)} if chroma else {}
        env = env_for(notes, root / "index", REPO / ".cache" / "test-embeddings", **extra)
        try:
            assert cli(env, "index")[1].returncode == 0
            process, url, _ = start_app(env)
            try:
                while True:
                    try:
                        health(url)
                        break
                    except OSError:
                        time.sleep(0.1)
                path = notes / "aws-notes.md"
                delays = []
                for trial in range(trials):
                    word = f"quokka{trial}x{time.time_ns() % 10**6}"
                    with path.open("a", encoding="utf-8") as handle:
                        handle.write(f"\n## Marker {trial}\n\n- the {word} marker lives here\n")
                    assert cli(env, "index")[1].returncode == 0
                    returned = time.perf_counter()
                    while word not in post(url, f"where does the {word} marker live?")["answer"]:
                        time.sleep(0.05)
                    delays.append(time.perf_counter() - returned)
            finally:
                process.terminate()
                process.wait(30)
        finally:
            if chroma:
                chroma.stop()
    return {"max": max(delays), "p50": statistics.median(delays)}


def warm_search_p95(source: Path) -> float:
    """Warm search p95 (ms) over 100 golden-style queries on an index built with the shared test cache."""
    from assistant.engine import Engine
    from assistant.settings import load_settings

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        notes = copy_notes(source, root)
        settings = load_settings({}, notes_path=notes, data_dir=root / "index",
                                 embedding_cache_dir=REPO / ".cache" / "test-embeddings")
        engine = Engine(settings)
        engine.index()
        questions = [r["question"] for r in golden_records()][:100]
        engine.search("warm up")
        latencies = []
        for q in questions:
            started = time.perf_counter()
            engine.search(q + " now")
            latencies.append((time.perf_counter() - started) * 1000)
    return percentile(latencies, 95)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--skip-til", action="store_true", help="leave out the 1,871-note scale corpus")
    args = parser.parse_args()
    bundled = REPO / "notes" / "aws-notes.md"
    rows = []
    fa = first_answer(bundled, "How do I stop a lambda that keeps re-triggering itself from S3 uploads?")
    rows.append(("serve → first answer, bundled notes (s)", f"{fa['first_answer']:.1f}", "≤ 10 (moonshot 5)"))
    rows.append(("serve → index committed, hybrid answers (s)", f"{fa['committed']:.1f}", "background"))
    fi = full_index(bundled, args.runs)
    rows.append((f"full index, ours: process start → chunks committed, searchable (s; {fi['chunks']} chunks)",
                 f"{fi['ours']:.1f} (+{fi['check']:.1f} for --check: clean)", ""))
    rows.append(("…deferred: answer units embedded after the commit (s)", f"{fi['units']:.1f}", "timed apart"))
    rows.append((f"full index, LangChain tutorial recipe (s; {fi['tutorial_chunks']} chunks)", f"{fi['tutorial']:.1f}", ""))
    rows.append(("ratio ours / tutorial", f"{fi['ours'] / fi['tutorial']:.2f}×", "≤ 1.0× (moonshot 0.5×)"))
    ed = edits(bundled)
    rows.append(("`index` after a one-bullet edit, wall (s)", f"{ed['one_edit']:.2f}", "≤ 2"))
    rows.append(("`index` with no change, wall (s)", f"{ed['no_change']:.2f}", "≤ 1"))
    for server in (False, True):
        ca = cli_to_app(bundled, args.trials, server)
        rows.append((f"CLI index → running app answers, {'server' if server else 'embedded'} (s, max of {args.trials})",
                     f"{ca['max']:.2f} (p50 {ca['p50']:.2f})", "≤ 2"))
    if not args.skip_til and TIL.is_dir():
        til = first_answer(TIL, "How do I delete all local git branches that are already merged?")
        rows.append(("scale corpus: serve → first answer (s)", f"{til['first_answer']:.1f}", "≤ 15"))
        rows.append(("scale corpus: serve → index committed (s)", f"{til['committed']:.1f}", "≤ 360"))
        rows.append(("scale corpus: app RSS, peak (MB)", f"{til['rss_mb']:.0f}", "≤ 2048"))
        rows.append(("scale corpus: warm search p95 (ms)", f"{warm_search_p95(TIL):.1f}", "≤ 60"))
    print(f"\nbench/lifecycle.py on {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at the end")
    print("| measure | value | target |\n|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    print(f"(bench process max RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB; "
          f"full-index runs ours {['%.1f' % s for s in fi['all_ours']]}, tutorial {['%.1f' % s for s in fi['all_tutorial']]})")


if __name__ == "__main__":
    main()
