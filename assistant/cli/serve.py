"""``notes-assistant serve``: hand over to the web app's entry point (``app.py``)."""

from __future__ import annotations

import os
import sys

import click

from assistant.cli.options import global_options, overrides_of
from assistant.cli.output import UserError

__all__ = ["serve"]

# The web app takes these global options itself; the others come through the environment.
_PASSED_AS_FLAGS = {"notes_path": "--notes", "data_dir": "--data-dir"}


@click.command()
@click.option("--host", default=None, help="Bind address (default 127.0.0.1; others need NOTES_ASSISTANT_AUTH).")
@click.option("--port", type=click.IntRange(1, 65535), default=None, help="Port (default 7860).")
@global_options
@click.pass_context
def serve(ctx, host, port):
    """Start the web chat (same as `python app.py`)."""
    args = [sys.executable, "-m", "app"]
    for flag, value in (("--host", host), ("--port", port)):
        if value is not None:
            args += [flag, str(value)]
    env = dict(os.environ)
    for field, value in overrides_of(ctx).items():
        if field in _PASSED_AS_FLAGS:
            args += [_PASSED_AS_FLAGS[field], str(value)]
        else:
            env[f"NOTES_ASSISTANT_{field.upper()}"] = str(value)
    if ctx.meta.get("notes_assistant.verbose"):
        args.append("-" + "v" * ctx.meta["notes_assistant.verbose"])
    try:
        # The web app is its own process entry point (app.py); nothing imports it.
        os.execve(sys.executable, args, env)
    except OSError as e:
        raise UserError(f"cannot start the web app: {e}") from e
