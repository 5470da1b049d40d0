"""The ``notes-assistant`` command line: a thin edge over ``Engine`` (and the answerers).

Errors from the layers below become one line on stderr with exit code 2 here,
and only here.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path

import click

from assistant.settings import SettingsError, load_settings

__all__ = ["main", "cli"]

logger = logging.getLogger(__name__)

MAX_QUERY_CHARS = 2000


class UserError(click.ClickException):
    """A bad input or environment: one line on stderr, exit 2."""

    exit_code = 2

    def show(self, file=None) -> None:
        click.echo(f"error: {self.format_message()}", err=True)


def _settings(ctx: click.Context, **overrides):
    try:
        return load_settings(os.environ, **ctx.obj, **overrides)
    except SettingsError as e:
        raise UserError(str(e)) from e


def _engine(settings, take_over: bool = False):
    from assistant.engine import Engine

    return Engine(settings, take_over=take_over)


def _known_errors():
    from ingest.errors import IngestError
    from vectorstore.errors import IndexError_

    return (IngestError, IndexError_, SettingsError)


def _run_guarded(fn):
    """Call ``fn`` turning our own errors (and a few environment ones) into ``UserError``."""
    try:
        return fn()
    except click.ClickException:
        raise
    except _known_errors() as e:
        raise UserError(str(e)) from e
    except PermissionError as e:
        raise UserError(f"permission denied: {e.filename}; fix its permissions or choose another --data-dir") from e


def _progress_bar():
    """A tqdm bar on stderr, created when the first texts are embedded; returns (callback, close)."""
    from tqdm import tqdm

    state: dict = {}

    def update(done: int, total: int) -> None:
        bar = state.get("bar")
        if bar is None:
            bar = state["bar"] = tqdm(total=total, desc="indexing", unit="chunk", file=sys.stderr, leave=False)
        bar.update(done - bar.n)

    def close() -> None:
        if "bar" in state:
            state["bar"].close()

    return update, close


def ensure_index(engine) -> None:
    """Build or update the index before a query, saying so on stderr."""
    update, close = _progress_bar()
    try:
        report = engine.ensure_index(notify=lambda msg: click.echo(msg, err=True), progress=update)
    finally:
        close()
    if report is not None:
        click.echo(f"index updated: {report.summary()}", err=True)


def clean_query(query: str | None) -> str:
    """Validate a query: non-empty; longer than the limit is truncated with a notice."""
    if query is None or not query.strip():
        raise UserError("the query is empty; ask something, e.g. notes-assistant search \"lambda cold starts\"")
    query = " ".join(query.split())
    if len(query) > MAX_QUERY_CHARS:
        click.echo(f"notice: query truncated to {MAX_QUERY_CHARS} characters", err=True)
        query = query[:MAX_QUERY_CHARS]
    return query


def read_questions(path: Path) -> list[dict]:
    """Questions from a JSONL file: one object per line with at least "id" and "question"."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"cannot read questions file {path}: {e}") from e
    records = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            raise UserError(f"{path}:{number}: not valid JSON ({e.msg})") from e
        if not isinstance(record, dict) or "id" not in record or not isinstance(record.get("question"), str):
            raise UserError(f"{path}:{number}: each line needs an \"id\" and a \"question\" string")
        records.append(record)
    if not records:
        raise UserError(f"{path} holds no questions")
    return records


def emit_json(obj) -> None:
    click.echo(json.dumps(obj, ensure_ascii=False))


def _setup_logging(verbose: int) -> None:
    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    logging.basicConfig(level=level, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    for noisy in ("httpx", "chromadb", "sentence_transformers", "urllib3", "bm25s", "transformers"):
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))


class LazyGroup(click.Group):
    """Subcommands that live in other packages are imported only when invoked (fast cold start)."""

    lazy = {"eval": "evals.cli:eval_command"}

    def list_commands(self, ctx):
        return sorted({*super().list_commands(ctx), *self.lazy})

    def get_command(self, ctx, name):
        if name in self.lazy:
            import importlib

            module, attr = self.lazy[name].split(":")
            try:
                return getattr(importlib.import_module(module), attr)
            except ImportError as e:
                raise UserError(f"the {name} command is not available: {e}") from e
        return super().get_command(ctx, name)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--notes", "notes_path", type=click.Path(path_type=Path), help="Notes file or folder (default: notes/).")
@click.option("--data-dir", type=click.Path(path_type=Path), help="Index folder (default: .notes-index/).")
@click.option("--chroma-host", help="Use a Chroma server at this host instead of the embedded store.")
@click.option("--chroma-port", type=int, help="Chroma server port.")
@click.option("--chunk-tokens", type=int, help="Maximum tokens per chunk.")
@click.option("-v", "--verbose", count=True, help="-v for info logs, -vv for debug.")
@click.pass_context
def cli(ctx, notes_path, data_dir, chroma_host, chroma_port, chunk_tokens, verbose):
    """Ask your markdown notes; answers cite the headings and lines they come from."""
    _setup_logging(verbose)
    ctx.obj = {
        k: v
        for k, v in dict(
            notes_path=notes_path, data_dir=data_dir, chroma_host=chroma_host, chroma_port=chroma_port,
            chunk_tokens=chunk_tokens,
        ).items()
        if v is not None
    }


