"""Index and search on the bundled notes vs the LangChain tutorial recipe, measured in one run.

    python bench/index_and_search.py [--queries 120]

Prints a markdown table. Everything runs in temporary folders (cold = empty
embedding cache) and on this machine's CPU; compare the ratio column, not the
absolute seconds, across machines.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from _common import golden_records, percentile  # noqa: E402

from assistant.engine import Engine  # noqa: E402
from assistant.settings import default_model_path, load_settings  # noqa: E402
from vectorstore import load_embedder  # noqa: E402




def questions(n: int) -> list[str]:
    qs = [r["question"] for r in golden_records()]
    return (qs * (n // len(qs) + 1))[:n]


def timed_searches(search, qs: list[str]) -> list[float]:
    search(qs[0])  # warm-up
    out = []
    for q in qs:
        t = time.perf_counter()
        search(q)
        out.append((time.perf_counter() - t) * 1000)
    return out


def ours(root: Path, embedder, qs: list[str]) -> dict:
    notes = root / "notes"
    notes.mkdir()
    shutil.copy(REPO / "notes/aws-notes.md", notes / "aws-notes.md")
    settings = load_settings({}, notes_path=notes, data_dir=root / "index")
    engine = Engine(settings, embedder=embedder)
    t = time.perf_counter()
    first = engine.index()
    full = time.perf_counter() - t

    t = time.perf_counter()
    engine.index()
    no_change = time.perf_counter() - t

    path = notes / "aws-notes.md"
    text = path.read_text(encoding="utf-8")
    path.write_text(text.replace("limit is **350 ENIs per region**", "limit is **351 ENIs per region**"), encoding="utf-8")
    t = time.perf_counter()
    edit = engine.index()
    one_edit = time.perf_counter() - t
    assert (edit.added, edit.deleted) == (1, 1), edit

    latencies = timed_searches(lambda q: engine.search(q, 8), qs)
    return {
        "chunks": first.chunks, "full": full, "no_change": no_change, "one_edit": one_edit,
        "p50": statistics.median(latencies), "p95": percentile(latencies, 95),
    }


def tutorial(root: Path, embedder, qs: list[str]) -> dict:
    """The LangChain RAG tutorial: RecursiveCharacterTextSplitter(1000, 200) + the same model + Chroma."""
    import chromadb
    from chromadb.config import Settings as ChromaSettings
    from langchain_chroma import Chroma
    from langchain_core.documents import Document
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    text = (REPO / "notes/aws-notes.md").read_text(encoding="utf-8")
    t = time.perf_counter()
    splits = RecursiveCharacterTextSplitter(chunk_size=1000, chunk_overlap=200).split_documents(
        [Document(page_content=text, metadata={"source": "aws-notes.md"})]
    )
    client = chromadb.PersistentClient(path=str(root / "chroma"), settings=ChromaSettings(anonymized_telemetry=False))
    store = Chroma(client=client, collection_name="tutorial", embedding_function=embedder)
    store.add_documents(splits)
    full = time.perf_counter() - t
    latencies = timed_searches(lambda q: store.similarity_search(q, k=8), qs)
    return {"chunks": len(splits), "full": full, "p50": statistics.median(latencies), "p95": percentile(latencies, 95)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=120)
    args = parser.parse_args()
    qs = questions(max(100, args.queries))
    embedder = load_embedder(default_model_path())
    with tempfile.TemporaryDirectory() as a, tempfile.TemporaryDirectory() as b:
        mine = ours(Path(a), embedder, qs)
        base = tutorial(Path(b), embedder, qs)
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    def ratio(x: float, y: float) -> str:
        return f"{x / y:.2f}×" if y else "–"

    rows = [
        ("chunks", f"{mine['chunks']}", f"{base['chunks']}", ""),
        ("full index, cold cache (s)", f"{mine['full']:.1f}", f"{base['full']:.1f}", ratio(mine["full"], base["full"])),
        ("re-index, no change (s)", f"{mine['no_change']:.3f}", "n/a (no incremental indexing)", ""),
        ("re-index, one bullet edited (s)", f"{mine['one_edit']:.3f}", "n/a", ""),
        (f"warm search p50 over {len(qs)} queries (ms)", f"{mine['p50']:.1f}", f"{base['p50']:.1f}", ratio(mine["p50"], base["p50"])),
        ("warm search p95 (ms)", f"{mine['p95']:.1f}", f"{base['p95']:.1f}", ratio(mine["p95"], base["p95"])),
        ("process max RSS (MB, both runs)", f"{rss_mb:.0f}", "", ""),
    ]
    print("| measure | notes-assistant | LangChain tutorial recipe | ratio |")
    print("|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    print("\nnotes-assistant's full index also embeds every answer unit (used by the extractive answerer);"
          " hybrid search = dense + BM25 with rank fusion, the tutorial's is dense only.")


if __name__ == "__main__":
    main()
