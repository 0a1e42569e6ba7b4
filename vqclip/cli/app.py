"""The `vqclip` command line: one Typer app on which the commands of the modules beside this one
are mounted; each command runs its work inside the wrapper of cli/command.py, which turns errors
into messages and exit codes."""

from __future__ import annotations

from typing import Annotated

import typer

from vqclip.cli.helptext import App
from vqclip.version import __version__

app = App(
    name="vqclip",
    help="Text-to-image with VQGAN+CLIP, plus CLIP classification, search and scoring.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


def _mount_subcommands() -> None:
    from vqclip.cli.gallery import register as register_gallery
    from vqclip.cli.generate import register as register_generate
    from vqclip.cli.models import models_app
    from vqclip.cli.runs import register as register_runs
    from vqclip.cli.tasks import register as register_tasks

    register_generate(app)
    app.add_typer(models_app, name="models")
    register_runs(app)
    register_tasks(app)
    register_gallery(app)


def _version(value: bool) -> None:
    if value:
        from vqclip.plugins import load_plugins

        typer.echo(f"vqclip {__version__}")
        for plugin in load_plugins():
            typer.echo(f"plugin {plugin.describe()}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True,
                           help="Print the version and the plugins loaded.")
    ] = False,
) -> None:
    """vqclip: VQGAN+CLIP text-to-image and CLIP's other jobs."""


_mount_subcommands()
