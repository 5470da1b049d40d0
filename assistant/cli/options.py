"""Global options (``--notes``, ``--data-dir``, …) accepted before or after any subcommand.

Each option is declared on the group *and* on every subcommand with
``expose_value=False``: its callback records the value in ``ctx.meta``, which all
contexts of one invocation share, so ``notes-assistant --notes X index`` and
``notes-assistant index --notes X`` mean the same (a value after the subcommand
wins). ``assistant.cli.output.settings_from`` reads them back.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import click

__all__ = ["global_options", "overrides_of"]

_KEY = "notes_assistant.overrides"
_NOISY = ("httpx", "chromadb", "sentence_transformers", "urllib3", "bm25s", "transformers")


def overrides_of(ctx: click.Context) -> dict:
    """The global options given anywhere on the command line, as ``Settings`` field overrides."""
    return dict(ctx.meta.get(_KEY, {}))


def _remember(field: str):
    def callback(ctx: click.Context, _param, value):
        if value is not None:
            ctx.meta.setdefault(_KEY, {})[field] = value
        return value

    return callback


def _verbosity(ctx: click.Context, _param, value: int) -> int:
    level_count = max(value or 0, ctx.meta.get("notes_assistant.verbose", 0))
    ctx.meta["notes_assistant.verbose"] = level_count
    level = logging.WARNING if level_count == 0 else logging.INFO if level_count == 1 else logging.DEBUG
    logging.basicConfig(level=level, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger().setLevel(level)
    for noisy in _NOISY:
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))
    return level_count


_OPTIONS = (
    click.option("--notes", "notes_path", type=click.Path(path_type=Path), expose_value=False,
                 callback=_remember("notes_path"), help="Notes file or folder (default: notes/)."),
    click.option("--data-dir", type=click.Path(path_type=Path), expose_value=False, callback=_remember("data_dir"),
                 help="Index folder (default: .notes-index/)."),
    click.option("--chroma-host", expose_value=False, callback=_remember("chroma_host"),
                 help="Use a Chroma server at this host instead of the embedded store."),
    click.option("--chroma-port", type=click.IntRange(1, 65535), expose_value=False, callback=_remember("chroma_port"),
                 help="Chroma server port."),
    click.option("--chunk-tokens", type=click.IntRange(32, 8192), expose_value=False,
                 callback=_remember("chunk_tokens"), help="Maximum tokens per chunk."),
    click.option("-v", "--verbose", count=True, expose_value=False, callback=_verbosity,
                 help="-v for info logs, -vv for debug."),
)


def global_options(command):
    """Decorator: add the global options to a command or group (see the module docstring)."""
    for option in reversed(_OPTIONS):
        command = option(command)
    return command
