"""Bounded load test of the web app's HTTP API: 16 clients asking at once for 30 s, loopback only.

    .venv/bin/python bench/load_test.py                      # starts the app on a free port, then tests it
    .venv/bin/python bench/load_test.py --url http://127.0.0.1:7860   # an app that is already running

Without ``--url`` the app is started as ``python -m app`` with the usual settings
(``--notes``/``--data-dir`` or NOTES_ASSISTANT_*, default notes/ and .notes-index/;
the index is built first if needed) and stopped at the end. The questions are the
golden set's, made unique per request (a filler prefix and suffix: stop words
the search ignores, but a text no cache has seen — the run checks the server's
query-vector cache was never hit); ``--repeat`` asks them verbatim instead, the
cache-hot case. A one-client phase (5 s) runs first as the baseline: latency
without contention. Everything is fixed — client count,
durations, loopback — so the test always stops by itself and only loads this
machine.

Target (extractive answers): 0 errors, p95 ≤ 300 ms under 16 clients.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from _common import percentile  # noqa: E402

from assistant.web.access import is_loopback  # noqa: E402

CLIENTS = 16
DURATION_S = 30.0
BASELINE_S = 5.0
TARGET_P95_MS = 300.0
REQUEST_TIMEOUT_S = 60.0
STARTUP_TIMEOUT_S = 1800.0  # a first run builds the index of the bundled notes


@dataclass
class Phase:
    name: str
    clients: int
    seconds: float
    latencies_ms: list[float] = field(default_factory=list)
    server_ms: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    abstained: int = 0

    @property
    def requests(self) -> int:
        return len(self.latencies_ms) + len(self.errors)




PREFIXES = ("", "so", "ok so", "hey", "quick one", "well", "right so", "um", "now", "and", "tell me", "so then",
            "please", "hmm", "ok", "then", "also", "yes so", "hi", "one more")
SUFFIXES = ("", "please", "thanks", "then", "again", "now", "right", "ok", "exactly", "anyway", "for me",
            "if you can", "thank you", "please and thanks", "as noted", "in short", "briefly", "again please",
            "then thanks", "once more")


def varied(question: str, n: int) -> str:
    """The ``n``-th variant of ``question``: a lower-case filler prefix and suffix around it.

    Unique for the first ``len(PREFIXES) * len(SUFFIXES)`` variants of one question.

    >>> varied("How do I stop it?", 0), varied("How do I stop it?", 21)
    ('How do I stop it?', 'so how do I stop it? please')
    """
    prefix, suffix = PREFIXES[n % len(PREFIXES)], SUFFIXES[(n // len(PREFIXES)) % len(SUFFIXES)]
    if prefix:  # mid-sentence now: a capital would read as a name to the abstention rules
        question = question[:1].lower() + question[1:]
    return " ".join(part for part in (prefix, question, suffix) if part)


_REQUESTS = itertools.count()  # every request of the run takes the next number: its text is unique


def run_phase(url: str, questions: list[str], phase: Phase, unique: bool = True) -> Phase:
    """``phase.clients`` threads, each with its own keep-alive connection, ask until the deadline."""
    lock = threading.Lock()
    deadline = time.monotonic() + phase.seconds

    def client(index: int) -> None:
        with httpx.Client(base_url=url, timeout=REQUEST_TIMEOUT_S) as http:
            n = index * 7  # each client walks the questions from its own offset (the --repeat case)
            while time.monotonic() < deadline:
                if unique:
                    number = next(_REQUESTS)
                    question = varied(questions[number % len(questions)], 1 + number // len(questions))  # never verbatim
                else:
                    question = questions[n % len(questions)]
                    n += 1
                started = time.perf_counter()
                try:
                    response = http.post("/api/ask", json={"question": question, "backend": "extractive"})
                    elapsed = (time.perf_counter() - started) * 1000
                    if response.status_code != 200:
                        raise RuntimeError(f"HTTP {response.status_code}: {response.text[:120]}")
                    body = response.json()
                except Exception as e:  # noqa: BLE001 - every failure is counted and shown
                    with lock:
                        phase.errors.append(f"{type(e).__name__}: {e}")
                    continue
                with lock:
                    phase.latencies_ms.append(elapsed)
                    phase.server_ms.append(float(body["timings_ms"].get("total", 0.0)))
                    phase.abstained += bool(body["abstained"])

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(phase.clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(phase.seconds + REQUEST_TIMEOUT_S + 5)
    return phase


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_app(notes: str | None, data_dir: str | None) -> tuple[subprocess.Popen, str]:
    port = _free_port()
    command = [sys.executable, "-m", "app", "--host", "127.0.0.1", "--port", str(port)]
    if notes:
        command += ["--notes", notes]
    if data_dir:
        command += ["--data-dir", data_dir]
    print(f"starting: {' '.join(command[1:])}", file=sys.stderr)
    process = subprocess.Popen(command, cwd=REPO, env={**os.environ, "NOTES_ASSISTANT_AUTH": ""})
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the app exited with code {process.returncode} before serving")
        try:
            if httpx.get(url + "/healthz", timeout=2).status_code == 200:
                return process, url
        except httpx.HTTPError:
            pass
        time.sleep(1)
    process.terminate()
    raise SystemExit(f"the app did not answer /healthz within {STARTUP_TIMEOUT_S:.0f} s")


def print_table(phases: list[Phase]) -> None:
    header = (f"{'phase':<10} {'clients':>7} {'seconds':>7} {'requests':>8} {'errors':>6} {'req/s':>7} "
              f"{'p50 ms':>7} {'p95 ms':>7} {'p99 ms':>7} {'max ms':>7} {'server p50':>10} {'abstained':>9}")
    print(header)
    print("-" * len(header))
    for p in phases:
        lat = p.latencies_ms
        print(f"{p.name:<10} {p.clients:>7} {p.seconds:>7.0f} {p.requests:>8} {len(p.errors):>6} "
              f"{p.requests / p.seconds:>7.1f} {percentile(lat, 50):>7.0f} {percentile(lat, 95):>7.0f} "
              f"{percentile(lat, 99):>7.0f} {max(lat, default=float('nan')):>7.0f} "
              f"{statistics.median(p.server_ms) if p.server_ms else float('nan'):>10.0f} {p.abstained:>9}")
    print("(latency = client-side round trip; server p50 = the answer's own timings_ms.total, no queueing)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", help="an already running app (loopback only)")
    parser.add_argument("--notes", help="notes path for the app this script starts")
    parser.add_argument("--data-dir", help="index folder for the app this script starts")
    parser.add_argument("--questions", type=Path, default=REPO / "evals" / "datasets" / "golden.jsonl",
                        help="JSONL with a \"question\" per line (default: the golden set)")
    args = parser.parse_args(argv)
    if args.url and not is_loopback(urlparse(args.url).hostname or ""):
        parser.error("--url must point at this machine (127.0.0.1, ::1 or localhost)")
    questions = [json.loads(line)["question"] for line in args.questions.read_text(encoding="utf-8").splitlines()
                 if line.strip()]
    # Once each, as ``varied`` writes them: "And for EFS?" and "and for EFS?" are one text after a prefix.
    questions = list({q[:1].lower() + q[1:]: q for q in questions}.values())

    process = None
    url = args.url.rstrip("/") if args.url else None
    if url is None:
        process, url = start_app(args.notes, args.data_dir)
    try:
        health = wait_indexed(url)
        print(f"app: {url}  notes: {health['sources']} sources, {health['chunks']} chunks; "
              f"{len(questions)} questions; {os.cpu_count()} CPUs", file=sys.stderr)
        run_phase(url, questions[:8], Phase("warm-up", 2, 3.0))  # first-request costs stay out of the numbers
        golden_rate = abstention_rate(url, questions)  # each golden question once, verbatim
        before = httpx.get(url + "/healthz", timeout=10).json()["query_vectors"]
        phases = [run_phase(url, questions, Phase("baseline", 1, BASELINE_S)),
                  run_phase(url, questions, Phase("load", CLIENTS, DURATION_S))]
        after = httpx.get(url + "/healthz", timeout=10).json()["query_vectors"]
        phases.append(run_phase(url, questions, Phase("load-hot", CLIENTS, DURATION_S), unique=False))
    finally:
        if process is not None:
            process.terminate()
            process.wait(30)
    print_table(phases)
    load = phases[1]
    hits = after["hits"] - before["hits"]
    misses = after["misses"] - before["misses"]
    rate = load.abstained / max(1, len(load.latencies_ms))
    print(f"query-vector cache during the unique phases: {hits} hits, {misses} misses "
          f"(hit rate {hits / max(1, hits + misses):.1%}; must be 0)")
    print(f"abstention: {rate:.1%} under load vs {golden_rate:.1%} for the golden questions asked verbatim "
          "(must be within 5 points)")
    for error in sorted(set(load.errors))[:5]:
        print(f"error: {error}")
    valid = hits == 0 and abs(rate - golden_rate) <= 0.05
    ok = valid and not load.errors and percentile(load.latencies_ms, 95) <= TARGET_P95_MS
    print(f"target: 0 errors and p95 <= {TARGET_P95_MS:.0f} ms with {CLIENTS} clients on unseen questions -> "
          f"{'PASS' if ok else 'MISS' if valid else 'INVALID RUN'}")
    return 0 if ok else 1


def wait_indexed(url: str) -> dict:
    """The app answers at once, while its first index may still be built: wait until it is committed."""
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        health = httpx.get(url + "/healthz", timeout=10).json()
        if health["indexed"] and not (health.get("indexing") or {}).get("running"):
            return health
        time.sleep(1)
    raise SystemExit(f"the index was not built within {STARTUP_TIMEOUT_S:.0f} s")


def abstention_rate(url: str, questions: list[str]) -> float:
    """Share of ``questions`` the app abstains on, asked once each (verbatim, one client)."""
    with httpx.Client(base_url=url, timeout=REQUEST_TIMEOUT_S) as http:
        answers = [http.post("/api/ask", json={"question": q, "backend": "extractive"}).json() for q in questions]
    return sum(bool(a["abstained"]) for a in answers) / len(answers)


if __name__ == "__main__":
    sys.exit(main())
