"""The ``notes-assistant`` command group and the console-script entry point.

Errors from the layers below become one line on stderr with exit code 2 here
(through ``assistant.cli.output``), and only at this edge.
"""

from __future__ import annotations

import importlib
import sys

import click

from assistant.cli.index import index
from assistant.cli.options import global_options
from assistant.cli.output import UserError
from assistant.cli.query import ask, search
from assistant.cli.serve import serve

__all__ = ["cli", "main"]


class LazyGroup(click.Group):
    """Subcommands that live in other packages are imported only when invoked (fast cold start)."""

    lazy = {"eval": "evals.cli:eval_command", "tune": "evals.cli:tune_command"}

    def list_commands(self, ctx):
        return sorted({*super().list_commands(ctx), *self.lazy})

    def get_command(self, ctx, name):
        if name in self.lazy:
            module, attr = self.lazy[name].split(":")
            try:
                return getattr(importlib.import_module(module), attr)
            except ImportError as e:
                raise UserError(f"the {name} command is not available: {e}") from e
        return super().get_command(ctx, name)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@global_options
def cli():
    """Ask your markdown notes; answers cite the headings and lines they come from.

    --notes, --data-dir, --chroma-host/--chroma-port, --chunk-tokens and -v work
    before or after the command.
    """


for _command in (index, search, ask, serve):
    cli.add_command(_command)


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: prepare the process, run the command, exit with its code.

    Usage errors (a bad option value, an unknown command) are one line and exit 2.
    """
    from assistant.bootstrap import prepare_process

    prepare_process()
    try:
        code = cli.main(args=argv, prog_name="notes-assistant", standalone_mode=False)
    except click.exceptions.UsageError as e:
        command = e.ctx.command_path if e.ctx else "notes-assistant"
        click.echo(f"error: {e.format_message()} (see {command} --help)", err=True)
        sys.exit(2)
    except click.ClickException as e:
        e.show()
        sys.exit(e.exit_code)
    except (click.exceptions.Abort, KeyboardInterrupt):
        click.echo("interrupted", err=True)
        sys.exit(130)
    sys.exit(code if isinstance(code, int) else 0)
