"""Helpers shared by the tests: small corpora, an indexed assistant, polling, a real Chroma server, expected chunks."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from ingest import chunk_note, read_notes

T = TypeVar("T")

REPO = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
CHROMA = Path(sys.executable).parent / "chroma"

SMALL_CORPUS = {
    "garden.md": (
        "# Garden\n\n## Tomatoes\n\n- tomatoes need staking and pruning of suckers\n"
        "- water tomatoes deeply twice a week\n\n## Roses\n\n- roses like full sun and rich soil\n"
        "- prune roses in late winter before the buds swell\n"
    ),
    "kitchen.md": (
        "# Kitchen\n\n## Bread\n\n- a sourdough starter needs feeding daily\n"
        "- bake the loaf at 250 degrees with steam for crust\n\n## Knives\n\n"
        "- hone the chef knife weekly and sharpen it on a whetstone twice a year\n"
    ),
    "travel/packing.md": (
        "# Packing\n\n- pack a universal power adapter for every trip abroad\n"
        "- roll clothes instead of folding them to save suitcase space\n"
    ),
}


def indexed_assistant(notes: Path, data_dir: Path, embedding_cache: Path, embedder):
    """``(settings, Assistant)`` over ``notes``, indexed once into ``data_dir`` (the session's cache and model)."""
    from assistant.engine import Engine
    from assistant.service import Assistant
    from assistant.settings import load_settings

    settings = load_settings({}, notes_path=notes, data_dir=data_dir, embedding_cache_dir=embedding_cache)
    engine = Engine(settings, embedder=embedder)
    engine.index()
    return settings, Assistant(engine, settings)


def write_corpus(folder: Path, files: dict[str, str] = SMALL_CORPUS) -> Path:
    """Write ``files`` (relative path → text) under ``folder``; returns the folder."""
    for name, text in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return folder


def eventually(check: Callable[[], T], timeout: float = 15.0, interval: float = 0.1, what: str = "condition") -> T:
    """Poll ``check`` until it returns something truthy; fail after ``timeout`` seconds (a bound, not a target)."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached within {timeout:.0f}s")
        time.sleep(interval)


def expected_chunks(notes: Path, chunk_tokens: int = 256, chunk_overlap: int = 0) -> dict[str, tuple[str, int, int, str]]:
    """``{chunk_id: (source, start_line, end_line, text)}`` the files under ``notes`` produce."""
    found, _ = read_notes(notes)
    return {
        c.chunk_id: (c.source, c.start_line, c.end_line, c.text)
        for n in found
        for c in chunk_note(n.text, n.source, chunk_tokens, chunk_overlap)
    }


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ChromaServer:
    """A real ``chroma run`` on 127.0.0.1 with its data in ``path``; ``stop()`` ends it by pid."""

    def __init__(self, path: Path, startup_timeout: float = 120.0) -> None:
        self.path = Path(path)
        self.host = "127.0.0.1"
        self.port = free_port()
        self.log = self.path.parent / f"chroma-{self.port}.log"
        self.path.mkdir(parents=True, exist_ok=True)
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(
                [str(CHROMA), "run", "--path", str(self.path), "--host", self.host, "--port", str(self.port)],
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )
        self._wait_ready(startup_timeout)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"chroma run exited with {self.process.returncode}: {self.log.read_text(errors='replace')[-2000:]}")
            try:
                with urllib.request.urlopen(f"{self.url}/api/v2/heartbeat", timeout=2) as response:
                    if response.status == 200:
                        return
            except OSError:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"chroma server did not answer within {timeout:.0f}s; log: {self.log}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


def cli_env(notes: Path, data_dir: Path, cache_dir: Path, **extra: str) -> dict[str, str]:
    """Environment for a ``notes-assistant`` subprocess on ``notes`` (offline, our data dir)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("NOTES_ASSISTANT_")}
    env.update(
        NOTES_ASSISTANT_NOTES_PATH=str(notes), NOTES_ASSISTANT_DATA_DIR=str(data_dir),
        NOTES_ASSISTANT_EMBEDDING_CACHE_DIR=str(cache_dir), HF_HUB_OFFLINE="1", PYTHONPATH=str(REPO),
    )
    env.update(extra)
    return env