@cli.command()
@click.option("--notes", "notes_path", type=click.Path(path_type=Path), help="Notes file or folder.")
@click.option("--rebuild", is_flag=True, help="Drop the index and build it again (vectors come from the cache).")
@click.option("--json", "as_json", is_flag=True, help="Print the counts (or the --check report) as JSON.")
@click.option("--watch", is_flag=True, help="Keep running: re-index about a second after notes change (Ctrl-C stops).")
@click.option("--debounce", type=click.FloatRange(0.05, 60.0), default=1.0, show_default=True,
              help="With --watch: seconds of quiet after a change before re-indexing.")
@click.option("--check", is_flag=True, help="Verify that record manager, Chroma and the files agree; exit 1 on problems.")
@click.option("--repair", is_flag=True, help="Fix what --check finds (cached vectors are not re-embedded).")
@click.option("--no-wait", is_flag=True, help="Fail at once when another indexer is running (default: wait for it).")
@click.pass_context
def index(ctx, notes_path, rebuild, as_json, watch, debounce, check, repair, no_wait):
    """Index the notes (incremental: only changed notes are re-embedded).

    Only one process writes an index at a time; others wait for it (or fail with
    --no-wait). An interrupted run is completed by the next one.
    """
    settings = _settings(ctx, notes_path=notes_path)
    if rebuild + check + repair > 1:
        raise UserError("use only one of --rebuild, --check and --repair")
    if watch and (check or repair):
        raise UserError("--watch keeps the index up to date; run --check or --repair separately")
    lock_timeout = 0 if no_wait else None

    def waiting(holder: str) -> None:
        click.echo(f"another indexer is running ({holder}); waiting for it to finish…", err=True)

    engine = _index_guarded(lambda: _engine(settings, take_over=rebuild), settings)
    if check or repair:
        repaired = None
        if repair:
            repaired = _index_guarded(lambda: _with_progress(
                lambda update: engine.repair(update, lock_timeout=lock_timeout, notify=waiting)), settings)
        result = _index_guarded(lambda: engine.check(lock_timeout=lock_timeout, notify=waiting), settings)
        if as_json:
            emit_json({**result.to_json(), **({"repair": repaired.to_json()} if repaired else {})})
        else:
            if repaired is not None:
                click.echo(f"repaired: {_describe(repaired)}")
            for line in result.lines():
                click.echo(line)
        ctx.exit(0 if result.ok else 1)

    report = _index_guarded(lambda: _with_progress(
        lambda update: engine.index(rebuild=rebuild, progress=update, lock_timeout=lock_timeout, notify=waiting)), settings)
    for source in report.skipped_files:
        click.echo(f"warning: skipped {source} (see the log line above for why)", err=True)
    if as_json:
        emit_json(report.to_json())
    else:
        click.echo(_describe(report))
    if watch:
        _watch(engine, settings, debounce, as_json)


def _index_guarded(fn, settings):
    """``_run_guarded``, plus a Chroma server that went away mid-run as one line with the fix."""
    from vectorstore.client import is_connection_error, server_unavailable

    try:
        return _run_guarded(fn)
    except Exception as e:
        if settings.server_mode and is_connection_error(e):
            raise UserError(str(server_unavailable(settings.chroma_host, settings.chroma_port, e))) from e
        raise


def _with_progress(fn):
    update, close = _progress_bar()
    try:
        return fn(update)
    finally:
        close()


def _describe(report) -> str:
    """One line of counts, e.g. ``added 1, updated 0, deleted 1, skipped 812 (0 embedded; …) in 0.31s``."""
    line = (
        f"added {report.added}, updated {report.updated}, deleted {report.deleted}, skipped {report.skipped} "
        f"({report.embedded} embedded; {report.chunks} chunks from {report.sources} notes) in {report.seconds:.2f}s"
    )
    if report.recovered:
        line += " [completed an interrupted run]"
    return line


def _watch(engine, settings, debounce: float, as_json: bool) -> None:
    """Re-index on every change until Ctrl-C or SIGTERM; one line per run."""
    import signal
    import threading
    import time

    from assistant.watch import NotesWatcher

    def show(report) -> None:
        if as_json:
            emit_json(report.to_json())
        else:
            changes = ", ".join(report.changed_sources + [f"-{s}" for s in report.removed_sources]) or "no change"
            click.echo(f"{time.strftime('%H:%M:%S')} {changes}: {_describe(report)}")

    def failed(error: Exception) -> None:
        click.echo(f"{time.strftime('%H:%M:%S')} error: {error} (will retry)", err=True)

    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    watcher = NotesWatcher(engine, debounce=debounce, on_report=show, on_error=failed, initial=False)
    _index_guarded(watcher.start, settings)
    click.echo(f"watching {watcher.root} for changes (Ctrl-C to stop)", err=True)
    try:
        while not done.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        watcher.stop()
    click.echo("stopped watching", err=True)


