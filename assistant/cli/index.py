"""``notes-assistant index``: build or update the index, ``--watch`` it, ``--check``/``--repair`` it."""

from __future__ import annotations

import click

from assistant.cli.options import global_options
from assistant.cli.output import (
    UserError, check_model_path, describe_report, emit_json, index_guarded, make_engine, progress_bar, settings_from,
)

__all__ = ["index"]


@click.command()
@click.option("--rebuild", is_flag=True, help="Drop the index and build it again (vectors come from the cache).")
@click.option("--json", "as_json", is_flag=True, help="Print the counts (or the --check report) as JSON.")
@click.option("--watch", is_flag=True, help="Keep running: re-index about a second after notes change (Ctrl-C stops).")
@click.option("--debounce", type=click.FloatRange(0.05, 60.0), default=1.0, show_default=True,
              help="With --watch: seconds of quiet after a change before re-indexing.")
@click.option("--check", is_flag=True, help="Verify that record manager, Chroma and the files agree; exit 1 on problems.")
@click.option("--repair", is_flag=True, help="Fix what --check finds (cached vectors are not re-embedded).")
@click.option("--no-wait", is_flag=True, help="Fail at once when another indexer is running (default: wait for it).")
@global_options
@click.pass_context
def index(ctx, rebuild, as_json, watch, debounce, check, repair, no_wait):
    """Index the notes (incremental: only changed notes are re-embedded).

    Only one process writes an index at a time; others wait for it (or fail with
    --no-wait). An interrupted run is completed by the next one.
    """
    settings = settings_from(ctx)
    if rebuild + check + repair > 1:
        raise UserError("use only one of --rebuild, --check and --repair")
    if watch and (check or repair):
        raise UserError("--watch keeps the index up to date; run --check or --repair separately")
    lock_timeout = 0 if no_wait else None

    def waiting(holder: str) -> None:
        click.echo(f"another indexer is running ({holder}); waiting for it to finish…", err=True)

    engine = index_guarded(lambda: make_engine(settings, take_over=rebuild), settings)
    if check:
        _check_files_first(ctx, settings, as_json)
    if repair or rebuild:
        _set_damaged_files_aside(settings, rebuild, lock_timeout, waiting)
    if not check:  # a model that cannot load fails here, before anything is written
        index_guarded(lambda: check_model_path(settings.model_path), settings)
    if check or repair:
        repaired = None
        if repair:
            with progress_bar("repairing", "text") as update:
                repaired = index_guarded(lambda: engine.repair(update, lock_timeout=lock_timeout, notify=waiting),
                                         settings)
        result = index_guarded(lambda: engine.check(lock_timeout=lock_timeout, notify=waiting), settings)
        if as_json:
            emit_json({**result.to_json(), **({"repair": repaired.to_json()} if repaired else {})})
        else:
            if repaired is not None:
                click.echo(f"repaired: {describe_report(repaired)}")
            for line in result.lines():
                click.echo(line)
        ctx.exit(0 if result.ok else 1)

    with progress_bar("indexing chunks", "text") as update, progress_bar("embedding answer units", "text") as units:
        report = index_guarded(lambda: engine.index(rebuild=rebuild, progress=update, lock_timeout=lock_timeout,
                                                    notify=waiting, units_progress=units), settings)
    for source in report.skipped_files:
        click.echo(f"warning: skipped {source} (see the log line above for why)", err=True)
    if as_json:
        emit_json(report.to_json())
    else:
        click.echo(describe_report(report))
    if watch:
        _watch(engine, settings, debounce, as_json)


def _check_files_first(ctx, settings, as_json: bool) -> None:
    """``--check`` on a Chroma store too damaged to open: its one line per problem, exit 1."""
    from vectorstore.damage import inspect_files

    damage = index_guarded(lambda: inspect_files(settings.data_dir, not settings.server_mode, deep=True), settings)
    if not any(d.kind == "chroma" for d in damage):
        return  # the engine's check reads the store and reports the rest
    lines = [d.line() for d in damage]
    if as_json:
        emit_json({"ok": False, "problems": len(lines), "damage": lines})
    else:
        for line in lines + [f"{len(lines)} problem(s)"]:
            click.echo(line)
    ctx.exit(1)


def _set_damaged_files_aside(settings, take_over: bool, lock_timeout, waiting) -> None:
    """``--repair``/``--rebuild``: move damaged derived files into ``<data dir>/damaged-<time>/`` first."""
    from vectorstore.damage import set_aside_damaged
    from vectorstore.datadir import prepare_data_dir

    def move():
        data_dir = prepare_data_dir(settings.data_dir, take_over)
        return set_aside_damaged(data_dir, not settings.server_mode, lock_timeout, waiting)

    folder, names = index_guarded(move, settings)
    if folder is not None:
        click.echo(f"moved damaged index files aside to {folder}: {', '.join(names)} (rebuilding them)", err=True)


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
            click.echo(f"{time.strftime('%H:%M:%S')} {changes}: {describe_report(report)}")

    def failed(error: Exception) -> None:
        click.echo(f"{time.strftime('%H:%M:%S')} error: {error} (will retry)", err=True)

    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    watcher = NotesWatcher(engine, debounce=debounce, on_report=show, on_error=failed, initial=False)
    index_guarded(watcher.start, settings)
    click.echo(f"watching {watcher.root} for changes (Ctrl-C to stop)", err=True)
    try:
        while not done.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        watcher.stop()
    click.echo("stopped watching", err=True)
