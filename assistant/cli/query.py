"""``notes-assistant search`` and ``ask``: one question, or a JSONL file of them."""

from __future__ import annotations

import json
from pathlib import Path

import click

from assistant.cli.options import global_options
from assistant.cli.output import (
    UserError, emit_json, ensure_index, make_engine, question_from, run_guarded, settings_from,
)
from assistant.settings import BACKENDS, clean_question

__all__ = ["search", "ask", "read_questions"]


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


def _batch(question: str | None, questions: Path | None, settings) -> list[dict]:
    """``[{"id", "question"}]``: the one QUESTION (id None) or the records of --questions."""
    if questions is None:
        return [{"id": None, "question": question_from(question, settings)}]
    if question is not None:
        raise UserError("give either a QUESTION or --questions FILE, not both")
    return read_questions(questions)


@click.command()
@click.argument("query", required=False)
@click.option("-k", "top_k", type=click.IntRange(1, 100), default=None, help="How many results (default 8).")
@click.option("--questions", type=click.Path(path_type=Path), help="JSONL file of {\"id\", \"question\"} to search in batch.")
@click.option("--mode", type=click.Choice(["hybrid", "dense", "bm25"]), default="hybrid", help="Retrieval mode.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@global_options
@click.pass_context
def search(ctx, query, top_k, questions, mode, as_json):
    """Search the notes: ranked sections with heading path and source:start-end."""
    settings = settings_from(ctx, top_k=top_k)
    batch = _batch(query, questions, settings)

    def run():
        engine = make_engine(settings)
        ensure_index(engine)
        out = []
        for record in batch:
            q, _ = clean_question(record["question"], settings.max_question_chars)
            scope = engine.narrow(q) if q else None  # "#tag" / "tag:x" narrow the search to notes with the tag
            results = engine.search(scope.query, settings.top_k, mode, sources=scope.sources) if scope else []
            out.append((record, results, scope.notice if scope else None))
        return out

    for record, results, notice in run_guarded(run):
        if notice:
            click.echo(f"notice: {notice}", err=True)
        if as_json:
            obj = {"query": record["question"], "results": [r.to_json() for r in results]}
            emit_json(obj if record["id"] is None else {"id": record["id"], **obj})
            continue
        if record["id"] is not None:
            click.echo(f"## {record['id']}: {record['question']}")
        if not results:
            click.echo("no results")
        for r in results:
            click.echo(f"{r.rank:>2}. {r.heading or r.source}  ({r.source}:{r.start_line}-{r.end_line})  score={r.score:.4f}")


@click.command()
@click.argument("question", required=False)
@click.option("--backend", type=click.Choice(BACKENDS), default=None,
              help="Answerer (default: extractive, or NOTES_ASSISTANT_BACKEND).")
@click.option("--questions", type=click.Path(path_type=Path), help="JSONL file of {\"id\", \"question\"[, \"history\"]}.")
@click.option("-k", "top_k", type=click.IntRange(1, 100), default=None, help="Sections retrieved.")
@click.option("--llm-base-url", default=None, help="OpenAI-compatible or Ollama base URL.")
@click.option("--llm-model", default=None, help="LLM model name.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@global_options
@click.pass_context
def ask(ctx, question, backend, questions, top_k, llm_base_url, llm_model, as_json):
    """Answer a question from the notes, with [n] citations (or say the notes don't cover it)."""
    settings = settings_from(ctx, backend=backend, top_k=top_k, llm_base_url=llm_base_url, llm_model=llm_model)
    batch = _batch(question, questions, settings)

    def run():
        from assistant.service import Assistant

        engine = make_engine(settings)
        ensure_index(engine)
        assistant = Assistant(engine, settings)
        for record in batch:
            q = record["question"]
            if not q.strip():
                yield record, None
                continue
            history = record.get("history") if isinstance(record.get("history"), list) else ()
            yield record, assistant.ask(q, history)

    for record, answer in run_guarded(lambda: list(run())):
        if answer is None:
            if as_json:
                emit_json({"id": record["id"], "question": record["question"], "error": "empty question"})
            else:
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
