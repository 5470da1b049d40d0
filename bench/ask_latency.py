"""Warm `ask` latency (extractive) over the golden questions, and cold `notes-assistant ask` wall time.

    python bench/ask_latency.py [--repeat-cold 3]

Uses the bundled notes in a temporary data dir (built first, not timed).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
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
from assistant.service import Assistant  # noqa: E402
from assistant.settings import load_settings  # noqa: E402




def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat-cold", type=int, default=3)
    args = parser.parse_args()
    rows = golden_records()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "notes").mkdir()
        shutil.copy(REPO / "notes/aws-notes.md", root / "notes/aws-notes.md")
        env = {"NOTES_ASSISTANT_NOTES_PATH": str(root / "notes"), "NOTES_ASSISTANT_DATA_DIR": str(root / "index")}
        engine = Engine(load_settings(env))
        engine.index()
        assistant = Assistant(engine)
        assistant.ask("warm up: lambda cold starts")
        stages: dict[str, list[float]] = {}
        for row in rows:
            answer = assistant.ask(row["question"], row.get("history", ()))
            for stage, ms in answer.timings_ms.items():
                stages.setdefault(stage, []).append(ms)

        cold = []
        for _ in range(args.repeat_cold):
            t = time.perf_counter()
            proc = subprocess.run(
                [sys.executable, "-m", "assistant.cli", "ask", "Why can't my lambda in a VPC reach the internet?", "--json"],
                env={**os.environ, **env}, capture_output=True, text=True, check=True,
            )
            cold.append(time.perf_counter() - t)
            assert json.loads(proc.stdout)["citations"], proc.stdout

    print(f"| stage (warm, {len(rows)} questions) | p50 ms | p95 ms |")
    print("|---|---|---|")
    for stage in ("condense", "retrieve", "answer", "total"):
        values = stages.get(stage, [])
        if values:
            print(f"| {stage} | {statistics.median(values):.1f} | {percentile(values, 95):.1f} |")
    print(f"\ncold `notes-assistant ask` (process start → answer), {len(cold)} runs: "
          f"median {statistics.median(cold):.2f} s, best {min(cold):.2f} s")


if __name__ == "__main__":
    main()
