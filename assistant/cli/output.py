"""What every command-line edge shares: settings from flags, one-line errors, progress, JSON.

Public on purpose: ``evals.cli`` and ``app.py`` are edges too and use these
instead of reaching into a command module's private helpers.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from contextlib import contextmanager
from typing import TYPE_CHECKING

import click

from assistant.cli.options import overrides_of
from assistant.settings import SettingsError, clean_question, load_settings

if TYPE_CHECKING:
    from assistant.engine import Engine
    from assistant.settings import Settings

__all__ = [
    "UserError", "settings_from", "make_engine", "run_guarded", "index_guarded", "progress_bar", "ensure_index",
    "emit_json", "describe_report", "question_from", "check_model_path",
]


class UserError(click.ClickException):
    """A bad input or environment: one line on stderr, exit 2."""

    exit_code = 2

    def show(self, file=None) -> None:
        click.echo(f"error: {self.format_message()}", err=True)


def settings_from(ctx: click.Context, **overrides) -> "Settings":
    """Settings from the environment, the global options and a command's own ``overrides``."""
    try:
        return load_settings(os.environ, **{**overrides_of(ctx), **overrides})
    except SettingsError as e:
        raise UserError(str(e)) from e


def make_engine(settings: "Settings", take_over: bool = False) -> "Engine":
    """The engine for ``settings`` (imported lazily: ``--help`` stays fast)."""
    from assistant.engine import Engine

    return Engine(settings, take_over=take_over)


def _known_errors() -> tuple[type[Exception], ...]:
    from ingest.errors import IngestError
    from vectorstore.errors import VectorStoreError

    return (IngestError, VectorStoreError, SettingsError)


def run_guarded(fn: Callable):
    """Call ``fn`` turning our own errors (and a few environment ones) into ``UserError``."""
    try:
        return fn()
    except click.ClickException:
        raise
    except _known_errors() as e:
        raise UserError(str(e)) from e
    except PermissionError as e:
        raise UserError(f"permission denied: {e.filename}; fix its permissions or choose another --data-dir") from e
    except Exception as e:
        from vectorstore.client import damage_detail, is_damage_error
        from vectorstore.errors import REPAIR_HINT

        if is_damage_error(e):  # SQLite under Chroma or the record store found a torn file mid-run
            raise UserError(f"the index is damaged ({damage_detail(e)}); {REPAIR_HINT}") from e
        raise


def check_model_path(model_path: str) -> None:
    """Fail fast (a few ``stat`` calls) when the embedding model folder cannot be a model."""
    from vectorstore.embeddings import check_model_path as check

    check(model_path)


def index_guarded(fn: Callable, settings: "Settings"):
    """``run_guarded``, plus a Chroma server that went away mid-run as one line with the fix."""
    from vectorstore.client import is_connection_error, server_unavailable

    try:
        return run_guarded(fn)
    except Exception as e:
        if settings.server_mode and is_connection_error(e):
            raise UserError(str(server_unavailable(settings.chroma_host, settings.chroma_port, e))) from e
        raise


@contextmanager
def progress_bar(desc: str, unit: str):
    """A tqdm bar on stderr, shown from the first update; yields the ``(done, total)`` callback."""
    from tqdm import tqdm

    state: dict = {}

    def update(done: int, total: int) -> None:
        bar = state.get("bar")
        if bar is None:
            bar = state["bar"] = tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, leave=False)
        bar.total = total
        bar.update(done - bar.n)

    try:
        yield update
    finally:
        if "bar" in state:
            state["bar"].close()


def ensure_index(engine: "Engine") -> None:
    """Build or update the index before a query, saying so on stderr.

    A model that cannot load, or a damaged index, is one error line naming the fix,
    before anything is said or written.
    """
    from vectorstore.damage import raise_if_damaged

    check_model_path(engine.settings.model_path)
    raise_if_damaged(engine.sync.damage())
    with progress_bar("indexing chunks", "text") as update, progress_bar("embedding answer units", "text") as units:
        report = engine.ensure_index(notify=lambda msg: click.echo(msg, err=True), progress=update,
                                     units_progress=units)
    if report is not None:
        click.echo(f"index updated: {report.summary()}", err=True)


def question_from(text: str | None, settings: "Settings") -> str:
    """A question or query from the command line: non-empty; truncated to the setting, with a notice."""
    if text is None or not text.strip():
        raise UserError("the question is empty; ask something, e.g. notes-assistant search \"lambda cold starts\"")
    question, truncated = clean_question(text, settings.max_question_chars)
    if truncated:
        click.echo(f"notice: question truncated to {settings.max_question_chars} characters", err=True)
    return question


def emit_json(obj) -> None:
    """One JSON object on one stdout line."""
    click.echo(json.dumps(obj, ensure_ascii=False))


def describe_report(report) -> str:
    """One line of counts, e.g. ``added 1, updated 0, deleted 1, skipped 812 (0 embedded; …) in 0.31s``."""
    line = (
        f"added {report.added}, updated {report.updated}, deleted {report.deleted}, skipped {report.skipped} "
        f"({report.embedded} embedded; {report.chunks} chunks from {report.sources} notes) in {report.seconds:.2f}s"
    )
    if report.units_embedded:
        line += f"; then {report.units_embedded} answer units embedded in {report.units_seconds:.2f}s"
    if report.recovered:
        line += " [completed an interrupted run]"
    return line