@cli.command()
@click.argument("query", required=False)
@click.option("-k", "top_k", type=click.IntRange(1, 100), default=None, help="How many results (default 8).")
@click.option("--questions", type=click.Path(path_type=Path), help="JSONL file of {\"id\", \"question\"} to search in batch.")
@click.option("--mode", type=click.Choice(["hybrid", "dense", "bm25"]), default="hybrid", help="Retrieval mode.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def search(ctx, query, top_k, questions, mode, as_json):
    """Search the notes: ranked sections with heading path and source:start-end."""
    settings = _settings(ctx, top_k=top_k)
    if questions is None:
        query = clean_query(query)
    elif query is not None:
        raise UserError("give either a QUERY or --questions FILE, not both")
    batch = read_questions(questions) if questions is not None else None

    def run():
        engine = _engine(settings)
        ensure_index(engine)
        if batch is None:
            return [(None, query, engine.search(query, settings.top_k, mode))]
        out = []
        for record in batch:
            q = record["question"]
            results = engine.search(" ".join(q.split())[:MAX_QUERY_CHARS], settings.top_k, mode) if q.strip() else []
            out.append((record["id"], q, results))
        return out

    for record_id, q, results in _run_guarded(run):
        if as_json or batch is not None and as_json:
            obj = {"query": q, "results": [r.to_json() for r in results]}
            if record_id is not None:
                obj = {"id": record_id, **obj}
            emit_json(obj)
        else:
            if record_id is not None:
                click.echo(f"## {record_id}: {q}")
            if not results:
                click.echo("no results")
            for r in results:
                click.echo(f"{r.rank:>2}. {r.heading or r.source}  ({r.source}:{r.start_line}-{r.end_line})  score={r.score:.4f}")


@cli.command()
@click.argument("question", required=False)
@click.option("--backend", type=click.Choice(["extractive", "openai", "ollama"]), default=None,
              help="Answerer (default: extractive, or NOTES_ASSISTANT_BACKEND).")
@click.option("--questions", type=click.Path(path_type=Path), help="JSONL file of {\"id\", \"question\"[, \"history\"]}.")
@click.option("-k", "top_k", type=click.IntRange(1, 100), default=None, help="Sections retrieved.")
@click.option("--llm-base-url", default=None, help="OpenAI-compatible or Ollama base URL.")
@click.option("--llm-model", default=None, help="LLM model name.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def ask(ctx, question, backend, questions, top_k, llm_base_url, llm_model, as_json):
    """Answer a question from the notes, with [n] citations (or say the notes don't cover it)."""
    settings = _settings(ctx, backend=backend, top_k=top_k, llm_base_url=llm_base_url, llm_model=llm_model)
    if questions is None:
        question = clean_query(question)
    elif question is not None:
        raise UserError("give either a QUESTION or --questions FILE, not both")
    batch = read_questions(questions) if questions is not None else [{"id": None, "question": question}]

    def run():
        from assistant.service import Assistant

        engine = _engine(settings)
        ensure_index(engine)
        assistant = Assistant(engine, settings)
        for record in batch:
            q = record["question"]
            if not q.strip():
                yield record, None
                continue
            history = record.get("history") if isinstance(record.get("history"), list) else ()
            yield record, assistant.ask(q, history)

    for record, answer in _run_guarded(lambda: list(run())):
        if answer is None:
            emit_json({"id": record["id"], "question": record["question"], "error": "empty question"}) if as_json else \
                click.echo(f"## {record['id']}: empty question, skipped", err=True)
            continue
        for notice in answer.notices:
            click.echo(f"notice: {notice}", err=True)
        if as_json:
            obj = answer.to_json()
            emit_json({"id": record["id"], **obj} if record["id"] is not None else obj)
            continue
        if record["id"] is not None:
            click.echo(f"## {record['id']}: {record['question']}")
        if answer.condensed_query != answer.question:
            click.echo(f"(searched for: {answer.condensed_query})")
        click.echo(answer.answer)
        if answer.citations:
            click.echo("\nSources:")
            for c in answer.citations:
                click.echo(f"[{c.n}] {c.heading} ({c.location})")


@cli.command()
@click.option("--host", default=None, help="Bind address (default 127.0.0.1; others need NOTES_ASSISTANT_AUTH).")
@click.option("--port", type=int, default=None, help="Port (default 7860).")
@click.pass_context
def serve(ctx, host, port):
    """Start the web chat (same as `python app.py`)."""
    args = [sys.executable, "-m", "app"]
    for flag, value in (("--host", host), ("--port", port), ("--notes", ctx.obj.get("notes_path")),
                        ("--data-dir", ctx.obj.get("data_dir"))):
        if value is not None:
            args += [flag, str(value)]
    # The web app is its own process entry point (app.py); nothing imports it.
    os.execv(sys.executable, args)


def main() -> None:
    """Console-script entry point."""
    try:
        cli.main(standalone_mode=True)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)


if __name__ == "__main__":
    main()
